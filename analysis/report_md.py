"""``report.md``: the comparison as a person reads it in a pull request.

Presentation only: rounding and units happen here; numbers come from :mod:`analysis.compare`,
judgements from :mod:`analysis.validity` and :mod:`analysis.headline`.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.compare import MAX_VALID_ERROR_RATE, RATE_ADDED_COLUMNS
from analysis.headline import Headline
from analysis.load import RunData
from analysis.report_scenario import scenario_tables
from analysis.report_tables import TextTable, closing_tables, policy_cost_table, rig_summary, suite_tables
from analysis.scenario_results import ScenarioResults
from analysis.scorecard import Scorecard
from analysis.suite import SuiteResults
from analysis.validity import RULE_TITLES, Finding
from schema.base import REPO_DIR
from schema.manifest import Manifest, ScenarioRecord
from schema.results import STATUS_TEXT


def fmt(value: Any, digits: int = 2, suffix: str = "") -> str:
    if not _present(value):
        return "–"
    if isinstance(value, bool | np.bool_):
        return f"{value}{suffix}"
    if isinstance(value, int | np.integer):  # a count: whole, with thousands separators
        return f"{int(value):,}{suffix}"
    if isinstance(value, float | np.floating):
        return f"{float(value):,.{digits}f}{suffix}"
    return f"{value}{suffix}"


def signed(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:+,.2f}"


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def ci_text(r: dict, metric: str, digits: int = 1) -> str:
    low, high = r.get(f"{metric}_ci_low"), r.get(f"{metric}_ci_high")
    if low is None or high is None or pd.isna(low) or pd.isna(high):
        return "–"
    return f"{low:,.{digits}f} – {high:,.{digits}f}"


def cv_text(r: dict, metric: str) -> str:
    cv = r.get(f"{metric}_cv")
    return fmt(cv * 100 if _present(cv) else None, 1, "%")


REPEATS_NOTE = ("Interval: the range (lowest to highest) of fewer than 5 repeats, a bootstrap 95% interval of the "
                "mean from 5 on; differences are called real only when the intervals do not overlap.")
REPEAT_HEADERS = ["target", "repeats", "RPS", "interval", "CV", "p95 ms", "interval", "CV", "p99 ms", "interval", "CV"]


def repeat_rows(table: pd.DataFrame) -> list[list[str]]:
    """Mean, 95% CI and coefficient of variation of the key metrics, for targets run more than once."""
    return [
        [r["target"], str(r["repeats"]), fmt(r["rps"], 1), ci_text(r, "rps"), cv_text(r, "rps"),
         fmt(r["latency_p95_ms"]), ci_text(r, "latency_p95_ms", 2), cv_text(r, "latency_p95_ms"),
         fmt(r["latency_p99_ms"]), ci_text(r, "latency_p99_ms", 2), cv_text(r, "latency_p99_ms")]
        for r in table[table["repeats"] > 1].to_dict("records")
    ]


def results_cells(table: pd.DataFrame, closed_loop: bool) -> tuple[list[str], list[dict[str, Any]]]:
    """The results table as text, for md and html. A rig-bound throughput reads "at least" (>=); with a
    closed loop no added latency is shown: latency there is queueing at each target's limit."""
    headers = ["target", "role", "version", "status", "requests", "RPS", "% of rig ceiling", "errors",
               "p50 ms", "p90 ms", "p95 ms", "p99 ms", "max ms"]
    if not closed_loop:
        headers += ["+p50 ms", "+p95 ms", "+p99 ms"]
    headers.append("RPS % of baseline")
    rows = []
    for r in table.to_dict("records"):
        measured = _present(r["rps"])
        status = STATUS_TEXT.get(r["status"], r["status"])
        if measured and not r["valid"] and r["status"] == "ok":
            status = f"measured, errors > {MAX_VALID_ERROR_RATE * 100:.0f}%"
        rig_bound = bool(r.get("rig_bound")) and r["role"] != "baseline"
        rps = (">= " if rig_bound else "") + fmt(r["rps"], 1)
        ceiling = r.get("rig_ceiling_rps")
        share = r["rps"] / ceiling * 100 if measured and _present(ceiling) and ceiling else None
        cells = [r["target"], r["role"], r["version"], status, fmt(r["requests"], 0), rps, fmt(share, 0, "%"),
                 fmt(r["error_rate"] * 100 if measured else None, 2, "%"),
                 *(fmt(r[c]) for c in ("latency_p50_ms", "latency_p90_ms", "latency_p95_ms", "latency_p99_ms",
                                       "latency_max_ms"))]
        if not closed_loop:
            cells += [signed(r[c]) for c in RATE_ADDED_COLUMNS]
        cells.append(fmt(r["rps_pct_of_baseline"], 1, "%"))
        rows.append({"cells": cells, "valid": bool(r["valid"]), "target": r["target"],
                     "status_class": "status-ok" if r["valid"] else ("status-skip" if r["status"] == "not_runnable"
                                                                     else "status-bad")})
    return headers, rows


def results_note(run: RunData, closed_loop: bool, paced: bool = False) -> str:
    if closed_loop and paced:
        profile = run.manifest.mock.profile
        pacing = (f"the mock paced like a hosted model ('{profile.get('name')}': {profile.get('ttft_ms'):g} ms to "
                  f"the first token, {profile.get('per_token_ms'):g} ms per token)"
                  if (profile.get("ttft_ms") or profile.get("per_token_ms")) else "an unpaced mock")
        return (f"A closed loop ({load_text(run.manifest.scenario)}) against {pacing}: each VU's "
                "throughput is 1 / (latency + pause), so throughput here restates latency rather than capacity, and "
                "no target-versus-target throughput statement is made. Latency includes the mock's own pacing. "
                "Throughput within 80% of the rig's ceiling reads \"at least\" (>=).")
    if closed_loop:
        p = run.manifest.scenario.params
        return (f"The published benchmark's shape: a closed loop of {p.get('vus')} virtual users, each sending its "
                "next request when the last one returns. Every target runs at its limit, so its latency is "
                "queueing (latency ~ VUs / RPS), not what it adds to a request: no added latency is derived from "
                "it (see the overhead and capacity sections, and docs/method.md). Throughput within 80% of the rig's "
                "ceiling reads \"at least\" (>=).")
    return ("Latency at a fixed arrival rate (open model); `+pXX` is the difference to the direct-to-mock baseline "
            "at that percentile and rate.")


def is_closed_loop(run: RunData) -> bool:
    return run.manifest.scenario.executor != "constant-arrival-rate"


def _present(value: Any) -> bool:
    return value is not None and value is not pd.NA and not (isinstance(value, float) and math.isnan(value))


def problem_entries(run: RunData) -> list[dict[str, Any]]:
    """Targets that were not measured, or not completely, with their evidence (for md and html)."""
    entries = []
    for r in run.outcomes.to_dict("records"):
        if r["status"] == "ok":
            continue
        facts = []
        if _present(r.get("exit_code")):
            facts.append(f"exit code: {int(r['exit_code'])}")
        if _present(r.get("smoke_status")):
            facts.append(f"first request answered HTTP {int(r['smoke_status'])}")
        tail = r.get("log_tail")
        log = "\n".join(tail.strip().splitlines()[-8:]) if isinstance(tail, str) and tail.strip() else None
        entry = {"target": r["target"], "repeats": [r["repeat"]],
                 "status": STATUS_TEXT.get(r["status"], r["status"]), "reason": r.get("reason") or "",
                 "facts": facts, "log": log}
        same = next((e for e in entries if {**e, "repeats": None} == {**entry, "repeats": None}), None)
        if same is not None:  # the same evidence in every session is said once
            same["repeats"].append(r["repeat"])
            continue
        entries.append(entry)
    for e in entries:
        repeats = e.pop("repeats")
        many = len(repeats) > 1
        e["repeat_text"] = ("every repeat" if many and len(repeats) == run.manifest.repeats
                            else f"repeat{'s' if many else ''} {', '.join(str(n) for n in repeats)}")
    if "raw_truncated" in run.outcomes:
        for r in run.outcomes.dropna(subset=["raw_truncated"]).to_dict("records"):
            entries.append({"target": r["target"], "repeat_text": f"repeat {r['repeat']}",
                            "status": "per-request samples cut short",
                            "reason": f"{r['raw_truncated']}; the summary's numbers still hold",
                            "facts": [], "log": None})
    return entries


def _problems(run: RunData) -> list[str]:
    lines = []
    for e in problem_entries(run):
        lines.append(f"- **{e['target']}** ({e['repeat_text']}): {e['status']}. {e['reason']}".rstrip())
        lines += [f"  - {fact}" for fact in e["facts"]]
        if e["log"]:
            lines.append("  - last log lines:\n\n    ```")
            lines += ["    " + line for line in e["log"].splitlines()]
            lines.append("    ```")
    return lines


def manifest_lines(m: Manifest) -> list[str]:
    s = m.scenario
    machine, git = m.machine, m.git
    order = ", ".join(f"{o.target}#{o.repeat}" for o in m.order)
    lines = [
        f"scenario: {s.name} ({s.executor}): {s.description.strip()}"
        + (f" Reproduces: {s.source}" if s.source else ""),
        "parameters: " + ", ".join(f"{k}={v}" for k, v in s.params.items() if v is not None),
        f"repeats: {m.repeats}; order: {order}",
        f"CPU pinning: {m.cpu_pinning.note}",
        f"machine: {machine.get('cpu_model')}, {machine.get('cpus_usable')} CPUs usable, "
        f"{machine.get('memory_gib')} GiB, {machine.get('os')}, kernel {machine.get('kernel')}",
        # A probed version that starts with the tool's name ("k6 v1.1.0 (...)") is not prefixed again.
        "tools: " + ", ".join(v if str(v).lower().startswith(k.lower()) else f"{k} {v}"
                              for k, v in m.tools.items() if v),
        f"git: {git.get('commit') or 'unknown'}{' (with uncommitted changes)' if git.get('dirty') else ''}",
        f"run: {m.run_id} started {m.created_at}, finished {m.finished_at or '– (no end recorded)'}"
        + (f", stopped early: {m.stopped}" if m.stopped else ""),
    ]
    for key, value in (m.cloud or {}).items():
        lines.append(f"cloud {key}: {value}")
    return lines


def version_rows(m: Manifest) -> list[list[str]]:
    rows = []
    vc = m.mock.version_check or {}
    rows.append([f"mock ({m.mock.name})", m.mock.version, vc.get("installed") or "–", m.mock.source])
    for name, t in m.targets.items():
        if t.role == "baseline":  # no software of its own: the mock above is what it measured
            rows.append([f"{name} (k6 straight to the {m.mock.title or m.mock.name} mock)",
                         m.mock.version or t.version, rows[0][2], f"the mock above ({m.mock.name})"])
            continue
        vc = t.version_check or {}
        installed = vc.get("installed") or "–"
        if vc.get("matches_pin") is False:
            installed += " (differs from pin!)"
        # The title tells apart targets of one package (a config variant beside the original).
        rows.append([f"{name} ({t.title})" if t.title else name, t.version, installed, t.source])
    return rows


VALIDITY_NOTE = ("Where a number may not mean what it seems to mean (the scorecard's validity column names these "
                 "rules).")
VALIDITY_FIRST = "Read these before the headline: they say where a number may not mean what it seems to mean."


def validity_lines(findings: list[Finding]) -> list[str]:
    lines = []
    for rule, title in RULE_TITLES.items():
        items = [f for f in findings if f.rule == rule]
        if items:
            lines.append(f"- **{title}**")
            lines += [f"  - {f.target}: {f.message}" for f in items]
    return lines


def load_text(scenario: ScenarioRecord) -> str:
    """The load a scenario's executor and parameters describe, in words."""
    p = scenario.params
    executor, vus, duration = scenario.executor, p.get("vus"), float(p.get("duration") or 0)
    plural = "" if vus == 1 else "s"
    if executor == "constant-arrival-rate":
        text = f"{p.get('rate')} req/s for {duration:g} s (VUs {vus}–{p.get('max_vus') or vus})"
    elif executor == "per-vu-iterations":
        text = f"{vus} VU{plural} x {p.get('iterations')} requests each (at most {duration:g} s)"
    elif executor == "shared-iterations":
        text = f"{p.get('iterations'):,} requests shared by {vus} VU{plural} (at most {duration:g} s)"
    elif executor == "ramping-vus":
        steps, previous = [], vus
        for st in p.get("stages") or []:
            verb = "hold at" if st["target"] == previous else "to"
            steps.append(f"{float(st['duration']):g} s {verb} {st['target']}")
            previous = st["target"]
        text = f"VUs ramping from {vus}: {', '.join(steps)} ({duration:g} s)"
    else:
        text = f"{vus} VU{plural} for {duration:g} s"
    think = float(p.get("think_time") or 0)
    return text + (f", {think:g} s pause after each answer" if think else "")


def request_text(p: dict[str, Any]) -> str:
    """The request body's shape in words."""
    if p.get("prompt") is not None:
        prompt = str(p["prompt"])
        what = f"prompt \"{prompt[:60]}{'…' if len(prompt) > 60 else ''}\""
    else:
        what = f"~{p.get('prompt_tokens')}-token prompt"
    if p.get("system_prompt") is None and "system_prompt" in p:
        what += ", no system message"
    what += f", max_tokens {p['max_tokens']}" if p.get("max_tokens") is not None else ", no max_tokens"
    stream = p.get("stream")
    return what + (", streaming" if stream else ", non-streaming" if stream is False else ", no stream field")


def intro_text(run: RunData) -> str:
    m = run.manifest
    s, suite = m.scenario, m.suite
    if suite:
        what = (f"Suite `{suite.name}` ({suite.profile} sizes): per target, overhead at "
                "concurrency 1, the capacity frontier, efficiency at a fixed rate, streaming, and the published "
                "closed-loop shape")
    else:
        what = f"Scenario `{s.name}`: {load_text(s)} per target (warm-up {s.params.get('warmup')} s excluded)"
    return (f"{what}; {request_text(s.params)}, on the {m.environment} target, "
            f"{m.repeats} session(s) per target, interleaved.")


def _section(t: TextTable) -> list[str]:
    return [f"## {t.title}", "", markdown_table(t.headers, t.rows), "", t.note, ""]


def rebuild_command(run_dir: Path) -> str:
    """The command that rebuilds this report, as typed from the repository's root (the run directory
    relative to it when inside it, else its absolute path)."""
    where = Path(run_dir).resolve()
    with contextlib.suppress(ValueError):
        where = where.relative_to(REPO_DIR)
    return f"aigw-bench report {where}"


def render_markdown(run: RunData, table: pd.DataFrame, findings: list[Finding], heads: list[Headline],
                    suite: SuiteResults | None = None, own: ScenarioResults | None = None,
                    card: Scorecard | None = None, policy: pd.DataFrame | None = None,
                    resilience: list[TextTable] | None = None) -> str:
    m = run.manifest
    closed = is_closed_loop(run)
    paced = own.paced if own is not None else False
    parts = [
        f"# aigw-bench report: {m.run_id}",
        "",
        intro_text(run),
        "Every target received the same `POST` body on the OpenAI chat route; a request counts as "
        "successful only if it returned HTTP 200 with a well-formed chat completion.",
        "",
    ]
    if card is not None:  # the decision first: the scorecard, then the headline
        parts += _section(card.table)
        if card.not_run:
            parts += ["Not measured here:", "", *(f"- {line}" for line in card.not_run), ""]
    headline = ["## Headline", ""]
    for h in heads:
        headline.append(f"- {h.text}." + (f" *Caveats: {'; '.join(h.caveats)}.*" if h.caveats else ""))
    if not heads:
        headline.append("No statement: fewer than two validly measured gateways to compare, or nothing measured.")
    headline.append("")
    validity = ["## Validity", "", VALIDITY_NOTE if card is not None else VALIDITY_FIRST, "",
                *validity_lines(findings), ""] if findings else []
    # With a scorecard (whose validity column names the rules) the headline follows it; without, the
    # findings come first so that nobody reads a headline without them.
    parts += headline + validity if card is not None else validity + headline
    parts += ["## The rig", "", *rig_summary(run), ""]
    problems = _problems(run)
    if problems:
        parts += ["## Targets not measured or not valid", "", *problems, ""]
    if own is not None:
        for t in scenario_tables(own, table):
            parts += _section(t)
    policy_cost = policy_cost_table(policy) if policy is not None else None
    if policy_cost is not None:  # the question of a policies run: before the per-step tables
        parts += _section(policy_cost)
    for t in resilience or []:  # the question of a faults run, likewise
        parts += _section(t)
    if suite is not None and not suite.empty:
        for t in suite_tables(run, suite, table):
            parts += _section(t)
    headers, rows = results_cells(table, closed)
    title = "The published shape (closed loop)" if m.suite else "Results"
    parts += [f"## {title}", "", markdown_table(headers, [r["cells"] for r in rows]), "",
              "Latency is k6's `http_req_duration` (full response) in milliseconds. "
              + results_note(run, closed, paced), ""]
    repeats = repeat_rows(table)
    if repeats:
        parts += ["### Repeats", "", markdown_table(REPEAT_HEADERS, repeats), "",
                  REPEATS_NOTE, ""]
    cost = m.cost
    if cost:
        parts += ["## Cost", "", cost_markdown(table, cost), ""]
    for t in closing_tables(run):
        parts += [f"## {t.title}", "", markdown_table(t.headers, t.rows), "", t.note, ""]
    parts += ["## Versions", "",
              markdown_table(["component", "pinned", "installed (probed)", "source"], version_rows(m)), "",
              "## How this was measured", "", *(f"- {line}" for line in manifest_lines(m)), "",
              f"Rebuild this report from the run's files with `{rebuild_command(run.run_dir)}` (from the "
              "repository's root).", ""]
    return "\n".join(parts)


def cost_rows(table: pd.DataFrame, cost: dict[str, Any]) -> list[list[str]]:
    """Cost per million requests of each measured target at its measured throughput (its own stack's price)."""
    per_target = cost.get("per_target_hourly_usd") or {}
    rows = []
    for r in table.dropna(subset=["rps"]).to_dict("records"):
        hourly_usd = float(per_target.get(r["target"], cost["hourly_usd"]))
        per_million = hourly_usd / (r["rps"] * 3600) * 1e6 if r["rps"] else None
        rows.append([r["target"], fmt(r["rps"], 0), fmt(per_million, 4)])
    return rows


def cost_summary(cost: dict[str, Any]) -> str:
    table = cost.get("price_table", "pinned price table")
    return (f"Estimated stack cost {float(cost['hourly_usd']):.2f} USD/hour ({table}); "
            f"this run about {float(cost.get('run_usd', 0)):.2f} USD.")


def cost_markdown(table: pd.DataFrame, cost: dict[str, Any]) -> str:
    """Cloud runs: the run's estimated cost and the cost per million requests at measured throughput."""
    rows = cost_rows(table, cost)
    return cost_summary(cost) + "\n\n" + markdown_table(["target", "RPS", "USD per million requests"], rows)
