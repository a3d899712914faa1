"""Kubernetes and Prometheus faked at the API boundary for the k6-operator engine's tests.

- ``FakeCluster``: the methods of kubernetes.client's CoreV1Api and CustomObjectsApi the engine
  calls, with their real signatures and real model objects (V1Pod...) and ApiException errors,
  plus a k6-operator stand-in that advances a TestRun one stage per status read, the way
  grafana/k6-operator v1.6.0 does (initializer, runner jobs ``<name>-<i>``, starter; labels
  ``app=k6``, ``k6_cr``, ``runner``, ``job-name``); owner-referenced pods go with their TestRun.
- ``FakePrometheus``: Prometheus's HTTP API (``/api/v1/query``, ``/api/v1/query_range``) behind
  httpx.MockTransport, serving the k6 series the runners would have written: cumulative counters and
  native histograms per runner (``instance_id``), in the API's JSON form.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
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

from analysis.native_histogram import NativeHistogram, bucket_bounds

STAGES = ["initialization", "initialized", "created", "started", "finished"]


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

    def _log(self, name: str, container: str | None) -> str:
        assert container == "k6", "the runner's container is named k6"
        return self.logs.get(name, "")

    def create_namespaced_custom_object(self, group: str, version: str, namespace: str, plural: str, body: dict,
                                        **kw: Any) -> dict:
        if not self.testrun_crd:
            self.calls.append("create testrun")
            raise api_error(404, "Not Found")
        return super().create_namespaced_custom_object(group, version, namespace, plural, body, **kw)

    def _collect_garbage(self, testrun: str) -> None:
        if not self.sticky_pods:
            super()._collect_garbage(testrun)

    # ---------------------------------------------------------------- the operator stand-in
    def _pod(self, obj: dict, job: str, phase: str, runner: bool, exit_code: int | None = None,
             unschedulable: bool = False) -> None:
        name = obj["metadata"]["name"]
        labels = {"app": "k6", "k6_cr": name, "job-name": job, **({"runner": "true"} if runner else {})}
        state = None
        if exit_code is not None:
            state = V1ContainerState(terminated=V1ContainerStateTerminated(exit_code=exit_code))
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
        if nxt == "initialization":
            self._pod(obj, f"{name}-initializer", "Succeeded", False, exit_code=0)
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
            if self.on_started:
                self.on_started(obj)
        if nxt == "finished":
            for i in range(1, parallelism + 1):
                script = self.runners[i - 1]
                code = script.exit_code if faulty else 0
                phase = "Succeeded" if code == 0 else "Failed"
                self._pod(obj, f"{name}-{i}", phase, True, exit_code=code)
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

    def record(self, testrun: dict) -> None:
        """The series of the runners a TestRun starts (``self.runners``, as many as its parallelism)."""
        self.record_scripts(testrun["metadata"]["name"], self.runners[: testrun["spec"]["parallelism"]])

    def record_scripts(self, name: str, scripts: list[RunnerScript]) -> None:
        hist, reqs = [], []
        for index, script in enumerate(scripts, start=1):
            labels = {"testrun_name": name, "instance_id": str(index), "target": "t", "status": "200",
                      "expected_response": "true"}
            states, counts, seen = [], [], []
            for second, samples in enumerate(script.samples, start=1):
                seen += samples
                ts = self.start + second
                states.append([ts, histogram_json(NativeHistogram.of_samples(seen))])
                counts.append([ts, str(len(seen))])
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
