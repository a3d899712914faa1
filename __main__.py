"""aigw-bench on AWS: one stack = the benchmark environment for one gateway of the catalog.

The stack's config is read and validated once, here, before any resource is declared: a bad value
fails `pulumi preview` with the key and the allowed values, and nothing is created. Everything
cloud-specific lives in components/; the gateway itself comes from stacks/<gateway>/gateway.yaml.
"""

from __future__ import annotations

import dataclasses

import pulumi
import pulumi_aws as aws

from components import prices
from components.cloud_variants import services_of
from components.cluster import Cluster, ClusterArgs
from components.cluster_dns import COREDNS_VERSION, ClusterDns, ClusterDnsArgs
from components.config import NAMESPACE, ConfigValidationError, Settings, parse, read_raw_config
from components.config import cost_lines as config_cost_lines
from components.dashboards import GrafanaDashboards, GrafanaDashboardsArgs
from components.gateway import GatewayArgs, GatewayRelease
from components.k6_operator import CHART as K6_OPERATOR_CHART
from components.k6_operator import K6Operator, K6OperatorArgs
from components.k6_runner import K6Runner, K6RunnerArgs
from components.lb_controller import CHART as LBC_CHART
from components.lb_controller import LoadBalancerController, LoadBalancerControllerArgs
from components.mock_args import MockArgs
from components.mock_llm import deploy_mock
from components.network import Network, NetworkArgs
from components.node_pools import NodePools, NodePoolsArgs, PoolSpec
from components.observability import CHART as OBSERVABILITY_CHART
from components.observability import (
    GRAFANA_SERVICE,
    GRAFANA_SERVICE_PORT,
    PROMETHEUS_CLUSTER_URL,
    PROMETHEUS_PORT,
    PROMETHEUS_SERVICE,
    Observability,
    ObservabilityArgs,
)
from components.observability import NAMESPACE as OBSERVABILITY_NAMESPACE
from schema.catalog import load_catalog
from schema.errors import ConfigError


def load_settings() -> Settings:
    raw, secret_keys = read_raw_config()
    try:
        return parse(raw, pulumi.get_stack(), load_catalog(), secret_keys)
    except (ConfigValidationError, ConfigError) as exc:
        # RunError: the message, without a Python traceback, and no resource registered.
        raise pulumi.RunError(str(exc)) from None


settings = load_settings()
cfg = settings.config
cloud = settings.cloud
name = f"aigw-{settings.stack}"
region = aws.get_region_output().region
table = prices.price_table()

network = Network("network", NetworkArgs(cidr=cfg.vpc_cidr, availability_zones=cfg.availability_zones,
                                         nat=cfg.nat_gateways, cluster_name=name))
cluster = Cluster("cluster", ClusterArgs(
    name=name, version=cfg.kubernetes_version, vpc_id=network.vpc_id, public_subnet_ids=network.public_subnet_ids,
    private_subnet_ids=network.private_subnet_ids, public_access_cidrs=cfg.public_access_cidrs,
    control_plane_logs=cfg.control_plane_logs))
pools = NodePools("pools", NodePoolsArgs(
    cluster=cluster.eks, node_role=cluster.node_role, subnet_ids=network.private_subnet_ids,
    pools={role: PoolSpec(p.instance_type, p.count, p.disk_gib)
           for role, p in (("gateway", cfg.nodes.gateway), ("mock", cfg.nodes.mock), ("tools", cfg.nodes.tools))},
    registry_mirrors=cfg.registry_mirrors))
# CoreDNS as its own add-on once the tools pool exists (components/cluster_dns.py); every
# workload waits for nodes and for cluster DNS.
dns = ClusterDns("cluster-dns", ClusterDnsArgs(cluster_name=name, tools_pool=pools.groups["tools"]))
cluster_ready = [*pools.all, dns.addon]
lbc = LoadBalancerController("lbc", LoadBalancerControllerArgs(
    cluster_name=name, region=region, vpc_id=network.vpc_id, oidc_provider_arn=cluster.oidc_provider_arn,
    oidc_provider_url=cluster.oidc_provider_url, provider=cluster.provider, cluster_ready=cluster_ready))

# The mock chosen by the `mock` key (components/mock_llm.py), starting with the `mockProfile` pacing.
mock_node = table.instances[cfg.nodes.mock.instance_type]
mock = deploy_mock("mock", MockArgs(
    mock=settings.mock, spec=settings.mock_spec, profile=settings.mock_profile,
    cpu=cfg.mock_cpu or prices.allocatable_cpu(mock_node.vcpus), memory_gib=round(mock_node.memory_gib * 0.7, 1),
    provider=cluster.provider, lb_controller=lbc.release, source_ranges=[cfg.vpc_cidr], cluster_ready=cluster_ready))

config_values = {key: getattr(cfg, "".join("_" + c.lower() if c.isupper() else c for c in key))
                 for key in cloud.required_config}
secret_config = pulumi.Config(NAMESPACE)
secret_values = {config_key: secret_config.require_secret(config_key) for config_key in cloud.secret_config_keys}
gateway_args = GatewayArgs(
    entry=settings.entry, cloud=cloud, replicas=settings.replicas, cpu_per_replica=settings.cpu_per_replica,
    workers=settings.workers, mock_cluster_url=mock.cluster_url, mock_url=mock.url, provider=cluster.provider,
    lb_controller=lbc.release, source_ranges=[cfg.vpc_cidr], cluster_ready=cluster_ready, config=config_values,
    secret_values=secret_values, fallback_cluster_url=mock.fallback_url)
gateway = GatewayRelease("gateway", gateway_args)
# The `variants` key: each variant as a gateway of its own (its namespace, its NLB, its backing services
# beside it), the same size as the entry's (components/cloud_variants.py).
variant_gateways = {
    v.variant: GatewayRelease(f"gateway-{v.variant}", dataclasses.replace(
        gateway_args, entry=v, cloud=v.deployment, services=services_of(v), nlb_name=f"gateway-{v.variant}-nlb"))
    for v in settings.variants}

observability = Observability("observability", ObservabilityArgs(
    provider=cluster.provider, lb_controller=lbc.release, source_ranges=[cfg.vpc_cidr], cluster_ready=cluster_ready,
    gateway_namespace=cloud.namespace, variant_namespaces=[v.deployment.namespace for v in settings.variants]))
GrafanaDashboards("dashboards", GrafanaDashboardsArgs(
    provider=cluster.provider, namespace=OBSERVABILITY_NAMESPACE, observability_release=observability.release))

# The k6-operator engine (optional): its own tainted load-generator pool, the operator on the tools pool.
operator = None
loadgen = cfg.nodes.loadgen
if cfg.k6_operator.enabled:
    generators = NodePools("generators", NodePoolsArgs(
        cluster=cluster.eks, node_role=cluster.node_role, subnet_ids=network.private_subnet_ids,
        pools={"loadgen": PoolSpec(loadgen.instance_type, settings.loadgen_nodes, loadgen.disk_gib)},
        registry_mirrors=cfg.registry_mirrors))
    operator = K6Operator("k6-operator", K6OperatorArgs(
        provider=cluster.provider, loadgen_pool=generators.groups["loadgen"], cluster_ready=cluster_ready))

runner = K6Runner("k6-runner", K6RunnerArgs(
    vpc_id=network.vpc_id, subnet_ids=network.private_subnet_ids, instance_type=cfg.runner.instance_type,
    count=cfg.runner.count, disk_gib=cfg.runner.disk_gib, retention_days=cfg.results_retention_days,
    ami=cfg.runner.ami))

cost_lines = config_cost_lines(cfg, cloud.kind)

# Names read by the post-deploy stage (aigw_bench/cloud/outputs.py).
pulumi.export("gateway_name", settings.entry.name)
pulumi.export("gateway_version", cloud.image.tag if cloud.image else settings.entry.version)
pulumi.export("gateway_url", gateway.url)
# {variant: base URL}: `cloud run` sends target ENTRY+VARIANT there (aigw_bench/cloud/outputs.py).
pulumi.export("variant_urls", {name: g.url for name, g in variant_gateways.items()})
pulumi.export("mock_url", mock.url)
pulumi.export("mock_cluster_url", mock.cluster_url)
pulumi.export("mock_fallback_cluster_url", mock.fallback_url)  # the faults suite's second mock ("": none)
# The mock as deployed (recorded in every result), and where `cloud run` switches its pacing profile
# (namespace, ConfigMap and its settings key, Deployment; null: the mock serves one profile only).
pulumi.export("mock_name", settings.mock.name)
pulumi.export("mock_version", settings.mock_spec.version or settings.mock.version)
pulumi.export("mock_image", settings.mock_spec.image.ref)
pulumi.export("mock_profile", settings.mock_profile.name)
pulumi.export("mock_profiles", settings.mock.profiles)
pulumi.export("mock_namespace", settings.mock_spec.namespace)
pulumi.export("mock_control", mock.control)
pulumi.export("k6_runner_instance_ids", [i.id for i in runner.instances])
pulumi.export("k6_runner_ami", runner.instances[0].ami)
pulumi.export("results_bucket", runner.bucket.bucket)
pulumi.export("region", region)
pulumi.export("cluster_name", name)
pulumi.export("kubeconfig", cluster.kubeconfig)
pulumi.export("prometheus_url", observability.prometheus_url)
# In-cluster names: k6 runner pods remote-write here; `cloud run` reads it through the API server.
pulumi.export("prometheus_service", {"namespace": OBSERVABILITY_NAMESPACE, "name": PROMETHEUS_SERVICE,
                                     "port": PROMETHEUS_PORT, "cluster_url": PROMETHEUS_CLUSTER_URL})
pulumi.export("grafana_service", {"namespace": OBSERVABILITY_NAMESPACE, "name": GRAFANA_SERVICE,
                                  "port": GRAFANA_SERVICE_PORT, "dashboard_uid": "aigw-bench-k6"})
# `pulumi stack output grafana_admin_password --show-secrets`; Grafana: kubectl port-forward, user admin.
pulumi.export("grafana_admin_password", observability.grafana_admin_password)
pulumi.export("gateway_namespace", cloud.namespace)
# Headers k6 must send with secret values (LiteLLM's master key); read by `cloud run`, never printed.
pulumi.export("gateway_secret_headers", pulumi.Output.secret(pulumi.Output.all(
    **{name: secret_values[h.config] for name, h in cloud.secret_headers.items()}).apply(
    lambda values: {name: h.format.replace("{value}", values[name]) for name, h in cloud.secret_headers.items()})))
pulumi.export("hourly_cost_usd", prices.total(cost_lines))
pulumi.export("cost_breakdown", {line.item: round(line.hourly, 4) for line in cost_lines})
pulumi.export("price_table", table.label)
pulumi.export("instance_types", {"gateway": cfg.nodes.gateway.instance_type, "mock": cfg.nodes.mock.instance_type,
                                 "tools": cfg.nodes.tools.instance_type, "k6_runner": cfg.runner.instance_type,
                                 **({"load_generator": loadgen.instance_type} if operator else {})})
pulumi.export("chart_versions", {
    "gateway": f"{cloud.chart.name} {cloud.chart.version}" if cloud.chart else cloud.kind,
    "mock": (f"{settings.mock_spec.chart.name} {settings.mock_spec.chart.version}" if settings.mock_spec.chart
             else f"image {settings.mock_spec.image.ref}"),
    "aws-load-balancer-controller": LBC_CHART.version,
    "kube-prometheus-stack": OBSERVABILITY_CHART.version,
    "coredns (EKS add-on)": COREDNS_VERSION,
    **({"k6-operator": K6_OPERATOR_CHART.version} if operator else {}),
})
# The operator engine (aigw_bench/cloud/operator_engine.py): where TestRuns go, how many runners fit,
# and each runner's CPUs (one runner per node: is k6 the bottleneck?).
pulumi.export("k6_operator", {
    "enabled": operator is not None,
    "namespace": operator.testrun_namespace if operator else None,
    "load_generator_nodes": settings.loadgen_nodes,
    "load_generator_instance_type": loadgen.instance_type if operator else None,
    "load_generator_vcpus": table.instances[loadgen.instance_type].vcpus if operator else None,
    "load_generator_hourly_usd": round(table.instances[loadgen.instance_type].hourly, 4) if operator else None,
})
pulumi.export("gateway_cpu_limit_total", cfg.gateway_cpu_limit)
pulumi.export("gateway_replicas", settings.replicas)
