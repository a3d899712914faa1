"""What the person at the terminal sees while a run goes: which target, which phase, time left, live RPS."""

from __future__ import annotations

import sys
import time
from typing import Any

from rich.console import Console
from rich.markup import escape

from aigw_bench.results import Outcome

_STATUS_STYLE = {"ok": "green", "not_runnable": "yellow"}


def _load(plan: Any) -> str:
    """The scenario's load in words, as the report words it (executor, sizes, pause)."""
    from analysis.report_md import load_text
    from k6_scripts.scenarios import scenario_record

    return load_text(scenario_record(plan.scenario, plan.params))


class ProgressPrinter:
    """An event sink for :class:`aigw_bench.local.runner.LocalRunner`."""

    def __init__(self, console: Console | None = None, plain: bool | None = None):
        self.console = console or Console(stderr=True, highlight=False, soft_wrap=True)
        self.plain = (not sys.stderr.isatty()) if plain is None else plain
        self._last_plain = 0.0
        self._status = None
        self._prefix = ""

    def __call__(self, event: str, **data: Any) -> None:
        handler = getattr(self, f"on_{event}", None)
        if handler:
            handler(**data)

    def on_reaped(self, groups: list[str]) -> None:
        self.console.print(f"[yellow]stopped processes left by an earlier, killed run:[/] {', '.join(groups)}")

    @staticmethod
    def _what(plan: Any, total: int, where: str = "") -> str:
        """The suite or the scenario a plan runs, in one line."""
        p = plan.params
        if getattr(plan, "suite", None):
            return (f"suite [bold]{escape(plan.suite.name)}[/]{where} (overhead, published shape, capacity, "
                    f"efficiency, streaming) per target, {total} session(s)")
        return (f"scenario [bold]{escape(plan.scenario.name)}[/]{where}: {escape(_load(plan))} "
                f"(+{p.warmup:g} s warm-up) per target, {total} target run(s)")

    def on_run_start(self, run_dir: Any, total: int, plan: Any) -> None:
        what = self._what(plan, total)
        self.console.print(
            f"[bold]aigw-bench[/] {what}\n  mock: {plan.mock.name} ({plan.profile.name} pacing)\n"
            f"  CPU pinning: {plan.cpu_plan.note}\n  results: {run_dir}"
        )

    def on_cloud_run_start(self, run_dir: Any, total: int, plan: Any) -> None:
        """The cloud stage's plan (no local CPU plan: k6, gateway and mock have machines of their own)."""
        stacks = ", ".join(f"{t.gateway.name} (stack {t.outputs.stack}, {t.outputs.mock_name} mock)"
                           for t in plan.targets)
        what = self._what(plan, total, " on AWS, cloud sizes")
        self.console.print(
            f"[bold]aigw-bench[/] {what}\n  stacks: {escape(stacks)}\n  mock pacing: {plan.profile.name}\n"
            f"  results: {escape(str(run_dir))}"
        )

    def on_target_start(self, target: str, repeat: int, index: int, total: int) -> None:
        self._prefix = f"[{index}/{total}] {target}" + (f" (repeat {repeat})" if repeat > 1 else "")
        self._show(f"{self._prefix}: starting")

    def on_rig_done(self, rig: dict) -> None:
        self._stop_status()
        if rig.get("error"):
            self.console.print(f"rig: [red]not measured[/]: {escape(str(rig['error']))}")
            return
        floor = rig.get("floor_ms") or {}
        self.console.print(f"rig ({escape(str(rig.get('mock')))} mock, k6 straight to it): ceiling "
                           f"{rig.get('ceiling_rps') or 0:,.0f} RPS, floor p50 {floor.get('p50') or 0:.3f} ms, "
                           f"p99 {floor.get('p99') or 0:.3f} ms")

    def on_phase(self, target: str, phase: str) -> None:
        self._show(f"{self._prefix}: {phase}")

    def on_probe(self, target: str, rate: int, probe: Any, bound_ms: float) -> None:
        verdict = "passes" if probe.passes(bound_ms) else f"fails ({probe.why_not(bound_ms)})"
        p99 = f"p99 {probe.p99_ms:.1f} ms" if probe.p99_ms is not None else "no p99"
        self._show(f"{self._prefix}: capacity {rate} req/s: {p99}, {verdict} at {bound_ms:g} ms")

    def on_tick(self, target: str, warmup: bool, elapsed: float, duration: float, requests: int | None,
                rps: float | None, ok_rate: float | None, label: str = "") -> None:
        phase = f"{label} warm-up" if warmup else (label or "measuring")
        remaining = max(0.0, duration - elapsed)
        live = ""
        if requests is not None:
            live = f" | {requests:,} requests, {rps or 0:,.0f} RPS"
            if ok_rate is not None:
                live += f", {ok_rate * 100:.2f}% ok"
        self._show(f"{self._prefix}: {phase} {elapsed:4.0f}/{duration:.0f} s ({remaining:.0f} s left){live}",
                   throttle=True)

    def on_target_done(self, outcome: Outcome, index: int, total: int) -> None:
        self._stop_status()
        style = _STATUS_STYLE.get(outcome.status, "red")
        reason = f": {escape(outcome.reason)}" if outcome.reason else ""
        self.console.print(f"{escape(self._prefix)}: [{style}]{outcome.status}[/]{reason}")

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
