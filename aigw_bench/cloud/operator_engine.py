"""``aigw-bench cloud run --engine operator``: the run on stacks whose load generators are k6-operator
runner pods (one per node of the load-generator pool) instead of the EC2 runner. The same loop, rig
and steps as every engine (aigw_bench/run/loop.py); this module says how to reach the cluster, checks
the stack before anything starts, and makes the sessions' drivers (aigw_bench/cloud/operator_driver.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aigw_bench.cloud import operator as op
from aigw_bench.cloud.engine import CloudEngine
from aigw_bench.cloud.kube import KubeAccess, service_proxy_client
from aigw_bench.cloud.operator_driver import OperatorDriver, dns
from aigw_bench.cloud.outputs import StackOutputs
from aigw_bench.cloud.probe_pod import ProbePodRunner
from aigw_bench.cloud.prometheus import Prometheus
from aigw_bench.cloud.stack_driver import PROMETHEUS_LAG_SECONDS, StackDriver
from aigw_bench.measure.driver import Endpoint
from aigw_bench.run.plan import RunPlan
from schema.errors import CloudError


@dataclass(frozen=True)
class OperatorOptions:
    parallelism: int | None = None  # default: one runner per load-generator node of the stack
    prometheus_url: str | None = None  # default: through the Kubernetes API server's service proxy
    pending_deadline_s: float = op.PENDING_DEADLINE_S
    poll_interval: float = 5.0


def grafana_hint(outputs: StackOutputs) -> str:
    """How to open the stack's dashboard: a port-forward from the user's machine, nothing public."""
    g = outputs.grafana_service or {}
    ns, name, port = g.get("namespace", "monitoring"), g.get("name", "kps-grafana"), g.get("port", 80)
    uid = g.get("dashboard_uid", "aigw-bench-k6")
    return (f"live dashboard ({outputs.stack}): kubectl -n {ns} port-forward svc/{name} 3000:{port}, then open "
            f"http://localhost:3000/d/{uid} (user admin; password: pulumi stack output grafana_admin_password "
            f"--show-secrets -s {outputs.stack})")


class OperatorEngine(CloudEngine):
    """``prometheus(outputs, access)`` gives a stack's Prometheus reader, ``runner(access)`` its TestRun
    runner and ``probe_runner(access)`` its probe-pod runner; the tests replace them with fakes."""

    name = "operator"
    interrupt_note = "; its TestRun and pods were deleted"

    def __init__(self, stacks: list[StackOutputs], options: OperatorOptions | None = None, *,
                 prometheus: Callable[[StackOutputs, KubeAccess], Prometheus] | None = None,
                 runner: Callable[[KubeAccess], op.TestRunner] | None = None,
                 probe_runner: Callable[[KubeAccess], ProbePodRunner] | None = None,
                 wall: Callable[[], float] = time.time, prometheus_lag_s: int = PROMETHEUS_LAG_SECONDS,
                 **common: Any):
        self.options = options or OperatorOptions()
        self.wall = wall
        self.prometheus_lag_s = prometheus_lag_s
        common.setdefault("poll_interval", self.options.poll_interval)
        super().__init__(stacks, **common)
        self._prometheus_factory = prometheus or self._default_prometheus
        self._runner_factory = runner or (lambda a: op.TestRunner(
            a.core, a.custom, poll_interval=self.options.poll_interval,
            pending_deadline_s=self.options.pending_deadline_s))
        self._probe_factory = probe_runner or (lambda a: ProbePodRunner(a.core, poll_interval=self.poll_interval))
        self._prometheus: dict[str, Prometheus] = {}

    def _default_prometheus(self, out: StackOutputs, access: KubeAccess) -> Prometheus:
        import httpx

        if self.options.prometheus_url:
            url = self.options.prometheus_url.rstrip("/")
            return Prometheus(httpx.Client(base_url=url, timeout=30.0), f"{url}, given with --prometheus-url")
        svc = out.prometheus_service
        client = service_proxy_client(access.configuration, svc["namespace"], svc["name"], int(svc["port"]))
        return Prometheus(client, f"service {svc['namespace']}/{svc['name']}:{svc['port']} through the Kubernetes "
                                  f"API server; check `kubectl -n {svc['namespace']} get pods` and "
                                  f"`kubectl -n {svc['namespace']} get svc {svc['name']}`")

    def prometheus(self, out: StackOutputs) -> Prometheus:
        if out.stack not in self._prometheus:
            self._prometheus[out.stack] = self._prometheus_factory(out, self.kube(out))
        return self._prometheus[out.stack]

    def parallelism(self, out: StackOutputs) -> int:
        """Runners for a job whose load may be split: --parallelism, else one per load-generator node. Each
        job then gets at most as many as its script has VUs (OperatorDriver.generators)."""
        return self.options.parallelism or int(out.k6_operator.get("load_generator_nodes") or 0)

    @staticmethod
    def _main_vus(plan: RunPlan) -> int:
        """The most VUs of the run's main step: the scenario's, or the suite's published shape."""
        return plan.measurement.scenario.max_vus(plan.measurement.params)

    def _check_parallelism(self, plan: RunPlan) -> None:
        """An explicit --parallelism the scenario cannot use is refused now: the k6-operator's initializer
        puts a TestRun with more runners than the script's VUs in stage `error` (v1.6.0
        internal/controller/k6_initialize.go:87-104), and quietly running fewer runners than asked would
        not be what was asked. Left out, parallelism fits every job (one runner per node, at most its VUs)."""
        wanted, vus = self.options.parallelism, self._main_vus(plan)
        if wanted is not None and wanted > vus:
            what = f"suite {plan.measurement.suite.name}'s published shape" if plan.measurement.suite \
                else f"scenario {plan.measurement.scenario.name}"
            raise CloudError(
                f"--parallelism {wanted}, but {what} runs at most {vus} VU(s): the k6-operator refuses a TestRun with "
                f"more runners than the script's VUs (its initializer's check: 'number of instances > number of VUs'). "
                f"Ask for at most {vus}, or leave --parallelism out: one runner per load-generator node, never more "
                "than a job's VUs")

    # ------------------------------------------------------------------ before anything starts
    def _preflight_load_generators(self, plan: RunPlan) -> None:
        self._check_parallelism(plan)
        for out in self.stacks.values():
            info = out.k6_operator
            if not info.get("enabled"):
                raise CloudError(f"stack '{out.stack}' has no k6-operator: set `pulumi config set --path "
                                 f"k6Operator.enabled true -s {out.stack}` and `pulumi up`, or run with --engine ec2")
            nodes = int(info.get("load_generator_nodes") or 0)
            wanted = self.parallelism(out)
            if wanted < 1 or wanted > nodes:
                raise CloudError(
                    f"stack '{out.stack}': --parallelism {wanted} but its load-generator pool has {nodes} node(s) and "
                    "runners go one per node; set nodes.loadgen.count (`pulumi config set --path "
                    f"nodes.loadgen.count {max(wanted, 1)}`, `pulumi up`) or ask for at most {nodes}")
            if not out.prometheus_service:
                raise CloudError(f"stack '{out.stack}' has no prometheus_service output: run `pulumi up` with this "
                                 "version of the program")
            self.prometheus(out).ready()  # unreachable: said now, before any load is sent

    def _machine(self, plan: RunPlan, first: StackOutputs) -> tuple[dict[str, Any], str]:
        return ({"load_generator_instance_type": first.k6_operator.get("load_generator_instance_type"),
                 # runners of the main step's TestRuns (fewer at concurrency 1, and for jobs with fewer VUs)
                 "load_generators": {t.name: min(self.parallelism(self.outputs(t)), self._main_vus(plan))
                                     for t in plan.targets},
                 "k6_image": op.K6_IMAGE, "region": first.region},
                "separate machines: k6 runner pods one per load-generator node, gateway and mock on their own nodes")

    def _rig_cpu(self, out: StackOutputs) -> str:
        return (f"k6 on up to {self.parallelism(out)} runner pod(s) on "
                f"{out.k6_operator.get('load_generator_instance_type', 'load-generator')} nodes, the mock on its "
                f"{out.instance_types.get('mock', '')} node")

    # ------------------------------------------------------------------------ sessions
    @contextmanager
    def _driver(self, out: StackOutputs, work: Path, direct: Endpoint, target: Endpoint,
                secret: dict[str, str], label: str = "") -> Iterator[OperatorDriver]:
        access = self.kube(out)
        yield OperatorDriver(outputs=out, work=work, direct=direct, target=target, on_event=self.ctx.emit,
                             mock_profiles=self._profiles.get(out.stack), profile_switch_s=self.profile_switch_s,
                             runner=self._runner_factory(access), probe_runner=self._probe_factory(access),
                             prometheus=self.prometheus(out), parallelism=self.parallelism(out),
                             session_label=label or f"rig-{dns(out.stack)}", secret=secret, sleep=self.sleep,
                             wall=self.wall, prometheus_lag_s=self.prometheus_lag_s)

    def _session_evidence(self, driver: StackDriver) -> dict[str, Any]:
        assert isinstance(driver, OperatorDriver)
        return {"engine": "k6-operator", "parallelism": driver.parallelism, "runner_image": op.K6_IMAGE,
                "namespace": driver.namespace, "dashboard": grafana_hint(driver.outputs)}
