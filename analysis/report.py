"""Build every report artefact of a run directory from its files.

``comparison.csv`` (one row per target, full precision), ``frontier.csv`` and ``probes.csv`` (suite
runs: the capacity frontier and every probed rate), ``stages.csv`` and ``drift.csv`` (scenarios that
report a ramp's stages or a sustained run's drift), ``report.md`` (pull requests),
``report.html`` (self-contained, offline) and ``timeseries.parquet`` / ``resources.parquet`` /
``metrics.parquet`` (columnar copies for pandas). Always regenerated from the run's files, so
``aigw-bench report <dir>`` after a code change gives the same numbers: the per-second files are
reused when they are up to date and derived again from the raw k6 output when they are missing,
older than it or of an older format (:func:`analysis.derive.ensure_derived`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from analysis.compare import comparison
from analysis.derive import ensure_derived
from analysis.headline import Headline, headlines, scenario_headlines, suite_headlines
from analysis.load import RunData, load_run
from analysis.report_html import render_html
from analysis.report_md import render_markdown
from analysis.scenario_results import ScenarioResults, scenario_results
from analysis.suite import SuiteResults, suite_results
from analysis.validity import Finding, check
from schema.results import read_outcomes


@dataclass(frozen=True)
class Report:
    run: RunData
    table: pd.DataFrame
    findings: list[Finding]
    headlines: list[Headline]
    suite: SuiteResults
    scenario: ScenarioResults
    paths: dict[str, Path]


def _write_parquet(frame: pd.DataFrame, path: Path) -> Path | None:
    if frame.empty:
        return None
    frame.to_parquet(path, index=False)
    return path


def build_report(run_dir: Path) -> Report:
    run_dir = Path(run_dir)
    ensure_derived(run_dir, read_outcomes(run_dir))
    run = load_run(run_dir)
    suite = suite_results(run)
    own = scenario_results(run)
    table = comparison(run, suite)
    findings = check(run, table, suite)
    if run.is_suite:
        gateway_cpus = run.manifest.cpu_pinning.gateway
        heads = suite_headlines(table, findings, len(gateway_cpus) if gateway_cpus else None)
    else:
        heads = scenario_headlines(table, findings, own) + headlines(
            table, findings, closed_loop=run.manifest.scenario.executor != "constant-arrival-rate",
            paced=own.paced)
    paths = {
        "comparison": run_dir / "comparison.csv",
        "markdown": run_dir / "report.md",
        "html": run_dir / "report.html",
    }
    table.to_csv(paths["comparison"], index=False)
    if not suite.frontier.empty:
        paths["frontier"] = run_dir / "frontier.csv"
        suite.frontier.to_csv(paths["frontier"], index=False)
        paths["probes"] = run_dir / "probes.csv"
        suite.probes.to_csv(paths["probes"], index=False)
    paths["markdown"].write_text(render_markdown(run, table, findings, heads, suite, own))
    paths["html"].write_text(render_html(run, table, findings, heads, suite, own))
    for name, frame in (("timeseries", run.timeseries), ("resources", run.resources), ("metrics", run.metrics)):
        written = _write_parquet(frame, run_dir / f"{name}.parquet")
        if written:
            paths[name] = written
    if not own.stages.empty:
        paths["stages"] = run_dir / "stages.csv"
        own.stages.to_csv(paths["stages"], index=False)
    if not own.drift.empty:
        paths["drift"] = run_dir / "drift.csv"
        own.drift.to_csv(paths["drift"], index=False)
    return Report(run, table, findings, heads, suite, own, paths)


def write_report(run_dir: Path) -> dict[str, Path]:
    """(Re)build the report files of a run directory; returns their paths by kind."""
    return build_report(run_dir).paths
