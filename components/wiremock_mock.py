"""WireMock as the mock OpenAI API on the mock pool (stack key ``mock: wiremock``): the same mapping
files as the local target, tuned for throughput (no request journal, no request logging,
asynchronous responses, JVM sized to the node), behind an internal NLB. It serves the ``instant``
profile only, so there is nothing to switch (``control`` is None)."""

from __future__ import annotations

import math
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s

from components import scheduling
from components.helm import pinned_release
from components.load_balancer import internal_nlb_service, service_url
from components.mock_args import WIREMOCK_TYPE, MockArgs, memory_mib, mock_namespace, switchable
from schema.mock import MockDefinition, load_contract, load_profile
from schema.templating import render_file

RELEASE = "wiremock"  # the chart's fullname is the release name: the in-cluster host below
ROOT_DIR = "/home/wiremock/storage"  # the image's --root-dir; mappings/ under it
MAPPINGS_CONFIGMAP = "aigw-bench-mappings"


def wiremock_mappings(mock: MockDefinition) -> dict[str, str]:
    """The mapping files the local target renders, rendered the same way (from mock_llm/contract.json)."""
    context = {"contract": load_contract(), "profile": load_profile("instant")}
    return {Path(out).name: render_file(mock.entry_dir / template, context)
            for out, template in sorted(mock.local.config_files.items()) if out.startswith("mappings/")}


def wiremock_args(port: int, cpu: float) -> list[str]:
    """Setting the chart's args replaces its list: --root-dir must stay."""
    threads = max(64, math.ceil(cpu) * 16)
    return [
        f"--port={port}",
        f"--root-dir={ROOT_DIR}",
        "--no-request-journal",
        "--disable-request-logging",
        "--async-response-enabled=true",
        f"--async-response-threads={threads}",
        f"--container-threads={threads}",
        f"--jetty-acceptor-threads={max(2, math.ceil(cpu) // 2)}",
    ]


class WireMock(pulumi.ComponentResource):
    release: k8s.helm.v3.Release
    service: k8s.core.v1.Service
    cluster_url: str
    url: pulumi.Output[str]
    control: dict[str, str] | None = None
    fallback_url: str = ""  # no fault plans (mock_llm/wiremock/mock.yaml), no second instance

    def __init__(self, name: str, args: MockArgs, opts: pulumi.ResourceOptions | None = None):
        # The type token predates the fast mock; kept so that deployed stacks keep their resources.
        super().__init__(WIREMOCK_TYPE, name, None, switchable(WIREMOCK_TYPE, opts))
        spec = args.spec
        assert spec.chart is not None, "mock_llm/wiremock/mock.yaml: cloud.chart is required"
        image, port, namespace = spec.image, spec.port, spec.namespace
        ns = mock_namespace(name, namespace, self, args.provider)
        # Our mappings only, mounted from a ConfigMap of our own: the chart's mappingsFromConfigmap
        # also copies the chart's bundled sample (mappings/mapping_1.json, POST /v1/hello, and its
        # responses/ file; wiremock/helm-charts wiremock-1.8.0), with an unpinned bash init image.
        mappings = k8s.core.v1.ConfigMap(
            f"{name}-mappings", metadata={"name": MAPPINGS_CONFIGMAP, "namespace": namespace},
            data=wiremock_mappings(args.mock),
            opts=pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=[ns]))
        cpu = f"{args.cpu:g}"
        memory = memory_mib(args.memory_gib)
        heap_mib = int(memory * 0.6)  # the rest: metaspace, thread stacks, direct buffers
        self.release = pinned_release(
            f"{name}-release",
            release=RELEASE,
            chart=spec.chart,
            namespace=ns.metadata["name"],
            values={
                "image": {"repository": image.repository, "tag": image.tag},
                "mappingsFromConfigmap": False,
                "responsesFromConfigmap": False,
                "extraVolumes": [{"name": "aigw-mappings", "configMap": {"name": MAPPINGS_CONFIGMAP}}],
                "extraVolumeMounts": [{"name": "aigw-mappings", "mountPath": f"{ROOT_DIR}/mappings", "readOnly": True}],
                "args": wiremock_args(port, args.cpu),
                "env": [{"name": "JAVA_OPTS",
                         "value": f"-Xms{heap_mib}m -Xmx{heap_mib}m -XX:+UseParallelGC -XX:ActiveProcessorCount="
                                  f"{max(1, math.floor(args.cpu))}"}],
                "service": {"type": "ClusterIP", "externalPort": port, "internalPort": port},
                "resources": {"requests": {"cpu": cpu, "memory": f"{memory}Mi"},
                              "limits": {"cpu": cpu, "memory": f"{memory}Mi"}},
                **scheduling.placement("mock"),
            },
            opts=pulumi.ResourceOptions(parent=self, provider=args.provider,
                                        depends_on=[*args.cluster_ready, mappings]),
            skip_await=True,  # a switch from the fast mock (components/mock_args.py: SKIP_AWAIT)
        )
        self.cluster_url = f"http://{RELEASE}.{namespace}.svc.cluster.local:{port}"
        self.service = internal_nlb_service(
            "mock-llm-nlb", namespace=ns.metadata["name"],
            selector={"app.kubernetes.io/name": "wiremock", "app.kubernetes.io/instance": RELEASE},
            port=port, target_port=port, lb_controller=args.lb_controller,
            source_ranges=args.source_ranges, parent=self, provider=args.provider,
            extra_depends_on=[self.release])
        self.url = service_url(self.service, port)
        self.register_outputs({"url": self.url, "cluster_url": self.cluster_url})
