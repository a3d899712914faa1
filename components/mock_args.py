"""What every mock component takes and gives (components/fast_mock.py, components/wiremock_mock.py):
its arguments, the outputs the rest of the program reads, and the settings both put on their pods.

Both serve the bytes of ``mock_llm/contract.json`` behind an internal NLB that admits only the VPC,
with requests equal to limits on the mock pool.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import pulumi
import pulumi_kubernetes as k8s

from schema.cloud import MockCloudSpec
from schema.mock import MockDefinition, PacingProfile

# The namespace label that makes the AWS Load Balancer Controller add a readiness gate to new pods
# of an `ip`-target NLB: such a pod is Ready only once its target is healthy in the NLB's target
# group (kubernetes-sigs/aws-load-balancer-controller v3.5.0, docs/deploy/pod_readiness_gate.md).
READINESS_GATE_LABEL = {"elbv2.k8s.aws/pod-readiness-gate-inject": "enabled"}

# The mock components' type tokens (WireMock's predates the fast mock). Switching a deployed stack's
# `mock` replaces one component by the other, and both make the same Namespace and NLB Service: each
# component is aliased to the other types, so that Pulumi's engine finds the old component under the
# alias and, through it, its children of the same name and type (pulumi/pulumi
# pkg/resource/deploy/step_generator.go: generateAliases, inheritedChildAlias). The Namespace and the
# NLB are then updated in place. Without it the engine creates the new ones while the old still exist
# (deletes come after the program's last registration) and pulumi-kubernetes >= 4.29 refuses to
# create an existing object (AlreadyExists), or, with upsertExistingObjects, the old Namespace's
# delete takes the new mock with it. tests/infra/test_mock_switch.py previews both switches.
FAST_MOCK_TYPE = "aigw-bench:index:FastMock"
WIREMOCK_TYPE = "aigw-bench:index:MockLlm"
MOCK_TYPES = (FAST_MOCK_TYPE, WIREMOCK_TYPE)
# On the mock pool the mock takes the node's allocatable CPU, so during a switch the new mock's pod
# cannot start until the old one is deleted, after the update's last registration: pulumi up must not
# wait for the new workload. Readiness is still awaited on a fresh stack: creating the NLB Service waits
# for ready endpoints (pulumi-kubernetes provider/pkg/await/service.go); an updated Service is not
# awaited (awaiters.go: no update awaiter for v1/Service), and `cloud run` waits for the mock itself.
SKIP_AWAIT = {"pulumi.com/skipAwait": "true"}


def switchable(own_type: str, opts: pulumi.ResourceOptions | None) -> pulumi.ResourceOptions:
    """``opts`` plus aliases to the other mock components' types (same name, same parent)."""
    aliases = [pulumi.Alias(type_=t) for t in MOCK_TYPES if t != own_type]
    return pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(aliases=aliases))


def mock_namespace(name: str, namespace: str, parent: pulumi.Resource,
                   provider: pulumi.ProviderResource) -> k8s.core.v1.Namespace:
    """The mock's namespace, the same object whichever mock runs in it (``<name>-ns``): its pods get the
    load balancer controller's readiness gate."""
    return k8s.core.v1.Namespace(f"{name}-ns", metadata={"name": namespace, "labels": READINESS_GATE_LABEL},
                                 opts=pulumi.ResourceOptions(parent=parent, provider=provider))


@dataclass(frozen=True)
class MockArgs:
    mock: MockDefinition
    spec: MockCloudSpec
    profile: PacingProfile  # the pacing profile the mock starts with
    cpu: float
    memory_gib: float
    provider: k8s.Provider
    lb_controller: pulumi.Resource
    source_ranges: Sequence[str]  # who may call its NLB: the VPC CIDR
    cluster_ready: Sequence[pulumi.Resource]  # node groups and cluster DNS


class DeployedMock(Protocol):
    """What the rest of the program (and the stack's outputs) need from a mock component."""

    url: pulumi.Output[str]  # its internal NLB, for the k6 runner
    cluster_url: str  # in-cluster, for the gateway
    control: dict[str, Any] | None  # how `cloud run` switches its pacing profile (None: it cannot)
    fallback_url: str  # its second, healthy instance in-cluster, the gateways' fallback ("": none)


def memory_mib(memory_gib: float) -> int:
    return int(memory_gib * 1024)
