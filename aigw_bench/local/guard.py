"""The guard between the runner and each process it starts: every process of the rig dies with the
runner, however the runner dies (SIGKILL, the OOM killer, a crash), the mock's workers included.

``PR_SET_PDEATHSIG`` alone does not do it: it belongs to one process and its children do not inherit
it, so nginx's workers (children of its master) outlived a runner killed with SIGKILL and kept the
mock's port. Each process the :class:`aigw_bench.local.processes.Supervisor` starts is therefore the
child of a guard that

1. is a child subreaper (``PR_SET_CHILD_SUBREAPER``): whatever its child forks stays in its subtree,
   even when the process in between dies (orphans are re-parented to the guard, not to init), so
   nothing escapes it by forking twice or leaving its process group;
2. watches the runner through a pidfd (``pidfd_open``, Linux 5.3+; polling its parent id every 0.2 s
   where that is missing), which becomes readable when the runner's process is gone, whatever ended
   it; it checks that the runner is still its parent before starting anything, so a runner that died
   while the guard started is not missed;
3. then kills its whole subtree with SIGKILL (found through /proc, again until nothing is left) and exits;
4. otherwise stays out of the way: it ignores the signals sent to its process group (its child gets
   them too), and when its child exits it kills what the child left behind (the orphans of a dead
   master) and exits the same way (the same code, or the same signal).

The runner's process group is never the guard's (it leads a session of its own), so a Ctrl-C at the
terminal reaches the runner alone, which stops everything in order.

Run as ``python -I -S guard.py RUNNER_PID STATUS_FD -- ARGV...``: the standard library only, no
import of the project, so a start takes ~22 ms (median of 30). It writes one line on STATUS_FD:
``ok PID`` once ARGV is executing as PID, or ``error ERRNO MESSAGE`` if it could not be started.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import select
import signal
import sys
import time

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
# What a process group receives from the runner or a terminal: the child acts on it, the guard waits.
GROUP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2,
                 signal.SIGPIPE)
POLL_SECONDS = 0.2  # without pidfds: how often the runner's presence is checked


def _prctl(option: int, value: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), f"prctl({option})")


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):  # Python or kernel without pidfds: poll instead
        return None


def _live_descendants(root: int) -> list[int]:
    """Every live process under ``root`` (its children, theirs, ...), from the parent ids in /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()
        if fields[0] not in (b"Z", b"X"):
            children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _reap(keep: int | None) -> None:
    """Collect the guard's exited children (orphans re-parented to it), except ``keep``'s status."""
    while True:
        try:
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return
        if info is None or info.si_pid == keep:
            return
        with contextlib.suppress(ChildProcessError):
            os.waitpid(info.si_pid, 0)


def kill_subtree(me: int, keep: int | None = None, limit: float = 5.0) -> None:
    """SIGKILL everything under the guard until nothing is left (a process may fork while it is killed)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        pids = _live_descendants(me)
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)
        _reap(keep)
    _reap(keep)


def _exit_like(status: int) -> None:
    """Exit as the child did: its code, or killed by its signal (so the runner sees the same status)."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # the child's crash, not a core file of the guard
        with contextlib.suppress(OSError, ValueError):  # SIGKILL and SIGSTOP have no handler to reset
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [sig])
        os.kill(os.getpid(), sig)
        os._exit(128 + sig)  # a signal whose default is not to terminate
    os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 1)


def _start(argv: list[str], guard: int) -> int:
    """Fork and exec ``argv``; returns its pid, or raises the OSError exec met (through a CLOEXEC pipe)."""
    r, w = os.pipe()  # closed by a successful exec; carries the errno otherwise
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            for sig in GROUP_SIGNALS:
                signal.signal(sig, signal.SIG_DFL)  # dispositions set to ignore survive exec
            _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # and the child dies with its guard, too
            if os.getppid() != guard:
                os._exit(1)
            os.execvp(argv[0], argv)
        except OSError as exc:
            os.write(w, str(exc.errno or 0).encode())
        os._exit(127)
    os.close(w)
    with os.fdopen(r, "rb") as fh:
        failed = fh.read()
    if failed:
        os.waitpid(pid, 0)
        code = int(failed)
        raise OSError(code, os.strerror(code), argv[0])
    return pid


def _wait(child: int, runner: int, runner_fd: int | None) -> int | None:
    """The child's wait status, or None if the runner went first."""
    child_fd = _pidfd(child)
    poller = select.poll()
    for fd in (runner_fd, child_fd):
        if fd is not None:
            poller.register(fd, select.POLLIN)
    while True:
        if runner_fd is not None and child_fd is not None:
            ready = {fd for fd, _ in poller.poll(1000)}
        else:
            time.sleep(POLL_SECONDS)
            ready = set()
        if (runner_fd in ready) or (runner_fd is None and os.getppid() != runner):
            return None
        done, status = os.waitpid(child, os.WNOHANG)
        if done:
            return status
        _reap(child)


def main(args: list[str]) -> None:
    runner, status_fd, sep, *argv = args
    if sep != "--" or not argv:
        sys.exit("usage: guard.py RUNNER_PID STATUS_FD -- ARGV...")
    runner_pid, me = int(runner), os.getpid()
    report = os.fdopen(int(status_fd), "w")
    for sig in GROUP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    runner_fd = _pidfd(runner_pid)
    if os.getppid() != runner_pid:  # the runner died while the guard started: start nothing
        os._exit(1)
    try:
        child = _start(argv, me)
    except OSError as exc:
        report.write(f"error {exc.errno} {exc.strerror}\n")
        report.close()
        os._exit(127)
    report.write(f"ok {child}\n")
    report.close()
    status = _wait(child, runner_pid, runner_fd)
    if status is None:  # the runner is gone: so is everything it started
        kill_subtree(me)
        os._exit(1)
    kill_subtree(me, keep=child)  # what the child left behind (orphans of a dead master)
    _exit_like(status)


if __name__ == "__main__":
    main(sys.argv[1:])
