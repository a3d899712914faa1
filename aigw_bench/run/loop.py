"""The run loop, the same for every engine.

Plan, preflight, a new run directory and its manifest; then the rig of each place (k6 straight to
the mock: ceiling, floor and, for a suite, the rig's own frontier); then one session per target and
repeat, targets interleaved: the engine readies the mock and the target, the steps measure
(:mod:`aigw_bench.measure.steps`), and every step's record is written as soon as it ends. Whatever
happens to one target is recorded in its outcome and the run goes on; Ctrl-C (or SIGTERM) ends the
session it hits, keeps what was measured and stops the run.
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path
from typing import Any

from aigw_bench.measure.driver import Driver, SessionLost
from aigw_bench.measure.events import EventSink, RigDone, RunStarted, TargetDone, TargetStarted, ignore
from aigw_bench.measure.outcome import adopt_partial, finish_outcome, recorder
from aigw_bench.measure.steps import measure_rig, session_steps
from aigw_bench.run.engine import Engine, RunContext
from aigw_bench.run.environment import git_commit, tool_versions
from aigw_bench.run.interrupts import STOP, signals_as_exceptions, stop_reason
from aigw_bench.run.plan import RunPlan
from schema.catalog import Gateway
from schema.manifest import FORMAT, Manifest, RigRecord
from schema.results import Outcome, Status, new_run_dir, now_iso, target_dir, write_manifest, write_outcome
from schema.scenarios import scenario_record

INTERRUPTED = "interrupted"


class Runner:
    """One run of ``plan`` on ``engine``; :meth:`run` returns the run directory (raises
    KeyboardInterrupt after writing what was measured when interrupted)."""

    def __init__(self, plan: RunPlan, engine: Engine, on_event: EventSink | None = None):
        self.plan = plan
        self.engine = engine
        self.emit: EventSink = on_event or ignore
        self.run_dir: Path | None = None

    def run(self) -> Path:
        plan, engine = self.plan, self.engine
        engine.validate(plan)
        engine.prepare(self.emit)
        engine.preflight(plan)
        self.run_dir = new_run_dir(plan.results_root, plan.measurement.name)
        engine.begin(RunContext(plan=plan, run_dir=self.run_dir, run_id=engine.run_id(self.run_dir), emit=self.emit))
        description = engine.describe(plan)
        manifest = self._manifest(description)
        write_manifest(self.run_dir, manifest)
        order = plan.order()
        self.emit(RunStarted(run_dir=self.run_dir, total=len(order), measurement=plan.measurement,
                             where=description.where, setting=description.setting))
        started = time.monotonic()
        interrupted = False
        with signals_as_exceptions():
            try:
                rigs: dict[str, RigRecord] = {}
                for place in engine.places():
                    rigs[place] = self._measure_rig(place, len(order))
                    self.emit(RigDone(rig=rigs[place]))
                    if rigs[place].error == INTERRUPTED:
                        interrupted = True
                        break
                manifest.rig = engine.combine_rigs(manifest, rigs)
                write_manifest(self.run_dir, manifest)
                for index, (repeat, target) in enumerate([] if interrupted else order, start=1):
                    self.emit(TargetStarted(target=target.name, repeat=repeat, index=index, total=len(order)))
                    outcome = self._run_target(target, repeat, rigs.get(engine.place_of(target), RigRecord()))
                    write_outcome(self.run_dir, outcome)
                    self.emit(TargetDone(outcome=outcome, index=index, total=len(order)))
                    if outcome.status == Status.INTERRUPTED:
                        interrupted = True
                        break
            finally:
                engine.finish(manifest, time.monotonic() - started)
        manifest.finished_at = now_iso()
        manifest.interrupted = interrupted
        write_manifest(self.run_dir, manifest)
        if interrupted:
            raise KeyboardInterrupt
        return self.run_dir

    def rig_only(self, run_dir: Path) -> RigRecord:
        """The rig of the plan's first place alone, measured into ``run_dir`` (the benchmarks of the rig)."""
        self.run_dir = run_dir
        self.engine.begin(RunContext(plan=self.plan, run_dir=run_dir, run_id=run_dir.name, emit=self.emit))
        return self._measure_rig(self.engine.places()[0], 0)

    # ---------------------------------------------------------------------------- manifest
    def _manifest(self, d: Any) -> Manifest:
        plan, engine, m = self.plan, self.engine, self.plan.measurement
        return Manifest.model_validate({
            "kind": "aigw-bench run",
            "format": FORMAT,
            "environment": engine.environment,
            "engine": engine.name,
            "run_id": engine.ctx.run_id,
            "created_at": now_iso(),
            "command_line": plan.command_line,
            "scenario": scenario_record(m.scenario, m.params),
            "suite": ({"name": m.suite.name, "description": m.suite.description, "profile": m.where,
                       "sizes": m.sizes.model_dump() if m.sizes else None} if m.suite else None),
            "main_step": m.main_step,
            "repeats": m.repeats,
            "order": [{"repeat": r, "target": t.name} for r, t in plan.order()],
            "targets": {t.name: {**_target_record(t), **d.targets.get(t.name, {})} for t in plan.targets},
            "mock": d.mock,
            "cpu_pinning": d.cpu_pinning,
            "machine": d.machine,
            "cloud": d.cloud,
            "cost": d.cost,
            "noise": d.noise,
            "tools": tool_versions(),
            "git": git_commit(),
        })

    # ---------------------------------------------------------------------------- the rig
    def _measure_rig(self, place: str, total: int) -> RigRecord:
        """k6 straight to the place's mock: its ceiling and floor (and, for a suite, its frontier)."""
        plan, engine, m = self.plan, self.engine, self.plan.measurement
        rig_dir = engine.rig_dir(place)
        rig_dir.mkdir(parents=True, exist_ok=True)
        assert self.run_dir is not None
        record: dict[str, Any] = {**engine.rig_base(place), "dir": rig_dir.relative_to(self.run_dir).as_posix()}
        self.emit(TargetStarted(target=engine.rig_label(place), repeat=1, index=0, total=total))
        try:
            with engine.rig_session(place) as driver:
                record.update(measure_rig(driver, plan.rig, m.params, rig_dir,
                                          m.sizes.capacity if m.sizes else None, m.profile))
        except SessionLost as exc:
            record.update({"error": exc.reason, "status": exc.status, "evidence": exc.evidence})
        except STOP:
            record.update({"error": INTERRUPTED})
        return RigRecord.model_validate(record).with_reach()

    # ------------------------------------------------------------------------ one target
    def _run_target(self, target: Gateway, repeat: int, rig: RigRecord) -> Outcome:
        assert self.run_dir is not None
        engine, m = self.engine, self.plan.measurement
        work = target_dir(self.run_dir, target.name, repeat)
        work.mkdir(parents=True, exist_ok=True)
        outcome = Outcome(target=target.name, repeat=repeat, status=Status.OK, started_at=now_iso())
        reason = engine.not_runnable(target)
        if reason is not None:
            outcome.status, outcome.reason = Status.NOT_RUNNABLE, reason
            outcome.finished_at = now_iso()
            return outcome
        on_step = recorder(outcome, m.main_step, partial(write_outcome, self.run_dir))
        driver: Driver | None = None
        try:
            with engine.session(target, repeat, work, outcome) as driver:
                session_steps(driver, m, work, rig, on_step, baseline=target.role == "baseline",
                              keep_raw=self.plan.keep_raw)
        except SessionLost as failed:
            adopt_partial(outcome, driver.k6_runs if driver else [], work, m.main_step)
            outcome.status, outcome.reason = failed.status, failed.reason  # type: ignore[assignment]
            outcome.evidence.update(failed.evidence)
        except STOP as exc:
            adopt_partial(outcome, driver.k6_runs if driver else [], work, m.main_step)
            outcome.status = Status.INTERRUPTED
            outcome.reason = f"stopped by {stop_reason(exc)}{engine.interrupt_note}"
        engine.session_files(work, outcome)
        finish_outcome(self.run_dir, work, outcome)
        outcome.finished_at = now_iso()
        return outcome


def _target_record(t: Gateway) -> dict[str, Any]:
    """What the catalog says of a target (engines add what they know: versions found, stacks)."""
    return {"title": t.title, "role": t.role, "version": t.version, "source": t.source, "route": t.request.path,
            "model": t.request.model}
