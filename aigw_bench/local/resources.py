"""CPU and memory of the processes under test, sampled from /proc while k6 runs.

Each role (load generator, mock, gateway) is a process group; a sample sums its live members, so
a gateway's workers count with it. CPU is in cores (1.0 = one CPU fully busy over the interval).
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


def _cpu_ticks_and_rss(pid: int) -> tuple[int, int] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
        rss_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError, IndexError, ValueError):
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12]), rss_pages * _PAGE  # utime + stime


@dataclass
class ResourceSampler:
    """Call :meth:`sample` about once a second; :meth:`write` saves ``resources.csv``."""

    groups: dict[str, int]  # role -> process group id
    exclude: set[int] = field(default_factory=set)  # the groups' guards (aigw_bench/local/guard.py): not measured
    rows: list[dict] = field(default_factory=list)
    _last: dict[int, int] = field(default_factory=dict)  # pid -> cpu ticks at the previous sample
    _last_time: float | None = None
    _start: float = field(default_factory=time.monotonic)
    _ticks: dict[str, int] = field(default_factory=dict)  # role -> CPU ticks used since the first sample

    def sample(self) -> None:
        now = time.monotonic()
        interval = None if self._last_time is None else now - self._last_time
        current: dict[int, int] = {}
        for role, pgid in self.groups.items():
            ticks_delta, rss, members = 0, 0, 0
            for pid in group_members(pgid):
                if pid in self.exclude:
                    continue
                got = _cpu_ticks_and_rss(pid)
                if got is None:
                    continue
                ticks, mem = got
                current[pid] = ticks
                ticks_delta += ticks - self._last.get(pid, ticks)
                rss += mem
                members += 1
            self._ticks[role] = self._ticks.get(role, 0) + (ticks_delta if interval else 0)
            if interval and members:  # a role whose processes are gone has nothing to report
                self.rows.append({
                    "t_s": round(now - self._start, 3),
                    "role": role,
                    "cpu_cores": round(ticks_delta / _TICKS / interval, 3),
                    "rss_mib": round(rss / 2**20, 1),
                    "processes": members,
                })
        self._last, self._last_time = current, now

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time each role used between the first and the last sample (processes that exited in between
        count up to the last sample that saw them)."""
        return {role: ticks / _TICKS for role, ticks in self._ticks.items()}

    def write(self, path: Path) -> None:
        with path.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=["t_s", "role", "cpu_cores", "rss_mib", "processes"])
            writer.writeheader()
            writer.writerows(self.rows)
