"""Build every report artefact of a run directory from its files.

``comparison.csv`` (one row per target, full precision), ``frontier.csv`` and ``probes.csv`` (suite
runs: the capacity frontier and every probed rate), ``policy.csv`` (the policies suite: cost and works per
target and policy, analysis/policy.py), ``stages.csv`` and ``drift.csv`` (scenarios that
report a ramp's stages or a sustained run's drift), ``report.md`` (pull requests),
``report.html`` (self-contained, offline) and ``timeseries.parquet`` / ``resources.parquet`` /
``metrics.parquet`` (columnar copies for pandas). Always regenerated from the run's files, so
``aigw-bench report <dir>`` after a code change gives the same numbers: the per-second files are
reused when they are up to date and derived again from the raw k6 output when they are missing,
older than it or of an older format (:func:`analysis.derive.ensure_derived`). Each file is written
whole or not at all, every one even when another cannot be (a full disk): :class:`ReportIncomplete`
names those not written.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pandas as pd

from analysis.compare import comparison
from analysis.derive import ensure_derived
from analysis.faults import faults_table, verdicts
from analysis.headline import Headline, headlines, scenario_headlines, suite_headlines
from analysis.load import RunData, load_run
from analysis.policy import policy_table
from analysis.report_html import render_html
from analysis.report_md import render_markdown
from analysis.report_tables import resilience_tables
from analysis.scenario_results import ScenarioResults, scenario_results
from analysis.scorecard import Scorecard, scorecard
from analysis.suite import SuiteResults, suite_results
from analysis.validity import Finding, check
from schema.errors import ResultsError, is_disk_error
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
    scorecard: Scorecard | None = None


class ReportIncomplete(ResultsError):
    """Some report files could not be written (a full or read-only disk, or a stop while writing them);
    ``written`` holds those that were, ``missing`` says why each other one was not."""

    def __init__(self, run_dir: Path, written: dict[str, Path], missing: dict[str, tuple[Path, str]],
                 interrupted: bool = False):
        self.run_dir, self.written, self.missing, self.interrupted = run_dir, written, missing, interrupted
        names = ", ".join(f"{path.name} ({why})" for path, why in missing.values())
        super().__init__(f"report not complete in {run_dir}: not written: {names}")


Writer = Callable[[Path], object]


def _write_files(run_dir: Path, planned: list[tuple[str, Path, Writer]],
                 missing: dict[str, tuple[Path, str]]) -> dict[str, Path]:
    """Write each planned file whole or not at all (a temporary name, then a rename), every one even when
    another fails for want of space; raise :class:`ReportIncomplete` naming those not written (``missing``
    holds what was not written before)."""
    written: dict[str, Path] = {}
    for number, (kind, path, write) in enumerate(planned):
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            write(tmp)
            os.replace(tmp, path)
            written[kind] = path
        except BaseException as exc:
            with contextlib.suppress(OSError):  # a read-only disk has no half file to remove
                tmp.unlink(missing_ok=True)
            if isinstance(exc, OSError):
                missing[kind] = (path, exc.strerror or str(exc))
                continue
            if isinstance(exc, Exception):
                raise
            # Ctrl-C (or SIGTERM) while writing: name what is left, then stop
            missing.update({k: (p, "interrupted") for k, p, _ in planned[number:]})
            raise ReportIncomplete(run_dir, written, missing, interrupted=True) from exc
    if missing:
        raise ReportIncomplete(run_dir, written, missing)
    return written


def build_report(run_dir: Path) -> Report:
    run_dir = Path(run_dir)
    missing: dict[str, tuple[Path, str]] = {}
    try:
        ensure_derived(run_dir, read_outcomes(run_dir))
    except OSError as exc:  # a full or read-only disk: report from the files there are, and say so
        if not is_disk_error(exc):
            raise
        missing["derived"] = (Path(exc.filename or run_dir / "targets"), f"per-second files: {exc.strerror}")
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
    card = run_scorecard(run, table, findings, suite)
    policy = policy_table(run, table)
    faults = faults_table(run)
    resilience = resilience_tables(faults, verdicts(faults))
    markdown = render_markdown(run, table, findings, heads, suite, own, card, policy, resilience)
    html = render_html(run, table, findings, heads, suite, own, card, policy, resilience)
    planned: list[tuple[str, Path, Writer]] = [
        ("comparison", run_dir / "comparison.csv", partial(_to_csv, table)),
        ("markdown", run_dir / "report.md", partial(_text, markdown)),
        ("html", run_dir / "report.html", partial(_text, html)),
    ]
    for kind, frame in (("frontier", suite.frontier), ("probes", suite.probes), ("stages", own.stages),
                        ("drift", own.drift), ("policy", policy), ("faults", faults)):
        if not frame.empty:
            planned.append((kind, run_dir / f"{kind}.csv", partial(_to_csv, frame)))
    for kind, frame in (("timeseries", run.timeseries), ("resources", run.resources), ("metrics", run.metrics)):
        if not frame.empty:
            planned.append((kind, run_dir / f"{kind}.parquet", partial(_to_parquet, frame)))
    paths = _write_files(run_dir, planned, missing)
    return Report(run, table, findings, heads, suite, own, paths, card)


def run_scorecard(run: RunData, table: pd.DataFrame, findings: list[Finding], suite: SuiteResults) -> Scorecard | None:
    """A suite run's scorecard (None for a scenario run)."""
    if not run.is_suite or run.manifest.suite is None:
        return None
    return scorecard(table, findings, run.manifest.suite.name, run.manifest.suite.profile, suite.default_bound_ms,
                     suite.efficiency_rate, suite.frontier, run.manifest.mock.title or run.manifest.mock.name or "mock")


def _to_csv(frame: pd.DataFrame, path: Path) -> None:
    frame.to_csv(path, index=False)


def _to_parquet(frame: pd.DataFrame, path: Path) -> None:
    frame.to_parquet(path, index=False)


def _text(text: str, path: Path) -> None:
    path.write_text(text)


def write_report(run_dir: Path) -> dict[str, Path]:
    """(Re)build the report files of a run directory; returns their paths by kind."""
    return build_report(run_dir).paths
