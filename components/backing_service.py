"""A backing service a deployed variant needs (Redis for shared counters and caches), from its
``services/<name>/service.yaml`` ``cloud:`` section: one pod from the pinned image, CPU and memory
requests equal to limits, on its pool, behind a ClusterIP Service only (no load balancer: reachable
inside the cluster alone), in the namespace of the gateway that uses it.
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_kubernetes as k8s

from components import scheduling
from schema.services import ServiceDefinition


def deploy_service(resource_name: str, service: ServiceDefinition, namespace: str, *, provider: k8s.Provider,
                   parent: pulumi.Resource, depends_on: Sequence[pulumi.Resource]) -> list[pulumi.Resource]:
    """The service's Deployment and ClusterIP Service (named as the service: its in-cluster host is
    ``<name>.<namespace>.svc.cluster.local``); what depends on it should wait for both."""
    cloud = service.cloud
    assert cloud is not None, f"{service.path}: no cloud section"
    labels = {"app.kubernetes.io/name": service.name, "app.kubernetes.io/part-of": "aigw-bench"}
    resources = {"cpu": cloud.cpu, "memory": cloud.memory}
    opts = pulumi.ResourceOptions(parent=parent, provider=provider, depends_on=list(depends_on))
    deployment = k8s.apps.v1.Deployment(
        f"{resource_name}-deployment",
        metadata={"name": service.name, "namespace": namespace, "labels": labels},
        spec={
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "nodeSelector": scheduling.node_selector(cloud.pool),
                    "tolerations": scheduling.tolerations(cloud.pool),
                    "containers": [{
                        "name": service.name,
                        "image": cloud.image.ref,
                        "args": cloud.args,
                        "ports": [{"name": service.kind, "containerPort": cloud.port}],
                        "resources": {"requests": resources, "limits": resources},
                        "readinessProbe": {"exec": {"command": cloud.ready}, "periodSeconds": 2},
                    }],
                },
            },
        },
        opts=opts)
    svc = k8s.core.v1.Service(
        f"{resource_name}-service",
        metadata={"name": service.name, "namespace": namespace, "labels": labels},
        spec={"type": "ClusterIP", "selector": labels,
              "ports": [{"name": service.kind, "port": cloud.port, "targetPort": cloud.port}]},
        opts=opts)
    return [deployment, svc]
