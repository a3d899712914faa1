"""HTTP probes: is a process ready, and does a target really serve the benchmark's request?"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import httpx

from aigw_bench.local.processes import ManagedProcess


class ProcessExited(Exception):
    def __init__(self, name: str, code: int | None, tail: list[str]):
        super().__init__(f"{name} exited with code {code} before it became ready")
        self.code = code
        self.tail = tail


class NotReady(Exception):
    def __init__(self, name: str, waited: float, last: str):
        super().__init__(f"{name} did not become ready within {waited:.0f} s (last probe: {last})")
        self.waited = waited
        self.last = last


def _request(url: str, method: str = "GET", body: bytes | None = None,
             headers: dict[str, str] | None = None, timeout: float = 5.0) -> tuple[int, bytes]:
    """One request, any status; raises httpx.HTTPError when there is no answer (refused, timed out).
    No proxy from the environment: every target is on this machine."""
    resp = httpx.request(method, url, content=body, headers=headers, timeout=timeout, trust_env=False)
    return resp.status_code, resp.content


def wait_ready(name: str, url: str, *, method: str = "GET", status: int = 200, timeout: float = 60.0,
               proc: ManagedProcess | None = None, interval: float = 0.25) -> float:
    """Poll ``url`` until it answers ``status``; returns the seconds waited.

    Raises :class:`ProcessExited` as soon as ``proc`` dies, :class:`NotReady` on timeout.
    """
    start = time.monotonic()
    last = "no answer yet"
    while True:
        if proc is not None and not proc.alive:
            raise ProcessExited(name, proc.poll(), proc.log_tail())
        try:
            code, _ = _request(url, method, timeout=2.0)
            if code == status:
                return time.monotonic() - start
            last = f"HTTP {code}"
        except httpx.HTTPError as exc:
            last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if time.monotonic() - start >= timeout:
            raise NotReady(name, timeout, last)
        time.sleep(interval)


def is_wellformed_completion(body: bytes, stream: bool) -> bool:
    """The same acceptance rule as the k6 script's check (status aside)."""
    text = body.decode(errors="replace")
    try:
        if not stream:
            doc = json.loads(text)
            return doc.get("object") == "chat.completion" and isinstance(doc["choices"][0]["message"]["content"], str)
        if "data: [DONE]" not in text:
            return False
        first = next(line for line in text.splitlines() if line.startswith("data: {"))
        doc = json.loads(first[len("data: "):])
        return doc.get("object") == "chat.completion.chunk" and "delta" in doc["choices"][0]
    except (ValueError, KeyError, IndexError, TypeError, StopIteration):
        return False


@dataclass(frozen=True)
class SmokeResult:
    ok: bool
    status: int | None
    snippet: str
    seconds: float
    error: str | None = None


def smoke_request(url: str, body: str, headers: dict[str, str], stream: bool, timeout: float = 30.0) -> SmokeResult:
    """Send the benchmark's own request once; the evidence if the target cannot serve it."""
    start = time.monotonic()
    try:
        status, raw = _request(url, "POST", body.encode(), {"Content-Type": "application/json", **headers}, timeout)
    except httpx.HTTPError as exc:
        return SmokeResult(False, None, "", time.monotonic() - start, f"{type(exc).__name__}: {exc}")
    ok = status == 200 and is_wellformed_completion(raw, stream)
    return SmokeResult(ok, status, raw[:400].decode(errors="replace"), time.monotonic() - start)
