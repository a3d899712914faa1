"""Run locks: one run at a time per results directory, and per rig (the local engine's: this machine's
ports and CPUs).

A lock is a file held with ``flock``: the kernel lets go of it when its holder dies, however it dies,
so a lock is never left held by a dead run. The file also says who holds it (pid, start time, run
directory, command line), for the message of the run that is refused. A holder that ends normally
removes the file; a file still there when its lock is free was left by a run that died (SIGKILL, a
machine that stopped): the next run takes it over and says whose it was.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from schema.errors import BenchError

RESULTS_LOCK = ".aigw-bench.lock"


class RunLocked(BenchError):
    """Another run holds the lock."""


@dataclass
class Holder:
    """Who holds a lock (the JSON inside the lock file)."""

    pid: int = field(default_factory=os.getpid)
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    command: str = ""
    run_dir: str | None = None

    def describe(self) -> str:
        since = _ago(self.started_at)
        where = f"results in {self.run_dir}" if self.run_dir else "its run directory not created yet"
        return (f"pid {self.pid}, started {self.started_at}{since}, {where}"
                + (f", command: {self.command}" if self.command else ""))

    @classmethod
    def parse(cls, text: str) -> Holder | None:
        try:
            data = json.loads(text)
            return cls(**{k: data[k] for k in ("pid", "started_at", "command", "run_dir") if k in data})
        except (ValueError, TypeError):
            return None


def _ago(iso: str) -> str:
    try:
        seconds = (datetime.now(UTC) - datetime.fromisoformat(iso)).total_seconds()
    except ValueError:
        return ""
    return f" ({seconds / 60:.0f} min ago)" if seconds >= 90 else f" ({seconds:.0f} s ago)"


def results_lock_path(results_root: Path) -> Path:
    return results_root / RESULTS_LOCK


class RunLock:
    """``path`` held for the life of one run; ``what`` names it in messages ("the results directory X")."""

    def __init__(self, path: Path, what: str):
        self.path = path
        self.what = what
        self._fd: int | None = None
        self.holder: Holder | None = None

    def acquire(self, holder: Holder) -> Holder | None:
        """Take the lock, or raise :class:`RunLocked` naming its holder. Returns the holder of a stale lock
        taken over (a run that died holding it), else None."""
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise RunLocked(self._refusal()) from None
            # The holder before may have removed the file between our open and our flock: then we hold a
            # lock on a file nobody else will ever open. Take the one at the path instead.
            if self._same_file(fd):
                break
            os.close(fd)
        self._fd = fd
        stale = Holder.parse(os.pread(fd, 64 * 1024, 0).decode(errors="replace"))
        self.holder = holder
        self._write()
        return stale

    def update(self, run_dir: Path) -> None:
        """The run directory exists now: say so in the lock (for the message of a refused run)."""
        if self.holder is not None and self._fd is not None:
            self.holder.run_dir = str(run_dir)
            with contextlib.suppress(OSError):  # a full disk must not stop the run here: the lock still holds
                self._write()

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):  # a read-only disk keeps the file: the next run takes it over
            self.path.unlink()
        os.close(self._fd)  # closing the descriptor is what lets go of the lock
        self._fd = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    # ------------------------------------------------------------------------------------------
    def _same_file(self, fd: int) -> bool:
        try:
            on_path = os.stat(self.path)
        except FileNotFoundError:
            return False
        held = os.fstat(fd)
        return (held.st_dev, held.st_ino) == (on_path.st_dev, on_path.st_ino)

    def _write(self) -> None:
        assert self._fd is not None and self.holder is not None
        data = (json.dumps(asdict(self.holder)) + "\n").encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)

    def _refusal(self) -> str:
        try:
            holder = Holder.parse(self.path.read_text())
        except OSError:
            holder = None
        who = holder.describe() if holder else "its details are not written yet"
        stop = f"; wait for it to end, or stop it with `kill -INT {holder.pid}`" if holder else ""
        return f"another run is using {self.what} ({who}){stop}. Lock file: {self.path}"


def live_holder(path: Path) -> Holder | None:
    """Who a lock file names, if that process is still alive (for a warning: the lock itself is the kernel's)."""
    try:
        holder = Holder.parse(path.read_text())
    except OSError:
        return None
    if holder is None or not Path(f"/proc/{holder.pid}").exists():
        return None
    return holder
