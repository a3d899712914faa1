"""What the person at the terminal sees while a run goes: which target, which phase, time left, live RPS."""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.markup import escape

from aigw_bench.measure.events import (
    Event,
    LockTakenOver,
    Phase,
    ProbeDone,
    Reaped,
    RigDone,
    RunStarted,
    TargetDone,
    TargetStarted,
    Tick,
)
from aigw_bench.measure.plan import Measurement
from schema.results import Status

_STATUS_STYLE = {Status.OK: "green", Status.NOT_RUNNABLE: "yellow"}


def _load(m: Measurement) -> str:
    """The scenario's load in words, as the report words it (executor, sizes, pause)."""
    from analysis.report_md import load_text
    from schema.scenarios import scenario_record

    return load_text(scenario_record(m.scenario, m.params))


class ProgressPrinter:
    """The event sink of a run (:class:`aigw_bench.run.loop.Runner`) at the terminal."""

    def __init__(self, console: Console | None = None, plain: bool | None = None):
        self.console = console or Console(stderr=True, highlight=False, soft_wrap=True)
        self.plain = (not sys.stderr.isatty()) if plain is None else plain
        self._last_plain = 0.0
        self._status = None
        self._prefix = ""

    def __call__(self, event: Event) -> None:
        match event:
            case Reaped():
                self.console.print(f"[yellow]stopped processes left by an earlier, killed run:[/] "
                                   f"{', '.join(event.groups)}")
            case LockTakenOver():
                self.console.print(f"[yellow]took over the run lock of {escape(event.what)}[/]: the run that "
                                   f"held it ended without letting go of it (killed?): {escape(event.holder)}")
            case RunStarted():
                self._run_started(event)
            case TargetStarted():
                self._prefix = f"[{event.index}/{event.total}] {event.target}" + (
                    f" (repeat {event.repeat})" if event.repeat > 1 else "")
                self._show(f"{self._prefix}: starting")
            case RigDone():
                self._rig_done(event)
            case Phase():
                self._show(f"{self._prefix}: {event.phase}")
            case ProbeDone():
                self._probe(event)
            case Tick():
                self._tick(event)
            case TargetDone():
                self._stop_status()
                o = event.outcome
                style = _STATUS_STYLE.get(o.status, "red")
                reason = f": {escape(o.reason)}" if o.reason else ""
                self.console.print(f"{escape(self._prefix)}: [{style}]{o.status}[/]{reason}")
            case _:
                raise TypeError(f"not a progress event: {event!r}")

    @staticmethod
    def _what(m: Measurement, total: int, where: str = "") -> str:
        """The suite or the scenario a plan runs, in one line."""
        if m.suite:
            closed = ", closed-loop frontier" if m.sizes is not None and m.sizes.concurrency else ""
            return (f"suite [bold]{escape(m.suite.name)}[/]{where} (overhead, published shape, capacity{closed}, "
                    f"efficiency, streaming) per target, {total} session(s)")
        return (f"scenario [bold]{escape(m.scenario.name)}[/]{where}: {escape(_load(m))} "
                f"(+{m.params.warmup:g} s warm-up) per target, {total} target run(s)")

    def _run_started(self, e: RunStarted) -> None:
        lines = "".join(f"\n  {label}: {escape(value)}" for label, value in e.setting)
        self.console.print(f"[bold]aigw-bench[/] {self._what(e.measurement, e.total, e.where)}{lines}\n"
                           f"  results: {escape(str(e.run_dir))}")

    def _rig_done(self, e: RigDone) -> None:
        self._stop_status()
        rig = e.rig
        if rig.error:
            self.console.print(f"rig: [red]not measured[/]: {escape(str(rig.error))}")
            return
        floor = rig.floor_ms or {}
        self.console.print(f"rig ({escape(str(rig.mock))} mock, k6 straight to it): ceiling "
                           f"{rig.ceiling_rps or 0:,.0f} RPS, floor p50 {floor.get('p50') or 0:.3f} ms, "
                           f"p99 {floor.get('p99') or 0:.3f} ms")

    def _probe(self, e: ProbeDone) -> None:
        probe, bound_ms = e.probe, e.bound_ms
        verdict = "passes" if probe.passes(bound_ms) else f"fails ({probe.why_not(bound_ms)})"
        p99 = f"p99 {probe.p99_ms:.1f} ms" if probe.p99_ms is not None else "no p99"
        self._show(f"{self._prefix}: capacity {e.rate} req/s: {p99}, {verdict} at {bound_ms:g} ms")

    def _tick(self, e: Tick) -> None:
        phase = f"{e.label} warm-up" if e.warmup else (e.label or "measuring")
        remaining = max(0.0, e.duration - e.elapsed)
        live = ""
        if e.requests is not None:
            live = f" | {e.requests:,} requests, {e.rps or 0:,.0f} RPS"
            if e.ok_rate is not None:
                live += f", {e.ok_rate * 100:.2f}% ok"
        self._show(f"{self._prefix}: {phase} {e.elapsed:4.0f}/{e.duration:.0f} s ({remaining:.0f} s left){live}",
                   throttle=True)

    def _show(self, text: str, throttle: bool = False) -> None:
        if self.plain:
            now = time.monotonic()
            if throttle and now - self._last_plain < 5:
                return
            self._last_plain = now
            self.console.print(text, soft_wrap=True, markup=False)
            return
        if self._status is None:
            self._status = self.console.status(escape(text))
            self._status.start()
        else:
            self._status.update(escape(text))

    def _stop_status(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None

    def close(self) -> None:
        self._stop_status()
