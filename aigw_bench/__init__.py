"""aigw-bench: a reproducible benchmark rig for AI gateways."""

__version__ = "0.1.0"
