"""The EKS cluster (pulumi-eks 4.x): API authentication mode, an OIDC provider for IRSA, the node
role its managed node groups use, a public endpoint limited to the configured CIDRs, and a
Kubernetes provider bound to its kubeconfig."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_eks as eks
import pulumi_kubernetes as k8s

NODE_POLICIES = {
    "worker": "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
    "cni": "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy",
    "ecr": "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly",
    # Session Manager on the nodes instead of SSH.
    "ssm": "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",
}
CONTROL_PLANE_LOGS = ["api", "audit", "authenticator", "controllerManager", "scheduler"]


@dataclass(frozen=True)
class ClusterArgs:
    name: str
    version: str
    vpc_id: pulumi.Input[str]
    public_subnet_ids: pulumi.Input[list[str]]
    private_subnet_ids: pulumi.Input[list[str]]
    public_access_cidrs: list[str] = field(default_factory=list)
    control_plane_logs: bool = False


class Cluster(pulumi.ComponentResource):
    eks: eks.Cluster
    node_role: aws.iam.Role
    provider: k8s.Provider
    kubeconfig: pulumi.Output[str]
    oidc_provider_arn: pulumi.Output[str]
    oidc_provider_url: pulumi.Output[str]

    def __init__(self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aigw-bench:index:Cluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        # With the default node group skipped, pulumi-eks creates no node role: make it here.
        self.node_role = aws.iam.Role(
            f"{name}-node-role",
            assume_role_policy=json.dumps({
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
                               "Action": "sts:AssumeRole"}],
            }),
            opts=child,
        )
        attachments = [
            aws.iam.RolePolicyAttachment(f"{name}-node-{key}", role=self.node_role.name, policy_arn=arn, opts=child)
            for key, arn in NODE_POLICIES.items()
        ]
        # The config refuses an empty list unless apiEndpointOpenToInternet is set (components/config.py).
        cidrs = args.public_access_cidrs or ["0.0.0.0/0"]
        if not args.public_access_cidrs:
            pulumi.log.warn(
                "aigw-bench:apiEndpointOpenToInternet is set: the EKS API endpoint is open to 0.0.0.0/0 (still "
                "authenticated). Limit it with `pulumi config set --path 'publicAccessCidrs[0]' <your range>`.",
                resource=self)
        self.eks = eks.Cluster(
            f"{name}-eks",
            name=args.name,
            version=args.version,
            vpc_id=args.vpc_id,
            public_subnet_ids=args.public_subnet_ids,
            private_subnet_ids=args.private_subnet_ids,
            node_associate_public_ip_address=False,
            skip_default_node_group=True,
            authentication_mode=eks.AuthenticationMode.API,
            create_oidc_provider=True,
            instance_roles=[self.node_role],
            endpoint_private_access=True,
            endpoint_public_access=True,
            public_access_cidrs=cidrs,
            enabled_cluster_log_types=CONTROL_PLANE_LOGS if args.control_plane_logs else [],
            # No managed CoreDNS inside eks.Cluster: created before any node group, on tainted
            # pools it would never become ACTIVE. components/cluster_dns.py adds it after the nodes.
            coredns_addon_options=eks.CoreDnsAddonOptionsArgs(enabled=False),
            tags={"aigw-bench/cluster": args.name},
            opts=pulumi.ResourceOptions(parent=self, depends_on=attachments),
        )
        self.kubeconfig = pulumi.Output.secret(self.eks.kubeconfig_json)
        self.oidc_provider_arn = self.eks.oidc_provider_arn
        self.oidc_provider_url = self.eks.oidc_provider_url
        self.provider = k8s.Provider(f"{name}-k8s", kubeconfig=self.eks.kubeconfig_json,
                                     enable_server_side_apply=True, opts=child)
        self.register_outputs({"kubeconfig": self.kubeconfig, "oidc_provider_arn": self.oidc_provider_arn})
