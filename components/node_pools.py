"""One managed node group per role (gateway, mock, tools, and loadgen on operator stacks), labelled
and tainted so that nothing else schedules there, on Amazon Linux 2023, in the private subnets; with
registry mirrors configured, every node's containerd pulls through them (components/registry_mirrors.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_eks as eks

from components import scheduling
from components.registry_mirrors import SCRIPT_CONTENT_TYPE, node_script


@dataclass(frozen=True)
class PoolSpec:
    instance_type: str
    count: int
    disk_gib: int


def scaling(count: int) -> aws.eks.NodeGroupScalingConfigArgs:
    """A fixed-size group of ``count`` nodes; ``count`` may be 0 (a pool kept empty, e.g. the load
    generators on a stack that does not run the operator now). The EKS API takes minSize and
    desiredSize from 0 but maxSize from 1 (NodegroupScalingConfig: ZeroCapacity / Capacity shapes),
    and pulumi-eks passes 0 through (``desiredSize ?? 2`` in nodes/nodegroup.ts)."""
    return aws.eks.NodeGroupScalingConfigArgs(desired_size=count, min_size=count, max_size=max(count, 1))


@dataclass(frozen=True)
class NodePoolsArgs:
    cluster: eks.Cluster
    node_role: aws.iam.Role
    subnet_ids: pulumi.Input[list[str]]
    pools: dict[scheduling.Role, PoolSpec]
    registry_mirrors: dict[str, str] = field(default_factory=dict)  # registry host -> mirror URL


class NodePools(pulumi.ComponentResource):
    groups: dict[str, eks.ManagedNodeGroup]

    def __init__(self, name: str, args: NodePoolsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aigw-bench:index:NodePools", name, None, opts)
        self.groups = {}
        # Only when asked: extra user data gives the group a launch template of pulumi-eks's making, which
        # replaces the nodes of a deployed stack (a rolling update).
        extra = [eks.NodeadmOptionsArgs(content=node_script(args.registry_mirrors), content_type=SCRIPT_CONTENT_TYPE)] \
            if args.registry_mirrors else None
        for role, spec in args.pools.items():
            self.groups[role] = eks.ManagedNodeGroup(
                f"{name}-{role}",
                cluster=args.cluster,
                node_role=args.node_role,
                subnet_ids=args.subnet_ids,
                instance_types=[spec.instance_type],
                scaling_config=scaling(spec.count),
                disk_size=spec.disk_gib,
                operating_system=eks.OperatingSystem.AL2023,
                labels=scheduling.labels(role),
                taints=[aws.eks.NodeGroupTaintArgs(**scheduling.taint(role))],
                tags={"aigw-bench/pool": role},
                nodeadm_extra_options=extra,
                opts=pulumi.ResourceOptions(parent=self),
            )
        self.register_outputs({"groups": list(self.groups)})

    @property
    def all(self) -> list[eks.ManagedNodeGroup]:
        return list(self.groups.values())
