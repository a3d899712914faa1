"""A Helm release of a pinned chart, from an https repository or an OCI registry.

helm.v3.Release (not helm.v4.Chart): it waits for the release to be ready, uninstalls in
dependency order, and behaves under the test mocks.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from schema.cloud import Chart


def pinned_release(resource_name: str, *, release: str, chart: Chart, namespace: pulumi.Input[str],
                   values: dict[str, Any], opts: pulumi.ResourceOptions, timeout: int = 600,
                   skip_await: bool = False) -> k8s.helm.v3.Release:
    oci = chart.repo.startswith("oci://")
    return k8s.helm.v3.Release(
        resource_name,
        name=release,
        chart=f"{chart.repo.rstrip('/')}/{chart.name}" if oci else chart.name,
        version=chart.version,
        repository_opts=None if oci else k8s.helm.v3.RepositoryOptsArgs(repo=chart.repo),
        namespace=namespace,
        values=values,
        timeout=timeout,
        skip_await=skip_await or None,
        opts=opts,
    )
