"""Portkey 1.15.2 `resilient` against the real fault-injecting mock: its x-portkey-config (retry attempts 1
on 429/500/502/503/504, fallback strategy to the second mock) retries a 500 once on the same target, after
async-retry's 1 s, and sends a request whose retry failed too to the fallback, exactly as the plan's rule
predicts per request id (docs/faults.md, Portkey). As shipped (`defaults`) nothing is retried."""

from __future__ import annotations

from collections import Counter

import httpx
import pytest

from aigw_bench.local.processes import Supervisor
from schema.catalog import load_catalog
from schema.faults import HEALTHY, FaultPlan, load_plan, request_id
from schema.mock import load_mock
from tests.helpers import start_entry, start_mock

pytestmark = pytest.mark.slow

PLAN = FaultPlan.model_validate({"name": "half-500", "seed": 15, "faults": [{"fault": "http_500", "rate": 0.5}]})
N = 6


@pytest.fixture(scope="module")
def mocks(tmp_path_factory, tools_ready):
    with Supervisor() as sup:
        _, primary = start_mock(sup, tmp_path_factory.mktemp("primary"), plan=PLAN)
        _, fallback = start_mock(sup, tmp_path_factory.mktemp("fallback"), port=load_mock().fallback_port,
                                 plan=load_plan("healthy"))
        yield sup, primary, fallback


def drive(mocks, variant: str, tmp_path) -> tuple[Counter, Counter, Counter]:
    """N requests through Portkey's variant; (client statuses, attempts per id on the mock, on the fallback)."""
    sup, primary, fallback = mocks
    for base in (primary, fallback):
        httpx.post(base + "/__aigw/reset", trust_env=False)
    target = load_catalog().get(f"portkey+{variant}")
    proc, base, headers = start_entry(sup, tmp_path, target)
    statuses: Counter = Counter()
    try:
        with httpx.Client(base_url=base, timeout=30, trust_env=False, headers=headers) as client:
            for n in range(N):
                body = {"model": "gpt-4o-mini", "user": request_id(n), "messages": [{"role": "user", "content": "hi"}]}
                statuses[client.post(target.request.path, json=body).status_code] += 1
    finally:
        sup.stop(proc)
    seen = [Counter(a["id"] for a in (httpx.get(b + "/__aigw/requests", trust_env=False).json()["attempts"] or []))
            for b in (primary, fallback)]
    return statuses, seen[0], seen[1]


def test_portkey_resilient_retries_a_500_once_then_falls_back(mocks, tmp_path):
    statuses, first, second = drive(mocks, "resilient", tmp_path)
    ids = [request_id(n) for n in range(N)]
    failed_once = [i for i in ids if PLAN.choose(i, 1) != HEALTHY]
    assert len(failed_once) == 4  # seed 15: 4 of the 6 ids fail first, 2 of them again on their retry
    assert first == Counter({i: 1 if PLAN.choose(i, 1) == HEALTHY else 2 for i in ids})  # one retry per 500
    assert second == Counter({i: 1 for i in failed_once if PLAN.choose(i, 2) != HEALTHY})  # then the fallback
    assert statuses == Counter({200: N})


def test_portkey_as_shipped_passes_each_500_through(mocks, tmp_path):
    statuses, first, second = drive(mocks, "defaults", tmp_path)
    ids = [request_id(n) for n in range(N)]
    assert first == Counter(ids) and second == Counter()
    assert statuses == Counter({500: sum(1 for i in ids if PLAN.choose(i, 1) != HEALTHY),
                                200: sum(1 for i in ids if PLAN.choose(i, 1) == HEALTHY)})
