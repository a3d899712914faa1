"""What every mock component takes and gives (components/fast_mock.py, components/wiremock_mock.py):
its arguments, the outputs the rest of the program reads, and the settings both put on their pods.

Both serve the bytes of ``mock_llm/contract.json`` behind an internal NLB that admits only the VPC,
with requests equal to limits on the mock pool.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import pulumi
import pulumi_kubernetes as k8s

from schema.cloud import MockCloudSpec
from schema.mock import MockDefinition, PacingProfile

# The namespace label that makes the AWS Load Balancer Controller add a readiness gate to new pods
# of an `ip`-target NLB: such a pod is Ready only once its target is healthy in the NLB's target
# group (kubernetes-sigs/aws-load-balancer-controller v3.5.0, docs/deploy/pod_readiness_gate.md).
READINESS_GATE_LABEL = {"elbv2.k8s.aws/pod-readiness-gate-inject": "enabled"}


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
    control: dict[str, str] | None  # how `cloud run` switches its pacing profile (None: it cannot)


def memory_mib(memory_gib: float) -> int:
    return int(memory_gib * 1024)
