"""Ctrl-C, SIGTERM and SIGHUP as exceptions, so that a run unwinds the same way whatever stops it:
every ``with`` block (process supervisors, TestRuns, remote commands) cleans up on the way out.

The first signal stops the run. What follows (the processes stopped, the outcome, the manifest and
the report written) must not be cut short by the next impatient Ctrl-C: a second one only says that
the run is stopping; a third stops the stopping too, and whatever was not written is named then.
A full or read-only results disk stops a run the same way (:class:`DiskFault`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn


class Interrupted(BaseException):
    """SIGTERM or SIGHUP arrived; treated like Ctrl-C (KeyboardInterrupt)."""


class DiskFault(Interrupted):
    """The results' file system is full or read-only: the run stops as if interrupted, keeps what is on
    disk, and names the path."""

    def __init__(self, path: Path | str, problem: str):
        super().__init__(f"{problem}: {path}")
        self.path = Path(path)
        self.problem = problem


# What stops a run: catch these together, never one without the other.
STOP = (KeyboardInterrupt, Interrupted)

# Signals after the first that only say the run is stopping; the one after them stops the stopping.
PATIENT_SIGNALS = 1
STOPPING_NOTE = (b"\naigw-bench: already stopping: writing what was measured and its report. "
                 b"Ctrl-C once more to quit at once (what is not written then is named).\n")


def stop_reason(exc: BaseException) -> str:
    """How an interruption is recorded: the signal's name, or what a disk fault says."""
    return "SIGINT (Ctrl-C)" if isinstance(exc, KeyboardInterrupt) else str(exc)


class _Stopper:
    """The handler of SIGINT, SIGTERM and SIGHUP while a run (and the report after it) goes on."""

    def __init__(self) -> None:
        self.received = 0  # signals since the run began stopping (a disk fault counts as the first)

    def __call__(self, signum: int, _frame: object) -> None:
        self.received += 1
        if 1 < self.received <= 1 + PATIENT_SIGNALS:
            os.write(2, STOPPING_NOTE)  # not print(): this runs between any two bytecodes of the main thread
            return
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise Interrupted(signal.Signals(signum).name)

    def stopping(self) -> None:
        """The run stops for another reason (a disk fault): the next Ctrl-C is already a second one."""
        self.received = max(self.received, 1)


_active: _Stopper | None = None


@contextlib.contextmanager
def signals_as_exceptions() -> Iterator[None]:
    """SIGINT raises KeyboardInterrupt and SIGTERM/SIGHUP :class:`Interrupted`, once; see the module's
    docstring for the next ones. Nested blocks share the outer one's count; outside the main thread
    (a stack of ``cloud matrix``) the main thread's handlers stay as they are."""
    global _active
    if _active is not None or threading.current_thread() is not threading.main_thread():
        yield
        return
    _active = _Stopper()
    previous = {sig: signal.signal(sig, _active) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _active = None


def run_is_stopping() -> None:
    """Tell the signal handler that the run stops already (a disk fault, not a signal)."""
    if _active is not None:
        _active.stopping()


def exit_with(main: Callable[[], int]) -> NoReturn:
    """Run a script's ``main`` and exit with its code; SIGTERM/SIGHUP unwind like Ctrl-C, so every process
    it started is stopped by its process group, and an interruption exits with one line, not a traceback."""
    try:
        with signals_as_exceptions():
            sys.exit(main())
    except STOP as exc:
        sys.exit(f"interrupted ({exc or 'SIGINT'}): every process this started was stopped")
