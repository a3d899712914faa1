"""Cluster DNS: the managed CoreDNS add-on, created after the tools node group it runs on.

Not through pulumi-eks's ``coredns_addon_options``: any ``configuration_values`` there make
pulumi-eks create the add-on inside ``eks.Cluster``, before a node group can exist. Every pool is
tainted, so the add-on never becomes ACTIVE, the cluster never finishes and the node groups that
would fix it wait for the cluster (pulumi/pulumi-eks#1819, #1525; nodejs/eks/cluster/cluster.ts,
``corednsExplicitlyEnabled``). Created here instead, after the tools pool, with the placement that
lets its pods land there. Everything that resolves a name inside the cluster (the load balancer
controller, the charts, the gateway calling the mock) depends on this add-on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components import scheduling

# Pinned: the EKS add-on version table listed v1.11.4-eksbuild.24 as the latest CoreDNS build for
# Kubernetes 1.32 (docs.aws.amazon.com/eks/latest/userguide/managing-coredns.html). Check what a
# region offers with `aws eks describe-addon-versions --addon-name coredns --kubernetes-version 1.32`.
COREDNS_VERSION = "v1.11.4-eksbuild.24"


def configuration_values() -> dict[str, object]:
    """CoreDNS add-on configuration (its schema: `aws eks describe-addon-configuration`)."""
    return {"nodeSelector": scheduling.node_selector("tools"), "tolerations": scheduling.tolerations("tools")}


@dataclass(frozen=True)
class ClusterDnsArgs:
    cluster_name: pulumi.Input[str]
    tools_pool: pulumi.Resource
    version: str = COREDNS_VERSION


class ClusterDns(pulumi.ComponentResource):
    addon: aws.eks.Addon

    def __init__(self, name: str, args: ClusterDnsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aigw-bench:index:ClusterDns", name, None, opts)
        self.addon = aws.eks.Addon(
            f"{name}-coredns",
            cluster_name=args.cluster_name,
            addon_name="coredns",
            addon_version=args.version,
            configuration_values=json.dumps(configuration_values()),
            # EKS already runs a self-managed CoreDNS (pending: no node tolerates it); take it over.
            resolve_conflicts_on_create="OVERWRITE",
            resolve_conflicts_on_update="OVERWRITE",
            opts=pulumi.ResourceOptions(parent=self, depends_on=[args.tools_pool]),
        )
        self.register_outputs({"addon_version": self.addon.addon_version})

