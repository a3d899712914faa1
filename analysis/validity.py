"""Is each row a fair measurement of its target? The rules the report shows before its headline.

Each rule returns findings (target, rule, message). A finding does not delete numbers: it says why
a number may not mean what it seems to mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from analysis.capacity import NO_QUEUE_P50, next_bound, pause_failures
from analysis.compare import MAX_VALID_ERROR_RATE
from analysis.load import RunData
from analysis.overhead import leaks, outlasts_settle
from analysis.suite import SuiteResults
from schema.manifest import Manifest

# CPU use at or above this fraction of the CPUs a role may use means it was saturated.
SATURATED_FRACTION = 0.90
# Response size differing from the baseline's by more than this fraction: unequal work.
RESPONSE_SIZE_TOLERANCE = 0.10
# Coefficient of variation across repeats above which a throughput figure is called noisy.
NOISY_CV = 0.10
# Repeats' capacities further apart than this factor disagree (the report says so).
CAPACITY_SPREAD = 1.3
# A percentile q is only quoted with at least this many samples beyond it (p99 needs 1000 requests).
TAIL_SAMPLES = 10
QUOTED_PERCENTILES = {"p95": 0.95, "p99": 0.99}
# The A/A control (direct against direct) may differ by this much at p50 before pairing is called biased.
CONTROL_TOLERANCE_US = 5.0

RULE_TITLES = {
    "errors": "Error rate above threshold",
    "rig": "The rig could not measure itself",
    "rig_bound": "Rig-bound: the load generator and the mock may set these figures",
    "loadgen_bottleneck": "The load generator may be the bottleneck",
    "few_requests": "Too few requests for the percentiles quoted",
    "unequal_work": "Targets did unequal work",
    "noisy": "Repeats disagree",
    "control": "The A/A control is off",
    "efficiency": "The efficiency rate was not sustained",
    "streaming": "Streams did not arrive whole",
    "holdback": "The first streamed token waits inside the target",
    "raw_mismatch": "Per-request samples disagree with k6's summary",
    "capacity_unstable": "A capacity is not stable from step to step",
    "capacity_paused": "A capacity was set by a pause, not a queue",
    "stalls": "A p99 bound lies within the target's stalls: no capacity there",
    "disturbed": "Other work on the machine disturbed a measurement",
    "carry_over": "The gateway's work leaked into the direct baseline",
}

# The same rules in a word or two, for the scorecard's validity column.
RULE_MARKS = {
    "errors": "errors", "rig": "no rig", "rig_bound": "rig-bound", "loadgen_bottleneck": "load generator busy",
    "few_requests": "few requests", "unequal_work": "unequal work", "noisy": "repeats disagree",
    "control": "A/A off", "efficiency": "rate not sustained", "streaming": "streams cut",
    "holdback": "first token held",
    "raw_mismatch": "samples disagree", "capacity_unstable": "capacity unstable", "disturbed": "disturbed",
    "capacity_paused": "set by a pause",
    "carry_over": "carry-over", "stalls": "stalls",
}


@dataclass(frozen=True)
class Finding:
    rule: str
    target: str
    message: str


def _errors(table: pd.DataFrame) -> list[Finding]:
    out = []
    for r in table.dropna(subset=["error_rate"]).itertuples():
        if r.error_rate > MAX_VALID_ERROR_RATE:
            out.append(Finding("errors", r.target, f"{r.error_rate * 100:.2f}% of requests failed (threshold "
                                                   f"{MAX_VALID_ERROR_RATE * 100:.0f}%); its throughput and "
                                                   "latency describe failures, not service."))
    return out


def _rig(run: RunData) -> list[Finding]:
    rig = run.manifest.rig
    if rig is None:
        return []
    if rig.error:
        return [Finding("rig", "rig", f"the rig's ceiling and floor were not measured ({rig.error}): no "
                                      "throughput of this run can be told apart from the rig's own limit.")]
    return []


def _rig_bound(run: RunData, table: pd.DataFrame) -> list[Finding]:
    ceiling = run.rig.ceiling_rps
    if not ceiling:
        return []
    out = []
    gateways = table[table["role"] != "baseline"]
    for r in gateways[gateways["rig_bound"].astype(bool)].dropna(subset=["rps"]).itertuples():
        out.append(Finding("rig_bound", r.target,
                           f"its throughput ({r.rps:,.0f} RPS) reached {r.rps / ceiling * 100:.0f}% of the rig's "
                           f"ceiling ({ceiling:,.0f} RPS, k6 straight to the mock): read it as \"at least "
                           f"{r.rps:,.0f} RPS\", not as its limit."))
    if "capacity_rig_bound" in table:
        for r in gateways[gateways["capacity_rig_bound"].eq(True)].itertuples():
            out.append(Finding("rig_bound", r.target,
                               "its capacity search reached the rig's own limit at the default p99 bound: it "
                               f"sustains at least {r.capacity_at_least_rps:,.0f} RPS; more cannot be measured here."))
    return out


def _capacity_unstable(suite: SuiteResults | None) -> list[Finding]:
    """Every bound of the frontier (not only the default one) whose capacity met the bound above a rate that
    failed it: what frontier.csv marks in ``passed_above_rps``, said in words."""
    if suite is None or suite.frontier.empty or "passed_above_rps" not in suite.frontier:
        return []
    out = []
    for r in suite.frontier.dropna(subset=["passed_above_rps"]).to_dict("records"):
        if r.get("stall_bound"):
            continue  # said by _stalls: no capacity is quoted at that bound
        below = r["max_rps"] if pd.notna(r["max_rps"]) else r["failing_rps"]
        quoted = (f"the quoted {below:,.0f} RPS is the cautious side of a range" if pd.notna(r["max_rps"])
                  else f"'less than {below:,.0f} RPS' is the cautious reading")
        out.append(Finding("capacity_unstable", r["target"],
                           f"at p99 <= {r['p99_bound_ms']:g} ms a step at {r['passed_above_rps']:,.0f} RPS met the "
                           "bound while a lower one failed it: its p99 swings from one short step to the next "
                           f"(pauses, a noisy machine), so {quoted}, not a stable capacity. Longer steps settle it: "
                           "`--suite thorough`."))
    return out


def _capacity_paused(suite: SuiteResults | None) -> list[Finding]:
    """A quoted capacity (the default bound's, or the next bound's for a stall-bound target) that some session's
    search ended at a probe which failed by a pause, its median unmoved (analysis/capacity.py)."""
    if suite is None or suite.frontier.empty or suite.probes.empty or suite.default_bound_ms is None:
        return []
    out = []
    front = suite.frontier
    for r in front[front["p99_bound_ms"] == float(suite.default_bound_ms)].to_dict("records"):
        bound = r["p99_bound_ms"]
        if r["stall_bound"]:
            bound = next_bound(front, r["target"], bound)["capacity_next_bound_ms"]
        row = front[(front["target"] == r["target"]) & (front["p99_bound_ms"] == bound)]
        if row.empty or bool(row.iloc[0]["rig_bound"]) or pd.isna(row.iloc[0]["max_rps"]):
            continue
        paused = pause_failures(suite.probes, r["target"], bound)
        if not paused:
            continue
        seen = "; ".join(f"session {f.repeat} passed {f.passed_rps:,.0f} RPS, then at {f.rate:,.0f} RPS read p99 "
                         f"{f.p99_ms:,.0f} ms at a median of {f.p50_ms:.1f} ms (its lowest {f.floor_p50_ms:.1f})"
                         + (f" and dropped {f.dropped} iterations" if f.dropped else "") for f in paused)
        out.append(Finding("capacity_paused", r["target"],
                           f"at p99 <= {bound:g} ms, {len(paused)} of {int(row.iloc[0]['repeats'])} session(s) "
                           f"ended their search at a pause, not a queue: {seen}. Such a figure is the rate at which "
                           "a short probe first caught one of the target's pauses; another run may catch one "
                           "higher or lower. Longer probes (`--suite thorough`) hold more of them."))
    return out


def _cpu_sets(manifest: Manifest) -> dict[str, list[int] | None]:
    pins = manifest.cpu_pinning
    return {"loadgen": pins.loadgen, "mock": pins.mock, "gateway": pins.gateway}


def _loadgen_bottleneck(run: RunData, table: pd.DataFrame) -> list[Finding]:
    out = []
    for r in table.dropna(subset=["dropped_iterations"]).itertuples():
        if r.dropped_iterations > 0:
            out.append(Finding("loadgen_bottleneck", r.target,
                               f"k6 dropped {r.dropped_iterations:,.0f} iterations: it had no free VU to start "
                               "them, so the arrival rate asked for was not delivered (raise --max-vus)."))
    if run.resources.empty or "role" not in run.resources:
        return out
    sets = _cpu_sets(run.manifest)
    loadgen_cpus = sets["loadgen"]
    if "cpus" in run.resources:
        # The load generator on a machine of its own (cloud runner): its CPU count came with the samples.
        own = run.resources[run.resources["role"] == "loadgen"].dropna(subset=["cpus"])
        for target, frame in own.groupby("target"):
            capacity = float(frame["cpus"].iloc[0])
            used = float(frame["cpu_cores"].mean())
            if used >= SATURATED_FRACTION * capacity:
                out.append(Finding("loadgen_bottleneck", str(target),
                                   f"the k6 runner's CPUs were {used / capacity * 100:.0f}% busy on average "
                                   f"({used:.1f} of {capacity:.0f} cores): add runners or a larger instance."))
        return out
    # Roles that share the load generator's CPUs count together (on 2 cores the mock shares CPU 0).
    if loadgen_cpus:
        roles = [role for role, cpus in sets.items() if cpus == loadgen_cpus]
        capacity = len(loadgen_cpus)
    else:
        roles = ["loadgen", "mock", "gateway"]
        capacity = run.manifest.machine.get("cpus_usable") or 1
    res = run.resources[run.resources["role"].isin(roles)]
    per_sample = res.groupby(["target", "repeat", "t_s"])["cpu_cores"].sum()
    mean_use = per_sample.groupby(level="target").mean()
    for target, used in mean_use.items():
        if used >= SATURATED_FRACTION * capacity:
            who = " and ".join(roles)
            out.append(Finding("loadgen_bottleneck", str(target),
                               f"the CPUs of the {who} were {used / capacity * 100:.0f}% busy on average "
                               f"({used:.2f} of {capacity} cores): the load generator may have limited the "
                               "throughput and added latency of its own."))
    return out


def _few_requests(table: pd.DataFrame) -> list[Finding]:
    out = []
    for r in table.dropna(subset=["requests"]).itertuples():
        per_repeat = r.requests / max(int(r.repeats or 1), 1)  # the column is the total over repeats
        short = [name for name, q in QUOTED_PERCENTILES.items() if per_repeat * (1 - q) < TAIL_SAMPLES]
        if short:
            out.append(Finding("few_requests", r.target,
                               f"only {per_repeat:,.0f} requests per repeat: {', '.join(short)} rest on fewer than "
                               f"{TAIL_SAMPLES} samples beyond them; read them as rough."))
    return out


def _few_tail_samples(suite: SuiteResults | None) -> list[Finding]:
    """The suite's p99s: each capacity a probe's p99, each added p99 the pooled pairs', each closed-loop
    figure a level's: each needs TAIL_SAMPLES requests beyond it (1,000 for a p99) or says how many it had."""
    if suite is None or suite.empty:
        return []
    need = TAIL_SAMPLES / 0.01
    out = []
    probes = suite.probes
    for r in suite.frontier.dropna(subset=["max_rps"]).to_dict("records"):
        mine = probes[(probes["target"] == r["target"]) & (probes["rate"] == r["max_rps"])]
        if not mine.empty and mine["requests"].min() < need:
            out.append(Finding("few_requests", r["target"], f"its capacity at p99 <= {r['p99_bound_ms']:g} ms rests on "
                                                            f"a probe of {mine['requests'].min():,.0f} requests "
                                                            f"({mine['requests'].min() * 0.01:.0f} beyond the p99): "
                                                            "read it as rough (longer probes: --suite thorough)."))
    for r in suite.overhead.dropna(subset=["pairs"]).to_dict("records"):
        if r["pairs"] < need:
            out.append(Finding("few_requests", r["target"], f"its added p99 rests on {r['pairs']:,.0f} pairs "
                                                            f"({r['pairs'] * 0.01:.0f} beyond the p99): read it as "
                                                            "rough."))
    return out


def _unequal_work(run: RunData, table: pd.DataFrame) -> list[Finding]:
    out = []
    base = table[table["role"] == "baseline"].dropna(subset=["response_bytes_avg"])
    if not base.empty:
        ref = float(base["response_bytes_avg"].iloc[0])
        for r in table.dropna(subset=["response_bytes_avg"]).itertuples():
            if ref and abs(r.response_bytes_avg - ref) / ref > RESPONSE_SIZE_TOLERANCE:
                out.append(Finding("unequal_work", r.target,
                                   f"its responses averaged {r.response_bytes_avg:,.0f} bytes against the mock's "
                                   f"{ref:,.0f}: it rewrote the response (more or less to parse and send)."))
    bodies = run.outcomes.dropna(subset=["body_sha256"]) if "body_sha256" in run.outcomes else pd.DataFrame()
    if not bodies.empty and bodies["body_sha256"].nunique() > 1:
        common = bodies["body_sha256"].mode().iloc[0]
        for r in bodies[bodies["body_sha256"] != common].itertuples():
            out.append(Finding("unequal_work", r.target, "it was sent a different request body than the other "
                                                         "targets (model name or scenario differ)."))
    if not run.statuses.empty and "status" in run.statuses:
        mix = run.statuses.groupby(["target", "status"])["requests"].sum()
        for target in mix.index.get_level_values("target").unique():
            other = mix[target][mix[target].index != 200]
            if other.sum() > 0:
                parts = ", ".join(f"{'no response' if s == 0 else f'HTTP {s}'}: {n:,}" for s, n in other.items())
                out.append(Finding("unequal_work", str(target), f"status mix other than 200 ({parts})."))
    return out


def _stalls(suite: SuiteResults | None) -> list[Finding]:
    """Bounds on a target's stall floor (analysis/capacity.py): the evidence, and why no capacity is quoted."""
    if suite is None or suite.frontier.empty or "stall_bound" not in suite.frontier:
        return []
    out = []
    for r in suite.frontier[suite.frontier["stall_bound"].astype(bool)].to_dict("records"):
        seen = f"; the search's steps met it up to {r['max_rps']:,.0f} RPS" if pd.notna(r["max_rps"]) else ""
        out.append(Finding("stalls", r["target"],
                           f"at p99 <= {r['p99_bound_ms']:g} ms: its p99 already reached {r['no_queue_p99_ms']:,.1f} "
                           f"ms where no queue forms (the median over {r['no_queue_probes']:.0f} probes up to "
                           f"{r['no_queue_rps']:,.0f} RPS whose median stayed within {NO_QUEUE_P50:g} times "
                           f"its session's lowest){seen}. Whether a step meets this bound depends on whether "
                           "one of its pauses fell inside it, so a second run may find any rate: no capacity is "
                           "quoted at this bound."))
    return out


def _noisy(table: pd.DataFrame, suite: SuiteResults | None = None) -> list[Finding]:
    out = []
    for r in table.dropna(subset=["rps_cv"]).itertuples():
        if r.rps_cv > NOISY_CV:
            out.append(Finding("noisy", r.target, f"throughput varied by {r.rps_cv * 100:.0f}% (coefficient of "
                                                  f"variation) across {r.repeats} repeats."))
    if suite is not None and not suite.frontier.empty:
        front = suite.frontier
        default = front[front["p99_bound_ms"] == float(suite.default_bound_ms or 0)]
        for r in default.dropna(subset=["max_rps_low", "max_rps_high"]).to_dict("records"):
            if (r["repeats"] > 1 and not r["rig_bound"] and not r.get("stall_bound")
                    and r["max_rps_high"] > CAPACITY_SPREAD * r["max_rps_low"]):
                out.append(Finding("noisy", r["target"], f"its capacity at p99 <= {r['p99_bound_ms']:g} ms ranged "
                                                         f"{r['max_rps_low']:,.0f}-{r['max_rps_high']:,.0f} RPS over "
                                                         f"{r['repeats']} repeats (the lowest is quoted): one more "
                                                         "session may land anywhere in that range or outside it."))
    return out


def _foreign(noise: dict) -> str:
    busiest = ", ".join(f"{b['name']} (pid {b['pid']}) {b['cpu_seconds']:.1f} CPU-s" for b in noise.get("busiest", []))
    return (f"{noise.get('cpu_seconds', 0):.1f} CPU-s of other work ({noise.get('cores', 0):.2f} cores over "
            f"{noise.get('seconds', 0):.0f} s; busiest: {busiest or 'gone by the end of the window'})")


def _disturbed(run: RunData) -> list[Finding]:
    """Windows that other work on the machine still disturbed after being measured again (the noise guard,
    aigw_bench/local/noise.py): named with the foreign CPU and the busiest processes, never a figure."""
    out = []
    rig_noise = run.rig.noise or {}
    for kind, noise in rig_noise.items():
        if noise and noise.get("disturbed"):
            out.append(Finding("disturbed", "rig", f"the rig's {kind} window: {_foreign(noise)}; the ceiling and "
                                                    "floor are not the rig's own."))
    for o in run.sessions:
        for name, record in o.steps.items():
            noise = record.data.get("noise") or {}
            if noise.get("disturbed"):
                kept = any(r is record for _, r in run.step_records(name))
                fate = ("its figures are not this target's own (no clean session of this step)" if kept else
                        "left out of its figures: another session of this step was clean")
                out.append(Finding("disturbed", o.target, f"its {name} window (repeat {o.repeat}), measured again "
                                                          f"{noise.get('remeasured', 0)} time(s): {_foreign(noise)}; "
                                                          f"{fate}."))
            left_out = not any(r is record for _, r in run.step_records(name))
            for probe in record.data.get("probes") or []:
                if probe.get("disturbed"):
                    fate = ("this search is left out of its capacity: another session's was clean" if left_out
                            else "its verdict is not trusted")
                    out.append(Finding("disturbed", o.target, f"its capacity probe at {probe['rate']:,.0f} req/s "
                                                              f"(repeat {o.repeat}) ran with "
                                                              f"{probe.get('foreign_cores') or 0:.2f} cores of other "
                                                              f"work on the machine: {fate}."))
    return out


def _carry_over(suite: SuiteResults | None) -> list[Finding]:
    """The gateway's work reached the steady direct requests despite the settle window kept apart: seen in
    the session itself (early steady requests slower than the late ones), or against the A/A
    control (the direct side slower than the control's; analysis/overhead.py)."""
    if suite is None or suite.overhead.empty:
        return []
    out = []
    for r in suite.overhead.to_dict("records"):
        if outlasts_settle(r):
            nan = float("nan")
            low, high = r.get("carryover_drift_us_ci_low", nan), r.get("carryover_drift_us_ci_high", nan)
            out.append(Finding("carry_over", r["target"],
                               f"the steady direct requests early in each block were {r['carryover_drift_us']:+.0f} µs "
                               f"slower at p50 (95% interval {low:+.0f} to {high:+.0f}) than the late ones: its "
                               "carry-over outlasted the settle window and part of its cost may be missing from its "
                               "added latency (raise the overhead step's settle)."))
        elif "direct_leak_us" in r and leaks(r):
            out.append(Finding("carry_over", r["target"], f"the direct requests in its sessions took "
                                                          f"{r['direct_leak_us']:+.0f} µs at p50 against the A/A "
                                                          "control's: part of its cost may be missing from its "
                                                          "added latency, or the machine changed between sessions "
                                                          "(compare the sessions' figures)."))
    return out


def _control(table: pd.DataFrame, suite: SuiteResults | None) -> list[Finding]:
    """The baseline's overhead step compares the mock with itself: its added latency must be nil.

    A difference whose interval excludes zero but is below CONTROL_TOLERANCE_US (or 5% of the direct
    p50) is real but immaterial (a sub-microsecond ordering effect); above that, pairing is biased."""
    out = []
    if "added_p50_us_ci_low" not in table or suite is None or suite.overhead.empty:
        return out
    direct = suite.overhead.set_index("target")["direct_p50_us"]
    for r in table[table["role"] == "baseline"].dropna(subset=["added_p50_us_ci_low"]).itertuples():
        tolerance = max(CONTROL_TOLERANCE_US, 0.05 * float(direct.get(r.target, 0.0)))
        if (r.added_p50_us_ci_low > 0 or r.added_p50_us_ci_high < 0) and abs(r.added_p50_us) > tolerance:
            out.append(Finding("control", r.target,
                               f"direct against direct differed by {r.added_p50_us:+.1f} µs at p50 (95% CI "
                               f"{r.added_p50_us_ci_low:.1f} to {r.added_p50_us_ci_high:.1f}): the two sides of the "
                               "pairing are not alike on this machine, and overheads of that size are not resolved."))
    return out


def _efficiency(suite: SuiteResults | None) -> list[Finding]:
    if suite is None or suite.efficiency.empty:
        return []
    return [Finding("efficiency", r.target, f"at {r.rate:g} req/s: {r.note}; its CPU and memory figures describe a "
                                            "target under strain, not its cost at that rate.")
            for r in suite.efficiency.itertuples() if not r.sustained]


def _streaming(suite: SuiteResults | None) -> list[Finding]:
    if suite is None or suite.streaming.empty:
        return []
    out = []
    for r in suite.streaming.itertuples():
        share = r.complete_share
        if share is not None and not pd.isna(share) and share < 1.0:
            out.append(Finding("streaming", r.target,
                               f"only {share * 100:.1f}% of its streams arrived whole (all {r.expected_chunks} "
                               f"chunks: {r.chunks_ok_share * 100:.1f}%, usage: {r.usage_share * 100:.1f}%, [DONE]: "
                               f"{r.done_share * 100:.1f}%; {r.errors_target} failed outright)."))
    return out


def _holdback(table: pd.DataFrame) -> list[Finding]:
    """A target whose first streamed token waits longer than its whole-request overhead plus a token's time."""
    if "stream_holds_first_token" not in table:
        return []
    held = table[table["stream_holds_first_token"].eq(True) & (table["role"] != "baseline")]
    return [Finding("holdback", r.target,
                    f"streaming adds {r.added_ttft_p50_ms:+.1f} ms to the first token (95% CI "
                    f"{r.added_ttft_p50_ms_ci_low:+.1f} to {r.added_ttft_p50_ms_ci_high:+.1f}) against "
                    f"{r.added_p50_us / 1000:.2f} ms added to a whole request: the first token waits "
                    f"{r.stream_first_token_wait_ms:.1f} ms inside the target, more than one token's time of the "
                    "mock, even when every chunk arrives. A proxy that buffers small writes, or waits for more of "
                    "the answer before relaying, does this; a client sees it as a slower first token.")
            for r in held.itertuples()]


def _raw_mismatch(run: RunData) -> list[Finding]:
    """The charts and per-second series come from k6's raw samples, the table from its summary: they must agree."""
    out = []
    for r in run.raw_checks.itertuples():
        if r.agrees is False:
            why = f" (the raw file was cut short: {r.truncated})" if r.truncated else ""
            shown = "; ".join(r.disagreeing[:3]) + ("; ..." if len(r.disagreeing) > 3 else "")
            out.append(Finding("raw_mismatch", r.target,
                               f"repeat {r.repeat}: {shown}{why}. Counts must be equal and percentiles within "
                               f"{r.quantile_error_pct:.2f}% (the histogram's bucket error); its per-second series "
                               "and latency chart do not describe the same requests as its table row."))
    return out


def check(run: RunData, table: pd.DataFrame, suite: SuiteResults | None = None) -> list[Finding]:
    """All findings for a comparison table, in rule order."""
    return [
        *_rig(run),
        *_errors(table),
        *_rig_bound(run, table),
        *_capacity_unstable(suite),
        *_stalls(suite),
        *_capacity_paused(suite),
        *_loadgen_bottleneck(run, table),
        *_few_requests(table),
        *_few_tail_samples(suite),
        *_unequal_work(run, table),
        *_noisy(table, suite),
        *_raw_mismatch(run),
        *_control(table, suite),
        *_carry_over(suite),
        *_disturbed(run),
        *_efficiency(suite),
        *_streaming(suite),
        *_holdback(table),
    ]
