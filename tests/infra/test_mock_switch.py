"""Switching a deployed stack's mock (`pulumi config set mock wiremock && pulumi up`, and back), previewed:
the program run under Pulumi's mocks with each mock, and the update from one graph to the other planned
as the engine plans it (tests/infra/preview.py). Both mocks use the same Namespace (`mock`) and NLB
Service (`mock/mock-llm-nlb`); each must keep one identity across the switch (updated in place), no
Kubernetes object may be created while an old resource still holds it (pulumi-kubernetes refuses:
AlreadyExists), and `pulumi up` must not wait for the new mock, which cannot start until the old one,
holding the mock node's CPU, is deleted at the update's end."""

from __future__ import annotations

import pytest

from components.mock_args import FAST_MOCK_TYPE, WIREMOCK_TYPE
from tests.infra.conftest import Program
from tests.infra.preview import blocked_creates, conflicts, k8s_identity, plan_update

pytestmark = pytest.mark.pure

NAMESPACE = "kubernetes:core/v1:Namespace"
SERVICE = "kubernetes:core/v1:Service"


def registrations(p: Program) -> list[dict]:
    return p.result["registrations"]


def urn(p: Program, typ: str, name: str) -> str:
    return next(r["urn"] for r in registrations(p) if r["type"] == typ and r["name"] == name)


@pytest.fixture(scope="module")
def fast(programs) -> Program:
    return programs["kong"]


@pytest.mark.parametrize("direction", ["fast to wiremock", "wiremock to fast"])
def test_switching_the_mock_creates_no_object_that_still_exists(fast, wiremock_kong, direction):
    old, new = (fast, wiremock_kong) if direction == "fast to wiremock" else (wiremock_kong, fast)
    assert old.exports["mock_name"] != new.exports["mock_name"]
    plan = plan_update(registrations(old), registrations(new))
    assert conflicts(registrations(old), registrations(new), plan) == []
    # The shared Namespace and NLB are the same objects, updated in place under the other component.
    for typ, name, identity in ((NAMESPACE, "mock-ns", ("v1", "Namespace", None, "mock")),
                                (SERVICE, "mock-llm-nlb", ("v1", "Service", "mock", "mock-llm-nlb"))):
        before, after = urn(old, typ, name), urn(new, typ, name)
        assert before != after  # different parent type in the URN ...
        assert plan.matched[after] == before  # ... found under the component's alias
        assert k8s_identity(next(r for r in registrations(new) if r["urn"] == after))[:4] == identity
    assert plan.matched[urn(new, new_type(new), "mock")] == urn(old, new_type(old), "mock")
    # Only the mocks' own workloads and files change; nothing else is created or deleted.
    created = {r["name"] for r in registrations(new) if r["urn"] in plan.creates}
    deleted = {r["name"] for r in registrations(old) if r["urn"] in plan.deletes}
    # the fast mock's second, healthy instance (the faults suite's fallback) comes and goes with it
    mine = {"fast": {"mock-files", "mock-deployment", "mock-service", "mock-fallback-files",
                     "mock-fallback-deployment", "mock-fallback-service"},
            "wiremock": {"mock-mappings", "mock-release"}}
    assert created == mine[new.exports["mock_name"]] and deleted == mine[old.exports["mock_name"]]
    # The new mock's pod waits for the old one's node: pulumi up does not wait for it.
    assert blocked_creates(registrations(old), registrations(new), plan) == []


def new_type(p: Program) -> str:
    return FAST_MOCK_TYPE if p.exports["mock_name"] == "fast" else WIREMOCK_TYPE


def test_the_preview_finds_the_conflict_when_the_shared_objects_have_no_alias(fast, wiremock_kong):
    """The check itself: the same switch with the components' aliases taken out (as before this fix) plans
    the Namespace and the NLB as new objects, created while the old ones exist."""
    stripped = [{**r, "aliases": [a for a in r["aliases"] if a.get("type") not in (FAST_MOCK_TYPE, WIREMOCK_TYPE)]}
                for r in registrations(wiremock_kong)]
    plan = plan_update(registrations(fast), stripped)
    found = conflicts(registrations(fast), stripped, plan)
    assert len(found) == 2
    assert any("('v1', 'Namespace', None, 'mock')" in f for f in found)
    assert any("('v1', 'Service', 'mock', 'mock-llm-nlb')" in f for f in found)


def test_the_preview_finds_a_new_mock_awaited_on_a_node_the_old_one_holds(fast, wiremock_kong):
    awaited = [{**r, "inputs": {**(r["inputs"] or {}), "skipAwait": False}} if r["name"] == "mock-release" else r
               for r in registrations(wiremock_kong)]
    plan = plan_update(registrations(fast), awaited)
    assert [p.split(" ")[0] for p in blocked_creates(registrations(fast), awaited, plan)] == \
        [urn(wiremock_kong, "kubernetes:helm.sh/v3:Release", "mock-release")]


def test_a_fresh_stack_still_waits_for_its_mock(fast, wiremock_kong):
    """Neither mock's workload is awaited by `pulumi up`; the NLB Service in front of it is, on creation
    (pulumi-kubernetes waits for ready endpoints), and it depends on the workload."""
    for p in (fast, wiremock_kong):
        nlb = next(r for r in p.resources if r["type"] == SERVICE and r["name"] == "mock-llm-nlb")
        workload = "kubernetes:apps/v1:Deployment::mock-deployment" if p.exports["mock_name"] == "fast" \
            else "kubernetes:helm.sh/v3:Release::mock-release"
        assert workload in nlb["depends_on"]
        assert (nlb["inputs"].get("metadata") or {}).get("annotations", {}).get("pulumi.com/skipAwait") is None
