"""Errors the command line turns into a clear message and a non-zero exit, without a traceback."""


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
