"""CPU and memory of the processes under test, sampled from /proc while k6 runs.

Each role (load generator, mock, gateway) is a process group; a sample sums its live members, so
a gateway's workers count with it. CPU is in cores (1.0 = one CPU fully busy over the interval).

CPU time comes from each thread's scheduler statistics (/proc/<pid>/task/<tid>/schedstat, in
nanoseconds), not from /proc/<pid>/stat's clock ticks alone: at 100 ticks a second, nginx serving 150
requests in a few milliseconds of CPU reads 0 or 1 tick, a figure with no digit right. A thread that
appears between two samples counts from its start; one that exits between two samples takes what it
used since the last one with it, which only the process's ticks still hold. So both are kept: where
the ticks show more than the threads by over two ticks a process (threads came and went), the ticks
are the total (complete, to the tick); otherwise the threads' nanoseconds are.
"""

from __future__ import annotations

import csv
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from aigw_bench.local.processes import group_members

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


_NS = 1_000_000_000


def _threads_ns(pid: int) -> dict[tuple[int, int], int] | None:
    """CPU time (ns) of each live thread of ``pid``, keyed (pid, tid); None without schedstat."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    for tid in tids:
        try:
            out[(pid, int(tid))] = int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return out or None


@dataclass(frozen=True)
class _Usage:
    ticks: int  # utime + stime of the whole process, its exited threads included
    threads: dict[tuple[int, int], int]  # (pid, tid) -> CPU ns of each live thread
    rss: int  # bytes


def _usage(pid: int) -> _Usage | None:
    """None if the process is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
        rss_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError, IndexError, ValueError):
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    ticks = int(fields[11]) + int(fields[12])
    threads = _threads_ns(pid) or {(pid, -1): ticks * _NS // _TICKS}  # no schedstat: the ticks, as ns
    return _Usage(ticks, threads, rss_pages * _PAGE)


@dataclass
class ResourceSampler:
    """Call :meth:`sample` about once a second; :meth:`write` saves ``resources.csv``."""

    groups: dict[str, int]  # role -> process group id
    exclude: set[int] = field(default_factory=set)  # the groups' guards (aigw_bench/local/guard.py): not measured
    rows: list[dict] = field(default_factory=list)
    _last: dict[tuple[int, int], int] = field(default_factory=dict)  # (pid, tid) -> CPU ns at the last sample
    _last_ticks: dict[int, int] = field(default_factory=dict)  # pid -> ticks at the last sample
    _last_time: float | None = None
    _start: float = field(default_factory=time.monotonic)
    _ns: dict[str, int] = field(default_factory=dict)  # role -> CPU ns of the threads since the first sample
    _ticks: dict[str, int] = field(default_factory=dict)  # role -> ticks since the first sample
    _seen: dict[str, set[int]] = field(default_factory=dict)  # role -> every pid counted

    def sample(self) -> None:
        now = time.monotonic()
        interval = None if self._last_time is None else now - self._last_time
        current: dict[tuple[int, int], int] = {}
        current_ticks: dict[int, int] = {}
        for role, pgid in self.groups.items():
            delta, ticks, rss, members = 0, 0, 0, 0
            for pid in group_members(pgid):
                if pid in self.exclude:
                    continue
                got = _usage(pid)
                if got is None:
                    continue
                current.update(got.threads)
                current_ticks[pid] = got.ticks
                # A thread or process first seen now started after the last sample: all its time is new.
                delta += sum(ns - self._last.get(key, 0) for key, ns in got.threads.items())
                ticks += got.ticks - self._last_ticks.get(pid, 0)
                rss += got.rss
                members += 1
                self._seen.setdefault(role, set()).add(pid)
            if interval:
                self._ns[role] = self._ns.get(role, 0) + delta
                self._ticks[role] = self._ticks.get(role, 0) + ticks
            if interval and members:  # a role whose processes are gone has nothing to report
                self.rows.append({
                    "t_s": round(now - self._start, 3),
                    "role": role,
                    "cpu_cores": round(delta / _NS / interval, 4),
                    "rss_mib": round(rss / 2**20, 1),
                    "processes": members,
                })
        self._last, self._last_ticks, self._last_time = current, current_ticks, now

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time each role used between the first and the last sample (processes that exited in between
        count up to the last sample that saw them)."""
        out = {}
        for role, ns in self._ns.items():
            ticks = self._ticks.get(role, 0)
            lost = ticks * _NS // _TICKS - ns > 2 * len(self._seen.get(role, ())) * _NS // _TICKS
            out[role] = ticks / _TICKS if lost else ns / _NS
        return out

    def write(self, path: Path) -> None:
        with path.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=["t_s", "role", "cpu_cores", "rss_mib", "processes"])
            writer.writeheader()
            writer.writerows(self.rows)
