"""The measurement steps of one target session, shared by the local runner and the cloud stage.

Each step renders its k6 script (or prepares the streaming probe), has the driver run it, and
returns a :class:`StepRecord` with the facts it measured. Statistics and verdicts come later, from
the analysis, so that ``aigw-bench report`` can always recompute them from the files.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aigw_bench.measure.driver import (
    Driver,
    K6Job,
    K6Run,
    ResourcesUnavailable,
    SessionLost,
    StreamJob,
    ToolJob,
    ToolUnavailable,
)
from aigw_bench.measure.events import ProbeDone
from aigw_bench.measure.faults import faults_steps
from aigw_bench.measure.plan import Measurement
from aigw_bench.measure.search import MAX_ERROR_RATE, CapacitySearch, Probe
from aigw_bench.measure.works import answer_samples, verdicts
from k6_scripts.logs import steady_warmup
from k6_scripts.render import build_body, render_paired, render_script, render_works
from schema.k6 import metric
from schema.manifest import RigRecord
from schema.mock import DEFAULT_PROFILE, PacingProfile, load_profile
from schema.results import StepRecord, now_iso
from schema.scenarios import Scenario, ScenarioParams
from schema.services import SERVICE_ROLE
from schema.suites import (
    CapacitySizes,
    ConcurrencySizes,
    EfficiencySizes,
    OverheadSizes,
    RigSizes,
    StreamingSizes,
    SuiteSizes,
)

__all__ = ["capacity_step", "efficiency_step", "measure_rig", "overhead_step", "scenario_step", "session_steps",
           "streaming_step", "suite_session"]

_ARRIVAL = Scenario(name="arrival", executor="constant-arrival-rate", profiles={},
                    description="a fixed arrival rate (capacity probes, efficiency)")
CLOSED_LOOP = Scenario(name="closed", executor="constant-vus", profiles={},
                   description="a closed loop of virtual users (the rig's ceiling and floor)")


def _record(name: str, kind: str, step_dir: Path, session_dir: Path, **fields: Any) -> StepRecord:
    return StepRecord(name=name, kind=kind, status=fields.pop("status", "ok"),
                      dir=str(step_dir.relative_to(session_dir)), started_at=fields.pop("started_at", now_iso()),
                      finished_at=now_iso(), **fields)


def _k6_facts(run: K6Run) -> dict[str, Any]:
    facts = {"exit_code": run.exit_code, "thresholds_passed": run.thresholds_passed, "seconds": round(run.seconds, 2),
             "requests": metric(run.summary, "http_reqs", "count"), "rps": metric(run.summary, "http_reqs", "rate"),
             "ok_rate": metric(run.summary, "aigw_ok", "rate")}
    if run.noise is not None:
        facts["noise"] = run.noise
    return facts


def _run_status(run: K6Run) -> tuple[str, str | None]:
    if run.summary is None:
        return "failed", run.summary_problem or "k6 wrote no summary"
    return "ok", None


# --------------------------------------------------------------------------------------- steps
def scenario_step(d: Driver, name: str, scenario: Scenario, params: ScenarioParams, session_dir: Path,
                  raw: bool = True) -> StepRecord:
    """A scenario as it stands (the published shape, rate, stream, ...): warm-up, then measure."""
    started = now_iso()
    step_dir = session_dir / name
    rendered = render_script(scenario, params, d.target)
    run = d.run_k6(K6Job(label=name, dir=step_dir, source=rendered.source, duration=params.duration,
                         warmup=params.warmup, raw=raw, request_timeout=params.request_timeout,
                         max_vus=scenario.max_vus(params), warmup_vus=scenario.warmup_max_vus(params)))
    status, reason = _run_status(run)
    return _record(name, "scenario", step_dir, session_dir, status=status, reason=reason, files=run.files,
                   started_at=started, data={**_k6_facts(run), "body_sha256": rendered.body_sha256,
                                             "params": params.model_dump()})


def overhead_step(d: Driver, sizes: OverheadSizes, base: ScenarioParams, session_dir: Path) -> StepRecord:
    """Concurrency 1, the mock directly and through the target in alternating blocks (the first requests
    of each block kept apart: the carry-over), after a warm-up that lasts until the target is steady."""
    started = now_iso()
    step_dir = session_dir / "overhead"
    warmup = sizes.warmup_max or sizes.warmup
    params = base.model_copy(update={"vus": 1, "duration": sizes.duration, "warmup": warmup, "stream": False})
    rendered = render_paired(params, d.target, d.direct, sizes.block, sizes.settle)
    run = d.run_k6(K6Job(label="overhead (concurrency 1)", dir=step_dir, source=rendered.source,
                         duration=sizes.duration, warmup=warmup, raw=True, request_timeout=params.request_timeout,
                         split=False, max_vus=1, steady=sizes.steady()))
    status, reason = _run_status(run)
    facts = _k6_facts(run)
    facts["pairs"] = min(metric(run.summary, "aigw_target_ms", "count") or 0,
                         metric(run.summary, "aigw_direct_ms", "count") or 0)
    facts["direct_ok_rate"] = metric(run.summary, "aigw_direct_ok", "rate")
    facts["target_ok_rate"] = metric(run.summary, "aigw_target_ok", "rate")
    facts["warmup"] = _warmup_facts(run, sizes)
    return _record("overhead", "overhead", step_dir, session_dir, status=status, reason=reason, files=run.files,
                   started_at=started, data={**facts, "sizes": sizes.model_dump(), "body_sha256": rendered.body_sha256})


def _warmup_facts(run: K6Run, sizes: OverheadSizes) -> dict[str, Any]:
    """How long the warm-up lasted and whether the target was steady by its end."""
    if sizes.warmup_max is None:
        return {"seconds": sizes.warmup, "until_steady": False}
    steady = steady_warmup(run.warmup_log)
    if steady is None:  # it ran its longest: the target never settled within warmup_max
        return {"seconds": sizes.warmup_max, "until_steady": True, "steady": False}
    return {"seconds": steady.seconds, "until_steady": True, "steady": True, "medians_ms": steady.medians_ms}


def _arrival_params(base: ScenarioParams, rate: float, duration: float, warmup: float, max_vus: int) -> ScenarioParams:
    # VUs for 100 ms of latency at this rate, allocated before the start: k6 starting more VUs during
    # the run takes time, and iterations due meanwhile are dropped (a rig artefact, not the target's).
    vus = max(1, min(max_vus, max(20, math.ceil(rate * 0.1))))
    return base.model_copy(update={"rate": max(1, round(rate)), "vus": vus, "max_vus": max(vus, max_vus),
                                   "duration": duration, "warmup": warmup, "stream": False})


def probe_from_run(rate: float, run: K6Run) -> Probe:
    s = run.summary
    ok = metric(s, "aigw_ok", "rate")
    problem = None if s is not None else (run.summary_problem or "k6 wrote no summary")
    noise = run.noise or {}
    return Probe(rate=rate, p99_ms=metric(s, "http_req_duration", "p(99)"),
                 foreign_cores=noise.get("cores"), disturbed=bool(noise.get("disturbed")),
                 p50_ms=metric(s, "http_req_duration", "p(50)"),
                 error_rate=1.0 - ok if ok is not None else 1.0,
                 dropped=int(metric(s, "dropped_iterations", "count") or 0),
                 achieved_rps=metric(s, "http_reqs", "rate") or 0.0,
                 requests=int(metric(s, "http_reqs", "count") or 0), problem=problem)


def capacity_step(d: Driver, sizes: CapacitySizes, base: ScenarioParams, session_dir: Path, reach_rps: float,
                  hint_rps: float | None, reach_by_bound: dict[float, float] | None = None) -> StepRecord:
    """Step up then bisect over arrival rates; every probe is kept (see :mod:`aigw_bench.measure.search`)."""
    started = now_iso()
    step_dir = session_dir / "capacity"
    search = CapacitySearch(sizes, reach_rps, start_rps=hint_rps * 0.5 if hint_rps else None,
                            reach_by_bound=reach_by_bound or {})
    lost: SessionLost | None = None
    while (rate := search.next_rate()) is not None:
        params = _arrival_params(base, rate, sizes.probe_seconds(rate), sizes.warmup, sizes.max_vus)
        probe_dir = step_dir / f"p{len(search.probes) + 1:02d}-{rate}rps"
        source = render_script(_ARRIVAL, params, d.target).source
        try:
            run = d.run_k6(K6Job(label=f"capacity: {rate} req/s", dir=probe_dir, source=source,
                                 duration=params.duration, warmup=sizes.warmup, request_timeout=params.request_timeout,
                                 max_vus=params.max_vus))
        except SessionLost as exc:
            search.add(Probe(rate, None, None, 1.0, 0, 0.0, 0, problem=exc.reason))
            lost = exc
            break
        probe = probe_from_run(rate, run)
        search.add(probe)
        d.emit(ProbeDone(target=d.target.name, rate=rate, probe=probe, bound_ms=sizes.default_bound_ms))
    record = _record("capacity", "capacity", step_dir, session_dir, started_at=started, data=search.record(),
                     status="failed" if lost else "ok", reason=lost.reason if lost else None)
    if lost:
        lost.evidence["partial_step"] = record
        raise lost
    return record


def concurrency_step(d: Driver, sizes: ConcurrencySizes, base: ScenarioParams, session_dir: Path,
                     bounds_ms: list[float], reach_rps: float) -> StepRecord:
    """The closed-loop frontier: a closed loop at each concurrency level in turn, until the target stops
    scaling (throughput grew less than ``min_gain`` twice in a row), its p99 passes the loosest bound, or
    the throughput reaches the rig's reach. Per bound, the most requests per second at a level whose p99
    stayed under it (with < 0.1% errors). Its latency is the closed loop's: a client waits for its
    answer before the next request, so the queue an arrival would meet is not seen (coordinated omission)
    and this frontier reads higher than the open model's."""
    started = now_iso()
    step_dir = session_dir / "concurrency"
    levels: list[dict[str, Any]] = []
    lost: SessionLost | None = None
    stalled = 0
    for vus in sizes.levels:
        params = base.model_copy(update={"vus": vus, "duration": sizes.duration, "warmup": sizes.warmup,
                                         "rate": None, "max_vus": None, "think_time": 0, "stream": False})
        source = render_script(CLOSED_LOOP, params, d.target).source
        try:
            run = d.run_k6(K6Job(label=f"concurrency: {vus} VUs", dir=step_dir / f"c{vus:04d}", source=source,
                                 duration=sizes.duration, warmup=sizes.warmup, request_timeout=params.request_timeout,
                                 max_vus=vus))
        except SessionLost as exc:
            lost = exc
            break
        probe = probe_from_run(0.0, run)
        level = {"vus": vus, "rps": probe.achieved_rps, "p50_ms": probe.p50_ms, "p99_ms": probe.p99_ms,
                 "error_rate": probe.error_rate, "requests": probe.requests, "disturbed": probe.disturbed,
                 "problem": probe.problem}
        levels.append(level)
        previous = levels[-2]["rps"] if len(levels) > 1 else 0.0
        stalled = stalled + 1 if previous and level["rps"] < previous * (1 + sizes.min_gain) else 0
        if (stalled >= 2 or probe.problem or (probe.p99_ms or 0) > max(bounds_ms)
                or level["rps"] >= reach_rps):
            break
    data = {"levels": levels, "bounds": closed_frontier(levels, bounds_ms, reach_rps), "reach_rps": reach_rps,
            "sizes": sizes.model_dump()}
    record = _record("concurrency", "concurrency", step_dir, session_dir, started_at=started, data=data,
                     status="failed" if lost else "ok", reason=lost.reason if lost else None)
    if lost:
        lost.evidence["partial_step"] = record
        raise lost
    return record


def closed_frontier(levels: list[dict[str, Any]], bounds_ms: list[float], reach_rps: float) -> list[dict[str, Any]]:
    """Per p99 bound: the most requests per second of a level that met it with < 0.1% errors (None: none
    did); rig-bound when that throughput reached the rig's reach (then it is "at least")."""
    out = []
    for bound in bounds_ms:
        passing = [lv for lv in levels if lv["p99_ms"] is not None and lv["p99_ms"] <= bound
                   and lv["error_rate"] < MAX_ERROR_RATE and not lv.get("problem")]
        best = max(passing, key=lambda lv: lv["rps"], default=None)
        out.append({"bound_ms": bound, "max_rps": best["rps"] if best else None,
                    "vus": best["vus"] if best else None, "p99_ms": best["p99_ms"] if best else None,
                    "rig_bound": bool(best and best["rps"] >= reach_rps)})
    return out


def _rss(samples: list[dict[str, Any]], role: str) -> list[float]:
    return [float(s["rss_mib"]) for s in samples if s.get("role") == role]


def efficiency_step(d: Driver, sizes: EfficiencySizes, base: ScenarioParams, session_dir: Path,
                    role: str = "gateway") -> StepRecord:
    """Memory idle, CPU and memory under one fixed rate (the same for every target), memory after."""
    started = now_iso()
    step_dir = session_dir / "efficiency"
    step_dir.mkdir(parents=True, exist_ok=True)
    try:
        idle = d.idle_resources(sizes.idle)
    except ResourcesUnavailable as exc:  # nothing to weigh with: no load is sent
        return _record("efficiency", "efficiency", step_dir, session_dir, status="failed", started_at=started,
                       reason=f"the processes' CPU and memory cannot be read: {exc.reason}",
                       data={"rate": sizes.rate, "role": role, "sizes": sizes.model_dump(), **exc.evidence})
    params = _arrival_params(base, sizes.rate, sizes.duration, 1.0, max(50, math.ceil(sizes.rate)))
    source = render_script(_ARRIVAL, params, d.target).source
    run = d.run_k6(K6Job(label=f"efficiency: {sizes.rate:g} req/s", dir=step_dir, source=source,
                         duration=sizes.duration, warmup=params.warmup, request_timeout=params.request_timeout,
                         exact_resources=True, max_vus=params.max_vus))
    problem = None
    try:
        after = d.idle_resources(sizes.after)
    except ResourcesUnavailable as exc:  # the load's own figures are kept; the record says what is missing
        after, problem = [], f"memory after the load cannot be read: {exc.reason}"
    rows = ([{**s, "phase": "idle"} for s in idle] + [{**s, "phase": "load"} for s in run.resources]
            + [{**s, "phase": "after"} for s in after])
    _write_rows(step_dir / "resources-phases.csv", rows)
    loaded, idle_rss, after_rss = _rss(run.resources, role), _rss(idle, role), _rss(after, role)
    requests = metric(run.summary, "http_reqs", "count")
    own = run.cpu_seconds.get(role)
    # A backing service the target needs (role service:NAME, e.g. Redis for shared counters) is part of what
    # the target costs: its CPU counts in the target's, and is recorded apart too.
    services = {r.removeprefix(SERVICE_ROLE): v for r, v in run.cpu_seconds.items() if r.startswith(SERVICE_ROLE)}
    cpu = own + sum(services.values()) if own is not None else None
    data = {
        **_k6_facts(run), "rate": sizes.rate, "role": role,
        "dropped": metric(run.summary, "dropped_iterations", "count") or 0,
        "cpu_seconds": cpu, "mock_cpu_seconds": run.cpu_seconds.get("mock"),
        **({"own_cpu_seconds": own, "services_cpu_seconds": services} if services else {}),
        "loadgen_cpu_seconds": run.cpu_seconds.get("loadgen"),
        "cpu_ms_per_request": (cpu * 1000.0 / requests) if cpu is not None and requests else None,
        "rss_idle_mib": max(idle_rss) if idle_rss else None,
        "rss_load_mib": max(loaded) if loaded else None,
        "rss_load_mean_mib": sum(loaded) / len(loaded) if loaded else None,
        "rss_after_mib": after_rss[-1] if after_rss else None,
        "sizes": sizes.model_dump(),
    }
    if problem:
        data["resources_problem"] = problem
    status, reason = _run_status(run)
    return _record("efficiency", "efficiency", step_dir, session_dir, status=status, reason=reason,
                   files={**run.files, "phases": "resources-phases.csv"}, started_at=started, data=data)


def streaming_step(d: Driver, sizes: StreamingSizes, profile: PacingProfile, base: ScenarioParams,
                   session_dir: Path) -> StepRecord:
    """The mock paced like a hosted model; streams direct and through the target at the same time."""
    started = now_iso()
    step_dir = session_dir / "streaming"
    paced = profile.model_copy(update={"output_tokens": sizes.output_tokens or profile.output_tokens})
    d.use_profile(paced)
    body = build_body(base.model_copy(update={"stream": True}), d.target.model)
    step_dir.mkdir(parents=True, exist_ok=True)
    (step_dir / "body.json").write_text(body)
    csv_path = d.run_stream_probe(StreamJob(label=f"streaming ({paced.name} pacing)", dir=step_dir, body=body,
                                            concurrency=sizes.concurrency, duration=sizes.duration))
    files = {"streams": csv_path.name, "gaps": "gaps.csv.gz", "body": "body.json"}
    tokens = paced.output_tokens
    return _record("streaming", "streaming", step_dir, session_dir, started_at=started, files=files, data={
        "profile": paced.model_dump(), "expected_chunks": tokens, "sizes": sizes.model_dump(),
        "expected_spread_ms": (tokens - 1) * paced.per_token_ms if tokens else None})


def _write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    import csv

    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


# ------------------------------------------------------------------------------ the rig itself
def measure_rig(d: Driver, sizes: RigSizes, base: ScenarioParams, rig_dir: Path,
                capacity: CapacitySizes | None = None, profile: PacingProfile | None = None) -> dict[str, Any]:
    """k6 straight to the mock: the ceiling (closed loop), the floor (one VU) and, for a suite, the rig's
    own frontier (the capacity search without a target, up to the ceiling). ``d.target`` is the mock.

    With a paced ``profile`` (the mock waits like an LLM) a closed loop would only measure VUs / pacing
    (Little's law), not what k6 and the mock can deliver: the ceiling and frontier are measured with the
    unpaced profile (waiting costs the mock no CPU), the floor with the run's own pacing."""
    # The run's body, as fast as k6 sends it: no think time, none of the scenario's own schedule.
    closed = {"rate": None, "max_vus": None, "think_time": 0, "iterations": None, "stages": None, "warmup_vus": None}
    ceiling_params = base.model_copy(update={"vus": sizes.ceiling.vus, "duration": sizes.ceiling.duration,
                                             "warmup": sizes.ceiling.warmup, **closed})
    floor_params = base.model_copy(update={"vus": 1, "duration": sizes.floor.duration, "warmup": sizes.floor.warmup,
                                           **closed})
    paced = profile is not None and profile.paced
    unpaced = load_profile(DEFAULT_PROFILE)
    out: dict[str, Any] = {}
    for kind, params in (("ceiling", ceiling_params), ("floor", floor_params)):
        if paced:
            d.use_profile(unpaced if kind == "ceiling" else profile)  # type: ignore[arg-type]
        source = render_script(CLOSED_LOOP, params, d.direct).source
        run = d.run_k6(K6Job(label=f"rig {kind}", dir=rig_dir / kind, source=source, duration=params.duration,
                             warmup=params.warmup, request_timeout=params.request_timeout,
                             split=kind == "ceiling", exact_resources=kind == "ceiling", max_vus=params.vus))
        if run.summary is None:
            raise SessionLost("k6_failed", f"the rig's {kind} measurement gave no summary: "
                                           f"{run.summary_problem or 'see ' + str(run.dir / 'k6.log')}")
        out[kind] = run
    ceiling, floor = out["ceiling"], out["floor"]
    loadgen = ceiling.cpu_seconds.get("loadgen")
    frontier = None
    ceiling_rps = metric(ceiling.summary, "http_reqs", "rate")
    if capacity is not None and ceiling_rps:
        if paced:
            d.use_profile(unpaced)
        frontier = capacity_step(d, capacity, base, rig_dir, ceiling_rps, ceiling_rps).data
        if paced:
            d.use_profile(profile)  # type: ignore[arg-type]
    return {
        "ceiling_profile": unpaced.name if paced else (profile.name if profile else None),
        "frontier": frontier,
        "ceiling_rps": metric(ceiling.summary, "http_reqs", "rate"),
        "floor_ms": {"p50": metric(floor.summary, "http_req_duration", "p(50)"),
                     "p90": metric(floor.summary, "http_req_duration", "p(90)"),
                     "p99": metric(floor.summary, "http_req_duration", "p(99)")},
        "ceiling_error_rate": 1 - (metric(ceiling.summary, "aigw_ok", "rate") or 0.0),
        "ceiling_p99_ms": metric(ceiling.summary, "http_req_duration", "p(99)"),
        "ceiling_vus": sizes.ceiling.vus,
        "loadgen_cpu_seconds": loadgen,
        "mock_cpu_seconds": ceiling.cpu_seconds.get("mock"),
        "ceiling_seconds": round(ceiling.seconds, 2),
        "noise": {"ceiling": ceiling.noise, "floor": floor.noise} if ceiling.noise or floor.noise else None,
        "sizes": json.loads(sizes.model_dump_json()),
    }


# ------------------------------------------------------------------------------ a whole session
def hey_step(d: Driver, params: ScenarioParams, session_dir: Path) -> StepRecord:
    """The published tool itself, after k6: ``hey -n N -c C`` with the scenario's body and the target's
    headers, so that the published figure can be reproduced with the tool that produced it."""
    started = now_iso()
    step_dir = session_dir / "hey"
    if params.iterations is None:
        return _record("hey", "tool", step_dir, session_dir, status="skipped", started_at=started,
                       reason="hey -n needs a request count: the scenario sets no 'iterations'")
    step_dir.mkdir(parents=True, exist_ok=True)
    (step_dir / "body.json").write_text(build_body(params, d.target.model))
    args = ["-n", str(params.iterations), "-c", str(params.vus), "-m", "POST", "-T", "application/json",
            "-D", "body.json", "-t", f"{params.request_timeout:g}"]
    for name, value in d.target.headers.items():
        args += ["-H", f"{name}: {value}"]
    job = ToolJob(label=f"hey -n {params.iterations} -c {params.vus}", dir=step_dir, tool="hey",
                  args=[*args, d.target.url], limit=params.duration)
    try:
        code = d.run_tool(job)
    except ToolUnavailable as exc:
        return _record("hey", "tool", step_dir, session_dir, status="skipped", reason=str(exc), started_at=started)
    ended = f"hey exited with code {code}" if code is not None else f"hey did not end within {params.duration:g} s"
    status, reason = ("ok", None) if code == 0 else ("failed", ended)
    return _record("hey", "tool", step_dir, session_dir, status=status, reason=reason, started_at=started,
                   files={"output": job.output.name, "body": "body.json"},
                   data={"command": " ".join(["hey", *job.args]), "exit_code": code})


def works_step(d: Driver, checks: list[dict[str, Any]], rate: float, base: ScenarioParams,
               session_dir: Path) -> StepRecord:
    """Each check's probe beside a steady load of ``rate`` req/s of the benchmark's request (the efficiency
    step's rate), in one k6 run; the verdicts and their counts go into the record."""
    started = now_iso()
    step_dir = session_dir / "works"
    duration = max([6.0, *(c["seconds"] + 2.0 for c in checks if c["kind"] == "limit")])
    mock_count = d.direct.url.split("/v1/", 1)[0] + "/__aigw/count"
    source = render_works(base, d.target, checks, mock_count, rate, duration).source
    per_minute = _clear_of_minute_end(checks, duration, d.phase)
    # A window measured again inside the same wall-clock minute would find the limit's counter already spent
    # by the first (every probe request refused): a per-minute limit's window is flagged, never re-measured.
    run = d.run_k6(K6Job(label=f"works: {', '.join(c['kind'] for c in checks)} under {rate:g} req/s", dir=step_dir,
                         source=source, duration=duration, request_timeout=base.request_timeout, split=False,
                         remeasure=not per_minute))
    found = verdicts(run.summary, checks)
    log = step_dir / run.files.get("k6_log", "k6.log")
    samples = answer_samples(log.read_text(errors="replace")) if log.exists() else []
    for i, verdict in enumerate(found):
        verdict["answers"] = [{k: v for k, v in s.items() if k != "check"} for s in samples if s.get("check") == i]
    status = "ok" if run.summary is not None else "failed"
    return _record("works", "works", step_dir, session_dir, status=status, started_at=started, files=run.files,
                   reason=None if run.summary else f"no k6 summary: {run.summary_problem}",
                   data={**_k6_facts(run), "rate": rate, "checks": checks, "verdicts": found})


def _clear_of_minute_end(checks: list[dict[str, Any]], duration: float, say: Callable[[str], None]) -> bool:
    """A limit counted per wall-clock minute (window 'minute') would admit twice the limit over a minute's end:
    wait (at most a minute) until the probe fits before the next one. True when a check counts per minute."""
    if not any(c["kind"] == "limit" and c["window"] == "minute" for c in checks):
        return False
    left = 60.0 - (time.time() % 60.0)
    if left < duration + 3.0:
        say(f"works: waiting {left + 1:.0f} s for the next minute (the limit counts per wall-clock minute)")
        time.sleep(left + 1.0)
    return True


def skipped(name: str, reason: str, session_dir: Path) -> StepRecord:
    return _record(name, name, session_dir / name, session_dir, status="skipped", reason=reason)


def session_steps(d: Driver, m: Measurement, session_dir: Path, rig: RigRecord,
                  on_step: Callable[[StepRecord], None], baseline: bool, keep_raw: bool = True,
                  works: list[dict[str, Any]] | None = None) -> None:
    """What a session measures: the suite's steps, or its scenario; then, in a suite, the variant's
    correctness checks (``works``: the catalog variant's, as plain data) under load, and the faults
    scenarios where the suite sizes them (aigw_bench/measure/faults.py)."""
    if m.suite and m.sizes and m.streaming_profile:
        suite_session(d, m.sizes, m.params, m.scenario, m.streaming_profile, session_dir, rig, on_step,
                      keep_raw=keep_raw, baseline=baseline)
        if works:
            on_step(works_step(d, works, m.sizes.efficiency.rate, m.params, session_dir))
        if m.sizes.runs("faults") and m.sizes.faults is not None:
            faults_steps(d, m.sizes.faults, m.params, m.profile, session_dir, on_step)
    else:
        on_step(scenario_step(d, m.scenario.name, m.scenario, m.params, session_dir, raw=keep_raw))
        if "hey_tool" in m.scenario.report:
            on_step(hey_step(d, m.params, session_dir))


def suite_session(d: Driver, sizes: SuiteSizes, base: ScenarioParams, seed: Scenario, streaming_profile: PacingProfile,
                  session_dir: Path, rig: RigRecord, on_step: Callable[[StepRecord], None],
                  keep_raw: bool = True, baseline: bool = False) -> None:
    """overhead -> seed (published shape) -> capacity -> efficiency -> streaming, recording each step as it ends.

    The baseline (no target between k6 and the mock) runs overhead and streaming as A/A controls (the
    difference must be nil) and the published shape; its capacity is the rig's ceiling and it has no
    gateway process to weigh. A SessionLost (target or mock died) ends the session after recording
    the step it interrupted."""
    left_out = "left out of this run's steps (the suite profile's `steps`)"
    if sizes.runs("overhead"):
        on_step(overhead_step(d, sizes.overhead, base, session_dir))
    else:
        on_step(skipped("overhead", left_out, session_dir))
    seed_params = base.model_copy(update={"vus": sizes.seed.vus, "duration": sizes.seed.duration,
                                          "warmup": sizes.seed.warmup})
    seed_record = scenario_step(d, "seed", seed, seed_params, session_dir, raw=keep_raw)
    on_step(seed_record)
    if baseline:
        on_step(skipped("capacity", "the baseline is the rig itself: its frontier was measured with the rig",
                        session_dir))
        if sizes.concurrency is not None:
            on_step(skipped("concurrency", "the baseline is the rig itself: its closed loop is the rig's ceiling",
                            session_dir))
        on_step(skipped("efficiency", "the baseline has no gateway process to weigh", session_dir))
    else:
        _gateway_steps(d, sizes, base, session_dir, rig, seed_record, on_step, left_out)
    if sizes.runs("streaming"):
        on_step(streaming_step(d, sizes.streaming, streaming_profile, base, session_dir))
    else:
        on_step(skipped("streaming", left_out, session_dir))


def _recorded(on_step: Callable[[StepRecord], None], measure: Callable[[], StepRecord]) -> None:
    """Run a step that may lose its session half way: what it measured before is recorded all the same."""
    try:
        record = measure()
    except SessionLost as exc:
        on_step(exc.evidence.pop("partial_step"))
        raise
    on_step(record)


def _gateway_steps(d: Driver, sizes: SuiteSizes, base: ScenarioParams, session_dir: Path, rig: RigRecord,
                   seed_record: StepRecord, on_step: Callable[[StepRecord], None], left_out: str) -> None:
    """capacity -> closed-loop frontier -> efficiency, for a target that has a process of its own."""
    # Without a measured ceiling (the rig failed) nothing caps the search but its step budget.
    reach = rig.reach_rps or 1e9
    if sizes.runs("capacity"):
        _recorded(on_step, lambda: capacity_step(d, sizes.capacity, base, session_dir, reach,
                                                 seed_record.data.get("rps"), rig.reach_by_bound()))
    else:
        on_step(skipped("capacity", left_out, session_dir))
    if sizes.concurrency is not None:
        if sizes.runs("concurrency"):
            concurrency = sizes.concurrency
            _recorded(on_step, lambda: concurrency_step(d, concurrency, base, session_dir, sizes.capacity.bounds_ms,
                                                        reach))
        else:
            on_step(skipped("concurrency", left_out, session_dir))
    if sizes.runs("efficiency"):
        on_step(efficiency_step(d, sizes.efficiency, base, session_dir))
    else:
        on_step(skipped("efficiency", left_out, session_dir))
