"""The gateway under test, deployed from its catalog entry's ``cloud:`` section.

Generic: a pinned Helm chart with Jinja-rendered values, or Kubernetes manifests from a template,
or nothing (the baseline). Pods go to the gateway pool only (the templates place them with the
``node_selector`` and ``tolerations`` they are given), CPU requests equal limits, and the total
CPU limit across replicas is the configured cap. An internal NLB Service fronts the pods.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml

from components import scheduling
from components.backing_service import deploy_service
from components.helm import pinned_release
from components.load_balancer import internal_nlb_service, service_url
from schema.catalog import Gateway
from schema.cloud import CloudSpec
from schema.services import ServiceDefinition
from schema.templating import render_file, render_map

RELEASE = "gateway"
NLB_PORT = 80
# Kinds a manifests template may contain. No Service of type LoadBalancer: the program makes that
# one itself, with the ordering that lets `pulumi destroy` remove the NLB.
MANIFEST_KINDS: dict[str, Any] = {
    "Deployment": k8s.apps.v1.Deployment,
    "ConfigMap": k8s.core.v1.ConfigMap,
    "Service": k8s.core.v1.Service,
}


@dataclass(frozen=True)
class GatewayArgs:
    entry: Gateway
    cloud: CloudSpec
    replicas: int
    cpu_per_replica: float
    workers: int
    mock_cluster_url: str
    mock_url: pulumi.Input[str]
    provider: k8s.Provider
    lb_controller: pulumi.Resource
    source_ranges: Sequence[str]  # who may call its NLB: the VPC CIDR
    cluster_ready: Sequence[pulumi.Resource]  # node groups and cluster DNS
    config: dict[str, str] = field(default_factory=dict)
    fallback_cluster_url: str = ""  # the mock's second, healthy instance (templates: fallback_url)
    secret_values: dict[str, pulumi.Output[str]] = field(default_factory=dict)
    # Backing services deployed in the gateway's namespace before it (a variant's: Redis); templates see each
    # as services.<name>.host|port|url, as on this machine.
    services: Sequence[ServiceDefinition] = ()
    nlb_name: str = "gateway-nlb"  # the NLB Service's resource name (a variant's gateway: its own)


def scrape_annotations(cloud: CloudSpec) -> dict[str, str]:
    """Pod annotations that put the gateway's metrics endpoint (catalog ``cloud.metrics``) into the
    Prometheus "gateway-pods" job (components/observability.py keeps pods annotated this way)."""
    if cloud.metrics is None:
        return {}
    return {"prometheus.io/scrape": "true", "prometheus.io/port": str(cloud.metrics.port),
            "prometheus.io/path": cloud.metrics.path}


def template_context(args: GatewayArgs) -> dict[str, Any]:
    cloud = args.cloud
    host_port = args.mock_cluster_url.removeprefix("http://")
    mock_host, _, mock_port = host_port.partition(":")
    return {
        "release": RELEASE,
        "namespace": cloud.namespace,
        "image": cloud.image.model_dump() if cloud.image else {},
        "replicas": args.replicas,
        "cpu": f"{args.cpu_per_replica:g}",
        "memory": cloud.memory_per_replica,
        "workers": args.workers,
        "port": cloud.port,
        "mock_url": args.mock_cluster_url,
        "mock_host": mock_host,
        "mock_port": int(mock_port or 80),
        "fallback_url": args.fallback_cluster_url,
        "model": args.entry.request.model,
        "route": args.entry.request.path,
        "pod_annotations": scrape_annotations(cloud),
        "node_selector": scheduling.node_selector("gateway"),
        "tolerations": scheduling.tolerations("gateway"),
        "config": args.config,
        "services": {s.name: s.cloud_template_vars(cloud.namespace) for s in args.services},
        **cloud.vars,
    }


def render_documents(args: GatewayArgs) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """(Helm values, manifests) rendered from the entry's templates; plain data, so tests can read it."""
    ctx = template_context(args)
    ctx["files"] = {name: render_file(args.entry.entry_dir / rel, ctx) for name, rel in args.cloud.files.items()}
    values = None
    docs: list[dict[str, Any]] = []
    if args.cloud.kind == "helm":
        values = yaml.safe_load(render_file(args.entry.entry_dir / str(args.cloud.values), ctx)) or {}
    elif args.cloud.kind == "manifests":
        docs = [d for d in yaml.safe_load_all(render_file(args.entry.entry_dir / str(args.cloud.manifests), ctx)) if d]
        for d in docs:
            if d.get("kind") not in MANIFEST_KINDS:
                allowed = ", ".join(MANIFEST_KINDS)
                raise ValueError(f"{args.entry.name}: manifests may hold {allowed}, not {d.get('kind')}")
            if d.get("kind") == "Service" and (d.get("spec") or {}).get("type") == "LoadBalancer":
                raise ValueError(f"{args.entry.name}: a manifest Service of type LoadBalancer would escape the "
                                 "teardown order; the program creates the gateway's internal NLB itself")
    return values, docs


class GatewayRelease(pulumi.ComponentResource):
    url: pulumi.Output[str]
    release: k8s.helm.v3.Release | None = None

    def __init__(self, name: str, args: GatewayArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aigw-bench:index:Gateway", name, None, opts)
        cloud = args.cloud
        if cloud.kind == "none":
            # The baseline: k6 calls the mock's own NLB.
            self.url = pulumi.Output.from_input(args.mock_url)
            self.register_outputs({"url": self.url})
            return
        k8s_opts = pulumi.ResourceOptions(parent=self, provider=args.provider)
        ns = k8s.core.v1.Namespace(f"{name}-ns", metadata={"name": cloud.namespace}, opts=k8s_opts)
        secrets = [
            k8s.core.v1.Secret(
                f"{name}-secret-{secret_name}",
                metadata={"name": secret_name, "namespace": cloud.namespace},
                type=spec.type,
                string_data={key: args.secret_values[config_key] for key, config_key in spec.data.items()},
                opts=pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=[ns]),
            )
            for secret_name, spec in cloud.secrets.items()
        ]
        values, docs = render_documents(args)
        services = [r for s in args.services for r in deploy_service(
            f"{name}-{s.name}", s, cloud.namespace, provider=args.provider, parent=self,
            depends_on=[ns, *args.cluster_ready])]
        workload_deps = [ns, *secrets, *services, *args.cluster_ready]
        workloads: list[pulumi.Resource] = []
        if cloud.kind == "helm":
            assert cloud.chart is not None and values is not None
            self.release = pinned_release(
                f"{name}-release", release=RELEASE, chart=cloud.chart, namespace=cloud.namespace, values=values,
                timeout=900, opts=pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=workload_deps))
            workloads.append(self.release)
        else:
            for doc in docs:
                kind, meta = doc["kind"], doc.get("metadata", {})
                body = {k: v for k, v in doc.items() if k not in ("apiVersion", "kind")}
                workloads.append(MANIFEST_KINDS[kind](
                    f"{name}-{kind.lower()}-{meta.get('name')}", **body,
                    opts=pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=workload_deps)))
        selector = render_map(cloud.selector, template_context(args), f"{args.entry.name}: cloud.selector")
        service = internal_nlb_service(
            args.nlb_name, namespace=ns.metadata["name"], selector=selector, port=NLB_PORT,
            target_port=int(cloud.port or 0), lb_controller=args.lb_controller,
            source_ranges=args.source_ranges, parent=self, provider=args.provider,
            extra_depends_on=workloads)
        self.url = service_url(service, NLB_PORT)
        self.register_outputs({"url": self.url})
