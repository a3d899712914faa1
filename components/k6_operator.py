"""The k6-operator (grafana/k6-operator) on the tools pool, for the ``--engine operator`` runs.

It watches ``TestRun`` objects (k6.io/v1alpha1) and starts their initializer, runner and starter
pods; the post-deploy stage (aigw_bench/cloud/operator.py) creates one TestRun per target and puts
the runners on the load-generator pool with the placement from components/scheduling.py.

Checked against charts/k6-operator at chart 4.6.0 / app v1.6.0 (grafana/k6-operator tag
helm-k6-operator-4.6.0 = v1.6.0, cf0ae21f; published to https://grafana.github.io/helm-charts):
``nodeSelector``/``tolerations`` apply to the controller Deployment; ``installCRDs`` (default true,
values.yaml:100) ships the TestRun and PrivateLoadZone CRDs with the release; ``namespace.create``
(default true, values.yaml:126) would template the release namespace itself, which clashes with the
Namespace made here; ``metrics.serviceMonitor.enabled`` (default false, values.yaml:144) stays false,
said explicitly: a ServiceMonitor needs kube-prometheus-stack's CRD, a dependency not worth having for
the controller's own metrics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components import scheduling
from components.helm import pinned_release
from schema.cloud import Chart

CHART = Chart(repo="https://grafana.github.io/helm-charts", name="k6-operator", version="4.6.0")
APP_VERSION = "v1.6.0"
NAMESPACE = "k6-operator"  # the controller
TESTRUN_NAMESPACE = "loadgen"  # TestRuns, their script ConfigMaps and runner pods


def values() -> dict[str, object]:
    return {
        **scheduling.placement("tools"),
        "installCRDs": True,
        "namespace": {"create": False},
        "metrics": {"serviceMonitor": {"enabled": False}},
    }


@dataclass(frozen=True)
class K6OperatorArgs:
    provider: k8s.Provider
    loadgen_pool: pulumi.Resource  # the runners' pool: kept until the operator (and its TestRuns) are gone
    cluster_ready: Sequence[pulumi.Resource]  # the other node groups and cluster DNS


class K6Operator(pulumi.ComponentResource):
    release: k8s.helm.v3.Release
    testrun_namespace: pulumi.Output[str]

    def __init__(self, name: str, args: K6OperatorArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aigw-bench:index:K6Operator", name, None, opts)
        child = pulumi.ResourceOptions(parent=self, provider=args.provider)
        ns = k8s.core.v1.Namespace(f"{name}-ns", metadata={"name": NAMESPACE}, opts=child)
        self.release = pinned_release(
            f"{name}-release",
            release="k6-operator",
            chart=CHART,
            namespace=ns.metadata["name"],
            values=values(),
            opts=pulumi.ResourceOptions(parent=self, provider=args.provider,
                                        depends_on=[args.loadgen_pool, *args.cluster_ready, ns]),
        )
        # After the release: on destroy the namespace goes first, and with it any TestRun left in it,
        # while the operator and the runners' pool are still there to wind them down.
        runs = k8s.core.v1.Namespace(f"{name}-testruns-ns", metadata={"name": TESTRUN_NAMESPACE},
                                     opts=pulumi.ResourceOptions(parent=self, provider=args.provider,
                                                                 depends_on=[self.release]))
        self.testrun_namespace = runs.metadata["name"]
        self.register_outputs({"release": self.release.name, "testrun_namespace": self.testrun_namespace})
