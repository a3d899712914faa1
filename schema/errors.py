"""Errors the command line turns into a clear message and a non-zero exit, without a traceback."""

import errno

# A write refused by the disk itself (full, over quota, read-only): the run and the report stop writing
# and say where, rather than crash; every other OSError is a bug or a missing file and is raised.
DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


def is_disk_error(exc: BaseException) -> bool:
    """A write refused because the disk is full or read-only."""
    return isinstance(exc, OSError) and exc.errno in DISK_ERRNOS


class BenchError(Exception):
    """Base class: the message is written for the person at the terminal."""


class ConfigError(BenchError):
    """Bad input (catalog, scenario parameters, CLI arguments) found before anything starts."""


class SetupError(BenchError):
    """A tool the benchmark needs is missing or could not be installed."""


class PortInUseError(BenchError):
    """A port the benchmark needs is taken by another process."""


class ResultsError(BenchError):
    """A results directory or file is missing, unreadable or cut short."""


class CloudError(BenchError):
    """The cloud stage cannot go on: missing CLI, credentials, stack, output, runner or results."""
