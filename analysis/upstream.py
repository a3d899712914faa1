"""What the upstream saw of a faults scenario: the mocks' attempt records (``GET /__aigw/requests`` of the
mock and of its healthy second instance, docs/faults.md) turned into the figures the faults table reports.

- amplification: upstream attempts per client request (both mocks together), mean and max over the
  request ids the client sent;
- cancellation: of the attempts still being answered when their client (the gateway, or k6 directly)
  closed, how many and after how long (``ending == "client_closed"``, ``after_ms``);
- recovery: after a ``down`` window, the first attempt answered normally, in seconds after the
  window's end (the upstream's view of the gateway's first success).

Pure functions over the records; analysis/faults.py applies them to each scenario's ``upstream.json``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from schema.faults import HEALTHY, FaultPlan


@dataclass(frozen=True)
class Amplification:
    requests: int  # ids the client sent
    attempts: int  # attempts the upstream received for them
    mean: float
    max: int
    unseen: int  # ids the client sent that never reached the upstream


def amplification(client_ids: Iterable[str], *records: list[dict[str, Any]]) -> Amplification:
    """Attempts per client request over ``records`` of one or more mocks (the mock and its fallback). Attempts
    for ids the client did not send (another scenario's, a health check) are not counted."""
    ids = list(dict.fromkeys(client_ids))
    if not ids:
        raise ValueError("no client requests: amplification is undefined")
    sent = set(ids)
    per_id = Counter(r["id"] for recs in records for r in recs if r["id"] in sent)
    total = sum(per_id.values())
    return Amplification(requests=len(ids), attempts=total, mean=total / len(ids),
                         max=max(per_id.values(), default=0), unseen=sum(1 for i in ids if i not in per_id))


@dataclass(frozen=True)
class Cancellation:
    closed: int  # attempts whose client closed before the answer was complete
    still_running: int  # attempts the upstream never saw end
    median_after_ms: float | None


def cancellation(records: list[dict[str, Any]]) -> Cancellation:
    closed = sorted(r["after_ms"] for r in records if r["ending"] == "client_closed")
    running = sum(1 for r in records if r["ending"] == "running")
    median = None
    if closed:
        mid = len(closed) // 2
        median = float(closed[mid]) if len(closed) % 2 else (closed[mid - 1] + closed[mid]) / 2
    return Cancellation(closed=len(closed), still_running=running, median_after_ms=median)


def recovery_seconds(plan: FaultPlan, records: list[dict[str, Any]]) -> float | None:
    """Seconds from the end of the plan's last ``down`` window to the first attempt answered normally after
    it; None without such a window or without an attempt after it."""
    ends = [f.to_s for f in plan.faults if f.fault == "down" and f.to_s is not None]
    if not ends:
        return None
    end = max(ends)
    after = [r["t_s"] for r in records if r["t_s"] >= end and r["answer"] == HEALTHY and r["ending"] == "complete"]
    return round(min(after) - end, 3) if after else None
