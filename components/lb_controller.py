"""The AWS Load Balancer Controller: its IAM policy (pinned upstream copy), an IRSA role, and the
Helm release on the tools pool. It depends on the node groups (it needs somewhere to run and must
outlive every load balancer it created); every LoadBalancer Service depends on it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components import scheduling
from components.helm import pinned_release
from components.irsa import IrsaRole, IrsaRoleArgs
from schema.cloud import Chart

CHART = Chart(repo="https://aws.github.io/eks-charts", name="aws-load-balancer-controller", version="3.5.0")
# docs/install/iam_policy.json of kubernetes-sigs/aws-load-balancer-controller at v3.5.0, unchanged.
POLICY_FILE = Path(__file__).resolve().parent / "data" / "lbc-iam-policy-v3.5.0.json"
NAMESPACE = "kube-system"
SERVICE_ACCOUNT = "aws-load-balancer-controller"


@dataclass(frozen=True)
class LoadBalancerControllerArgs:
    cluster_name: str
    region: pulumi.Input[str]
    vpc_id: pulumi.Input[str]
    oidc_provider_arn: pulumi.Input[str]
    oidc_provider_url: pulumi.Input[str]
    provider: k8s.Provider
    cluster_ready: Sequence[pulumi.Resource]  # node groups and cluster DNS


class LoadBalancerController(pulumi.ComponentResource):
    release: k8s.helm.v3.Release

    def __init__(self, name: str, args: LoadBalancerControllerArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aigw-bench:index:LoadBalancerController", name, None, opts)
        policy = aws.iam.Policy(f"{name}-policy", policy=POLICY_FILE.read_text(),
                                description="AWS Load Balancer Controller v3.5.0 (upstream iam_policy.json)",
                                opts=pulumi.ResourceOptions(parent=self))
        irsa = IrsaRole(f"{name}-irsa", IrsaRoleArgs(
            oidc_provider_arn=args.oidc_provider_arn, oidc_provider_url=args.oidc_provider_url,
            namespace=NAMESPACE, service_account=SERVICE_ACCOUNT, policy_arns=[policy.arn],
        ), opts=pulumi.ResourceOptions(parent=self))
        self.release = pinned_release(
            f"{name}-release",
            release="aws-load-balancer-controller",
            chart=CHART,
            namespace=NAMESPACE,
            values={
                "clusterName": args.cluster_name,
                "region": args.region,
                "vpcId": args.vpc_id,
                "serviceAccount": {"create": True, "name": SERVICE_ACCOUNT,
                                   "annotations": {"eks.amazonaws.com/role-arn": irsa.role.arn}},
                # The chart's Service mutating webhook (failurePolicy Fail, every Service CREATE) rejects
                # Services made while the controller's pods start ("no endpoints available",
                # kubernetes-sigs/aws-load-balancer-controller#4140). Our NLB Services carry the
                # controller's annotations themselves, so the webhook has nothing to add.
                "enableServiceMutatorWebhook": False,
                **scheduling.placement("tools"),
            },
            opts=pulumi.ResourceOptions(parent=self, provider=args.provider,
                                        depends_on=[*args.cluster_ready, irsa]),
        )
        self.register_outputs({"release": self.release.name})
