"""Kubernetes and Prometheus faked at the API boundary for the k6-operator engine's tests.

- ``FakeCluster``: the methods of kubernetes.client's CoreV1Api and CustomObjectsApi the engine
  calls, with their real signatures and real model objects (V1Pod...) and ApiException errors,
  plus a k6-operator stand-in that advances a TestRun one stage per status read, the way
  grafana/k6-operator v1.6.0 does (initializer, runner jobs ``<name>-<i>``, starter; labels
  ``app=k6``, ``k6_cr``, ``runner``, ``job-name``); owner-referenced pods go with their TestRun.
- The operator's own work on a TestRun that matters to the engine, done for real: its initializer's
  ``k6 inspect --execution-requirements`` of the TestRun's script with the runner's environment, and the
  ``error`` stage when the script has fewer VUs than ``parallelism`` (``initializer_check``); the argv it
  gives each runner's k6 (``runner_argv``), for the fakes whose runners are real k6 processes.
- ``FakePrometheus``: Prometheus's HTTP API (``/api/v1/query``, ``/api/v1/query_range``) behind
  httpx.MockTransport, serving the k6 series the runners would have written: cumulative counters and
  native histograms per runner (``instance_id``), in the API's JSON form.
"""

from __future__ import annotations

import json
import math
import random
import shlex
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import numpy as np
from kubernetes.client import (
    V1ContainerState,
    V1ContainerStateTerminated,
    V1ContainerStateWaiting,
    V1ContainerStatus,
    V1ObjectMeta,
    V1Pod,
    V1PodCondition,
    V1PodList,
    V1PodSpec,
    V1PodStatus,
)
from kubernetes.client.exceptions import ApiException

from aigw_bench.run.environment import k6_binary
from analysis.native_histogram import NativeHistogram, bucket_bounds

STAGES = ["initialization", "initialized", "created", "started", "finished"]


# ---------------------------------------------------------------------------------- the operator's k6 work
def runner_env(testrun: dict, secrets: dict[str, dict]) -> dict[str, str]:
    """A runner's (and, with no spec.initializer, the initializer's) environment: literal values, and
    Secret references resolved as the kubelet would."""
    namespace = testrun["metadata"]["namespace"]
    env = {}
    for e in testrun["spec"]["runner"].get("env", []):
        if "value" in e:
            env[e["name"]] = e["value"]
        else:
            ref = e["valueFrom"]["secretKeyRef"]
            env[e["name"]] = secrets[f"{namespace}/{ref['name']}"]["stringData"][ref["key"]]
    return env


def runner_argv(testrun: dict, index: int, script: str, outputs: list[str]) -> list[str]:
    """k6's argv in runner ``index`` as grafana/k6-operator v1.6.0 builds it (pkg/resources/jobs/runner.go:
    ``k6 run --quiet``, the execution segment of a parallel run, spec.arguments split on whitespace, the
    script, ``--address``, ``--paused``, ``--tag instance_id=<i>``, ``--tag testrun_name=<name>``), with the
    remote-write output replaced by ``outputs`` (nothing receives it here), the REST API on an ephemeral
    loopback port and no ``--paused`` (no starter resumes it here)."""
    from aigw_bench.cloud.remote import segment_args

    spec = testrun["spec"]
    arguments = spec.get("arguments", "").split()
    while "--out" in arguments and arguments[arguments.index("--out") + 1] == "experimental-prometheus-rw":
        del arguments[arguments.index("--out"):arguments.index("--out") + 2]
    outs = [arg for out in outputs for arg in ("--out", out)]
    return [k6_binary(), "run", "--quiet", *shlex.split(segment_args(index - 1, spec["parallelism"])), *arguments,
            *outs, script, "--address=127.0.0.1:0", "--tag", f"instance_id={index}",
            "--tag", f"testrun_name={testrun['metadata']['name']}"]


def initializer_check(testrun: dict, script: str, secrets: dict[str, dict]) -> dict:
    """What the k6-operator's initializer and RunValidations make of a TestRun (v1.6.0
    pkg/resources/jobs/initializer.go:68-72,182,210-217: ``k6 archive`` with ``-e NAME="${NAME}"`` for each
    runner env var, then ``k6 inspect --execution-requirements``; internal/controller/k6_initialize.go:87-104:
    stage ``error`` if ``maxVUs < parallelism``), asked of the real k6. Returns k6's requirements plus
    ``error``: None, or why the operator puts the TestRun in stage error."""
    env = runner_env(testrun, secrets)
    with tempfile.TemporaryDirectory(prefix="aigw-initializer-") as tmp:
        path = f"{tmp}/script.js"
        with open(path, "w") as fh:
            fh.write(script)
        argv = [k6_binary(), "inspect", "--execution-requirements",
                *(arg for name, value in env.items() for arg in ("-e", f"{name}={value}")), path]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=tmp)
    if done.returncode != 0:
        return {"error": f"k6 inspect failed: {done.stderr.strip()[-300:]}"}
    requirements = json.loads(done.stdout)
    requirements["error"] = None
    if requirements["maxVUs"] < testrun["spec"]["parallelism"]:
        requirements["error"] = "number of instances > number of VUs"
    return requirements


def api_error(status: int, reason: str) -> ApiException:
    exc = ApiException(status=status, reason=reason)
    exc.body = json.dumps({"kind": "Status", "message": f"{reason} (fake)"})
    return exc


@dataclass
class RunnerScript:
    """How one runner behaves: its samples (seconds), its exit code, or that it never schedules."""

    samples: list[list[float]]  # per second of the run, the request durations in seconds
    exit_code: int = 0
    unschedulable: bool = False
    failed_status: int = 0  # share of requests answered with an error status (per mille)
    # Requests of the run's end that never reach Prometheus (negative: more there than k6 counted).
    lost_in_prometheus: int = 0

    @property
    def all(self) -> list[float]:
        return [v for second in self.samples for v in second]


def k6_summary(script: RunnerScript, seconds: float) -> dict[str, Any]:
    """The summary k6's handleSummary writes, computed from the runner's samples as k6 does
    (percentiles interpolated linearly between the sorted samples), in milliseconds."""
    ms = np.array(script.all) * 1000
    values = {"avg": float(ms.mean()), "min": float(ms.min()), "max": float(ms.max()),
              "med": float(np.percentile(ms, 50)), "count": len(ms)}
    for p in (50, 90, 95, 99, 99.9):
        values[f"p({p:g})"] = float(np.percentile(ms, p))
    n = len(ms)
    return {"metrics": {
        "http_reqs": {"type": "counter", "contains": "default", "values": {"count": n, "rate": n / seconds}},
        "http_req_duration": {"type": "trend", "contains": "time", "values": values},
        "aigw_ok": {"type": "rate", "contains": "default", "values": {"rate": 1.0}},
        "http_req_failed": {"type": "rate", "contains": "default", "values": {"rate": 0.0}},
    }, "state": {"testRunDurationMs": seconds * 1000}}


def runner_log(summary: dict[str, Any]) -> str:
    """A runner pod's log: k6's logfmt lines (stderr) around the JSON summary handleSummary writes
    to /dev/stdout (indented, as JSON.stringify(data, null, 1) does) and its one-line summary."""
    return ('time="2026-11-22T23:00:00Z" level=info msg="k6 starting"\n'
            + json.dumps(summary, indent=1) + "\n"
            + "aigw-bench summary: target=t requests=1 rps=1.0 ok=100.00% p95=1.00ms\n"
            + 'time="2026-11-22T23:00:10Z" level=info msg="test finished"\n')


@dataclass
class FakeApi:
    """The ConfigMaps, Secrets, pods and TestRuns of a fake cluster: the calls of CoreV1Api and
    CustomObjectsApi the engine makes, with their real signatures; what happens to a TestRun (its
    stages, its pods) is the subclass's ``_advance``."""

    config_maps: dict[str, dict] = field(default_factory=dict)
    secrets: dict[str, dict] = field(default_factory=dict)
    testruns: dict[str, dict] = field(default_factory=dict)
    created: list[dict] = field(default_factory=list)  # every TestRun manifest as received
    pods: dict[str, V1Pod] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    # ---------------------------------------------------------------- CoreV1Api
    def create_namespaced_config_map(self, namespace: str, body: dict, **_: Any) -> dict:
        self.calls.append("create configmap")
        self.config_maps[f"{namespace}/{body['metadata']['name']}"] = body
        return body

    def delete_namespaced_config_map(self, name: str, namespace: str, **_: Any) -> None:
        self.calls.append("delete configmap")
        if self.config_maps.pop(f"{namespace}/{name}", None) is None:
            raise api_error(404, "Not Found")

    def create_namespaced_secret(self, namespace: str, body: dict, **_: Any) -> dict:
        self.secrets[f"{namespace}/{body['metadata']['name']}"] = body
        return body

    def delete_namespaced_secret(self, name: str, namespace: str, **_: Any) -> None:
        if self.secrets.pop(f"{namespace}/{name}", None) is None:
            raise api_error(404, "Not Found")

    def list_namespaced_pod(self, namespace: str, label_selector: str = "", **_: Any) -> V1PodList:
        key, _, value = label_selector.partition("=")
        items = [p for p in self.pods.values()
                 if p.metadata.namespace == namespace and (p.metadata.labels or {}).get(key) == value]
        return V1PodList(items=items)

    def read_namespaced_pod_log(self, name: str, namespace: str, container: str | None = None, **_: Any) -> str:
        if name not in self.pods:
            raise api_error(404, "Not Found")
        return self._log(name, container)

    def _log(self, name: str, container: str | None) -> str:
        raise NotImplementedError

    def delete_collection_namespaced_pod(self, namespace: str, label_selector: str = "", **_: Any) -> None:
        self.calls.append("delete pods")
        for pod in self.list_namespaced_pod(namespace, label_selector=label_selector).items:
            self._remove_pod(pod.metadata.name)

    def _remove_pod(self, name: str) -> None:
        self.pods.pop(name, None)

    # ---------------------------------------------------------------- CustomObjectsApi
    def create_namespaced_custom_object(self, group: str, version: str, namespace: str, plural: str, body: dict,
                                        **_: Any) -> dict:
        self.calls.append("create testrun")
        assert (group, version, plural) == ("k6.io", "v1alpha1", "testruns")
        assert body["apiVersion"] == "k6.io/v1alpha1" and body["kind"] == "TestRun"
        cm = body["spec"]["script"]["configMap"]
        assert f"{namespace}/{cm['name']}" in self.config_maps, "the script's ConfigMap must exist first"
        assert cm["file"] in self.config_maps[f"{namespace}/{cm['name']}"]["data"]
        self.created.append(json.loads(json.dumps(body)))
        self.testruns[f"{namespace}/{body['metadata']['name']}"] = {**body, "status": {}}
        return body

    def get_namespaced_custom_object(self, group: str, version: str, namespace: str, plural: str, name: str,
                                     **_: Any) -> dict:
        obj = self.testruns.get(f"{namespace}/{name}")
        if obj is None:
            raise api_error(404, "Not Found")
        self._advance(obj)
        return json.loads(json.dumps(obj))

    def _advance(self, obj: dict) -> None:
        raise NotImplementedError

    def delete_namespaced_custom_object(self, group: str, version: str, namespace: str, plural: str, name: str,
                                        propagation_policy: str | None = None, **_: Any) -> None:
        self.calls.append(f"delete testrun ({propagation_policy})")
        if self.testruns.pop(f"{namespace}/{name}", None) is None:
            raise api_error(404, "Not Found")
        self._collect_garbage(name)

    def _collect_garbage(self, testrun: str) -> None:
        """The garbage collector removes the operator's jobs and their pods with their TestRun."""
        for pod_name in [n for n, p in self.pods.items() if (p.metadata.labels or {}).get("k6_cr") == testrun]:
            self._remove_pod(pod_name)

    @property
    def empty(self) -> bool:
        return not (self.testruns or self.config_maps or self.secrets or self.pods)


@dataclass
class FakeCluster(FakeApi):
    runners: list[RunnerScript] = field(default_factory=list)
    seconds: float = 10.0
    stage_error_at: str | None = None  # the operator sets stage "error" instead of this stage
    interrupt_at: str | None = None  # Ctrl-C when the TestRun reaches this stage
    testrun_crd: bool = True
    sticky_pods: bool = False  # pods that ignore their TestRun's deletion
    logs: dict[str, str] = field(default_factory=dict)
    on_started: Callable[[dict], None] | None = None  # e.g. write the runners' series to FakePrometheus
    # Which TestRuns the faults above (and the runners' exit codes) apply to; default: all of them.
    faulty: Callable[[dict], bool] = lambda obj: True
    inspected: dict[str, dict] = field(default_factory=dict)  # TestRun -> the initializer's k6 inspect
    # With the engine's wall clock, runners take real (fake) time: k6 starts k6_delay_s after the TestRun is
    # created (initializer, image pulls, starter) and runs `seconds`; runner containers end with finishedAt.
    wall: Callable[[], float] | None = None
    k6_delay_s: float = 0.0
    created_at: dict[str, float] = field(default_factory=dict)
    k6_start: dict[str, float] = field(default_factory=dict)

    def _log(self, name: str, container: str | None) -> str:
        assert container == "k6", "the runner's container is named k6"
        return self.logs.get(name, "")

    def _not_yet(self, name: str, nxt: str) -> bool:
        """With a wall clock: k6 cannot start before its delay, nor finish before its seconds are up."""
        if self.wall is None:
            return False
        if nxt == "started":
            return self.wall() < self.created_at[name] + self.k6_delay_s
        if nxt == "finished":
            return self.wall() < self.k6_start[name] + self.seconds
        return False

    def create_namespaced_custom_object(self, group: str, version: str, namespace: str, plural: str, body: dict,
                                        **kw: Any) -> dict:
        if not self.testrun_crd:
            self.calls.append("create testrun")
            raise api_error(404, "Not Found")
        if self.wall is not None:
            self.created_at[body["metadata"]["name"]] = self.wall()
        return super().create_namespaced_custom_object(group, version, namespace, plural, body, **kw)

    def _collect_garbage(self, testrun: str) -> None:
        if not self.sticky_pods:
            super()._collect_garbage(testrun)

    def _initializer_refuses(self, obj: dict) -> bool:
        """The initializer's real ``k6 inspect`` of the TestRun; stage ``error`` as the operator sets it."""
        cm = obj["spec"]["script"]["configMap"]
        script = self.config_maps[f"{obj['metadata']['namespace']}/{cm['name']}"]["data"][cm["file"]]
        check = initializer_check(obj, script, self.secrets)
        self.inspected[obj["metadata"]["name"]] = check
        if check["error"] is None:
            return False
        obj["status"]["stage"] = "error"
        return True

    # ---------------------------------------------------------------- the operator stand-in
    def _pod(self, obj: dict, job: str, phase: str, runner: bool, exit_code: int | None = None,
             unschedulable: bool = False, finished_at: float | None = None) -> None:
        name = obj["metadata"]["name"]
        labels = {"app": "k6", "k6_cr": name, "job-name": job, **({"runner": "true"} if runner else {})}
        state = None
        if exit_code is not None:
            # metav1.Time is serialised as RFC 3339 in whole seconds: the API gives finishedAt truncated.
            ended = datetime.fromtimestamp(int(finished_at), UTC) if finished_at is not None else None
            state = V1ContainerState(terminated=V1ContainerStateTerminated(exit_code=exit_code, finished_at=ended))
        elif phase == "Pending":
            state = V1ContainerState(waiting=V1ContainerStateWaiting(reason="ContainerCreating"))
        conditions = [V1PodCondition(type="PodScheduled", status="False", reason="Unschedulable",
                                     message="0/4 nodes are available: 4 node(s) had untolerated taint")] \
            if unschedulable else []
        pod = V1Pod(metadata=V1ObjectMeta(name=f"{job}-abcde", namespace=obj["metadata"]["namespace"], labels=labels),
                    spec=V1PodSpec(containers=[], node_name=None if unschedulable else f"node-{job[-1]}"),
                    status=V1PodStatus(phase=phase, conditions=conditions, container_statuses=[
                        V1ContainerStatus(name="k6", image="grafana/k6:1.1.0", image_id="", ready=phase == "Running",
                                          restart_count=0, state=state)]))
        self.pods[pod.metadata.name] = pod

    def _advance(self, obj: dict) -> None:
        status = obj["status"]
        stage = status.get("stage")
        nxt = STAGES[0] if stage is None else STAGES[min(STAGES.index(stage) + 1, len(STAGES) - 1)] \
            if stage in STAGES else stage
        if stage in ("finished", "error"):
            return
        faulty = self.faulty(obj)
        if self.stage_error_at == nxt and faulty:
            status["stage"] = "error"
            status["conditions"] = [{"type": "TestRunRunning", "status": "False", "reason": "TestRunPreparation"}]
            return
        name = obj["metadata"]["name"]
        parallelism = obj["spec"]["parallelism"]
        if self._not_yet(name, nxt):
            return
        if nxt == "initialization":
            self._pod(obj, f"{name}-initializer", "Succeeded", False, exit_code=0)
            if self._initializer_refuses(obj):
                return
        if nxt == "created":
            for i in range(1, parallelism + 1):
                script = self.runners[i - 1]
                self._pod(obj, f"{name}-{i}", "Pending", True, unschedulable=script.unschedulable and faulty)
        if nxt == "started":
            if faulty and any(r.unschedulable for r in self.runners[:parallelism]):
                # The others run paused (k6 --paused); the operator waits for every runner to be
                # ready before the starter resumes them.
                for i in range(1, parallelism + 1):
                    if not self.runners[i - 1].unschedulable:
                        self._pod(obj, f"{name}-{i}", "Running", True)
                return
            self._pod(obj, f"{name}-starter", "Succeeded", False, exit_code=0)
            for i in range(1, parallelism + 1):
                self._pod(obj, f"{name}-{i}", "Running", True)
            if self.wall is not None:
                self.k6_start[name] = self.wall()
            if self.on_started:
                self.on_started(obj)
        if nxt == "finished":
            for i in range(1, parallelism + 1):
                script = self.runners[i - 1]
                code = script.exit_code if faulty else 0
                phase = "Succeeded" if code == 0 else "Failed"
                end = self.k6_start[name] + self.seconds if name in self.k6_start else None
                self._pod(obj, f"{name}-{i}", phase, True, exit_code=code, finished_at=end)
                self.logs[f"{name}-{i}-abcde"] = runner_log(k6_summary(script, self.seconds))
        status["stage"] = nxt
        if self.interrupt_at == nxt and faulty:
            raise KeyboardInterrupt

# -------------------------------------------------------------------------------------------- Prometheus
def latency_script(seed: int, seconds: int, rps: int, median_s: float, **kw: Any) -> RunnerScript:
    rng = random.Random(seed)
    return RunnerScript(samples=[[rng.lognormvariate(math.log(median_s), 0.4) * (6 if rng.random() < 0.01 else 1)
                                  for _ in range(rps)] for _ in range(seconds)], **kw)


def histogram_json(h: NativeHistogram) -> dict[str, Any]:
    buckets = [[3, repr(-h.zero_threshold), repr(h.zero_threshold), str(h.zero_count)]] if h.zero_count else []
    buckets += [[0, repr(lo), repr(up), str(h.buckets[i])]
                for i in sorted(h.buckets) for lo, up in [bucket_bounds(h.schema, i)]]
    return {"count": str(h.count), "sum": repr(h.sum), "buckets": buckets}


@dataclass
class FakePrometheus:
    """Series per TestRun, filled when the fake operator starts the runners."""

    runners: list[RunnerScript]
    start: float = 1_700_000_000.0
    unreachable: bool = False
    series: dict[str, dict[str, list[dict]]] = field(default_factory=dict)  # testrun -> metric -> series
    RESOURCE_CORES: dict[str, float] = field(default_factory=lambda: {"gateway": 1.5, "mock": 0.25, "loadgen": 2.0})
    queries: list[dict[str, str]] = field(default_factory=list)

    def record(self, testrun: dict, start: float | None = None) -> None:
        """The series of the runners a TestRun starts (``self.runners``, as many as its parallelism), from
        ``start`` (epoch seconds; default ``self.start``), one state a second."""
        self.record_scripts(testrun["metadata"]["name"], self.runners[: testrun["spec"]["parallelism"]], start)

    def record_scripts(self, name: str, scripts: list[RunnerScript], start: float | None = None) -> None:
        start = self.start if start is None else start
        hist, reqs = [], []
        for index, script in enumerate(scripts, start=1):
            labels = {"testrun_name": name, "instance_id": str(index), "target": "t", "status": "200",
                      "expected_response": "true"}
            states, counts, seen = [], [], []
            for second, samples in enumerate(script.samples, start=1):
                seen += samples
                ts = math.floor(start) + second  # Prometheus steps are whole seconds
                sent = seen
                if second == len(script.samples) and script.lost_in_prometheus:  # the run's last write
                    lost = script.lost_in_prometheus
                    sent = seen[:-lost] if lost > 0 else seen + seen[lost:]
                states.append([ts, histogram_json(NativeHistogram.of_samples(sent))])
                counts.append([ts, str(len(sent))])
            hist.append({"metric": {"__name__": "k6_http_req_duration_seconds", **labels}, "histograms": states})
            reqs.append({"metric": {"__name__": "k6_http_reqs_total", **labels}, "values": counts})
        self.series[name] = {"k6_http_req_duration_seconds": hist, "k6_http_reqs_total": reqs}

    def handler(self, request: httpx.Request) -> httpx.Response:
        if self.unreachable:
            raise httpx.ConnectError("connection refused", request=request)
        params = dict(request.url.params)
        self.queries.append({"path": request.url.path, **params})
        query = params.get("query", "")
        if "container_" in query:
            return httpx.Response(200, json=self._resources(request.url.path, params))
        if request.url.path.endswith("/api/v1/query"):
            return httpx.Response(200, json={"status": "success", "data": {"resultType": "vector", "result": [
                {"metric": {}, "value": [self.start, "1"]}]}})
        assert request.url.path.endswith("/api/v1/query_range"), request.url.path
        assert float(params["step"]) == 1.0
        query = params["query"]
        metric = query.split("{")[0]
        testrun = query.split('testrun_name="')[1].split('"')[0]
        result = self.series.get(testrun, {}).get(metric, [])
        if 'expected_response="false"' in query:
            result = []  # no failed requests in these runs
        kind = "matrix"
        return httpx.Response(200, json={"status": "success", "data": {"resultType": kind, "result": result}})

    def _resources(self, path: str, params: dict[str, str]) -> dict:
        """The pods' CPU (RESOURCE_CORES per role, cores) and memory (300 MiB): range queries give one summed
        series in 5 s steps, instant queries of a range vector one counter per container, a sample a second."""
        query = params["query"]
        role = next((r for r, marker in (("loadgen", 'namespace="loadgen"'), ("gateway", 'namespace="gateway"'))
                     if marker in query), "mock")
        cores = self.RESOURCE_CORES[role]
        if path.endswith("/query_range"):
            start, end = float(params["start"]), float(params["end"])
            value = str(cores) if "cpu" in query else str(300 * 2**20)
            points = [[t, value] for t in range(int(start), int(end) + 1, 5)] or [[start, value]]
            result = [{"metric": {}, "values": points}]
        else:
            at, span = float(params["time"]), float(query.rsplit("[", 1)[1].rstrip("s]"))
            result = [{"metric": {"container": "c0"}, "values": [[t, str(cores * t)]
                                                                 for t in range(int(at - span), int(at) + 1)]}]
        return {"status": "success", "data": {"resultType": "matrix", "result": result}}

    def client(self) -> httpx.Client:
        return httpx.Client(base_url="http://prometheus.test", transport=httpx.MockTransport(self.handler))
