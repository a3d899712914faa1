"""Ctrl-C, SIGTERM and SIGHUP as exceptions, so that a run unwinds the same way whatever stops it:
every ``with`` block (process supervisors, TestRuns, remote commands) cleans up on the way out."""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Callable, Iterator
from typing import NoReturn


class Interrupted(BaseException):
    """SIGTERM or SIGHUP arrived; treated like Ctrl-C (KeyboardInterrupt)."""


# What stops a run: catch these together, never one without the other.
STOP = (KeyboardInterrupt, Interrupted)


def stop_reason(exc: BaseException) -> str:
    """How an interruption is recorded: the signal's name, or KeyboardInterrupt for Ctrl-C."""
    return type(exc).__name__ if isinstance(exc, KeyboardInterrupt) else str(exc)


@contextlib.contextmanager
def signals_as_exceptions() -> Iterator[None]:
    """SIGTERM and SIGHUP raise :class:`Interrupted` (SIGINT already raises KeyboardInterrupt)."""

    def _raise(signum: int, _frame: object) -> None:
        raise Interrupted(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, _raise) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def exit_with(main: Callable[[], int]) -> NoReturn:
    """Run a script's ``main`` and exit with its code; SIGTERM/SIGHUP unwind like Ctrl-C, so every process
    it started is stopped by its process group, and an interruption exits with one line, not a traceback."""
    try:
        with signals_as_exceptions():
            sys.exit(main())
    except STOP as exc:
        sys.exit(f"interrupted ({exc or 'SIGINT'}): every process this started was stopped")
