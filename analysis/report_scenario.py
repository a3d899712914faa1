"""A scenario's own report sections as text tables (report.md and report.html), in its harness's terms.

Presentation only: the numbers come from the comparison table (k6's summaries) and
:mod:`analysis.scenario_results`.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from analysis.drift import ALPHA, LATENCY_FLOOR_PCT, WINDOW_S
from analysis.report_tables import TextTable, _num, _present
from analysis.scenario_results import ScenarioResults
from analysis.stages import SCALING_FLOOR

# A percentile needs this many samples beyond it to be more than rough (as the validity rule says).
_TAIL_SAMPLES = 10


def _ms(value: Any, digits: int = 1) -> str:
    return _num(value, digits)


def completion_metrics_table(table: pd.DataFrame) -> TextTable:
    rows = []
    for r in table.dropna(subset=["requests"]).to_dict("records"):
        errors = r["error_rate"] * 100 if _present(r.get("error_rate")) else None
        rows.append([r["target"], _num(r.get("ok_requests")), _num(errors, 2, "%"), _ms(r["latency_avg_ms"]),
                     _ms(r["latency_p50_ms"]), _ms(r["latency_p95_ms"]), _ms(r["latency_p99_ms"]),
                     _ms(r.get("ttfb_p50_ms")), _ms(r.get("ttfb_p95_ms")), _num(r.get("output_tokens_per_s"), 1),
                     _num(r.get("tokens_per_response"), 1), _num(r.get("request_tokens_per_s_avg"), 1)])
    return TextTable(
        "Per request: latency, time to first byte, output tokens",
        ["target", "successful", "errors", "avg ms", "p50 ms", "p95 ms", "p99 ms", "TTFB p50 ms", "TTFB p95 ms",
         "output tokens/s", "tokens per answer", "tokens/s per request"],
        rows,
        "InferXgate's metrics. Latency: end to end, request sent to last byte received (k6 http_req_duration); "
        "time to first byte: k6 http_req_waiting. Successful: HTTP 200 with a well-formed chat completion; errors: "
        "the rest. Output tokens/s: usage.completion_tokens of every successful answer over the run's duration "
        "(what the target delivered); tokens/s per request: each answer's tokens over its own duration, averaged "
        "(InferXgate's tokens_per_second). Mean of repeats.")


def _stage_cell(value: Any, digits: int, requests: Any) -> str:
    rough = _present(requests) and requests * 0.05 < _TAIL_SAMPLES
    return _num(value, digits) + (" ‡" if rough and _present(value) else "")


def stages_table(results: ScenarioResults, order: list[str]) -> TextTable | None:
    s = results.stages
    if s.empty:
        return None
    rows = []
    for target in [t for t in order if t in set(s["target"])]:
        for r in s[s["target"] == target].sort_values("stage").to_dict("records"):
            efficiency = "ramp down" if r["ramps_down"] else (
                _num(r["efficiency"] * 100, 0, "%") if _present(r["efficiency"]) else "reference")
            rows.append([target, f"{int(r['stage'])}: {r['label']}", f"{int(r['vus_from'])} → {int(r['vus_to'])}",
                         _num(r["vus_mean"], 1), _num(r["seconds"]), _num(r["requests"]), _num(r["rps"], 1),
                         _num(r["rps_per_vu"], 3), _ms(r["latency_mean_ms"]), _ms(r["p50_ms"]),
                         _stage_cell(r["p95_ms"], 1, r["requests"]), _stage_cell(r["ttfb_p95_ms"], 1, r["requests"]),
                         _num(r["errors"]), efficiency])
    think = float(results.params.get("think_time") or 0)
    return TextTable(
        "Throughput ramp: each stage",
        ["target", "stage", "VUs", "mean VUs", "s", "requests", "RPS", "RPS per VU", "mean ms", "p50 ms", "p95 ms",
         "TTFB p95 ms", "errors", "scaling"],
        rows,
        "Each second counts with the stage k6 was in at its middle (the clock starts a second before k6's first "
        "sample of active VUs); seconds after the schedule count with the last stage. A stage to N VUs moves the "
        "VU count linearly from the previous target to N. Percentiles from the merged per-second histograms "
        f"(±0.54%); ‡: fewer than {_TAIL_SAMPLES * 20} requests, the p95 rests on fewer than {_TAIL_SAMPLES} "
        f"samples. Scaling: each VU's throughput, 1 / (mean latency + {think:g} s think time) by Little's law, "
        "relative to the best earlier stage's; below "
        f"{SCALING_FLOOR * 100:.0f}% the target has stopped scaling (its VUs queue instead of adding requests).")


def scaling_rows(results: ScenarioResults, order: list[str]) -> TextTable | None:
    sc = results.scaling
    if sc.empty:
        return None
    labels = results.stages.drop_duplicates("stage").set_index("stage")["label"].to_dict()
    rows = []
    for target in [t for t in order if t in set(sc["target"])]:
        r = sc[sc["target"] == target].iloc[0]
        peak = (f"{_num(r['peak_rps'], 1)} RPS in stage {int(r['peak_stage'])} ({_num(r['peak_vus_mean'], 1)} VUs "
                "on average)") if _present(r["peak_rps"]) else "–"
        if _present(r["knee_stage"]):
            knee = (f"stage {int(r['knee_stage'])} ({labels.get(int(r['knee_stage']), '')}): "
                    f"{r['knee_efficiency'] * 100:.0f}% per VU; mean latency {_ms(r['best_latency_mean_ms'])} → "
                    f"{_ms(r['knee_latency_mean_ms'])} ms")
        elif _present(r["last_judged_stage"]):
            knee = f"did not stop: scaled through stage {int(r['last_judged_stage'])}"
        else:
            knee = "–"
        rows.append([target, peak, knee])
    return TextTable("Throughput ramp: where each target stops scaling", ["target", "peak throughput",
                                                                          "stops scaling"], rows,
                     f"'Stops scaling': the first stage whose per-VU throughput fell below {SCALING_FLOOR * 100:.0f}% "
                     "of the best earlier stage's (see the stage table); ramp-down stages are not judged.")


def _drift_change(r: dict) -> str:
    unit = " ms" if r["quantity"] == "latency" else " MiB"
    return f"{r['change']:+,.1f}{unit} ({r['change_pct']:+.1f}%)" if _present(r["change"]) else "–"


def _drift_test(r: dict) -> str:
    if r["quantity"] == "latency" and _present(r["p_value"]):
        return f"Mann-Whitney p = {r['p_value']:.2g} ({int(r['samples_first'])} vs {int(r['samples_last'])} requests)"
    if _present(r["slope_per_min"]):
        return (f"Theil-Sen {r['slope_per_min']:+.2f} MiB/min (95% CI {r['slope_ci_low']:+.2f} to "
                f"{r['slope_ci_high']:+.2f})")
    return r.get("note") or "–"


def drift_table(results: ScenarioResults, order: list[str]) -> TextTable | None:
    d = results.drift
    if d.empty:
        return None
    many = d["repeat"].nunique() > 1
    rows = []
    for target in [t for t in order if t in set(d["target"])]:
        for r in d[d["target"] == target].sort_values(["repeat", "quantity"]).to_dict("records"):
            name = f"{target} (r{int(r['repeat'])})" if many else target
            unit, digits = (" ms", 1) if r["quantity"] == "latency" else (" MiB", 1)
            what = "latency p50" if r["quantity"] == "latency" else "gateway RSS (median)"
            rows.append([name, what, _num(r["first"], digits, unit), _num(r["last"], digits, unit), _drift_change(r),
                         _drift_test(r), r["verdict"] if isinstance(r["verdict"], str) else "not judged"])
    return TextTable(
        "Sustained load: first minute against last",
        ["target", "quantity", "first minute", "last minute", "change", "test", "verdict"],
        rows,
        f"Windows: the first and the last {WINDOW_S} s of the measurement. Latency: every request of each window "
        "(from the per-second histograms, ±0.54%); 'grows' when a one-sided Mann-Whitney U test finds the last "
        f"minute's latencies larger (p < {ALPHA:g}) and its median is up by more than {LATENCY_FLOOR_PCT:.1f}% "
        "(a step of one histogram bucket is below their resolution). "
        "Memory: the gateway's resident set (its whole process group); 'grows' when the Theil-Sen slope over the "
        "run has a 95% interval above zero and the last minute's median exceeds the first's by more than 1 MiB or "
        "1%. Closed-loop requests and consecutive memory samples are not independent: read p-values and intervals "
        "as guides, with the size of the change beside them (docs/inferxgate.md).")


def distribution_table(table: pd.DataFrame) -> TextTable:
    rows = []
    for r in table.dropna(subset=["requests"]).to_dict("records"):
        success = (1 - r["error_rate"]) * 100 if _present(r.get("error_rate")) else None
        rows.append([r["target"], _num(r["requests"]), _num(success, 2, "%"), _num(r.get("test_duration_s"), 2),
                     _num(r["rps"], 1), _ms(r["latency_avg_ms"], 2), _ms(r.get("latency_min_ms"), 2),
                     _ms(r["latency_max_ms"], 2),
                     *(_ms(r.get(f"latency_p{q}_ms"), 2) for q in (10, 25, 50, 75, 90, 95, 99)),
                     _num(r.get("response_bytes_avg"), 0)])
    return TextTable(
        "hey's summary: requests/s and the latency distribution",
        ["target", "requests", "success", "total s", "requests/s", "average ms", "fastest ms", "slowest ms",
         "p10", "p25", "p50", "p75", "p90", "p95", "p99", "size/request B"],
        rows,
        "As hey prints it (Summary, Latency distribution), in milliseconds: requests/s is requests over the whole "
        "run's time; success: HTTP 200 with a well-formed chat completion (hey itself counts any HTTP answer). "
        "Percentiles are k6's (interpolated between the two requests around the rank; hey takes the request at the "
        "rank: the same to within one request's latency). Size/request: the mean answer size, as hey's 'Size/request'.")


def hey_beside_k6_table(results: ScenarioResults, table: pd.DataFrame) -> TextTable | None:
    """The published tool's own figures beside k6's, per target: the published figure reproduced with the tool
    that produced it."""
    if results.hey.empty:
        return None
    k6 = table.set_index("target")
    rows = []
    for r in results.hey.to_dict("records"):
        mine = k6.loc[r["target"]].to_dict() if r["target"] in k6.index else {}
        answered = f"{r['status_200']:,} x 200" + (f", {r['other_statuses']:,} other" if r["other_statuses"] else "") \
            + (f", {r['errors']:,} errors" if r["errors"] else "")
        rows.append([r["target"], _num(mine.get("rps"), 0), _num(r["rps"], 0), _ms(mine.get("latency_avg_ms"), 2),
                     _ms(r["average_ms"], 2), _ms(mine.get("latency_p50_ms"), 2), _ms(r["p50_ms"], 2),
                     _ms(mine.get("latency_p99_ms"), 2), _ms(r["p99_ms"], 2), _ms(r["slowest_ms"], 2), answered])
    command = results.hey["command"].dropna()
    return TextTable(
        "hey itself, beside k6",
        ["target", "k6 req/s", "hey req/s", "k6 avg ms", "hey avg ms", "k6 p50", "hey p50", "k6 p99", "hey p99",
         "hey slowest", "hey's responses"],
        rows,
        "The real hey (Debian's package, rakyll/hey 0.1.4) run right after k6 in the same session with the published "
        "flags, the same body and the same target" + (f" (`{command.iloc[0]}`, the URL per target)" if len(command)
                                                       else "") + ": its own Summary and Latency distribution, "
        "parsed from its output (targets/<target>/r<N>/hey/hey.txt), mean of repeats. hey counts any HTTP answer "
        "as a response and reads no body; k6's figures count only well-formed completions. hey takes the request "
        "at a percentile's rank, k6 interpolates: the same to within one request's latency; hey prints seconds "
        "with four decimals, so its figures resolve 0.1 ms.")


def scenario_tables(results: ScenarioResults, table: pd.DataFrame) -> list[TextTable]:
    order = table["target"].tolist()
    out: list[TextTable | None] = []
    if results.has("latency_distribution"):
        out.append(distribution_table(table))
    if results.has("hey_tool"):
        out.append(hey_beside_k6_table(results, table))
    if results.has("completion_metrics"):
        out.append(completion_metrics_table(table))
    if results.has("stages"):
        out += [scaling_rows(results, order), stages_table(results, order)]
    if results.has("drift"):
        out.append(drift_table(results, order))
    return [t for t in out if t is not None]
