"""The upstream figures of a faults scenario from the mocks' attempt records (analysis/upstream.py), on
crafted records (no processes; tests/test_resilience.py computes them from real ones)."""

from __future__ import annotations

import pytest

from analysis.upstream import amplification, cancellation, recovery_seconds
from schema.faults import FaultPlan

pytestmark = pytest.mark.pure


def rec(rid, attempt=1, answer="ok", ending="complete", after_ms=0, t_s=0.0):
    return {"id": rid, "attempt": attempt, "answer": answer, "ending": ending, "after_ms": after_ms, "t_s": t_s}


def test_amplification_counts_both_mocks_for_the_ids_the_client_sent():
    primary = [rec("a"), rec("b", answer="http_500"), rec("b", 2), rec("x")]  # x: not a client request
    fallback = [rec("b"), rec("c")]
    a = amplification(["a", "b", "c", "d"], primary, fallback)
    assert (a.requests, a.attempts, a.max, a.unseen) == (4, 5, 3, 1)
    assert a.mean == pytest.approx(1.25)
    with pytest.raises(ValueError, match="no client requests"):
        amplification([], primary)


def test_cancellation_counts_closed_and_running_attempts_with_the_median_time():
    c = cancellation([rec("a", ending="client_closed", after_ms=1000), rec("b", ending="client_closed", after_ms=3000),
                      rec("c", ending="running"), rec("d")])
    assert (c.closed, c.still_running, c.median_after_ms) == (2, 1, 2000.0)
    assert cancellation([rec("a")]).median_after_ms is None


def test_recovery_is_the_first_normal_answer_after_the_outage():
    plan = FaultPlan.model_validate({"name": "o", "faults": [{"fault": "down", "rate": 1, "from_s": 4, "to_s": 7}]})
    records = [rec("a", t_s=3.0), rec("b", answer="down", ending="closed_by_mock", t_s=6.9),
               rec("c", answer="http_500", t_s=7.1), rec("d", t_s=7.25), rec("e", t_s=8.0)]
    assert recovery_seconds(plan, records) == pytest.approx(0.25)
    assert recovery_seconds(plan, records[:3]) is None
    assert recovery_seconds(FaultPlan(name="none"), records) is None
