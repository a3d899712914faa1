"""An IAM role for one Kubernetes service account (IRSA): trusted only by the cluster's OIDC
provider, for that namespace and name, with the given policies."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws


@dataclass(frozen=True)
class IrsaRoleArgs:
    oidc_provider_arn: pulumi.Input[str]
    oidc_provider_url: pulumi.Input[str]
    namespace: str
    service_account: str
    policy_arns: list[pulumi.Input[str]] = field(default_factory=list)


def trust_policy(provider_arn: str, provider_url: str, namespace: str, service_account: str) -> str:
    issuer = provider_url.removeprefix("https://")
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Federated": provider_arn},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {
                f"{issuer}:sub": f"system:serviceaccount:{namespace}:{service_account}",
                f"{issuer}:aud": "sts.amazonaws.com",
            }},
        }],
    })


class IrsaRole(pulumi.ComponentResource):
    role: aws.iam.Role

    def __init__(self, name: str, args: IrsaRoleArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aigw-bench:index:IrsaRole", name, None, opts)
        self.role = aws.iam.Role(
            f"{name}-role",
            assume_role_policy=pulumi.Output.all(args.oidc_provider_arn, args.oidc_provider_url).apply(
                lambda v: trust_policy(v[0], v[1], args.namespace, args.service_account)),
            opts=pulumi.ResourceOptions(parent=self),
        )
        for i, arn in enumerate(args.policy_arns):
            aws.iam.RolePolicyAttachment(f"{name}-policy-{i}", role=self.role.name, policy_arn=arn,
                                         opts=pulumi.ResourceOptions(parent=self))
        self.register_outputs({"role_arn": self.role.arn})
