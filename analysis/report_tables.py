"""The suite's tables as headers and rows of text, for both report.md and report.html.

Presentation only: rounding, units and wording; the numbers come from :mod:`analysis.suite`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from analysis.headline import difference_reading, us_text
from analysis.history import MIN_RUNS, earlier_runs
from analysis.load import RunData
from analysis.suite import SuiteResults
from analysis.validity import TAIL_SAMPLES
from schema.manifest import RigRecord


@dataclass(frozen=True)
class TextTable:
    title: str
    headers: list[str]
    rows: list[list[str]]
    note: str


def _present(value: Any) -> bool:
    return value is not None and value is not pd.NA and not (isinstance(value, float) and math.isnan(value))


def _us(value: Any) -> str:
    return us_text(float(value)) if _present(value) else "–"


def _ci_us(low: Any, high: Any) -> str:
    return f"{_us(low)} to {_us(high)}" if _present(low) and _present(high) else "–"


def _num(value: Any, digits: int = 0, suffix: str = "") -> str:
    return f"{float(value):,.{digits}f}{suffix}" if _present(value) else "–"


def _unpaced(rig: RigRecord, profile: str | None) -> str:
    ceiling = rig.ceiling_profile
    if ceiling and profile and ceiling != profile:
        return f", the mock unpaced ('{ceiling}'): with pacing a closed loop measures only VUs / pacing"
    return ""


def rig_summary(run: RunData) -> list[str]:
    """Sentences about the rig: what it is, its ceiling and floor, and what that means for the figures."""
    rig, mock = run.rig, run.manifest.mock
    profile = mock.profile.get("name", rig.profile)
    if run.manifest.rig is None:
        return ["The rig did not measure itself in this run (results made before rig measurements existed)."]
    if rig.error:
        return [f"The rig ({mock.name} mock) could not be measured: {rig.error}."]
    floor = rig.floor_ms
    lines = [
        f"k6 straight to the {mock.name} mock ({mock.title or ''}, {profile} pacing), with this run's "
        f"CPU plan ({rig.cpu}) and request body: ceiling **{_num(rig.ceiling_rps)} RPS** "
        f"({rig.ceiling_vus} VUs, closed loop{_unpaced(rig, profile)}); floor at concurrency 1: p50 "
        f"{_us((floor.get('p50') or math.nan) * 1000)}, p99 {_us((floor.get('p99') or math.nan) * 1000)}.",
        "A throughput within 80% of the ceiling is rig-bound: the load generator and the mock may have set it, "
        "so it reads \"at least\", never as a capacity.",
    ]
    return lines


def overhead_table(suite: SuiteResults, order: list[str]) -> TextTable | None:
    o = suite.overhead.set_index("target") if not suite.overhead.empty else None
    if o is None:
        return None
    rows = []
    for t in [t for t in order if t in o.index]:
        r = o.loc[t]
        sessions = (_ci_us(r["added_p50_us_sessions_low"], r["added_p50_us_sessions_high"])
                    if r["repeats"] > 1 else "–")
        warmup = (f"{r['warmup_s']:.1f} s" + ("" if r["warmup_steady"] is not False else " (never steady)")
                  if _present(r["warmup_s"]) else "–")
        rows.append([t, _us(r["added_p50_us"]), _ci_us(r["added_p50_us_ci_low"], r["added_p50_us_ci_high"]),
                     sessions, _us(r["added_p99_us"]), _ci_us(r["added_p99_us_ci_low"], r["added_p99_us_ci_high"]),
                     _us(r["direct_p50_us"]), _us(r["carryover_first_us"]), _us(r["carryover_p50_us"]), warmup,
                     _num(r["pairs"])])
    return TextTable(
        "Overhead: added latency at concurrency 1",
        ["target", "+p50", "95% CI", "sessions", "+p99", "95% CI", "direct p50", "carry-over: 1st",
         "settle p50", "warm-up", "requests"],
        rows,
        "One request at a time, to the mock directly and through the target in alternating blocks of a fixed "
        "time; added = target minus direct at each percentile, over each block's steady requests. The "
        "requests of each block's first moments (the settle window) are kept apart: 'carry-over' is how much "
        "slower than the steady ones the first direct request after the target's block was, and the settle "
        "window's p50 (what the target's work left behind), and none of it is in the direct side. 'requests': "
        "steady requests on the fewer side. The warm-up "
        "lasted until the median through the target was steady. The 95% CI is a block bootstrap pooled over "
        "repeats: it covers the noise of the requests in this run, not what another run or machine finds; "
        "'sessions' is the range of the per-session figures, the spread a second run may show (docs/method.md). "
        "The baseline's row compares the mock with itself (an A/A control: it should be nil).")


def frontier_table(suite: SuiteResults, order: list[str], baseline: str | None) -> TextTable | None:
    f = suite.frontier
    if f.empty:
        return None
    bounds = sorted(f["p99_bound_ms"].unique())
    rows = []
    for t in [t for t in order if t in set(f["target"])]:
        cells = [t + (" (the rig)" if t == baseline else "")]
        for b in bounds:
            r = f[(f["target"] == t) & (f["p99_bound_ms"] == b)]
            if r.empty:
                cells.append("–")
                continue
            r = r.iloc[0]
            if t == baseline:
                others = f[(f["target"] != t) & (f["p99_bound_ms"] == b)]
                cells.append(rig_frontier_cell(r, others))
            elif r["rig_bound"]:
                cells.append(f">= {_num(r['max_rps'])} (rig-bound)")
            elif bool(r.get("stall_bound", False)):
                cells.append(f"stalls: p99 {_num(r['no_queue_p99_ms'])} ms without a queue "
                             f"(<= {_num(r['no_queue_rps'])})")
            elif _present(r["max_rps"]):
                spread = (f" ({_num(r['max_rps'])}–{_num(r['range_high_rps'])})"
                          if _present(r["range_high_rps"]) and r["range_high_rps"] != r["max_rps"] else "")
                cells.append(_num(r["max_rps"]) + spread + ("" if r["resolved"] else " ~"))
            elif _present(r["failing_rps"]):
                cells.append(f"< {_num(r['failing_rps'])}")  # below the lowest rate tried
            else:
                cells.append("none met it")
        rows.append(cells)
    return TextTable(
        "Capacity: the highest arrival rate meeting each p99 bound",
        ["target", *(f"p99 <= {b:g} ms" for b in bounds)],
        rows,
        "Requests per second, open model (k6 constant-arrival-rate), with fewer than 0.1% errors and no dropped "
        "iteration; found by stepping the rate up, then bisecting. With repeats: the lowest repeat. In brackets, "
        "the range the searches put it in: each session's capacity lies between the highest rate it passed and "
        "the lowest it failed, so the range runs to the highest of those failing rates. '~': the step budget "
        "ran out before the bracket narrowed to the resolution; '< N': no rate "
        "tried met the bound, the lowest failed at N. 'stalls': over the probes without a queue (their p50 within "
        "1.5 times their session's lowest) the median p99 already reached 50% of the bound, 10 times their p50 "
        "or more, so whether a rate meets it depends on whether a pause fell inside the step (the target's "
        "stalls, not a queue): no capacity at that bound. "
        "The rig's row is k6 straight to the mock: a target within 80% of it is rig-bound, its capacity at least "
        "that. The rig's own figure is printed only when its search found one above every target's (every "
        "request passes through the rig); otherwise the row says where its search stopped. The range covers "
        "this run's sessions, minutes apart: another run on the same machine may find more. Where sessions "
        "differ by chance alone, a third session lands outside the range of two, two times in three, and two "
        "runs' ranges miss each other one time in three ('Between runs' below when three or more runs like this "
        "one share its folder; docs/method.md).")


BETWEEN_RUNS = {"capacity_rps": ("capacity req/s", 0), "cpu_ms_per_request": ("CPU-ms per request", 3),
                "added_p50_us": ("added p50 µs", 0)}


def between_runs_table(run: RunData, table: pd.DataFrame) -> TextTable | None:
    """The headline's figures over this run and the earlier runs like it in its folder: what a second run
    finds, which this run's sessions cannot say (analysis/history.py)."""
    history = earlier_runs(run.run_dir, run.manifest, table, exclude=run.run_dir, folders=[run.run_dir.parent])
    if len(history.tables) < MIN_RUNS:
        return None
    rows = []
    for _, r in table[table["role"] != "baseline"].iterrows():
        cells = [r["target"]]
        for metric, (_, digits) in BETWEEN_RUNS.items():
            values = history.values(r["target"], metric, r.get("version"))
            if not values:  # e.g. the capacity of a rig-bound target: no run has a figure
                cells.append("–")
                continue
            span = f"{min(values):,.{digits}f}" + (f"–{max(values):,.{digits}f}" if max(values) > min(values) else "")
            cells.append(f"{span} ({len(values)})")
        if any(c != "–" for c in cells[1:]):
            rows.append(cells)
    if not rows:
        return None
    return TextTable(
        "Between runs: what a second run found",
        ["target", *(label for label, _ in BETWEEN_RUNS.values())],
        rows,
        f"Lowest–highest over this run and the {len(history.tables) - 1} other run(s) in {run.run_dir.parent.name}/ "
        "of the same suite and sizes on this machine, with the target at the same version (how many had the "
        "figure in brackets). This run's intervals and ranges cover its own sessions; this is what another run "
        "found. `aigw-bench compare` confirms a change in capacity or CPU against these runs (docs/method.md, "
        "'Between runs').")


def rig_frontier_cell(r: pd.Series, others: pd.DataFrame) -> str:
    """The rig's own capacity at one bound, printed as a frontier only when its search found one that no target
    exceeds (every target's load passes through the rig: a target above it means the rig's search fell short)."""
    above = others.dropna(subset=["max_rps"])
    best = above.loc[above["max_rps"].idxmax()] if not above.empty else None
    if best is not None and (not _present(r["max_rps"]) or r["max_rps"] < best["max_rps"]):
        found = (f"its search stopped at {_num(r['max_rps'])}" if _present(r["max_rps"])
                 else f"its lowest rate tried, {_num(r['failing_rps'])}, failed")
        return f"not found ({found}; {best['target']} sustained {_num(best['max_rps'])}): ran out of steps"
    if not _present(r["max_rps"]):
        return (f"< {_num(r['failing_rps'])} (no rate tried met it)" if _present(r["failing_rps"])
                else "none met it")
    if not r["resolved"]:
        upper = f"–{_num(r['failing_rps'])}" if _present(r["failing_rps"]) else "+"
        return f"{_num(r['max_rps'])}{upper}: ran out of steps"
    return _num(r["max_rps"])


def closed_frontier_table(suite: SuiteResults, order: list[str]) -> TextTable | None:
    """The closed-loop frontier beside the open model's: the same bounds, the other way of loading."""
    c, f = suite.closed, suite.frontier
    if c.empty:
        return None
    bounds = sorted(c["p99_bound_ms"].unique())
    rows = []
    for t in [t for t in order if t in set(c["target"])]:
        cells = [t]
        for b in bounds:
            r = c[(c["target"] == t) & (c["p99_bound_ms"] == b)].iloc[0]
            opened = f[(f["target"] == t) & (f["p99_bound_ms"] == b)]
            open_rps = opened.iloc[0]["max_rps"] if not opened.empty else None
            stalls = not opened.empty and bool(opened.iloc[0].get("stall_bound", False))
            if not _present(r["max_rps"]):
                text = "none met it"
            else:
                text = (">= " if r["rig_bound"] else "") + f"{_num(r['max_rps'])} at {int(r['vus'])} VUs"
                if r["repeats"] > 1 and r["max_rps_high"] != r["max_rps_low"]:
                    text += f" ({_num(r['max_rps_low'])}–{_num(r['max_rps_high'])})"
            opened_text = f"; open model {_num(open_rps)}" if _present(open_rps) else ""
            cells.append(text + ("; open model: stalls" if stalls else opened_text))
        rows.append(cells)
    return TextTable(
        "Closed-loop frontier: the most requests per second while concurrency climbs",
        ["target", *(f"p99 <= {b:g} ms" for b in bounds)],
        rows,
        "A closed loop at rising VUs (each VU sends its next request when its answer arrives), as "
        "concurrency-climb harnesses publish it: the most requests per second of a level whose p99 met the bound. "
        "It reads higher than the open model's capacity beside it because a waiting client hides the queue "
        "that an arriving request would meet (coordinated omission): plan with the open model's figure, set "
        "this one beside published closed-loop figures. With repeats: the lowest (the range in brackets).")


def efficiency_table(suite: SuiteResults, order: list[str]) -> TextTable | None:
    e = suite.efficiency.set_index("target") if not suite.efficiency.empty else None
    if e is None:
        return None
    rows = []
    for t in [t for t in order if t in e.index]:
        r = e.loc[t]
        spread = (f" ({_num(r['cpu_ms_per_request_low'], 2)}–{_num(r['cpu_ms_per_request_high'], 2)})"
                  if r["repeats"] > 1 else "")
        rows.append([t, _num(r["rate"], 0, " req/s"), _num(r["cpu_ms_per_request"], 2) + spread,
                     _num(r["rss_idle_mib"]), _num(r["rss_load_mib"]), _num(r["rss_after_mib"]),
                     "yes" if r["sustained"] else f"no: {r['note']}"])
    return TextTable(
        "Efficiency: CPU per request and memory at one fixed rate",
        ["target", "rate", "CPU-ms / request", "RSS idle MiB", "RSS under load MiB", "RSS after MiB", "sustained"],
        rows,
        "The gateway's processes (its whole process group) while k6 sent the same fixed rate to every target: "
        "CPU time over requests sent, mean of repeats (range in brackets); resident memory at its highest before "
        "and during the load, and its last value after the load stopped.")


def streaming_reading(r: dict) -> str:
    """The streaming row in words: the A/A control as such, a held-back first token, and any difference whose
    sign or size could mislead (noise, immaterial, below direct)."""
    if r.get("role") == "baseline":
        return "A/A control: the mock against itself; any difference is the rig's noise"
    words = []
    if _present(r.get("stream_holds_first_token")) and bool(r["stream_holds_first_token"]):
        words.append(f"first token held back: waits {r['stream_first_token_wait_ms']:.1f} ms more than a whole "
                     "request")
    elif _present(r.get("stream_first_token_wait_ms")):
        words.append("first token relayed as it came")
    words += [w for w in (
        difference_reading(r.get("added_ttft_p50_ms"), r.get("added_ttft_p50_ms_ci_low"),
                           r.get("added_ttft_p50_ms_ci_high"), None, "TTFT"),
        difference_reading(r.get("added_gap_p50_ms"), r.get("added_gap_p50_ms_ci_low"),
                           r.get("added_gap_p50_ms_ci_high"), r.get("stream_token_gap_ms"), "gap")) if w]
    return "; ".join(words) or "–"


def streaming_table(suite: SuiteResults, order: list[str], table: pd.DataFrame | None = None) -> TextTable | None:
    s = suite.streaming.set_index("target") if not suite.streaming.empty else None
    if s is None:
        return None

    def ms(r: pd.Series, key: str) -> str:
        return f"{r[key]:+.2f} ms" if _present(r[key]) else "–"

    def ci(r: pd.Series, key: str) -> str:
        low, high = r[f"{key}_ci_low"], r[f"{key}_ci_high"]
        return f"{low:+.2f} to {high:+.2f}" if _present(low) and _present(high) else "–"

    rows = []
    by_target = table.set_index("target") if table is not None else pd.DataFrame()
    for t in [t for t in order if t in s.index]:
        r = s.loc[t]
        rebuffer = "–" if not _present(r["rebuffers"]) else ("yes" if bool(r["rebuffers"]) else "no")
        full = by_target.loc[t].to_dict() if t in by_target.index else {}
        rows.append([t, ms(r, "added_ttft_p50_ms"), ci(r, "added_ttft_p50_ms"), ms(r, "added_ttft_p99_ms"),
                     ms(r, "added_gap_p50_ms"), ci(r, "added_gap_p50_ms"), ms(r, "added_gap_p99_ms"),
                     _num(r["complete_share"] * 100 if _present(r["complete_share"]) else None, 1, "%"), rebuffer,
                     f"{r['streams_target']:.0f}", streaming_reading({"target": t, **full})])
    return TextTable(
        "Streaming: added time to first token and gap between chunks",
        ["target", "+TTFT p50", "95% CI", "+TTFT p99", "+gap p50", "95% CI", "+gap p99", "arrived whole",
         "re-buffers", "streams", "reading"],
        rows,
        "The mock paced like a hosted model; streams read directly and through the target at the same time. "
        "Added = through the target minus direct. 'Arrived whole': HTTP 200, every chunk the mock sent, the usage "
        "chunk and [DONE]. 'Re-buffers': most streams' chunks arrived together instead of as they were sent. "
        "'First token held back': the first token waited in the target longer than a whole request does, by more "
        "than one token's time of the mock (its lower 95% bound): a proxy that buffers small writes does this "
        "even when every chunk arrives. A difference below zero is not a gain (a relay cannot make the mock send "
        "sooner); the reading says whether it is noise, immaterial, or a difference in how the sides were read. "
        "p99 differences rest on the streams' tails and carry no interval here.")


def suite_tables(run: RunData, suite: SuiteResults, table: pd.DataFrame) -> list[TextTable]:
    order = table["target"].tolist()
    baseline = next((t for t, role in run.roles().items() if role == "baseline"), None)
    return [t for t in (overhead_table(suite, order), frontier_table(suite, order, baseline),
                        closed_frontier_table(suite, order), efficiency_table(suite, order),
                        streaming_table(suite, order, table), between_runs_table(run, table)) if t is not None]


def closing_tables(run: RunData) -> list[TextTable]:
    """Tables after the results: the suite's step sizes, where the time went."""
    return [t for t in (suite_steps_table(run), durations_table(run)) if t is not None]


def _size_text(key: str, value: Any) -> str:
    """One size as a person reads it: the unit from the key's name (durations in s, bounds in ms, rates in req/s)."""
    if isinstance(value, list) and value and all(isinstance(v, dict) and "name" in v for v in value):
        # the faults suite's scenarios: each by its name and what it sets
        return f"{key} " + ", ".join(
            v["name"] + " (" + ", ".join(f"{k} {w:g}" if isinstance(w, float) else f"{k} {w}" for k, w in v.items()
                                       if k not in ("name", "description") and w not in (None, False)) + ")"
            for v in value)
    if isinstance(value, list):
        return f"{key.replace('_ms', '')} {', '.join(f'{v:g}' if isinstance(v, float) else str(v) for v in value)}" + (
            " ms" if key.endswith("_ms") else "")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{key} {value}"
    unit = (" ms" if key.endswith("_ms") else " req/s" if key in ("rate", "min_rate") or key.endswith("_rps")
            else " s" if key in ("duration", "warmup", "warmup_max", "block", "settle", "idle", "after", "step",
                                 "max_step", "quiet_wait", "request_timeout") else "")
    return f"{key.replace('_ms', '')} {value:g}{unit}"


def suite_steps_table(run: RunData) -> TextTable | None:
    """Every step of the suite with the sizes this run used (the suite file's profile)."""
    suite = run.manifest.suite
    if suite is None or not suite.sizes:
        return None
    rows = [[step, "; ".join(_size_text(k, v) for k, v in sizes.items())]
            for step, sizes in suite.sizes.items() if isinstance(sizes, dict)]
    repeats = suite.sizes.get("repeats")
    return TextTable(f"The suite's steps: {suite.name} ({suite.profile} sizes)", ["step", "sizes"], rows,
                     f"From k6_scripts/suites/{suite.name}.yaml, profile '{suite.profile}'"
                     + (f"; {repeats} sessions per target by default" if repeats else "")
                     + f"; this run: {run.manifest.repeats} per target. {suite.description}".rstrip())


def durations_table(run: RunData) -> TextTable | None:
    """Where the run's time went: the rig, each step kind (all sessions), start-up and the rest."""
    from datetime import datetime

    def seconds(start: str | None, end: str | None) -> float | None:
        if not start or not end:
            return None
        return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()

    m = run.manifest
    total = seconds(m.created_at, m.finished_at)
    sessions = [o for o in run.sessions if o.started_at and o.finished_at]
    if total is None or not sessions:
        return None
    first = min(o.started_at for o in sessions if o.started_at)
    per_step: dict[str, list[float]] = {}
    in_steps = 0.0
    for o in sessions:
        for name, step in o.steps.items():
            took = seconds(step.started_at, step.finished_at)
            if took is not None and step.status != "skipped":
                per_step.setdefault(name, []).append(took)
                in_steps += took
    session_total = sum(seconds(o.started_at, o.finished_at) or 0.0 for o in sessions)
    rows = [["the rig (ceiling, floor, frontier)", _num(seconds(m.created_at, first)), "1", "–"]]
    rows += [[name, _num(sum(v)), str(len(v)), _num(sum(v) / len(v), 1)] for name, v in per_step.items()]
    rows.append(["starting targets, checking routes, stopping", _num(session_total - in_steps), str(len(sessions)),
                 _num((session_total - in_steps) / len(sessions), 1)])
    rows.append(["whole run", _num(total), "", ""])
    return TextTable("Where the time went", ["part", "seconds", "times", "seconds each"], rows,
                     "Wall clock from the step records (started/finished) and the manifest; sessions include "
                     "targets that could not run.")


def _signed_us(value: Any) -> str:
    return ("+" if _present(value) and float(value) > 0 else "") + _us(value)


def _pct(value: Any) -> str:
    return f" ({float(value):+.0f}%)" if _present(value) else ""


def policy_cost_table(policy: pd.DataFrame) -> TextTable | None:
    """The policies suite: per target and policy, its cost over `none` and whether it worked (analysis/policy.py)."""
    if policy.empty:
        return None
    rows = []
    for r in policy.sort_values(["entry"], kind="stable").to_dict("records"):
        works = r["works"] if r["supported"] else "not in this edition"
        delta = "–" if r["policy"] == "none" or not _present(r["delta_p50_us"]) else (
            f"{_signed_us(r['delta_p50_us'])} ({_ci_us(r['delta_p50_us_ci_low'], r['delta_p50_us_ci_high'])})")
        added = "–" if not _present(r["added_p50_us"]) else (
            f"{_us(r['added_p50_us'])} ({_ci_us(r['added_p50_us_ci_low'], r['added_p50_us_ci_high'])})")
        rows.append([r["entry"], r["policy"], works, added, delta,
                     _num(r["capacity_rps"]) + ("" if r["policy"] == "none" else _pct(r["capacity_change_pct"])),
                     _num(r["cpu_ms_per_request"], 2) + ("" if r["policy"] == "none" else _pct(r["cpu_change_pct"])),
                     _us(r["cache_hit_p50_us"]) if _present(r["cache_hit_p50_us"]) else "–",
                     r["evidence"] or "–"])
    return TextTable(
        "Policy cost: what each policy adds, and whether it worked under load",
        ["target", "policy", "works", "added p50 (95% CI)", "vs none: Δp50 (95% CI)", "capacity req/s (vs none)",
         "CPU-ms / request (vs none)", "cache hit p50", "evidence"],
        rows,
        "Each policy is the target with that configuration (its catalog variant), in a session of its own. Added "
        "p50: over direct at concurrency 1; Δp50: its difference to the same target with no policy (`none`), "
        "with a 95% interval from independent block bootstraps of both sessions. Capacity at the default p99 "
        "bound and CPU-ms per request at the fixed rate, with their change against `none`. Works: every check of "
        "the `works` step passed under load (yes), one failed (no, with what was seen), or the edition does not "
        "have the feature (with the evidence). Cache hit p50: latency of repeated requests served from the cache "
        "under load (the cost steps send one body, so their figures are the hit path). docs/policies.md.")


def _rough_p99(requests: object) -> str:
    """' ‡' when a p99 rests on fewer than TAIL_SAMPLES samples beyond it (fewer than 1,000 requests)."""
    return " ‡" if _present(requests) and float(requests) * 0.01 < TAIL_SAMPLES else ""


def resilience_tables(faults: pd.DataFrame, found: pd.DataFrame) -> list[TextTable]:
    """The faults suite: per target, configuration and scenario, what the client saw and the upstream received
    (analysis/faults.py), direct first as the reference; then the verdicts in plain words with their evidence."""
    if faults.empty:
        return []
    order = {"direct": 0}
    rows = []
    ranked = faults.assign(_rank=faults["config"].map(lambda c: order.get(c, 1)))
    for r in ranked.sort_values(["_rank", "entry", "config"], kind="stable").to_dict("records"):
        if r["status"] != "ok":
            rows.append([r["entry"], r["config"], r["scenario"], "–", f"not measured: {r['reason'] or r['status']}",
                         "", "", "", "", "", "", ""])
            continue
        amp = (f"{float(r['amplification_mean']):.2f} / {int(r['amplification_max'])}"
               if _present(r["amplification_mean"]) else "–")
        cancel = (f"{float(r['cancel_propagated']):.0%} after {_num(r['cancel_after_ms'])} ms"
                  if _present(r["cancel_propagated"]) else "–")
        rows.append([r["entry"], r["config"], r["scenario"], _num(r["requests"]),
                     _num(100 * r["success_rate"], 1, "%") if _present(r["success_rate"]) else "–",
                     r["status_mix"] or "–", amp, _num(r["truncated_as_success"]), cancel,
                     _num(r["recovery_s"], 2, " s") if _present(r["recovery_s"]) else "–",
                     "–" if r["config"] == "direct" or not _present(r["added_p99_us"])
                     else _us(r["added_p99_us"]) + _rough_p99(r["requests"]),
                     _num(r["rss_growth_mib"], 1, " MiB") if _present(r["rss_growth_mib"]) else "–"])
    table = TextTable(
        "Resilience: what each gateway does when the LLM misbehaves",
        ["target", "config", "scenario", "requests", "success", "statuses", "attempts / request (mean / max)",
         "200 but short or invalid", "upstream closed after client left", "recovery", "added p99", "RSS growth"],
        rows,
        "Each scenario: the mock restarted with a fault plan (mock_llm/faults.yaml), a fixed arrival rate, every "
        "answer validated by the client. Success: HTTP 200 with the mock's whole, valid answer. Statuses: HTTP "
        "status counts (0: no answer: a reset, a cut, a timeout). Attempts per request: what the mock and its "
        "healthy second instance received per client request. 200 but short or invalid: answers that ended "
        "cleanly at the HTTP level but were cut short or were not valid JSON, delivered as successes. Upstream "
        "closed: of the answers the plan held past the client's timeout, the share the mock saw closed, and the "
        "median time. Recovery: seconds from the end of the outage to the first normal answer at the mock. Added "
        "p99: over direct in the same scenario; ‡: fewer than 1,000 requests, so the p99 rests on fewer than "
        f"{TAIL_SAMPLES} samples beyond it: rough. direct (k6 to the mock) is the reference: what a gateway adds "
        "or hides is the difference. docs/faults.md.")
    verdict_rows = [[v["entry"], v["config"], v["verdict"], v["evidence"]] for v in found.to_dict("records")]
    verdict_table = TextTable(
        "Resilience verdicts",
        ["target", "config", "verdict", "evidence"],
        verdict_rows or [["–", "–", "nothing a target added or hid beyond what the mock did", "–"]],
        "Derived from the table above against direct's row for the same scenario: a success rate 2 points above "
        "direct's hides failures, below it adds them; more than 1.05 attempts per request is retrying; any answer "
        "delivered as HTTP 200 while short or invalid is passed as a success; an upstream answer not closed after "
        "the client left is kept running; a recovery more than 1 s after direct's is slow; more than 10 MiB of "
        "resident memory gained over a scenario is growth (one scenario: not proof of a leak).")
    return [table, verdict_table]
