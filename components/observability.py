"""kube-prometheus-stack on the tools pool: Prometheus (with the remote-write receiver, for k6 if
the runner sends its metrics), Grafana, kube-state-metrics; node exporters on every pool; scraping
gateway pods that say where their metrics are. Prometheus gets an internal NLB so the k6 runner can
query it from inside the VPC; nothing is exposed publicly. Grafana's admin password is generated
here and kept as a secret stack output."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components import scheduling
from components.helm import pinned_release
from components.load_balancer import internal_nlb_service, service_url
from schema.cloud import Chart

CHART = Chart(repo="https://prometheus-community.github.io/helm-charts", name="kube-prometheus-stack",
              version="88.5.3")
NAMESPACE = "monitoring"
RELEASE = "kps"
# The chart names its objects after fullnameOverride (else release + chart name, cut to 26
# characters: "kps-kube-prometheus-stack"), and the Prometheus custom resource "<fullname>-prometheus";
# its pods carry operator.prometheus.io/name=<that name> (templates/_helpers.tpl at 88.5.3).
FULLNAME = "kps"
PROMETHEUS_CR = f"{FULLNAME}-prometheus"
PROMETHEUS_PORT = 9090
# Grafana's admin login, from a Secret the program makes with a generated password (a secret stack
# output). The chart would otherwise choose: kube-prometheus-stack set "prom-operator" until
# 2025-10 (#5679); the grafana chart it pins now (12.11.1) generates one only the cluster knows.
GRAFANA_ADMIN_SECRET = "grafana-admin"
# Services inside the cluster: Prometheus "<fullname>-prometheus" (templates/prometheus/service.yaml),
# Grafana "<release>-grafana" port 80 -> 3000 (grafana chart 12.11.1, grafana.fullname, service.port).
PROMETHEUS_SERVICE = f"{FULLNAME}-prometheus"
PROMETHEUS_CLUSTER_URL = f"http://{PROMETHEUS_SERVICE}.{NAMESPACE}.svc.cluster.local:{PROMETHEUS_PORT}"
GRAFANA_SERVICE = f"{RELEASE}-grafana"
GRAFANA_SERVICE_PORT = 80


@dataclass(frozen=True)
class ObservabilityArgs:
    provider: k8s.Provider
    lb_controller: pulumi.Resource
    source_ranges: Sequence[str]  # who may call its NLB: the VPC CIDR
    cluster_ready: Sequence[pulumi.Resource]  # node groups and cluster DNS
    gateway_namespace: str
    retention: str = "3d"
    variant_namespaces: Sequence[str] = ()  # the deployed variants' gateways, scraped as the entry's


def values(gateway_namespace: str, retention: str, variant_namespaces: Sequence[str] = ()) -> dict:
    tools = scheduling.placement("tools")
    grafana_admin = {"existingSecret": GRAFANA_ADMIN_SECRET, "userKey": "admin-user", "passwordKey": "admin-password"}
    return {
        "fullnameOverride": FULLNAME,
        "prometheusOperator": {**tools, "admissionWebhooks": {"patch": tools}},
        "kube-state-metrics": tools,
        "grafana": {**tools, "admin": grafana_admin},  # reached with kubectl port-forward only
        "alertmanager": {"enabled": False},
        # Node exporters must run on every pool, whatever its taint.
        "prometheus-node-exporter": {"tolerations": [{"operator": "Exists"}]},
        "prometheus": {"prometheusSpec": {
            **tools,
            "retention": retention,
            "enableRemoteWriteReceiver": True,
            "scrapeInterval": "5s",
            "additionalScrapeConfigs": [{
                "job_name": "gateway-pods",
                "kubernetes_sd_configs": [{"role": "pod",
                                           "namespaces": {"names": [gateway_namespace, *variant_namespaces]}}],
                "relabel_configs": [
                    {"source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"],
                     "action": "keep", "regex": "true"},
                    {"source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_path"],
                     "action": "replace", "target_label": "__metrics_path__", "regex": "(.+)"},
                    {"source_labels": ["__address__", "__meta_kubernetes_pod_annotation_prometheus_io_port"],
                     "action": "replace", "regex": "([^:]+)(?::\\d+)?;(\\d+)", "replacement": "$1:$2",
                     "target_label": "__address__"},
                ],
            }],
        }},
    }


class Observability(pulumi.ComponentResource):
    release: k8s.helm.v3.Release
    prometheus_url: pulumi.Output[str]
    grafana_admin_password: pulumi.Output[str]

    def __init__(self, name: str, args: ObservabilityArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aigw-bench:index:Observability", name, None, opts)
        ns = k8s.core.v1.Namespace(f"{name}-ns", metadata={"name": NAMESPACE},
                                   opts=pulumi.ResourceOptions(parent=self, provider=args.provider))
        password = random.RandomPassword(f"{name}-grafana-admin", length=32, special=False,
                                         opts=pulumi.ResourceOptions(parent=self))
        self.grafana_admin_password = pulumi.Output.secret(password.result)
        admin = k8s.core.v1.Secret(
            f"{name}-grafana-admin", metadata={"name": GRAFANA_ADMIN_SECRET, "namespace": NAMESPACE},
            string_data={"admin-user": "admin", "admin-password": self.grafana_admin_password},
            opts=pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=[ns]))
        self.release = pinned_release(
            f"{name}-release",
            release=RELEASE,
            chart=CHART,
            namespace=ns.metadata["name"],
            values=values(args.gateway_namespace, args.retention, args.variant_namespaces),
            opts=pulumi.ResourceOptions(parent=self, provider=args.provider,
                                        depends_on=[*args.cluster_ready, admin]),
        )
        service = internal_nlb_service(
            "prometheus-nlb", namespace=ns.metadata["name"],
            selector={"app.kubernetes.io/name": "prometheus", "operator.prometheus.io/name": PROMETHEUS_CR},
            port=PROMETHEUS_PORT, target_port=PROMETHEUS_PORT, lb_controller=args.lb_controller,
            source_ranges=args.source_ranges, parent=self,
            provider=args.provider, extra_depends_on=[self.release])
        self.prometheus_url = service_url(service, PROMETHEUS_PORT)
        self.register_outputs({"prometheus_url": self.prometheus_url,
                               "grafana_admin_password": self.grafana_admin_password})
