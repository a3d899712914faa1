"""One managed node group per role (gateway, mock, tools, and loadgen on operator stacks), labelled
and tainted so that nothing else schedules there, on Amazon Linux 2023, in the private subnets."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_eks as eks

from components import scheduling


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


class NodePools(pulumi.ComponentResource):
    groups: dict[str, eks.ManagedNodeGroup]

    def __init__(self, name: str, args: NodePoolsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aigw-bench:index:NodePools", name, None, opts)
        self.groups = {}
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
                opts=pulumi.ResourceOptions(parent=self),
            )
        self.register_outputs({"groups": list(self.groups)})

    @property
    def all(self) -> list[eks.ManagedNodeGroup]:
        return list(self.groups.values())
