"""The faults suite's step (docs/faults.md): for each scenario of the suite's ``faults`` sizes, the mock
restarted with the scenario's fault plan, both mocks' counts cleared, k6 sending a fixed arrival rate with
every answer validated, then both mocks' attempt records kept beside k6's summary. Written once for every
engine: what it needs of the place it runs in is the :class:`Driver`'s.

Each scenario is a step record of its own (``faults-<name>``), written as it ends: a target that dies in
the fourth scenario keeps the first three, and the fourth is recorded with what k6 and the mocks saw
before the end. Figures (amplification, what was delivered as a success, cancellation, recovery) are
derived from the files by analysis/faults.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aigw_bench.measure.driver import Driver, K6Job, K6Run, ResourcesUnavailable, SessionLost
from k6_scripts.render import build_body, render_faults
from schema.faults import HEALTHY_PLAN, FaultPlan, load_plans
from schema.k6 import metric
from schema.mock import PacingProfile, load_contract
from schema.results import StepRecord, now_iso
from schema.scenarios import ScenarioParams
from schema.suites import FaultScenario, FaultsSizes, SuiteSizes

UPSTREAM_FILE = "upstream.json"
STEP_PREFIX = "faults-"
ROLE = "gateway"  # whose memory and CPU a scenario weighs (the baseline has none)
RSS_SECONDS = 0.5  # memory sampled for this long before the first scenario and after each


def served_plans(sizes: SuiteSizes | None) -> list[FaultPlan]:
    """The fault plans a run's faults scenarios serve, the second mock's ``healthy`` first (none outside the
    faults suite): what every engine checks its mock can serve before anything runs."""
    if sizes is None or not sizes.runs("faults") or sizes.faults is None:
        return []
    plans = load_plans()
    return [plans[name] for name in dict.fromkeys([HEALTHY_PLAN, *(s.plan for s in sizes.faults.scenarios)])]


def expected_content(profile: PacingProfile, stream: bool) -> str:
    """What the mock's complete answer holds: the client's validation compares every answer with it."""
    contract = load_contract()
    if profile.output_tokens is None and not stream:
        return contract.content
    return "".join(contract.tokens(profile.output_tokens))


def scenario_params(base: ScenarioParams, sizes: FaultsSizes, scenario: FaultScenario) -> ScenarioParams:
    return base.model_copy(update={"rate": round(sizes.rate), "vus": sizes.vus, "max_vus": sizes.max_vus,
                                   "duration": sizes.duration_of(scenario), "warmup": 0.0, "stream": scenario.stream,
                                   "request_timeout": sizes.timeout_of(scenario)})


def _gateway_rss(d: Driver) -> float | None:
    """The gateway's resident memory now (MiB, the last of a short idle sample); None without a gateway or
    where it cannot be read."""
    try:
        rows = d.idle_resources(RSS_SECONDS)
    except ResourcesUnavailable:
        return None
    rss = [float(r["rss_mib"]) for r in rows if r.get("role") == ROLE and r.get("rss_mib") is not None]
    return rss[-1] if rss else None


def _classes(summary: dict[str, Any] | None) -> dict[str, int]:
    """k6's answer classes (faults.js.j2), those seen."""
    found = {}
    for name in ("ok", "status", "transport", "timeout", "truncated", "invalid_json"):
        count = int(metric(summary, f"aigw_answers{{class:{name}}}", "count") or 0)
        if count:
            found[name] = count
    return found


def _read_upstream(d: Driver, step_dir: Path) -> tuple[str | None, str | None]:
    """Both mocks' records into upstream.json (the raw data the figures come from); the file name, or why not."""
    try:
        records = d.upstream_records()
    except SessionLost as exc:
        return None, exc.reason
    (step_dir / UPSTREAM_FILE).write_text(json.dumps(records, separators=(",", ":")))
    lost = {role: doc.get("lost") for role, doc in records.items() if doc.get("lost")}
    return UPSTREAM_FILE, (f"the mock's record store was full: {lost} attempts not recorded" if lost else None)


def scenario_step(d: Driver, sizes: FaultsSizes, scenario: FaultScenario, plan: FaultPlan, base: ScenarioParams,
                  profile: PacingProfile, session_dir: Path,
                  rss_before: float | None) -> tuple[StepRecord, float | None]:
    """One scenario; returns its record and the gateway's memory after it (the next one's before). A target or
    mock that dies during it raises SessionLost, the record of what was measured in its evidence."""
    started = now_iso()
    name = STEP_PREFIX + scenario.name
    step_dir = session_dir / name
    step_dir.mkdir(parents=True, exist_ok=True)
    params = scenario_params(base, sizes, scenario)
    rendered = render_faults(params, d.target, expected_content(profile, scenario.stream))
    data: dict[str, Any] = {"scenario": scenario.name, "description": scenario.description, "plan": plan.settings(),
                            "stream": scenario.stream, "rate": params.rate, "duration": params.duration,
                            "request_timeout": params.request_timeout, "body_sha256": rendered.body_sha256,
                            "rss_before_mib": rss_before}
    d.use_fault_plan(plan, profile, build_body(params, d.target.model))
    d.reset_upstream()
    job = K6Job(label=f"faults: {scenario.name}", dir=step_dir, source=rendered.source, duration=params.duration,
                request_timeout=params.request_timeout, split=False, remeasure=False, max_vus=params.max_vus)
    try:
        run = d.run_k6(job)
    except SessionLost as lost:
        run = next((r for r in reversed(d.k6_runs) if r.dir == step_dir), None)
        record = _finish(d, name, step_dir, session_dir, started, data, run, sizes, failed=lost.reason)
        lost.evidence["partial_step"] = record
        raise
    rss_after = _gateway_rss(d)
    record = _finish(d, name, step_dir, session_dir, started, {**data, "rss_after_mib": rss_after}, run, sizes)
    return record, rss_after


def _finish(d: Driver, name: str, step_dir: Path, session_dir: Path, started: str, data: dict[str, Any],
            run: K6Run | None, sizes: FaultsSizes, failed: str | None = None) -> StepRecord:
    time.sleep(sizes.settle)  # the mock notes a client's close as it sees it
    files = dict(run.files) if run else {}
    upstream, problem = _read_upstream(d, step_dir)
    if upstream:
        files["upstream"] = upstream
    summary = run.summary if run else None
    data = {**data, "exit_code": run.exit_code if run else None, "seconds": round(run.seconds, 2) if run else None,
            "iterations": int(metric(summary, "iterations", "count") or 0),
            "requests": int(metric(summary, "http_reqs", "count") or 0), "classes": _classes(summary),
            "cpu_seconds": run.cpu_seconds.get(ROLE) if run else None, "noise": run.noise if run else None}
    if problem:
        data["upstream_problem"] = problem
    if failed:
        reason: str | None = failed
    elif summary is None:
        reason = (run.summary_problem if run else None) or "k6 wrote no summary"
    elif upstream is None:
        reason = f"the mocks' attempt records could not be read: {problem}"
    else:
        reason = None
    status = "failed" if reason else "ok"
    return StepRecord(name=name, kind="faults", status=status, reason=reason,
                      dir=str(step_dir.relative_to(session_dir)), started_at=started, finished_at=now_iso(),
                      files=files, data=data)


def faults_steps(d: Driver, sizes: FaultsSizes, base: ScenarioParams, profile: PacingProfile, session_dir: Path,
                 on_step: Callable[[StepRecord], None]) -> None:
    """Every scenario in the suite's order, each recorded as it ends."""
    plans = load_plans()
    rss = _gateway_rss(d)
    for scenario in sizes.scenarios:
        try:
            record, rss = scenario_step(d, sizes, scenario, plans[scenario.plan], base, profile, session_dir, rss)
        except SessionLost as lost:
            on_step(lost.evidence.pop("partial_step"))
            raise
        on_step(record)
