"""Headline statements, each with the caveats that apply to it.

Suite runs: one statement per target in plain words (added latency with its interval, capacity under
the default p99 bound, CPU per request and memory, streaming), then comparisons only where the
intervals say a difference is real. Scenario runs: throughput comparisons in the published form;
latency differences only from an open-model (arrival-rate) scenario, never from a closed loop,
where latency is queueing at each target's limit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from analysis.compare import relative_statements
from analysis.scenario_results import ScenarioResults
from analysis.stages import SCALING_FLOOR
from analysis.validity import RULE_TITLES, Finding


@dataclass(frozen=True)
class Headline:
    text: str
    caveats: list[str] = field(default_factory=list)


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value)) and value is not pd.NA


def _true(value: Any) -> bool:
    """A flag from a table cell (bool, numpy bool, or missing)."""
    return _present(value) and bool(value)


def us_text(value: float) -> str:
    """Microseconds as a person reads them: 85 µs, 4.21 ms, 13.2 ms (three significant digits or so)."""
    if abs(value) < 1000:
        return f"{value:,.0f} µs"
    if abs(value) < 10_000:
        return f"{value / 1000:,.2f} ms"
    return f"{value / 1000:,.1f} ms"


def _significance(label: str, significant: bool | None) -> str | None:
    if significant is None:
        return f"one repeat: the {label} difference has no confidence interval (use --repeats 3 or more)"
    if not significant:
        return f"the {label} difference is within the repeats' intervals: not significant"
    return None


def _flags(findings: list[Finding], *targets: str) -> list[str]:
    seen = []
    for f in findings:
        note = f"{f.target}: {RULE_TITLES[f.rule].lower()}"
        if f.target in targets and note not in seen:
            seen.append(note)
    return seen


# ------------------------------------------------------------------------------------ suites
def _overhead_part(r: dict) -> tuple[str | None, list[str]]:
    if not _present(r.get("added_p50_us")):
        return None, []
    caveats = []
    p50 = f"adds {us_text(r['added_p50_us'])} at p50"
    if _present(r.get("added_p50_us_ci_low")):
        p50 += f" (95% CI {us_text(r['added_p50_us_ci_low'])} to {us_text(r['added_p50_us_ci_high'])})"
        if r["added_p50_us_ci_low"] <= 0 <= r["added_p50_us_ci_high"]:
            caveats.append("its added p50 is not distinguishable from zero")
    text = f"{p50} and {us_text(r['added_p99_us'])} at p99 over direct, one request at a time"
    return text, caveats


def stall_text(r: dict, bound: float) -> str:
    """A bound on the target's stall floor: no capacity there, the evidence, and the next bound's capacity."""
    text = (f"has no capacity at p99 <= {bound:g} ms: its p99 is already {r['capacity_no_queue_p99_ms']:,.0f} ms "
            f"where no queue forms ({r['capacity_no_queue_rps']:,.0f} RPS or less), set by its stalls")
    if _present(r.get("capacity_next_rps")):
        least = "at least " if _true(r.get("capacity_next_rig_bound")) else ""
        text += f"; sustains {least}{r['capacity_next_rps']:,.0f} RPS with p99 <= {r['capacity_next_bound_ms']:g} ms"
        top = r.get("capacity_next_range_high_rps")
        if _present(top) and top != r["capacity_next_rps"]:
            text += f" (its searches put it between {r['capacity_next_rps']:,.0f} and {top:,.0f})"
    return text


def _capacity_part(r: dict, cpus: int | None) -> str | None:
    bound = r.get("capacity_bound_ms")
    if not _present(bound):
        return None
    on = f" on {cpus} CPU{'s' if cpus != 1 else ''}" if cpus else ""
    if _true(r.get("capacity_rig_bound")):
        return (f"sustains at least {r['capacity_at_least_rps']:,.0f} RPS with p99 <= {bound:g} ms{on} "
                "(rig-bound: more cannot be measured here)")
    if _true(r.get("capacity_stall_bound")):
        return f"{stall_text(r, bound)}{on}"
    unstable = ""
    if _present(r.get("capacity_unstable_up_to_rps")):
        unstable = (f"; unstable: its p99 also met the bound at up to {r['capacity_unstable_up_to_rps']:,.0f} RPS "
                    "in other steps")
    if _present(r.get("capacity_rps")):
        spread = ""
        if _present(r.get("capacity_range_high_rps")) and r["capacity_range_high_rps"] != r["capacity_rps"]:
            spread = f"; its searches put it between {r['capacity_rps']:,.0f} and {r['capacity_range_high_rps']:,.0f}"
        return f"sustains {r['capacity_rps']:,.0f} RPS with p99 <= {bound:g} ms{on}{spread}{unstable}"
    if _present(r.get("capacity_below_rps")):
        why = unstable or " (no rate tried met the bound)"
        return f"sustains less than {r['capacity_below_rps']:,.0f} RPS with p99 <= {bound:g} ms{on}{why}"
    return f"met p99 <= {bound:g} ms at none of the rates tried"


def _efficiency_part(r: dict) -> str | None:
    if not _present(r.get("cpu_ms_per_request")):
        return None
    text = f"{r['cpu_ms_per_request']:.2f} CPU-ms per request"
    if _present(r.get("rss_mib")):
        text += f" and {r['rss_mib']:,.0f} MiB under load"
    return text + f" at {r['efficiency_rps']:g} req/s"


def difference_reading(value: Any, low: Any, high: Any, reference_ms: Any, what: str) -> str | None:
    """A through-minus-direct difference in words when its sign or size could mislead: noise (the interval
    includes zero), real but immaterial (under 1% of the reference), or below zero (the target cannot make the
    mock answer sooner: the two sides were read differently). None for a plain, material cost."""
    if not (_present(value) and _present(low) and _present(high)):
        return None
    if low <= 0 <= high:
        return f"{what}: noise, its 95% interval includes zero"
    if _present(reference_ms) and reference_ms and abs(value) < 0.01 * reference_ms:
        return f"{what}: real but immaterial, under 1% of the mock's {reference_ms:.1f} ms"
    if value < 0:
        return (f"{what}: below direct, which a relay cannot cause (the mock sends no sooner); the two sides were "
                "read differently, e.g. chunks held and then released closer together: not a gain for a client")
    return None


def _streaming_part(r: dict, token_gap_ms: Any = None) -> str | None:
    if not _present(r.get("added_ttft_p50_ms")):
        return None
    if _true(r.get("stream_holds_first_token")):
        text = (f"streaming holds the first token back: {r['added_ttft_p50_ms']:+.1f} ms to the first token against "
                f"{r['added_p50_us'] / 1000:.2f} ms added to a whole request")
    else:
        text = f"streaming adds {r['added_ttft_p50_ms']:+.1f} ms to the first token"
    text += f" and {r['added_gap_p50_ms']:+.2f} ms between chunks (p50)"
    words = [w for w in (
        difference_reading(r.get("added_ttft_p50_ms"), r.get("added_ttft_p50_ms_ci_low"),
                           r.get("added_ttft_p50_ms_ci_high"), None, "the first token's"),
        difference_reading(r.get("added_gap_p50_ms"), r.get("added_gap_p50_ms_ci_low"),
                           r.get("added_gap_p50_ms_ci_high"), token_gap_ms, "the gap's")) if w]
    if words:
        text += f" ({'; '.join(words)})"
    if _true(r.get("stream_rebuffers")):
        text += ", and re-buffers the stream (chunks arrive together at the end)"
    elif _present(r.get("stream_complete_share")) and r["stream_complete_share"] >= 1.0:
        text += ", every chunk arrived"
    return text


def suite_headlines(table: pd.DataFrame, findings: list[Finding], gateway_cpus: int | None) -> list[Headline]:
    out = []
    rows = table[table["role"].isin(["floor", "gateway"])].to_dict("records")
    for r in rows:
        if r["status"] != "ok":
            continue
        overhead, caveats = _overhead_part(r)
        parts = [p for p in (overhead, _capacity_part(r, gateway_cpus), _efficiency_part(r),
                             _streaming_part(r, r.get("stream_token_gap_ms"))) if p]
        if not parts:
            continue
        out.append(Headline(f"{r['target']} {r['version']} " + "; ".join(parts),
                            caveats + _flags(findings, r["target"])))
    out.extend(_suite_comparisons(rows))
    return out


# Figures compared between two targets when their intervals separate: the sentence for (lower, higher).
COMPARED = {
    "added_p50_us": lambda less, more: (f"{less['target']} adds less latency than {more['target']} at p50 "
                                        f"({us_text(less['added_p50_us'])} vs {us_text(more['added_p50_us'])}"),
    "added_ttft_p50_ms": lambda less, more: (f"{less['target']} delays the first streamed token less than "
                                             f"{more['target']} ({less['added_ttft_p50_ms']:+.1f} vs "
                                             f"{more['added_ttft_p50_ms']:+.1f} ms at p50"),
}


def _separated(a: dict, b: dict, metric: str) -> tuple[dict, dict] | None:
    """(lower, higher) of two rows whose 95% intervals on ``metric`` do not overlap, else None."""
    if not all(_present(x.get(f"{metric}_ci_low")) for x in (a, b)):
        return None
    less, more = (a, b) if a[metric] < b[metric] else (b, a)
    return (less, more) if less[f"{metric}_ci_high"] < more[f"{metric}_ci_low"] else None


def _suite_comparisons(rows: list[dict]) -> list[Headline]:
    """Only differences the intervals call real: added p50 and added time to first token (bootstrap intervals),
    capacity (repeat ranges)."""
    out = []
    ok = [r for r in rows if r["status"] == "ok"]
    for i, a in enumerate(ok):
        for b in ok[i + 1:]:
            for metric, sentence in COMPARED.items():
                less_more = _separated(a, b, metric)
                if less_more:
                    out.append(Headline(sentence(*less_more) + "; the 95% intervals do not overlap)"))
            # Capacity: only with repeats, and only when every repeat of one beat the other's range.
            caps = [x for x in (a, b) if _present(x.get("capacity_rps")) and not _true(x.get("capacity_rig_bound"))
                    and (x.get("repeats") or 0) >= 2]
            if len(caps) == 2:
                hi, lo = sorted(caps, key=lambda x: x["capacity_rps"], reverse=True)
                # Above the top of the other's range: above every rate at which a repeat of it failed.
                top = lo.get("capacity_range_high_rps")
                if _present(hi.get("capacity_low_rps")) and _present(top) and hi["capacity_low_rps"] > top:
                    more_pct = (hi["capacity_rps"] / lo["capacity_rps"] - 1) * 100
                    out.append(Headline(
                        f"{hi['target']} sustains {more_pct:.0f}% more RPS than {lo['target']} with p99 <= "
                        f"{hi['capacity_bound_ms']:g} ms ({hi['capacity_rps']:,.0f} vs {lo['capacity_rps']:,.0f}; "
                        "every repeat of one passed a rate above every rate at which a repeat of the other failed)"))
    return out


# --------------------------------------------------------------------------------- scenarios
def headlines(table: pd.DataFrame, findings: list[Finding], closed_loop: bool = True,
              paced: bool = False) -> list[Headline]:
    """A scenario run: throughput comparisons; added latency only at a fixed arrival rate. A paced load
    (think time, a mock paced like a model) gets no throughput comparison: each VU's rate there is
    1 / (latency + think time), so throughput restates latency instead of measuring capacity."""
    out: list[Headline] = []
    if paced:
        return out
    for st in relative_statements(table, roles=("gateway",)):
        if st.rps_significant is None:
            caveats = ["one repeat: no confidence interval to judge the difference by (use --repeats 3 or more)"]
        else:
            caveats = [c for c in (_significance("RPS", st.rps_significant),) if c]
        if closed_loop:
            caveats.append("closed loop: throughput at each target's limit; its latency is queueing, not overhead")
        text = (f"{st.faster} delivered {st.rps_more_pct:.0f}% more RPS than {st.slower}"
                + (" (closed loop)" if closed_loop else ""))
        out.append(Headline(text, caveats + _flags(findings, st.faster, st.slower)))
    if closed_loop:
        return out
    for r in table[table["valid"] & (table["role"] == "gateway")].to_dict("records"):
        if pd.isna(r.get("rate_added_p95_ms")):
            continue
        text = (f"{r['target']} added {r['rate_added_p50_ms']:+.2f} ms at p50 and {r['rate_added_p95_ms']:+.2f} ms "
                "at p95 over "
                "direct-to-mock at the same arrival rate")
        out.append(Headline(text, _flags(findings, r["target"])))
    return out


# ------------------------------------------------------------- a published harness's own terms
def _hey_part(r: dict) -> str:
    return (f"{r['rps']:,.0f} requests/s, average {r['latency_avg_ms']:,.2f} ms, p99 {r['latency_p99_ms']:,.2f} ms, "
            f"{(1 - r['error_rate']) * 100:.2f}% successful (hey's terms, {r['requests']:,.0f} requests)")


def _completion_part(r: dict, baseline: dict | None, one_at_a_time: bool) -> str:
    text = (f"p50 {r['latency_p50_ms']:,.1f} ms end to end (p95 {r['latency_p95_ms']:,.1f}), first byte at "
            f"{r['ttfb_p50_ms']:,.1f} ms (p50)")
    if _present(r.get("output_tokens_per_s")):
        text += f", {r['output_tokens_per_s']:,.1f} output tokens/s"
    text += f", {r.get('ok_requests') or 0:,.0f} successful requests, {r['error_rate'] * 100:.2f}% errors"
    if one_at_a_time and baseline is not None and _present(baseline.get("latency_p50_ms")):
        text += (f"; {r['latency_p50_ms'] - baseline['latency_p50_ms']:+,.1f} ms at p50 over direct-to-mock, one "
                 f"request at a time ({r['requests']:,.0f} requests, no interval: the default suite's overhead step "
                 "measures that)")
    return text


def _stages_part(r: pd.Series) -> str:
    text = f"peaked at {r['peak_rps']:,.1f} RPS in stage {int(r['peak_stage'])} (~{r['peak_vus_mean']:,.0f} VUs)"
    if _present(r["knee_stage"]):
        return text + (f"; stopped scaling in stage {int(r['knee_stage'])}: each VU's throughput fell to "
                       f"{r['knee_efficiency'] * 100:.0f}% of stage {int(r['best_stage'])}'s as mean latency rose "
                       f"from {r['best_latency_mean_ms']:,.0f} to {r['knee_latency_mean_ms']:,.0f} ms")
    if _present(r["last_judged_stage"]):
        return text + (f"; scaled through stage {int(r['last_judged_stage'])} (per-VU throughput within "
                       f"{(1 - SCALING_FLOOR) * 100:.0f}% of its best)")
    return text


def _drift_part(rows: pd.DataFrame) -> str | None:
    parts = []
    for r in rows.to_dict("records"):
        if not isinstance(r["verdict"], str):
            continue
        if r["quantity"] == "latency":
            parts.append(f"latency p50 {r['first']:,.1f} → {r['last']:,.1f} ms from the first to the last minute "
                         f"({r['change_pct']:+.1f}%): {r['verdict']} (Mann-Whitney p = {r['p_value']:.2g})")
        else:
            parts.append(f"gateway memory {r['first']:,.0f} → {r['last']:,.0f} MiB: {r['verdict']} "
                         f"({r['slope_per_min']:+.2f} MiB/min, 95% CI {r['slope_ci_low']:+.2f} to "
                         f"{r['slope_ci_high']:+.2f})")
    return "; ".join(parts) if parts else None


def scenario_headlines(table: pd.DataFrame, findings: list[Finding], results: ScenarioResults) -> list[Headline]:
    """One statement per gateway in the harness's own terms (its report sections), with the caveats."""
    out = []
    base_rows = table[(table["role"] == "baseline") & table["valid"]].to_dict("records")
    baseline = base_rows[0] if base_rows else None
    one_at_a_time = int(results.params.get("vus") or 0) == 1 and not results.params.get("stages")
    for r in table[table["role"].isin(["floor", "gateway"]) & (table["status"] == "ok")].to_dict("records"):
        if not _present(r.get("rps")):
            continue
        parts = []
        if results.has("latency_distribution"):
            parts.append(_hey_part(r))
        if results.has("completion_metrics"):
            parts.append(_completion_part(r, baseline, one_at_a_time))
        scaling = results.scaling[results.scaling["target"] == r["target"]]
        if results.has("stages") and not scaling.empty:
            parts.append(_stages_part(scaling.iloc[0]))
        drift = _drift_part(results.drift[results.drift["target"] == r["target"]]) if results.has("drift") else None
        if drift:
            parts.append(drift)
        if parts:
            out.append(Headline(f"{r['target']} {r['version']}: " + "; ".join(parts), _flags(findings, r["target"])))
    return out
