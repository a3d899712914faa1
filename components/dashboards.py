"""Grafana dashboards as code: every ``components/dashboards/*.json`` as a ConfigMap that
kube-prometheus-stack's Grafana sidecar loads.

kube-prometheus-stack 88.5.3 (values.yaml, ``grafana.sidecar.dashboards``): enabled, label
``grafana_dashboard`` with value ``"1"``, ``searchNamespace: ALL``. The ConfigMaps live in the
monitoring namespace next to Grafana and wait for the chart, whose sidecar watches for them.
Grafana itself stays private: ``kubectl port-forward`` (``aigw-bench cloud run`` prints how).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s

DASHBOARD_DIR = Path(__file__).resolve().parent / "dashboards"
SIDECAR_LABEL = {"grafana_dashboard": "1"}


def dashboard_files() -> dict[str, str]:
    """ConfigMap data key -> dashboard JSON (checked to parse, so a broken file fails `pulumi preview`)."""
    files = {}
    for path in sorted(DASHBOARD_DIR.glob("*.json")):
        text = path.read_text()
        json.loads(text)
        files[path.name] = text
    return files


@dataclass(frozen=True)
class GrafanaDashboardsArgs:
    provider: k8s.Provider
    namespace: pulumi.Input[str]
    observability_release: pulumi.Resource  # Grafana and its sidecar


class GrafanaDashboards(pulumi.ComponentResource):
    config_maps: list[k8s.core.v1.ConfigMap]

    def __init__(self, name: str, args: GrafanaDashboardsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aigw-bench:index:GrafanaDashboards", name, None, opts)
        self.config_maps = [
            k8s.core.v1.ConfigMap(
                f"{name}-{Path(key).stem}",
                metadata={"name": f"aigw-bench-{Path(key).stem}", "namespace": args.namespace,
                          "labels": SIDECAR_LABEL},
                data={key: text},
                opts=pulumi.ResourceOptions(parent=self, provider=args.provider,
                                            depends_on=[args.observability_release]))
            for key, text in dashboard_files().items()
        ]
        self.register_outputs({"dashboards": [Path(k).stem for k in dashboard_files()]})
