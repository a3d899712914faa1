"""``report.html``: one self-contained file (inline CSS and SVG, no script, no CDN) that opens offline."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
from markupsafe import Markup, escape

from analysis import charts
from analysis.drift import WINDOW_S
from analysis.headline import Headline
from analysis.load import RunData
from analysis.report_md import (
    REPEAT_HEADERS,
    VALIDITY_FIRST,
    VALIDITY_NOTE,
    cost_rows,
    cost_summary,
    intro_text,
    is_closed_loop,
    load_text,
    manifest_lines,
    problem_entries,
    rebuild_command,
    repeat_rows,
    request_text,
    results_cells,
    results_note,
    version_rows,
)
from analysis.report_scenario import scenario_tables
from analysis.report_tables import TextTable, closing_tables, policy_cost_table, rig_summary, suite_tables
from analysis.scenario_results import ScenarioResults
from analysis.scorecard import Scorecard
from analysis.suite import SuiteResults
from analysis.validity import RULE_TITLES, Finding

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"


def _results(run: RunData, table: pd.DataFrame, colours: dict[str, str], paced: bool) -> dict[str, Any]:
    closed = is_closed_loop(run)
    headers, rows = results_cells(table, closed)
    for row in rows:
        row["colour"] = colours.get(row["target"], "#999")
    return {"headers": headers, "rows": rows, "note": results_note(run, closed, paced),
            "title": "The published shape (closed loop)" if run.is_suite else "Results"}


def _repeats(table: pd.DataFrame) -> dict[str, Any] | None:
    rows = repeat_rows(table)
    return {"headers": REPEAT_HEADERS, "rows": rows} if rows else None


def _charts(run: RunData, table: pd.DataFrame, colours: dict[str, str],
            suite: SuiteResults | None, own: ScenarioResults | None = None,
            policy: pd.DataFrame | None = None) -> list[dict[str, Any]]:
    out = []
    if policy is not None and policy["delta_p50_us"].notna().any():
        out.append({"id": "policy-cost", "svg": charts.policy_deltas(policy, colours),
                    "caption": "What each policy adds at concurrency 1 over the same target with no policy "
                               "(Δp50), with 95% intervals."})
    if own is not None and not own.stages.empty:
        out.append({"id": "scaling", "svg": charts.scaling(run.timeseries, own.stages, own.scaling, colours),
                    "caption": "Throughput ramp: requests per second and p95 latency of each stage against its mean "
                               "active VUs (ramp-down left out); faint dots: each second. Circled: the stage where "
                               "the target stopped scaling."})
    if own is not None and not own.drift.empty and not run.timeseries.empty:
        out.append({"id": "drift", "svg": charts.drift(run.timeseries, run.resources, colours, WINDOW_S),
                    "caption": "Sustained load: median latency per second (10 s rolling) and the gateway's resident "
                               "memory over the measurement; shaded: the first and last minute compared."})
    if suite is not None and not suite.overhead.empty:
        out.append({"id": "overhead", "svg": charts.overhead_bars(suite.overhead, colours),
                    "caption": "Added latency at concurrency 1 (target minus direct), with 95% intervals."})
    if suite is not None and not suite.probes.empty:
        out.append({"id": "frontier", "svg": charts.frontier(suite.probes, suite.frontier, colours),
                    "caption": "p99 latency against offered arrival rate, every probe of every search; dashed: "
                               "the p99 bounds. Filled markers met the bound conditions (errors, drops)."})
    if table["rps"].notna().any():
        out.append({"id": "throughput", "svg": charts.throughput_bars(table, colours),
                    "caption": "Requests per second per target (k6 http_reqs rate)."})
        out.append({"id": "latency", "svg": charts.latency_percentiles(table, colours),
                    "caption": "Latency percentiles per target (k6 http_req_duration)."})
    if not run.timeseries.empty and "requests" in run.timeseries:
        out.append({"id": "over-time", "svg": charts.over_time(run.timeseries, colours),
                    "caption": "Per-second throughput and p95 latency (first and last partial seconds omitted)."})
    if not run.histograms.empty and "bucket" in run.histograms:
        out.append({"id": "distribution", "svg": charts.latency_cdf(run.histograms, colours),
                    "caption": "Cumulative latency distribution from per-request samples, all repeats merged."})
    if not run.resources.empty and "role" in run.resources:
        out.append({"id": "resources", "svg": charts.resource_usage(run.resources, colours),
                    "caption": "Mean CPU and resident memory of each process group while k6 measured."})
    for c in out:
        c["svg"] = Markup(c["svg"])  # generated by matplotlib from our own data
    return out


def _cost(table: pd.DataFrame, cost: dict[str, Any] | None) -> dict[str, Any] | None:
    if not cost:
        return None
    return {"summary": cost_summary(cost), "rows": cost_rows(table, cost)}


_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*([^*]+)\*\*")
_ITALIC = re.compile(r"(?<![\w*])\*([^*\s][^*]*)\*(?![\w*])")


def inline_markdown(text: object) -> Markup:
    """The report's shared sentences carry markdown (`code`, **bold**, *italic*) for report.md; in HTML they
    become elements, never literal back-ticks or asterisks. Everything else is escaped."""
    html = str(escape(str(text)))
    html = _CODE.sub(r"<code>\1</code>", html)
    html = _BOLD.sub(r"<b>\1</b>", html)
    return Markup(_ITALIC.sub(r"<i>\1</i>", html))


def render_html(run: RunData, table: pd.DataFrame, findings: list[Finding], heads: list[Headline],
                suite: SuiteResults | None = None, own: ScenarioResults | None = None,
                card: Scorecard | None = None, policy: pd.DataFrame | None = None,
                resilience: list[TextTable] | None = None) -> str:
    m = run.manifest
    s = m.scenario
    p = s.params
    colours = charts.target_colours(m.roles())
    groups = [{"title": title, "entries": [f for f in findings if f.rule == rule]}
              for rule, title in RULE_TITLES.items()]
    load = load_text(s) + f", warm-up {p.get('warmup')} s excluded"
    if m.suite:
        load = f"suite {m.suite.name}: overhead, capacity, efficiency, streaming; seed: " + load
    mock_text = f"{m.mock.name} ({m.mock.profile.get('name', '–')} pacing)"
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATE_DIR), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    env.filters["md"] = inline_markdown
    return env.get_template("report.html.j2").render(
        run_id=m.run_id,
        scenario=s,
        environment=m.environment,
        created_at=m.created_at,
        tools=m.tools | {"aigw_bench": m.tools.get("aigw_bench", "")},
        load_text=load,
        mock_text=mock_text,
        request_text=request_text(p),
        repeats=m.repeats,
        cpu_note=m.cpu_pinning.note or "–",
        problems=problem_entries(run),
        findings=[g for g in groups if g["entries"]],
        headlines=heads,
        intro=intro_text(run),
        rig_lines=rig_summary(run),
        card=card,
        validity_note=VALIDITY_NOTE if card is not None else VALIDITY_FIRST,
        suite=m.suite,
        suite_tables=(scenario_tables(own, table) if own is not None else [])
        + [t for t in [policy_cost_table(policy) if policy is not None else None] if t is not None]
        + (resilience or [])
        + (suite_tables(run, suite, table) if suite is not None and not suite.empty else []),
        closing_tables=closing_tables(run),
        results=_results(run, table, colours, own.paced if own is not None else False),
        repeats_table=_repeats(table),
        charts=_charts(run, table, colours, suite, own, policy),
        cost=_cost(table, m.cost),
        versions=version_rows(m),
        manifest_lines=manifest_lines(m),
        manifest_json=json.dumps(m.model_dump(mode="json"), indent=2, default=str),
        rebuild_command=rebuild_command(run.run_dir),
    )
