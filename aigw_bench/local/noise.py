"""Work on this machine that is not the run's: measured during every window, waited out before a run.

A shared machine disturbs a benchmark without a trace in its figures: a build or an ``apt-get install``
on the load generator's CPU makes a gateway look slow, and nothing in k6's numbers says so. The
machine's busy CPU time comes from /proc/stat (every process, also the short-lived ones that are
gone by the end of a window); the run's own is the runner and its supervised process groups (k6,
the mock, the gateway, the probe), from /proc/<pid>/stat, children included (``cutime``/``cstime``:
a k6 that exited inside the window was reaped by the runner, so its CPU is in the runner's). What is
left is foreign: in CPU seconds, in cores over the window, and by process for the busiest ones (the
evidence the report names). A window starts before its processes do and ends after they are reaped.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from schema.suites import NoiseSizes

_TICKS = os.sysconf("SC_CLK_TCK")
BUSIEST = 5


@dataclass(frozen=True)
class ProcessTicks:
    pid: int
    pgid: int
    session: int
    start: int  # start time in clock ticks since boot: a recycled pid is another process
    ticks: int  # user + system, its own and its reaped children's
    own: int  # user + system, its own only
    name: str


def machine_busy_ticks() -> int:
    """Busy CPU time of the whole machine (every CPU), in clock ticks: /proc/stat's cpu line minus idle."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in fields[:8]]  # user nice system idle iowait irq softirq steal
    return sum(values) - values[3] - values[4]


def processes() -> dict[int, ProcessTicks]:
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        name = raw[raw.index("(") + 1:raw.rindex(")")]
        rest = raw[raw.rindex(")") + 2:].split()
        own = int(rest[11]) + int(rest[12])  # utime stime
        out[int(entry)] = ProcessTicks(int(entry), int(rest[2]), int(rest[3]), int(rest[19]),
                                       own + int(rest[13]) + int(rest[14]), own, name)  # + cutime cstime
    return out


@dataclass(frozen=True)
class Foreign:
    """What the machine spent on other work during one window."""

    seconds: float  # the window's wall-clock length
    cpu_seconds: float  # CPU time of processes not the run's
    threshold_cores: float
    busiest: list[dict[str, Any]] = field(default_factory=list)  # pid, name, cpu_seconds

    @property
    def cores(self) -> float:
        return self.cpu_seconds / self.seconds if self.seconds > 0 else 0.0

    @property
    def disturbed(self) -> bool:
        return self.cores > self.threshold_cores

    def record(self) -> dict[str, Any]:
        return {**asdict(self), "cores": round(self.cores, 4), "disturbed": self.disturbed}


class ForeignMeter:
    """Snapshots at a window's start and end; ``ours()`` names the run's process groups at the end (the
    runner's own process always counts as the run's)."""

    def __init__(self, ours: Callable[[], Iterable[int]], threshold_cores: float):
        self.ours = ours
        self.threshold_cores = threshold_cores
        self.me = os.getpid()

    def start(self) -> tuple[float, int, dict[int, ProcessTicks]]:
        return time.monotonic(), machine_busy_ticks(), processes()

    def stop(self, started: tuple[float, int, dict[int, ProcessTicks]]) -> Foreign:
        t0, busy0, before = started
        busy1, after, t1 = machine_busy_ticks(), processes(), time.monotonic()
        groups = set(self.ours())

        def is_ours(p: ProcessTicks) -> bool:
            return p.pid == self.me or p.pgid in groups

        def used(p: ProcessTicks, children: bool = True) -> int:
            earlier = before.get(p.pid)
            now = p.ticks if children else p.own
            if earlier is None or earlier.start != p.start:
                return now
            return now - (earlier.ticks if children else earlier.own)

        ours_ticks = sum(used(p) for p in after.values() if is_ours(p))
        foreign_ticks = max(0, (busy1 - busy0) - ours_ticks)
        # The evidence by process: each one's own time (a parent's reaped children are not its own).
        ranked = sorted(((used(p, children=False), p) for p in after.values() if not is_ours(p)),
                        key=lambda x: -x[0])
        busiest = [{"pid": p.pid, "name": p.name, "cpu_seconds": round(t / _TICKS, 3)}
                   for t, p in ranked[:BUSIEST] if t > 0]
        return Foreign(round(t1 - t0, 3), round(foreign_ticks / _TICKS, 3), self.threshold_cores, busiest)


def wait_for_quiet(sizes: NoiseSizes, on_wait: Callable[[Foreign, float], None],
                   ours: Callable[[], Iterable[int]] = tuple) -> dict[str, Any]:
    """Before a run: one-second windows until one is quiet, at most ``sizes.quiet_wait`` seconds. Returns
    what was seen (the manifest's record): waited, the last window, and whether it was quiet."""
    meter = ForeignMeter(ours, sizes.threshold_cores)
    started = time.monotonic()
    while True:
        window = meter.start()
        time.sleep(1.0)
        foreign = meter.stop(window)
        waited = time.monotonic() - started
        if not foreign.disturbed or waited >= sizes.quiet_wait:
            return {"waited_s": round(waited, 1), "quiet": not foreign.disturbed, "last_window": foreign.record()}
        on_wait(foreign, waited)
