"""An internal Network Load Balancer in front of pods: a Kubernetes Service of type LoadBalancer
handled by the AWS Load Balancer Controller.

Its security group admits only ``source_ranges`` (the VPC's CIDR). Every such Service must
depend on the controller's release (passed in ``depends_on``): on
``pulumi destroy`` the Service then goes first and the controller, still running, deletes the NLB,
its target groups and interfaces. Without that order the NLB is orphaned and the VPC delete hangs.
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_kubernetes as k8s

# The controller's NLB annotations: its own implementation (external), pod IPs as targets,
# reachable only inside the VPC.
INTERNAL_NLB_ANNOTATIONS = {
    "service.beta.kubernetes.io/aws-load-balancer-type": "external",
    "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type": "ip",
    "service.beta.kubernetes.io/aws-load-balancer-scheme": "internal",
    "service.beta.kubernetes.io/aws-load-balancer-attributes": "load_balancing.cross_zone.enabled=true",
}


def internal_nlb_service(
    name: str,
    *,
    namespace: pulumi.Input[str],
    selector: dict[str, str],
    port: int,
    target_port: int,
    lb_controller: pulumi.Resource,
    source_ranges: Sequence[str],
    parent: pulumi.Resource,
    provider: pulumi.ProviderResource,
    extra_depends_on: Sequence[pulumi.Resource] = (),
) -> k8s.core.v1.Service:
    return k8s.core.v1.Service(
        name,
        metadata=k8s.meta.v1.ObjectMetaArgs(name=name, namespace=namespace, annotations=INTERNAL_NLB_ANNOTATIONS),
        spec=k8s.core.v1.ServiceSpecArgs(
            type="LoadBalancer",
            # Internal is not enough: without source ranges the controller's security group admits
            # 0.0.0.0/0, i.e. anything routed into the VPC. Only the VPC itself (the k6 runner) may call.
            load_balancer_source_ranges=list(source_ranges),
            selector=selector,
            ports=[k8s.core.v1.ServicePortArgs(name="http", port=port, target_port=target_port, protocol="TCP")],
        ),
        opts=pulumi.ResourceOptions(parent=parent, provider=provider,
                                    depends_on=[lb_controller, *extra_depends_on]),
    )


def service_url(service: k8s.core.v1.Service, port: int) -> pulumi.Output[str]:
    """http://<NLB hostname>:<port>, once the controller has provisioned it."""
    return service.status.apply(
        lambda s: f"http://{s.load_balancer.ingress[0].hostname}:{port}"
        if s and s.load_balancer and s.load_balancer.ingress else ""
    )
