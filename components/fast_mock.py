"""The fast mock (nginx + Lua) on the mock pool: the OpenResty image pinned in
``mock_llm/fast/mock.yaml``, serving the same files as the local target.

- A ConfigMap holds ``nginx.conf`` (the local template rendered with the cloud ``vars``: no
  ``load_module``, the module is built into OpenResty; error log to stderr; workers = the pod's
  CPUs), ``mock.lua``, ``contract.json`` and ``settings.json`` (the contract's path and the pacing
  profile). ``aigw-bench cloud run`` switches the profile by rewriting ``settings.json`` and
  restarting the Deployment (:mod:`aigw_bench.cloud.mock_control`); the ``control`` output says where.
- One pod, requests equal to limits (Guaranteed QoS), on the mock pool, unprivileged with a
  read-only root filesystem. ``Recreate``: the pod takes the node's allocatable CPU, so a surge pod
  could never be scheduled. Its namespace carries the load balancer controller's readiness-gate
  label, so a restarted pod is Ready only once the NLB's health checks pass. ``pulumi up`` does not
  wait for the Deployment (a switch from WireMock: components/mock_args.py), only for the NLB's
  endpoints on a fresh stack.
- A ClusterIP Service for the gateway, and the internal NLB (source ranges: the VPC) for the runner.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components import scheduling
from components.load_balancer import internal_nlb_service, service_url
from components.mock_args import FAST_MOCK_TYPE, SKIP_AWAIT, MockArgs, memory_mib, mock_namespace, switchable
from schema.cloud import MockCloudSpec
from schema.faults import HEALTHY_PLAN, FaultPlan, load_plan
from schema.mock import CONTRACT_FILE, MockDefinition, PacingProfile, settings_json
from schema.templating import render_file, render_vars

NAME = "fast-mock"  # ConfigMap, Deployment, ClusterIP Service and container
FALLBACK_NAME = "fast-mock-fallback"  # the same for its second, healthy instance
FALLBACK_CPU = 1.0
FALLBACK_MEMORY = "1Gi"  # nginx, the records' 64 MiB shared dict, the 256 MiB in-memory /tmp
CONFIG_DIR = "/etc/mock"
SETTINGS_KEY = "settings.json"
# Set on the pod template: a new value restarts the pod. `cloud run` sets it when it switches the
# profile, to the same digest this program computes, so that restoring a profile leaves no drift.
SETTINGS_ANNOTATION = "aigw-bench/settings-sha256"
CONFIG_ANNOTATION = "aigw-bench/config-sha256"
UNPRIVILEGED_UID = 65534  # nobody


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def workers(cpu: float) -> int:
    """nginx worker processes: one per whole CPU of the pod's limit (a worker uses at most one)."""
    return max(1, math.floor(cpu))


def config_files(mock: MockDefinition, spec: MockCloudSpec, profile: PacingProfile, cpu: float,
                 plan: FaultPlan | None = None) -> dict[str, str]:
    """The ConfigMap's files: nginx.conf rendered for EKS, the Lua module, the contract, the settings (the
    pacing profile and, for the fallback instance, its fault plan). The cloud ``vars`` set ``fault_plan``:
    nginx.conf is rendered once, by `pulumi up`, and must hold what any plan `cloud run` switches to needs."""
    context = {"workers": workers(cpu), **render_vars(spec.vars, {}, "mock_llm/fast/mock.yaml: cloud.vars")}
    return {
        "nginx.conf": render_file(mock.entry_dir / "nginx.conf.j2", context),
        "mock.lua": (mock.entry_dir / "mock.lua").read_text(),
        "contract.json": CONTRACT_FILE.read_text(),
        SETTINGS_KEY: settings_json(profile, f"{CONFIG_DIR}/contract.json", plan=plan),
    }


def container(args: MockArgs, cpu: str, memory: str, name: str = NAME) -> dict:
    spec = args.spec
    return {
        "name": name,
        "image": spec.image.ref,
        "command": spec.command,
        "ports": [{"name": "http", "containerPort": spec.port, "protocol": "TCP"}],
        "resources": {"requests": {"cpu": cpu, "memory": memory}, "limits": {"cpu": cpu, "memory": memory}},
        "readinessProbe": {"httpGet": {"path": args.mock.local.ready.path, "port": spec.port},
                           "periodSeconds": 2, "failureThreshold": 2},
        "livenessProbe": {"httpGet": {"path": args.mock.local.ready.path, "port": spec.port},
                          "periodSeconds": 10, "failureThreshold": 3},
        "volumeMounts": [{"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
                         {"name": "tmp", "mountPath": "/tmp"}],
        "securityContext": {"runAsNonRoot": True, "runAsUser": UNPRIVILEGED_UID, "runAsGroup": UNPRIVILEGED_UID,
                            "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]}},
    }


class FastMock(pulumi.ComponentResource):
    configmap: k8s.core.v1.ConfigMap
    deployment: k8s.apps.v1.Deployment
    service: k8s.core.v1.Service
    cluster_url: str
    url: pulumi.Output[str]
    control: dict[str, Any]
    fallback_url: str = ""  # the second, healthy instance in-cluster ("" without fault plans)

    def __init__(self, name: str, args: MockArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(FAST_MOCK_TYPE, name, None, switchable(FAST_MOCK_TYPE, opts))
        spec = args.spec
        ns = mock_namespace(name, spec.namespace, self, args.provider)
        files = config_files(args.mock, spec, args.profile, args.cpu)
        self.configmap, self.deployment, self.service, labels = self._instance(
            name, NAME, args, files, f"{args.cpu:g}", f"{memory_mib(args.memory_gib)}Mi", "mock", ns,
            # The switch between mocks must not wait for this Deployment (components/mock_args.py).
            metadata_annotations=SKIP_AWAIT)
        self.cluster_url = cluster_url(NAME, spec)
        nlb = internal_nlb_service(
            "mock-llm-nlb", namespace=ns.metadata["name"], selector=labels, port=spec.port, target_port=spec.port,
            lb_controller=args.lb_controller, source_ranges=args.source_ranges, parent=self, provider=args.provider,
            extra_depends_on=[self.deployment])
        self.url = service_url(nlb, spec.port)
        self.control = control(NAME, spec)
        if args.mock.fault_plans:
            # The second, healthy instance (plan `healthy`): the `resilient` configurations' fallback upstream,
            # its attempts counted as the first one's. Not on the mock pool: the first pod takes that node's
            # allocatable CPU. On the tools pool, with FALLBACK_CPU (requests = limits): it serves only what a
            # gateway sends it after a fault, a small share of the faults suite's fixed rate.
            fallback_files = config_files(args.mock, spec, args.profile, FALLBACK_CPU, plan=load_plan(HEALTHY_PLAN))
            self.fallback_deployment = self._instance(
                f"{name}-fallback", FALLBACK_NAME, args, fallback_files, f"{FALLBACK_CPU:g}", FALLBACK_MEMORY,
                "tools", ns)[1]
            self.fallback_url = cluster_url(FALLBACK_NAME, spec)
            self.control["fallback"] = control(FALLBACK_NAME, spec)
        self.register_outputs({"url": self.url, "cluster_url": self.cluster_url, "control": self.control,
                               "fallback_url": self.fallback_url})

    def _instance(self, name: str, k8s_name: str, args: MockArgs, files: dict[str, str], cpu: str, memory: str,
                  pool: scheduling.Role, ns: k8s.core.v1.Namespace, metadata_annotations: dict[str, str] | None = None,
                  ) -> tuple[k8s.core.v1.ConfigMap, k8s.apps.v1.Deployment, k8s.core.v1.Service, dict[str, str]]:
        """One instance of the mock: its ConfigMap, its one-pod Deployment on ``pool`` and its ClusterIP Service
        (the gateway's in-cluster address: no NLB hop between gateway and mock). Returns them and the pod's
        labels (each instance its own: a Service of one never selects the other's pod)."""
        spec = args.spec
        labels = {"app.kubernetes.io/name": k8s_name, "app.kubernetes.io/part-of": "aigw-bench"}
        after_ns = pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=[ns])
        configmap = k8s.core.v1.ConfigMap(
            f"{name}-files", metadata={"name": k8s_name, "namespace": spec.namespace, "labels": labels}, data=files,
            opts=after_ns)
        static = "".join(files[k] for k in sorted(files) if k != SETTINGS_KEY)
        deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata={"name": k8s_name, "namespace": spec.namespace, "labels": labels,
                      **({"annotations": metadata_annotations} if metadata_annotations else {})},
            spec={
                "replicas": 1,
                "strategy": {"type": "Recreate"},
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels, "annotations": {
                        SETTINGS_ANNOTATION: sha256(files[SETTINGS_KEY]), CONFIG_ANNOTATION: sha256(static)}},
                    "spec": {
                        "containers": [container(args, cpu, memory, k8s_name)],
                        "volumes": [{"name": "config", "configMap": {"name": k8s_name}},
                                    {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "256Mi"}}],
                        "terminationGracePeriodSeconds": 10,
                        **scheduling.placement(pool),
                    },
                },
            },
            opts=pulumi.ResourceOptions(parent=self, provider=args.provider,
                                        depends_on=[*args.cluster_ready, configmap]))
        service = k8s.core.v1.Service(
            f"{name}-service", metadata={"name": k8s_name, "namespace": spec.namespace, "labels": labels},
            spec={"type": "ClusterIP", "selector": labels,
                  "ports": [{"name": "http", "port": spec.port, "targetPort": spec.port, "protocol": "TCP"}]},
            opts=after_ns)
        return configmap, deployment, service, labels


def cluster_url(k8s_name: str, spec: MockCloudSpec) -> str:
    return f"http://{k8s_name}.{spec.namespace}.svc.cluster.local:{spec.port}"


def control(k8s_name: str, spec: MockCloudSpec) -> dict[str, Any]:
    """Where `cloud run` switches an instance's settings (profile, fault plan) and reads its records (the
    ClusterIP Service, through the API server's service proxy): aigw_bench/cloud/outputs.py MockControl."""
    return {"namespace": spec.namespace, "configmap": k8s_name, "settings_key": SETTINGS_KEY,
            "deployment": k8s_name, "settings_annotation": SETTINGS_ANNOTATION, "service": k8s_name,
            "port": spec.port}
