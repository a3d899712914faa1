"""The run loop, the same for every engine.

Plan, preflight, a new run directory and its manifest; then the rig of each place (k6 straight to
the mock: ceiling, floor and, for a suite, the rig's own frontier); then one session per target and
repeat, targets interleaved: the engine readies the mock and the target, the steps measure
(:mod:`aigw_bench.measure.steps`), and every step's record is written as soon as it ends. Whatever
happens to one target is recorded in its outcome and the run goes on; Ctrl-C (or SIGTERM) ends the
session it hits, keeps what was measured and stops the run.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aigw_bench.measure.driver import Driver, SessionLost
from aigw_bench.measure.events import (
    Event,
    EventSink,
    LockTakenOver,
    RigDone,
    RunStarted,
    TargetDone,
    TargetStarted,
    ignore,
)
from aigw_bench.measure.outcome import adopt_partial, finish_outcome, recorder
from aigw_bench.measure.steps import measure_rig, session_steps
from aigw_bench.run.engine import Engine, RunContext
from aigw_bench.run.environment import git_commit, tool_versions
from aigw_bench.run.interrupts import STOP, DiskFault, signals_as_exceptions, stop_reason
from aigw_bench.run.lock import Holder, RunLock, results_lock_path
from aigw_bench.run.plan import RunPlan
from aigw_bench.run.space import (
    REPORT_RESERVE,
    DiskWatch,
    Reserve,
    disk_fault,
    estimate,
    free_bytes,
    human,
)
from schema.catalog import Gateway
from schema.errors import ConfigError, ResultsError, is_disk_error
from schema.manifest import FORMAT, Manifest, RigRecord
from schema.results import Outcome, Status, new_run_dir, now_iso, target_dir, write_manifest, write_outcome
from schema.scenarios import scenario_record

INTERRUPTED = "interrupted"
RESERVE_FILE = ".reserve"  # space held for the report while the run goes (aigw_bench/run/space.py)


class Runner:
    """One run of ``plan`` on ``engine``; :meth:`run` returns the run directory. Stopped early, it writes what
    was measured first, then raises KeyboardInterrupt (Ctrl-C, SIGTERM, SIGHUP) or
    :class:`aigw_bench.run.interrupts.DiskFault` (the results' disk full or read-only)."""

    def __init__(self, plan: RunPlan, engine: Engine, on_event: EventSink | None = None):
        self.plan = plan
        self.engine = engine
        self.sink: EventSink = on_event or ignore
        self.run_dir: Path | None = None
        self.stopped: BaseException | None = None  # what stopped the run early
        self.unwritten: list[str] = []  # what the stop could not write (a read-only disk)
        self._disk: DiskWatch | None = None
        self._locks: list[RunLock] = []

    def emit(self, event: Event) -> None:
        """Every progress event also looks at the results' disk: a full or read-only one stops the run
        where it is (in a k6 run: k6 is stopped gracefully and what it measured is kept)."""
        self.sink(event)
        if self._disk is not None:
            self._disk.check()

    def run(self) -> Path:
        plan, engine = self.plan, self.engine
        engine.validate(plan)
        self._require_runnable()
        with contextlib.ExitStack() as held:
            for path, what in engine.locks(plan):
                self._lock(held, path, what)
            engine.prepare(self.emit)
            engine.preflight(plan)
            root = self._results_root()
            self._lock(held, results_lock_path(root), f"the results directory {root}")
            self._require_space(root)
            self.run_dir = self._new_run_dir(root)
            for lock in self._locks:
                lock.update(self.run_dir)
            reserve = Reserve(self.run_dir / RESERVE_FILE, REPORT_RESERVE)
            held.callback(reserve.release)  # given back when the run ends, for the report
            self._disk = DiskWatch(self.run_dir, reserve)
            held.callback(setattr, self, "_disk", None)
            return self._measure()

    # ------------------------------------------------------------------------ before the run
    def _require_runnable(self) -> None:
        """Nothing starts (not even the rig) unless at least one selected target can run on this engine."""
        targets = self.plan.targets
        if not targets:
            raise ConfigError("no target selected: name one or more with -t (`aigw-bench list` shows them)")
        reasons = {t.name: _not_runnable(self.engine, t) for t in targets}
        if all(reason is not None for reason in reasons.values()):
            why = "; ".join(f"{name}: {' '.join(str(reason).split()).rstrip('.')}" for name, reason in reasons.items())
            hint = f" {self.engine.not_runnable_hint}" if self.engine.not_runnable_hint else ""
            raise ConfigError(f"nothing to run: no selected target can run with the {self.engine.name} engine. "
                              f"{why}.{hint}")

    def _lock(self, held: contextlib.ExitStack, path: Path, what: str) -> None:
        lock = held.enter_context(RunLock(path, what))
        try:
            stale = lock.acquire(Holder(command=" ".join(self.plan.command_line)))
        except OSError as exc:
            raise ResultsError(f"cannot take the run lock {path}: {exc.strerror}") from None
        self._locks.append(lock)
        if stale is not None:
            if stale.run_dir:  # the space it held for its report is not needed any more
                with contextlib.suppress(OSError):
                    (Path(stale.run_dir) / RESERVE_FILE).unlink(missing_ok=True)
            self.emit(LockTakenOver(what=what, holder=stale.describe()))

    def _results_root(self) -> Path:
        root = self.plan.results_root
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ResultsError(f"cannot create the results directory {root}: {exc.strerror}; "
                               "choose another with --results") from None
        read_only = free_bytes(root)[1]
        if read_only or not os.access(root, os.W_OK):
            raise ResultsError(f"cannot write in the results directory {root}: "
                               f"{'read-only file system' if read_only else 'permission denied'}; "
                               "choose another with --results")
        return root

    def _require_space(self, root: Path) -> None:
        need = estimate(self.plan.measurement, len(self.plan.order()), self.plan.keep_raw)
        free, _ = free_bytes(root)
        if free < need.bytes:
            lighter = "" if not self.plan.keep_raw else (
                f"; without k6's per-request samples (--no-raw) it needs "
                f"{human(estimate(self.plan.measurement, need.sessions, False).bytes)}")
            raise ResultsError(f"not enough free space for this run in {root}: {human(free)} free, "
                               f"{need.text()}. Free some space or choose another --results{lighter}")

    def _new_run_dir(self, root: Path) -> Path:
        try:
            return new_run_dir(root, self.plan.measurement.name)
        except OSError as exc:
            raise ResultsError(f"cannot create a run directory in {root}: {exc.strerror}") from None

    # ------------------------------------------------------------------------------ the run
    def _measure(self) -> Path:
        plan, engine = self.plan, self.engine
        assert self.run_dir is not None
        engine.begin(RunContext(plan=plan, run_dir=self.run_dir, run_id=engine.run_id(self.run_dir), emit=self.emit))
        description = engine.describe(plan)
        manifest = self._manifest(description)
        write_manifest(self.run_dir, manifest)
        order = plan.order()
        started = time.monotonic()
        with signals_as_exceptions():
            try:
                self.emit(RunStarted(run_dir=self.run_dir, total=len(order), measurement=plan.measurement,
                                     where=description.where, setting=description.setting))
                rigs = self._rigs(len(order))
                manifest.rig = engine.combine_rigs(manifest, rigs)
                self._save(write_manifest, self.run_dir, manifest)
                if self.stopped is None:
                    self._targets(order, rigs)
            except STOP as exc:  # between sessions (a progress event found the disk full)
                self._stop(exc)
            finally:
                engine.finish(manifest, time.monotonic() - started)
        manifest.finished_at = now_iso()
        manifest.interrupted = self.stopped is not None
        manifest.stopped = stop_reason(self.stopped) if self.stopped is not None else None
        self._save(write_manifest, self.run_dir, manifest)
        if isinstance(self.stopped, DiskFault):
            raise self.stopped
        if self.stopped is not None:
            raise KeyboardInterrupt
        return self.run_dir

    def _rigs(self, total: int) -> dict[str, RigRecord]:
        rigs: dict[str, RigRecord] = {}
        for place in self.engine.places():
            rigs[place] = self._measure_rig(place, total)
            self.emit(RigDone(rig=rigs[place]))
            if self.stopped is not None:
                break
        return rigs

    def _targets(self, order: list[tuple[int, Gateway]], rigs: dict[str, RigRecord]) -> None:
        assert self.run_dir is not None
        for index, (repeat, target) in enumerate(order, start=1):
            self.emit(TargetStarted(target=target.name, repeat=repeat, index=index, total=len(order)))
            outcome = self._run_target(target, repeat, rigs.get(self.engine.place_of(target), RigRecord()))
            self._save(write_outcome, self.run_dir, outcome)
            self.emit(TargetDone(outcome=outcome, index=index, total=len(order)))
            if self.stopped is not None:
                break

    # ------------------------------------------------------------------------- stopping early
    def _stop(self, exc: BaseException) -> None:
        """The run stops (first cause wins); a disk fault gives the report's reserve back."""
        if isinstance(exc, DiskFault) and self._disk is not None:
            self._disk.note(exc)
        if self.stopped is None:
            self.stopped = exc

    def _disk_fault(self, exc: OSError) -> DiskFault:
        """A write refused by the disk, as what stops the run. The first finding stays the reason: the watch
        may have tripped already, and a cleanup's write that failed after it (k6's resources.csv) would
        otherwise hide why the run stopped."""
        assert self.run_dir is not None
        if isinstance(self.stopped, DiskFault):
            return self.stopped
        fault = (self._disk.fault if self._disk is not None else None) or disk_fault(exc, self.run_dir)
        self._stop(fault)
        return fault

    def _save(self, write: Callable[..., Any], *args: Any) -> None:
        """A write of the loop's own: a full or read-only disk stops the run instead of crashing it, and
        what could not be written is said (a disk that has room again gets it from the reserve)."""
        try:
            write(*args)
        except OSError as exc:
            if not is_disk_error(exc):
                raise
            fault = self._disk_fault(exc)
            try:
                write(*args)  # the reserve is given back now
            except OSError as again:
                if not is_disk_error(again):
                    raise
                where = Path(again.filename or fault.path)
                shown = where.relative_to(self.run_dir) if where.is_relative_to(self.run_dir) else where
                self.unwritten.append(f"{shown} ({again.strerror})")

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
                       "sizes": m.sizes.model_dump() if m.sizes else None,
                       **({"variants": m.suite.variants, "left_out": plan.left_out} if m.suite.variants else {})}
                      if m.suite else None),
            "main_step": m.main_step,
            "repeats": m.repeats,
            "order": [{"repeat": r, "target": t.name} for r, t in plan.order()],
            "targets": {t.name: {**_target_record(t), **d.targets.get(t.name, {}), **_mock_identity(t, d.mock)}
                        for t in plan.targets},
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
                # The rig's own frontier is what capacity probes are judged against: only when they run.
                searches = m.sizes is not None and (m.sizes.runs("capacity") or m.sizes.runs("concurrency"))
                record.update(measure_rig(driver, plan.rig, m.params, rig_dir,
                                          m.sizes.capacity if searches else None, m.profile))
        except SessionLost as exc:
            record.update({"error": exc.reason, "status": exc.status, "evidence": exc.evidence})
        except STOP as exc:
            self._stop(exc)
            record.update({"error": INTERRUPTED})
        except OSError as exc:
            if not is_disk_error(exc):
                raise
            self._disk_fault(exc)
            record.update({"error": INTERRUPTED})
        return RigRecord.model_validate(record).with_reach()

    # ------------------------------------------------------------------------ one target
    def _run_target(self, target: Gateway, repeat: int, rig: RigRecord) -> Outcome:
        assert self.run_dir is not None
        engine, m = self.engine, self.plan.measurement
        work = target_dir(self.run_dir, target.name, repeat)
        work.mkdir(parents=True, exist_ok=True)
        outcome = Outcome(target=target.name, repeat=repeat, status=Status.OK, started_at=now_iso(),
                          entry=target.variant_of, variant=target.variant)
        reason = _not_runnable(engine, target)
        if reason is not None:
            outcome.status, outcome.reason = Status.NOT_RUNNABLE, reason
            if target.unsupported is not None:
                outcome.evidence["unsupported"] = target.unsupported
            outcome.finished_at = now_iso()
            return outcome
        on_step = recorder(outcome, m.main_step, self._save_unfinished)
        self._save_unfinished(outcome)  # a runner killed mid-session leaves this, not silence
        driver: Driver | None = None
        try:
            with engine.session(target, repeat, work, outcome) as driver:
                session_steps(driver, m, work, rig, on_step, baseline=target.role == "baseline",
                              keep_raw=self.plan.keep_raw, works=_works(target))
        except SessionLost as failed:
            adopt_partial(outcome, driver.k6_runs if driver else [], work, m.main_step)
            outcome.status, outcome.reason = failed.status, failed.reason  # type: ignore[assignment]
            outcome.evidence.update(failed.evidence)
        except (*STOP, OSError) as exc:
            if isinstance(exc, OSError) and not is_disk_error(exc):
                raise
            stop = self._disk_fault(exc) if isinstance(exc, OSError) else exc
            self._stop(stop)
            adopt_partial(outcome, driver.k6_runs if driver else [], work, m.main_step)
            outcome.status = Status.INTERRUPTED
            outcome.reason = _stop_text(stop) + (engine.interrupt_note if not isinstance(stop, DiskFault) else "")
        engine.session_files(work, outcome)
        self._save(finish_outcome, self.run_dir, work, outcome)
        outcome.finished_at = now_iso()
        return outcome

    def _save_unfinished(self, outcome: Outcome) -> None:
        """The outcome so far, as the file says it until the session ends: ``unfinished``."""
        assert self.run_dir is not None
        self._save(write_outcome, self.run_dir, outcome.model_copy(update={
            "status": Status.UNFINISHED,
            "reason": "the runner stopped during this session without recording how it ended (killed, or the "
                      "machine stopped); what its steps wrote is kept"}))


def _works(target: Gateway) -> list[dict[str, Any]]:
    """The variant's correctness checks as plain data (none for an entry as it is)."""
    return [c.model_dump() for c in target.variant_spec.works] if target.variant is not None else []


def _not_runnable(engine: Engine, target: Gateway) -> str | None:
    """Why ``target`` does not run: a variant its edition cannot do (whatever the engine), or the engine's reason."""
    if target.unsupported is not None:
        return f"not in this edition: {target.unsupported}"
    return engine.not_runnable(target)


def _stop_text(exc: BaseException) -> str:
    """Why a session stopped early, in its outcome's words."""
    if isinstance(exc, DiskFault):
        return f"stopped: {exc}"
    return f"stopped by {stop_reason(exc)}"


def _mock_identity(t: Gateway, mock: dict[str, Any] | None) -> dict[str, Any]:
    """The baseline has no software of its own: it is the mock that ran, so it carries that mock's name and
    version (fast: nginx + Lua; or WireMock), never a version written in the catalog."""
    if t.role != "baseline" or not mock:
        return {}
    title = " ".join(str(v) for v in (mock.get("title") or mock.get("name"), mock.get("version")) if v)
    return {"title": f"{t.title}: {title}", "version": mock.get("version") or t.version,
            "source": mock.get("source") or t.source, "version_check": mock.get("version_check")}


def _target_record(t: Gateway) -> dict[str, Any]:
    """What the catalog says of a target (engines add what they know: versions found, stacks)."""
    record = {"title": t.title, "role": t.role, "version": t.version, "source": t.source, "route": t.request.path,
              "model": t.request.model}
    if t.variant is not None:
        v = t.variant_spec
        record.update({"entry": t.entry, "variant": t.variant, "variant_suite": v.suite, "summary": v.summary,
                       "upstream": v.upstream, "unsupported": v.unsupported})
    return record
