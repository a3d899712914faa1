"""Child processes that never outlive the benchmark.

Every child starts in a session and process group of its own and is stopped by that group id
(SIGTERM, then SIGKILL), never by name. The group takes along whatever the child forked (LiteLLM's
workers, nginx's workers). Three layers keep orphans from surviving:

1. :class:`Supervisor` stops every group it started when its ``with`` block ends, on success,
   error, timeout or Ctrl-C (SIGINT/SIGTERM/SIGHUP become exceptions, see :func:`signals_as_exceptions`);
2. each child gets ``PR_SET_PDEATHSIG`` = SIGKILL, so it dies if the runner itself is killed;
3. the groups are recorded in a state file; :func:`reap_stale_groups` stops those left by a runner
   that was killed with SIGKILL (its children's own children survive layer 2), checking start times
   so that a recycled process id is never touched.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def _child_setup(cpus: Sequence[int] | None) -> None:
    """Runs in the child between fork and exec."""
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if cpus:
        os.sched_setaffinity(0, set(cpus))
    # Children must not inherit the runner's signal dispositions (SIGINT ignored during cleanup).
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


def _proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, process group, start time in clock ticks) of a process, or None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) may contain spaces and parentheses: split after its last ')'.
    rest = raw[raw.rindex(")") + 2 :].split()
    return rest[0], int(rest[2]), int(rest[19])


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in a process group, found through /proc."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        stat = _proc_stat(int(entry))
        if stat and stat[1] == pgid and stat[0] not in ("Z", "X"):
            members.append(int(entry))
    return members


def stop_group(pgid: int, timeout: float = 10.0) -> None:
    """SIGTERM the group, wait up to ``timeout`` for it to empty, then SIGKILL what is left."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if group_members(pgid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while group_members(pgid) and time.monotonic() < deadline:
            time.sleep(0.05)


@dataclass
class ManagedProcess:
    """A child running in its own process group, its output going to ``log_path``."""

    name: str
    argv: list[str]
    popen: subprocess.Popen
    log_path: Path
    cpus: list[int] | None
    stop_timeout: float
    started_at: float = field(default_factory=time.time)

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def pgid(self) -> int:
        return self.popen.pid  # start_new_session: the child leads its own group

    def poll(self) -> int | None:
        return self.popen.poll()

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def wait(self, timeout: float | None = None) -> int:
        return self.popen.wait(timeout)

    def log_tail(self, lines: int = 20) -> list[str]:
        try:
            with self.log_path.open("rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - 64 * 1024))
                text = fh.read().decode(errors="replace")
        except FileNotFoundError:
            return []
        return text.splitlines()[-lines:]

    def signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, sig)

    def stop(self) -> int | None:
        """Stop the whole group; returns the leader's exit code (None if it could not be reaped)."""
        stop_group(self.pgid, self.stop_timeout)
        try:
            return self.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return None


class Supervisor:
    """Starts processes and stops all of them, in reverse order, when the ``with`` block ends."""

    def __init__(self, state_file: Path | None = None):
        self._procs: list[ManagedProcess] = []
        self._state_file = state_file

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()

    def start(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        cpus: Sequence[int] | None = None,
        stop_timeout: float = 10.0,
    ) -> ManagedProcess:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        full_env = {**os.environ, **(env or {})}
        with log_path.open("ab") as log:
            try:
                popen = subprocess.Popen(
                    list(argv),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=full_env,
                    cwd=cwd,
                    start_new_session=True,
                    preexec_fn=lambda: _child_setup(cpus),
                )
            except FileNotFoundError as exc:
                raise FileNotFoundError(f"{name}: cannot start {argv[0]!r}: {exc.strerror}") from None
        proc = ManagedProcess(name, list(argv), popen, log_path, list(cpus) if cpus else None, stop_timeout)
        self._procs.append(proc)
        self._record()
        return proc

    def pgids(self) -> list[int]:
        """The process groups running under this supervisor (the run's own processes)."""
        return [p.pgid for p in self._procs]

    def stop(self, proc: ManagedProcess) -> int | None:
        code = proc.stop()
        if proc in self._procs:
            self._procs.remove(proc)
        self._record()
        return code

    def stop_all(self) -> None:
        # Ctrl-C during cleanup must not leave half the groups running.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            for proc in reversed(list(self._procs)):
                proc.stop()
            self._procs.clear()
            self._record()
        finally:
            signal.signal(signal.SIGINT, previous)

    def _record(self) -> None:
        if self._state_file is None:
            return
        records = []
        for p in self._procs:
            stat = _proc_stat(p.pid)
            if stat:
                records.append({"name": p.name, "pgid": p.pgid, "start_ticks": stat[2]})
        if records:
            self._state_file.parent.mkdir(parents=True, exist_ok=True)
            me = _proc_stat(os.getpid())
            self._state_file.write_text(
                json.dumps({"runner_pid": os.getpid(), "runner_start_ticks": me[2] if me else 0, "groups": records})
            )
        else:
            with contextlib.suppress(FileNotFoundError):
                self._state_file.unlink()


def state_file_for(state_dir: Path, pid: int | None = None) -> Path:
    """Each runner records its groups in a file of its own, so concurrent runners do not collide."""
    return state_dir / f"groups-{pid or os.getpid()}.json"


def reap_stale_groups(state_dir: Path) -> list[str]:
    """Stop process groups recorded by runners that died without stopping them (SIGKILL).

    A group is only touched if one of its members started no earlier than the recorded leader,
    so a process id recycled by an unrelated program is left alone. Returns what was stopped.
    """
    stopped: list[str] = []
    for state_file in sorted(state_dir.glob("groups-*.json")):
        stopped.extend(_reap_file(state_file))
    return stopped


def _reap_file(state_file: Path) -> list[str]:
    try:
        state = json.loads(state_file.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return []
    runner = _proc_stat(int(state.get("runner_pid", -1)))
    if runner and runner[2] == state.get("runner_start_ticks"):
        return []  # that runner is still alive: its children are its own business
    stopped = []
    for rec in state.get("groups", []):
        pgid, start = int(rec["pgid"]), int(rec["start_ticks"])
        members = [
            pid for pid in group_members(pgid) if (s := _proc_stat(pid)) and s[2] >= start
        ]
        if members:
            stop_group(pgid)
            stopped.append(f"{rec['name']} (process group {pgid})")
    with contextlib.suppress(FileNotFoundError):
        state_file.unlink()
    return stopped
