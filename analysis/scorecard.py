"""The scorecard: the decision at a glance, the report's first table and the terminal's last.

One row per measured target of a suite run: added latency at p50 and p99 with their intervals, the
capacity at the suite's default p99 bound (with the repeats' range, "at least" when rig-bound),
CPU-ms per request and memory at the fixed rate, added time to first token, and the validity rules
that tripped for it. Targets that could not run are one line each below it (not one per repeat).
Presentation only: the numbers come from ``comparison.csv``'s table, the marks from the findings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

from analysis.report_tables import TextTable, _num, _present, _us, rig_frontier_cell
from analysis.validity import RULE_MARKS, Finding
from schema.results import STATUS_TEXT

SESSION_PREFIX = re.compile(r"^r\d+: ")  # "r2: why" in a reason that differs by session
HEADERS = ["target", "+p50 (95% CI)", "+p99 (95% CI)", "capacity", "CPU-ms / req", "RSS MiB", "+TTFT p50 (95% CI)",
           "validity"]


@dataclass(frozen=True)
class Scorecard:
    table: TextTable
    not_run: list[str]  # one line per target that could not run, its repeats folded together


def _added(r: dict, q: str) -> str:
    """Added latency with its interval in the value's unit: "4.72 ms (4.40–5.75)", "162 µs (138–177)"."""
    value = r.get(f"added_{q}_us")
    if not _present(value):
        return "–"
    low, high = r.get(f"added_{q}_us_ci_low"), r.get(f"added_{q}_us_ci_high")
    if not (_present(low) and _present(high)):
        return _us(value)
    text = _us(value)
    number, unit = text.rsplit(" ", 1)
    scale, digits = (1.0, 0) if unit == "µs" else (1000.0, len(number.split(".")[1]) if "." in number else 0)
    return f"{text} ({low / scale:,.{digits}f} to {high / scale:,.{digits}f})"


def _ranged(value: float, top: object) -> str:
    """A capacity with the range its searches put it in, where that range is wider than the figure."""
    return _num(value) + (f" ({_num(value)}–{_num(top)})" if _present(top) and top != value else "")


def capacity_cell(r: dict) -> str:
    """The capacity at the default bound as one cell: a figure only when the target set it."""
    if _present(r.get("capacity_rig_bound")) and bool(r["capacity_rig_bound"]):
        return f">= {_num(r.get('capacity_at_least_rps'))} (rig-bound)"
    if _present(r.get("capacity_stall_bound")) and bool(r["capacity_stall_bound"]):
        text = f"stalls (p99 {_num(r.get('capacity_no_queue_p99_ms'))} ms without a queue)"
        if _present(r.get("capacity_next_rps")):
            text += (f"; {_ranged(r['capacity_next_rps'], r.get('capacity_next_range_high_rps'))} "
                     f"at {r['capacity_next_bound_ms']:g} ms")
        return text
    if _present(r.get("capacity_rps")):
        text = _ranged(r["capacity_rps"], r.get("capacity_range_high_rps"))
        if _present(r.get("capacity_unstable_up_to_rps")):
            text += f", unstable to {_num(r['capacity_unstable_up_to_rps'])}"
        return text
    if _present(r.get("capacity_below_rps")):
        return f"< {_num(r['capacity_below_rps'])}"
    return "none met it" if _present(r.get("capacity_bound_ms")) else "–"


def _ttft(r: dict) -> str:
    value = r.get("added_ttft_p50_ms")
    if not _present(value):
        return "–"
    low, high = r.get("added_ttft_p50_ms_ci_low"), r.get("added_ttft_p50_ms_ci_high")
    interval = f" ({low:+.1f} to {high:+.1f})" if _present(low) and _present(high) else ""
    return f"{value:+.1f} ms{interval}"


def marks(findings: list[Finding], target: str) -> str:
    """The validity rules that tripped for a target, by short name ("ok" when none did)."""
    seen = [RULE_MARKS[f.rule] for f in findings if f.target == target]
    return "! " + ", ".join(dict.fromkeys(seen)) if seen else "ok"


def not_run_lines(table: pd.DataFrame) -> list[str]:
    """Targets without a single measured session: one line each."""
    lines = []
    for r in table[table["status"] != "ok"].to_dict("records"):
        if _present(r.get("added_p50_us")) or _present(r.get("rps")):
            continue  # measured in part: a row of its own, marked by its findings
        reason = r.get("reason") if _present(r.get("reason")) else ""
        # The same reason in every session is said once.
        parts = [SESSION_PREFIX.sub("", p) for p in str(reason).split("; ")] if reason else []
        said = "; ".join(dict.fromkeys(parts))
        lines.append(f"{r['target']}: {STATUS_TEXT.get(r['status'], r['status'])}" + (f" ({said})" if said else ""))
    return lines


def rig_capacity(frontier: pd.DataFrame, baseline: str, bound_ms: float | None) -> str:
    """The rig's own capacity at the default bound, under the frontier table's rule (never below a target's)."""
    if frontier.empty or bound_ms is None:
        return "–"
    at = frontier[frontier["p99_bound_ms"] == float(bound_ms)]
    mine = at[at["target"] == baseline]
    return "the rig: " + rig_frontier_cell(mine.iloc[0], at[at["target"] != baseline]) if not mine.empty else "–"


def scorecard(table: pd.DataFrame, findings: list[Finding], suite_name: str, profile: str,
              default_bound_ms: float | None, efficiency_rps: float | None, frontier: pd.DataFrame,
              mock_title: str) -> Scorecard:
    """A suite run's scorecard (``table``: comparison.csv's)."""
    rows = []
    for r in table.to_dict("records"):
        if r["status"] != "ok" and not (_present(r.get("added_p50_us")) or _present(r.get("rps"))):
            continue
        baseline = r["role"] == "baseline"
        name = (f"{r['target']} ({mock_title} {r['version']}, A/A control)" if baseline
                else f"{r['target']} {r['version']}")
        capacity = rig_capacity(frontier, r["target"], default_bound_ms) if baseline else capacity_cell(r)
        rows.append([name, _added(r, "p50"), _added(r, "p99"), capacity, _num(r.get("cpu_ms_per_request"), 2),
                     _num(r.get("rss_mib")), _ttft(r), marks(findings, r["target"])])
    bound = f"p99 <= {default_bound_ms:g} ms" if default_bound_ms else "the default bound"
    rate = f"{efficiency_rps:g} req/s" if efficiency_rps else "the fixed rate"
    headers = [*HEADERS]
    headers[3] = f"capacity req/s, {bound}"
    note = (f"Suite '{suite_name}' ({profile} sizes). Added latency: through the target minus direct, one request at "
            "a time (µs unless marked ms), with its 95% interval. Capacity: the highest arrival rate whose p99 met "
            f"{bound}, the lowest of the repeats (in brackets, the range the searches put it in: up to the highest "
            "rate a session failed); '>= N (rig-bound)': the rig's own limit "
            f"was reached, the target sustains at least that. CPU-ms per request and resident memory at {rate}. "
            "+TTFT: added time to the first streamed token (paced mock). Validity: the rules that tripped for the "
            "target ('ok': none); the Validity section says what each means. The baseline's row compares the mock "
            "with itself (an A/A control: its added latency should be nil); its capacity is the rig's own, k6 straight "
            "to the mock.")
    return Scorecard(TextTable(f"Scorecard: suite {suite_name}", headers, rows, note), not_run_lines(table))
