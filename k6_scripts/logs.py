"""What the project's k6 scripts write into k6's log for the engines to read back
(k6_scripts/templates/paired.js.j2): the overhead step's requests, for load generators that cannot
hand back k6's per-request CSV, and why a steady warm-up stopped.

k6 writes a script's console.log as a logfmt line: ``time="..." level=info msg="<text>" source=console``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PAIRS = re.compile(r'msg="aigw-pairs ([dtDT0-9.:]+)"')
STEADY = re.compile(r'msg="aigw-warmup steady after ([0-9.]+) s; per-second medians \(ms\): ([0-9.,]*)"')
# k6 v1.1.0 errext/exitcodes: ScriptAborted, what exec.test.abort() ends a run with.
EXIT_SCRIPT_ABORTED = 108


@dataclass(frozen=True)
class LoggedRequest:
    side: str  # "direct" or "target"
    settle: bool  # among the first requests of its block (the carry-over)
    ms: float


def logged_requests(log: str) -> list[LoggedRequest]:
    """Every request the overhead script logged (``aigw-pairs d0.812:t0.934:D0.911...``), in order."""
    out = []
    for batch in PAIRS.findall(log):
        for item in batch.split(":"):
            code, ms = item[0], float(item[1:])
            out.append(LoggedRequest("target" if code in "tT" else "direct", code.isupper(), ms))
    return out


@dataclass(frozen=True)
class Steady:
    seconds: float  # how long the warm-up lasted until the target was steady
    medians_ms: list[float]  # the per-second medians through the target it saw


def steady_warmup(log: str) -> Steady | None:
    """Why a steady warm-up stopped early (None: it did not, it ran its longest)."""
    match = STEADY.search(log)
    if match is None:
        return None
    medians = [float(m) for m in match.group(2).split(",") if m]
    return Steady(float(match.group(1)), medians)
