"""``report.md`` and ``comparison.csv``: the comparison as a person reads it in a pull request.

Presentation only: rounding and units happen here, the numbers come from :mod:`analysis.compare`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.compare import MAX_VALID_ERROR_RATE, comparison, relative_statements
from analysis.load import RunData, load_run

STATUS_TEXT = {
    "ok": "measured",
    "not_runnable": "not runnable here",
    "failed_to_start": "failed to start",
    "not_ready": "never ready",
    "not_served": "not served",
    "died": "died under load",
    "mock_failed": "mock failed",
    "k6_failed": "load generator failed",
    "invalid_output": "invalid k6 output",
    "interrupted": "interrupted",
    "not_run": "not run",
}


def _fmt(value: Any, digits: int = 2, suffix: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}{suffix}"
    return f"{value}{suffix}"


def _signed(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:+,.2f}"


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _results_table(table: pd.DataFrame) -> str:
    headers = ["target", "role", "version", "status", "requests", "RPS", "errors", "p50 ms", "p90 ms", "p95 ms",
               "p99 ms", "max ms", "+p50 ms", "+p95 ms", "+p99 ms", "RPS % of baseline"]
    rows = []
    for r in table.to_dict("records"):
        measured = not (isinstance(r["rps"], float) and math.isnan(r["rps"]))
        status = STATUS_TEXT.get(r["status"], r["status"])
        if measured and not r["valid"] and r["status"] == "ok":
            status = "measured, errors > 1%"
        rows.append([
            r["target"], r["role"], r["version"], status,
            _fmt(r["requests"], 0), _fmt(r["rps"], 1), _fmt(r["error_rate"] * 100 if measured else None, 2, "%"),
            *(_fmt(r[c]) for c in ("latency_p50_ms", "latency_p90_ms", "latency_p95_ms", "latency_p99_ms",
                                   "latency_max_ms")),
            _signed(r["added_p50_ms"]), _signed(r["added_p95_ms"]), _signed(r["added_p99_ms"]),
            _fmt(r["rps_pct_of_baseline"], 1, "%"),
        ])
    return markdown_table(headers, rows)


def _problems(run: RunData, table: pd.DataFrame) -> list[str]:
    lines = []
    for r in run.outcomes.to_dict("records"):
        if r["status"] == "ok":
            continue
        label = STATUS_TEXT.get(r["status"], r["status"])
        lines.append(f"- **{r['target']}** (repeat {r['repeat']}): {label}. {r.get('reason') or ''}".rstrip())
        if r.get("exit_code") is not None and not (isinstance(r["exit_code"], float) and math.isnan(r["exit_code"])):
            lines.append(f"  - exit code: {int(r['exit_code'])}")
        if r.get("smoke_status") is not None and not (isinstance(r["smoke_status"], float)
                                                       and math.isnan(r["smoke_status"])):
            lines.append(f"  - first request answered HTTP {int(r['smoke_status'])}")
        tail = r.get("log_tail")
        if isinstance(tail, str) and tail.strip():
            snippet = "\n".join(tail.strip().splitlines()[-8:])
            lines.append("  - last log lines:\n\n    ```\n" + "\n".join("    " + s for s in snippet.splitlines())
                         + "\n    ```")
    for r in table.to_dict("records"):
        if r["status"] == "ok" and not r["valid"]:
            lines.append(f"- **{r['target']}**: error rate {r['error_rate'] * 100:.2f}% is above "
                         f"{MAX_VALID_ERROR_RATE * 100:.0f}%; its numbers do not describe a working gateway.")
        truncated = run.outcomes[(run.outcomes["target"] == r["target"])]["raw_truncated"].dropna() \
            if "raw_truncated" in run.outcomes else []
        for note in truncated:
            lines.append(f"- **{r['target']}**: per-request samples cut short ({note}); the summary still holds.")
    return lines


def _manifest_section(m: dict[str, Any]) -> str:
    s = m.get("scenario", {})
    p = s.get("params", {})
    machine = m.get("machine", {})
    tools = m.get("tools", {})
    git = m.get("git", {})
    order = ", ".join(f"{o['target']}#{o['repeat']}" for o in m.get("order", []))
    lines = [
        f"- scenario: `{s.get('name')}` ({s.get('executor')}): {s.get('description', '').strip()}",
        "- parameters: " + ", ".join(f"{k}={v}" for k, v in p.items()),
        f"- repeats: {m.get('repeats')}; order: {order}",
        f"- CPU pinning: {m.get('cpu_pinning', {}).get('note')}",
        f"- machine: {machine.get('cpu_model')}, {machine.get('cpus_usable')} CPUs usable, "
        f"{machine.get('memory_gib')} GiB, {machine.get('os')}, kernel {machine.get('kernel')}",
        "- tools: " + ", ".join(f"{k} {v}" for k, v in tools.items() if v),
        f"- git: {git.get('commit') or 'unknown'}{' (with uncommitted changes)' if git.get('dirty') else ''}",
        f"- run: {m.get('run_id')} started {m.get('created_at')}, finished {m.get('finished_at', '–')}",
    ]
    return "\n".join(lines)


def _versions_table(m: dict[str, Any]) -> str:
    rows = []
    mock = m.get("mock", {})
    vc = mock.get("version_check") or {}
    rows.append(["mock (" + str(mock.get("name")) + ")", mock.get("version"), vc.get("installed") or "–",
                 mock.get("source")])
    for name, t in m.get("targets", {}).items():
        vc = t.get("version_check") or {}
        installed = vc.get("installed") or "–"
        if vc.get("matches_pin") is False:
            installed += " (differs from pin!)"
        rows.append([name, t.get("version"), installed, t.get("source")])
    return markdown_table(["component", "pinned", "installed (probed)", "source"], rows)


def render_markdown(run: RunData, table: pd.DataFrame) -> str:
    m = run.manifest
    s = m.get("scenario", {})
    p = s.get("params", {})
    parts = [
        f"# aigw-bench report: {m.get('run_id')}",
        "",
        f"Scenario `{s.get('name')}`: {p.get('vus')} VUs for {p.get('duration')} s per target "
        f"(warm-up {p.get('warmup')} s excluded), ~{p.get('prompt_tokens')}-token prompt, "
        f"{'streaming' if p.get('stream') else 'non-streaming'}, on the {m.get('environment')} target.",
        "Every target received the same `POST` body on the OpenAI chat route; a request counts as "
        "successful only if it returned HTTP 200 with a well-formed chat completion.",
        "",
    ]
    problems = _problems(run, table)
    if problems:
        parts += ["## Targets not measured or not valid", "", *problems, ""]
    parts += ["## Results", "", _results_table(table), "",
              "Latency is k6's `http_req_duration` (full response) in milliseconds; `+pXX` is the "
              "difference to the direct-to-mock baseline at that percentile.", ""]
    statements = relative_statements(table)
    if statements:
        parts += ["## Relative throughput and latency", "", *(f"- {st.text}" for st in statements), ""]
    parts += ["## Versions", "", _versions_table(m), "", "## How this was measured", "",
              _manifest_section(m), ""]
    return "\n".join(parts)


def write_report(run_dir: Path) -> dict[str, Path]:
    """(Re)build ``comparison.csv`` and ``report.md`` from the files of a run directory."""
    run = load_run(run_dir)
    table = comparison(run)
    paths = {"comparison": run_dir / "comparison.csv", "markdown": run_dir / "report.md"}
    table.to_csv(paths["comparison"], index=False)
    paths["markdown"].write_text(render_markdown(run, table))
    return paths
