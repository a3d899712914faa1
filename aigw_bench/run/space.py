"""Disk space of a run: checked before it starts, kept for its report, watched while it goes.

- :func:`estimate` is what the plan may write: k6's per-request samples (``raw.csv.gz``, the big part:
  a cloud-sized one is gigabytes) at the most requests per second the plan's load can reach, plus a
  fixed allowance per k6 run, per measured second and per session, all times a margin.
- :class:`Reserve` holds space for the report from the start (a file of zeros): when something else
  fills the disk mid-run, the reserve is given back so that the outcome, the manifest and the report
  of what was measured can still be written.
- :class:`DiskWatch` looks at the file system while the run goes (at every progress event, at most
  twice a second: its free space, its mount flags, and a one-byte write into the reserve, which is
  how a disk that refuses writes without being mounted read-only shows): running low on space, or
  read-only, stops the run like Ctrl-C does
  (:class:`aigw_bench.run.interrupts.DiskFault`), before k6 loses samples it cannot write.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

from aigw_bench.measure.plan import Measurement
from aigw_bench.run.interrupts import DiskFault, run_is_stopping
from schema.errors import is_disk_error
from schema.scenarios import ITERATION_EXECUTORS, Profile

MIB = 2**20
# The most requests per second whose samples a run can keep, per profile (an upper bound, not a forecast).
# local: k6 reached at most 6,722 req/s on one CPU with a minimal script (benchmarks/k6_cost.py, README);
# cloud: the published baseline, 29,005 RPS from one runner, times two runners.
MAX_RPS: dict[Profile, float] = {"local": 8_000.0, "cloud": 60_000.0}
# raw.csv.gz per request: 49-60 bytes measured (README "What k6's per-request output costs": 60 B with
# six tags; 49 B with the three the script keeps, a local seed run at 4,176 RPS).
RAW_BYTES_PER_REQUEST = 60
MARGIN = 1.5  # on everything estimated
PER_K6_RUN = 160 * 1024  # script, summaries, logs, resources.csv (measured: ~80 KiB)
PER_MEASURED_SECOND = 8 * 1024  # the per-second files derived from raw.csv.gz (measured: ~2.6 KiB/s)
PER_SESSION = 256 * 1024  # the mock's rendered config, the gateway's log, outcome.json
STREAM_BYTES_PER_CHUNK = 16  # gaps.csv.gz
REPORT_RESERVE = 32 * MIB  # report.html, report.md, the CSVs and Parquet files (measured: ~3 MiB, 4 targets)
LOW_WATER = 4 * MIB  # below this, a running run stops (before k6's CSV writes start failing)


@dataclass(frozen=True)
class Estimate:
    bytes: int
    requests: int  # the most requests whose per-request samples are kept
    sessions: int

    def text(self) -> str:
        return (f"about {human(self.bytes)} needed (at most {self.requests:,} requests' samples at "
                f"{RAW_BYTES_PER_REQUEST} B each, {self.sessions} session(s), x{MARGIN:g} margin, "
                f"+ {human(REPORT_RESERVE)} kept for the report)")


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} TiB"


def _scenario_requests(m: Measurement, rate_bound: float) -> tuple[float, float]:
    """(requests, measured seconds) of the scenario's measured run, at most."""
    p, executor = m.params, m.scenario.executor
    if executor == "constant-arrival-rate" and p.rate:
        return min(p.rate, rate_bound) * p.duration, p.duration
    if executor in ITERATION_EXECUTORS and p.iterations:
        total = p.iterations * (p.vus if executor == "per-vu-iterations" else 1)
        return min(total, rate_bound * p.duration), p.duration
    return rate_bound * p.duration, p.duration


def estimate(m: Measurement, sessions: int, keep_raw: bool) -> Estimate:
    """What a run of ``m`` may write in ``sessions`` sessions (besides the rig's few files)."""
    bound = MAX_RPS[m.where]
    main_requests, main_seconds = _scenario_requests(m, bound)
    requests = main_requests if keep_raw else 0.0
    seconds = main_seconds if keep_raw else 0.0
    k6_runs = 1
    extra = 0.0
    if m.sizes is not None:  # a suite: the overhead step always keeps its pairs; capacity probes keep none
        s = m.sizes
        requests += bound * s.overhead.duration
        seconds += s.overhead.duration
        levels = len(s.concurrency.levels) if s.concurrency else 0
        k6_runs = 3 + s.capacity.max_steps + levels  # overhead, seed, probes, closed-loop levels, efficiency
        chunks_per_s = 1000.0 / max(m.streaming_profile.per_token_ms if m.streaming_profile else 1.0, 1.0)
        extra = s.streaming.concurrency * 2 * s.streaming.duration * chunks_per_s * STREAM_BYTES_PER_CHUNK
    per_session = (requests * RAW_BYTES_PER_REQUEST + seconds * PER_MEASURED_SECOND + k6_runs * PER_K6_RUN
                   + PER_SESSION + extra)
    rig = (2 + (m.sizes.capacity.max_steps if m.sizes else 0)) * PER_K6_RUN
    total = (per_session * sessions + rig) * MARGIN + REPORT_RESERVE
    return Estimate(bytes=math.ceil(total), requests=math.ceil(requests * sessions), sessions=sessions)


def disk_fault(exc: OSError, fallback: Path) -> DiskFault:
    """A write that failed for want of space (or a read-only disk), as the fault that stops the run."""
    return DiskFault(exc.filename or fallback, f"cannot write: {os.strerror(exc.errno or errno.EIO).lower()}")


def free_bytes(path: Path) -> tuple[int, bool]:
    """(bytes an unprivileged writer may still use, read-only?) of the file system holding ``path``."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize, bool(st.f_flag & os.ST_RDONLY)


class Reserve:
    """``size`` bytes of real blocks held at ``path`` (not a sparse file: those reserve nothing)."""

    def __init__(self, path: Path, size: int):
        self.path = path
        with path.open("wb") as fh:
            os.posix_fallocate(fh.fileno(), 0, size)

    def probe(self) -> None:
        """Write one byte in place (blocks it holds already: no space needed). Raises the OSError of a disk
        that refuses writes although it is not mounted read-only: ext4 with ``errors=remount-ro`` after an
        error (``emergency_ro`` in its mount options on Linux 6.18) answers EROFS to every write, while
        statvfs and access() still call it writable."""
        fd = os.open(self.path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.pwrite(fd, b"\0", 0)
        finally:
            os.close(fd)

    def release(self) -> None:
        with contextlib.suppress(OSError):  # gone already, or the disk went read-only: nothing to give back
            self.path.unlink()


class DiskWatch:
    """Stops the run (raises DiskFault) when the results' file system runs low or turns read-only."""

    def __init__(self, run_dir: Path, reserve: Reserve | None, low_water: int | None = None, every: float = 0.5):
        self.run_dir = run_dir
        self.reserve = reserve
        self.low_water = LOW_WATER if low_water is None else low_water
        self.every = every
        self._next = 0.0
        self.fault: DiskFault | None = None

    def check(self) -> None:
        if self.fault is not None:
            return  # stopping already: the writes that follow use the space given back
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self.every
        free, read_only = free_bytes(self.run_dir)
        if read_only:
            self.trip(DiskFault(self.run_dir, "the file system went read-only"))
        if self.reserve is not None:
            try:
                self.reserve.probe()
            except OSError as exc:
                if not is_disk_error(exc):
                    raise
                self.trip(DiskFault(self.run_dir, "the file system went read-only" if exc.errno == errno.EROFS
                                    else f"cannot write: {os.strerror(exc.errno or errno.EIO).lower()}"))
        if free < self.low_water:
            self.trip(DiskFault(self.run_dir, f"no space left on the device ({human(free)} free)"))

    def trip(self, fault: DiskFault) -> None:
        """Give the reserve back (for what the stop writes) and raise ``fault``."""
        self.note(fault)
        raise fault

    def note(self, fault: DiskFault) -> None:
        """A write failed for want of space: give the reserve back; the run stops."""
        if self.fault is None:
            self.fault = fault
        if self.reserve is not None:
            self.reserve.release()
        run_is_stopping()
