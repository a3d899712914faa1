"""The mock OpenAI API on the mock pool: which implementation, and what every one of them gets.

The stack's ``mock`` key chooses a folder of ``mock_llm/`` (``fast``: nginx + Lua from a pinned
OpenResty image, the default; ``wiremock``: the published benchmark's WireMock chart). Each has its
own ComponentResource module (components/fast_mock.py, components/wiremock_mock.py) taking
:class:`MockArgs`; :func:`deploy_mock` picks it. Both serve the bytes of ``mock_llm/contract.json``
behind an internal NLB that admits only the VPC, with requests equal to limits on the mock pool.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import pulumi
import pulumi_kubernetes as k8s
from pydantic import BaseModel, ConfigDict, Field

from aigw_bench.mock import MockDefinition, PacingProfile
from components.catalog_cloud import Chart, Image

# The namespace label that makes the AWS Load Balancer Controller add a readiness gate to new pods
# of an `ip`-target NLB: such a pod is Ready only once its target is healthy in the NLB's target
# group (kubernetes-sigs/aws-load-balancer-controller v3.5.0, docs/deploy/pod_readiness_gate.md).
READINESS_GATE_LABEL = {"elbv2.k8s.aws/pod-readiness-gate-inject": "enabled"}


class MockCloudSpec(BaseModel):
    """The ``cloud:`` section of ``mock_llm/<name>/mock.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    image: Image
    version: str | None = Field(None, description="what runs on EKS, when it differs from the local version")
    port: int = Field(ge=1, le=65535)
    namespace: str = "mock"
    chart: Chart | None = Field(None, description="a Helm chart (WireMock); none: the program's own Deployment")
    command: list[str] = Field(default_factory=list, description="the container's command (no chart)")
    vars: dict[str, Any] = Field(default_factory=dict, description="template variables of the config files")


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


def deploy_mock(name: str, args: MockArgs) -> DeployedMock:
    """The component of the chosen implementation (``args.mock.name``)."""
    from components.fast_mock import FastMock
    from components.wiremock_mock import WireMock

    components: dict[str, type] = {"fast": FastMock, "wiremock": WireMock}
    if args.mock.name not in components:
        raise ValueError(f"no EKS component for the {args.mock.name} mock; known: {', '.join(components)}")
    return components[args.mock.name](name, args)


def memory_mib(memory_gib: float) -> int:
    return int(memory_gib * 1024)
