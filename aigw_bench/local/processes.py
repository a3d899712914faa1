"""Child processes that never outlive the benchmark.

Every child starts in a session and process group of its own and is stopped by that group id
(SIGTERM, then SIGKILL), never by name. The group takes along whatever the child forked (LiteLLM's
workers, nginx's workers). Three layers keep orphans from surviving:

1. :class:`Supervisor` stops every group it started when its ``with`` block ends, on success,
   error, timeout or Ctrl-C (SIGINT/SIGTERM/SIGHUP become exceptions, see :func:`signals_as_exceptions`);
2. each child runs under a guard (:mod:`aigw_bench.local.guard`, the leader of its group): a child
   subreaper watching the runner through a pidfd, which kills the child and everything it forked
   (nginx's workers too) the moment the runner's process is gone, however it died;
3. the groups are recorded in a state file; :func:`reap_stale_groups` stops those left by a runner
   whose guards were killed with it, checking start times so that a recycled process id is never
   touched.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from analysis.logtext import terminal_lines

GUARD = Path(__file__).with_name("guard.py")
GUARD_START_TIMEOUT = 60.0  # the guard reports within ~22 ms (median); a machine under load may take longer


def _child_setup(cpus: Sequence[int] | None) -> None:
    """Runs in the guard between fork and exec (the guard's child inherits it)."""
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
    """A child running in its own process group under its guard, its output going to ``log_path``.
    ``popen`` is the guard's: it exits as the child does (the same code or signal)."""

    name: str
    argv: list[str]
    popen: subprocess.Popen
    log_path: Path
    cpus: list[int] | None
    stop_timeout: float
    pid: int  # the program's own process id
    started_at: float = field(default_factory=time.time)

    @property
    def guard_pid(self) -> int:
        return self.popen.pid

    @property
    def pgid(self) -> int:
        return self.popen.pid  # start_new_session: the guard leads the group; its child stays in it

    def poll(self) -> int | None:
        return self.popen.poll()

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def wait(self, timeout: float | None = None) -> int:
        return self.popen.wait(timeout)

    def log_tail(self, lines: int = 20) -> list[str]:
        """The last lines of the log as a terminal showed them (no colours, no spinner frames)."""
        try:
            with self.log_path.open("rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - 64 * 1024))
                text = fh.read().decode(errors="replace")
        except FileNotFoundError:
            return []
        return [line for line in terminal_lines(text) if line][-lines:]

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


def _guard_report(name: str, argv: Sequence[str], guard: subprocess.Popen, status_r: int) -> int:
    """The pid of the program the guard started; FileNotFoundError (as Popen raises it) if it could not."""
    with os.fdopen(status_r, "rb") as fh:
        ready, _, _ = select.select([fh], [], [], GUARD_START_TIMEOUT)
        line = fh.readline().decode().split(maxsplit=2) if ready else []
    if line[:1] == ["ok"]:
        return int(line[1])
    stop_group(guard.pid, 5)
    guard.wait()
    if line[:1] == ["error"]:
        code, message = int(line[1]), line[2].strip() if len(line) > 2 else ""
        error = FileNotFoundError if code == errno.ENOENT else OSError
        raise error(f"{name}: cannot start {argv[0]!r}: {message}")
    raise OSError(f"{name}: its guard did not start it (guard exit code {guard.returncode})")


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
        status_r, status_w = os.pipe()
        with log_path.open("ab") as log:
            try:
                popen = subprocess.Popen(
                    [sys.executable, "-I", "-S", str(GUARD), str(os.getpid()), str(status_w), "--", *argv],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=full_env,
                    cwd=cwd,
                    start_new_session=True,
                    pass_fds=(status_w,),
                    preexec_fn=lambda: _child_setup(cpus),
                )
            finally:
                os.close(status_w)
        pid = _guard_report(name, argv, popen, status_r)
        proc = ManagedProcess(name, list(argv), popen, log_path, list(cpus) if cpus else None, stop_timeout, pid)
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
