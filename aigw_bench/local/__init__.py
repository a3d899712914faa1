"""The local target: benchmark processes on this machine."""
