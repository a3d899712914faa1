"""A gateway's retry policy against the real fault-injecting mock: nginx as shipped and nginx `resilient`
(one retry, proxy_next_upstream to a backup server, the second mock) in front of the fast mock serving a
plan of 429s, 500s, 503s, resets and malformed answers, the second mock healthy. Every attempt is counted
by the mocks per request id, so the amplification (upstream attempts per client request) is known
exactly in advance from the plan's rule, and measured exactly.
"""

from __future__ import annotations

import json
from collections import Counter

import httpx
import pytest

from aigw_bench.local.processes import Supervisor
from analysis.upstream import amplification
from schema.catalog import load_catalog
from schema.faults import HEALTHY, FaultPlan, load_plan, request_id
from schema.mock import load_contract, load_mock
from tests.helpers import start_entry, start_mock

pytestmark = pytest.mark.slow

PLAN = FaultPlan.model_validate({"name": "retryable", "seed": 3, "faults": [
    {"fault": "http_429", "rate": 0.1}, {"fault": "http_500", "rate": 0.1}, {"fault": "http_503", "rate": 0.1},
    {"fault": "reset", "rate": 0.1}, {"fault": "malformed", "rate": 0.05}]})
N = 300
# What nginx `resilient` passes to its backup: proxy_next_upstream error timeout http_429 http_500 ... .
RETRIED = {"http_429", "http_500", "http_503", "reset"}


@pytest.fixture(scope="module")
def mocks(tmp_path_factory, tools_ready):
    mock = load_mock()
    with Supervisor() as sup:
        _, primary = start_mock(sup, tmp_path_factory.mktemp("primary"), plan=PLAN)
        _, fallback = start_mock(sup, tmp_path_factory.mktemp("fallback"), port=mock.fallback_port,
                                 plan=load_plan("healthy"))
        yield sup, primary, fallback


def attempts(base: str) -> list[dict]:
    doc = httpx.get(base + "/__aigw/requests", trust_env=False).json()
    assert doc["lost"] == 0
    return doc["attempts"] or []


def drive(mocks, variant: str, tmp_path) -> tuple[dict[str, int], list[dict], list[dict]]:
    sup, primary, fallback = mocks
    for base in (primary, fallback):
        httpx.post(base + "/__aigw/reset", trust_env=False)
    target = load_catalog().get(f"nginx+{variant}")
    proc, base, _ = start_entry(sup, tmp_path, target)
    statuses = {}
    try:
        with httpx.Client(base_url=base, timeout=10, trust_env=False) as client:
            for n in range(N):
                rid = request_id(n)
                resp = client.post(target.request.path, json={"model": "gpt-4o-mini", "user": rid,
                                                              "messages": [{"role": "user", "content": "hi"}]})
                statuses[rid] = resp.status_code
                if PLAN.choose(rid, 1) == "malformed":  # passed on as a success, the JSON still broken
                    with pytest.raises(json.JSONDecodeError):
                        json.loads(resp.text)
                elif resp.status_code == 200:
                    assert resp.text == load_contract().completion_body()
    finally:
        sup.stop(proc)
    return statuses, attempts(primary), attempts(fallback)


def test_nginx_resilient_retries_each_retryable_fault_once_on_the_backup(mocks, tmp_path):
    statuses, first, second = drive(mocks, "resilient", tmp_path)
    planned = {request_id(n): PLAN.choose(request_id(n), 1) for n in range(N)}
    assert Counter(r["id"] for r in first) == Counter(list(planned))  # one attempt per request on the mock
    assert {r["id"]: r["answer"] for r in first} == planned
    retried = {rid for rid, answer in planned.items() if answer in RETRIED}
    assert Counter(r["id"] for r in second) == Counter(list(retried))  # and one more on the backup, exactly there
    assert all(r["answer"] == HEALTHY for r in second)
    # Amplification: upstream attempts per client request, exactly as the plan's rule predicts (431 / 300 for
    # seed 3: every 429, 500, 503 and reset retried once), as the analysis computes it.
    amp = amplification(planned, first, second)
    assert (amp.attempts, amp.max, amp.unseen) == (N + len(retried), 2, 0) and len(retried) > N // 4
    assert set(statuses.values()) == {200}  # every retryable fault hidden from the client


def test_nginx_as_shipped_passes_each_fault_through_and_never_retries_a_post(mocks, tmp_path):
    statuses, first, second = drive(mocks, "defaults", tmp_path)
    planned = {request_id(n): PLAN.choose(request_id(n), 1) for n in range(N)}
    assert Counter(r["id"] for r in first) == Counter(list(planned)) and second == []
    amp = amplification(planned, first, second)
    assert (amp.mean, amp.max) == (1.0, 1)  # as shipped: nothing retried
    seen = {"http_429": 429, "http_500": 500, "http_503": 503, "reset": 502, "malformed": 200, HEALTHY: 200}
    assert statuses == {rid: seen[answer] for rid, answer in planned.items()}

