"""Ports the local runner binds: checked before anything starts, with an error that says who needs it."""

from __future__ import annotations

import socket
import time

from schema.errors import PortInUseError


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR, as servers set it: connections of a stopped server lingering in TIME_WAIT
        # must not read as taken, a listening socket must.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def require_free(ports: dict[str, int], wait: float = 0.0) -> None:
    """Fail with a clear message if any port is taken; ``wait`` gives a just-stopped process time to let go."""
    deadline = time.monotonic() + wait
    while True:
        taken = {who: port for who, port in ports.items() if not port_is_free(port)}
        if not taken or time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    if taken:
        details = ", ".join(f"{port} (needed by {who})" for who, port in taken.items())
        raise PortInUseError(
            f"port{'s' if len(taken) > 1 else ''} already in use on 127.0.0.1: {details}. "
            f"Find the owner with `ss -ltnp 'sport = :{next(iter(taken.values()))}'` and stop it, "
            "or change the port in the catalog entry (local.port)."
        )


def free_port() -> int:
    """A port the kernel considers free right now (for the k6 REST API)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
