"""A cluster faked at the Kubernetes API boundary with real work behind it, for the k6-operator engine's
whole-run tests: the methods of CoreV1Api, AppsV1Api and CustomObjectsApi the engine calls, with their
real signatures, model objects and ApiException errors (like tests/k8s_fakes.FakeCluster), and:

- a k6-operator stand-in whose runner pods are real k6 processes on this machine: the TestRun's
  script (its ConfigMap), its runner environment (Secret references resolved), the operator's own
  flags (execution segments, ``--tag instance_id``/``testrun_name``), stdout and stderr as the pod
  log; its initializer's validation (the real ``k6 inspect``, stage ``error`` above the script's
  VUs). Remote write has no receiver here: each runner also writes k6's CSV, from which the fake
  Prometheus serves the series the runners would have written (tests/k8s_fakes.FakePrometheus);
- a kubelet for the probe pod that runs the pod's own shell command (its ConfigMap mounted, the pip
  install left out: the probe's packages are this interpreter's);
- the fast mock's ConfigMap and Deployment, whose rollout restarts a real local mock.

Every process is started in a session of its own and stopped by its process group.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from kubernetes.client import (
    V1ConfigMap,
    V1ContainerState,
    V1ContainerStateTerminated,
    V1ContainerStatus,
    V1Deployment,
    V1DeploymentSpec,
    V1DeploymentStatus,
    V1LabelSelector,
    V1ObjectMeta,
    V1Pod,
    V1PodSpec,
    V1PodStatus,
    V1PodTemplateSpec,
)

from tests.k8s_fakes import FakeApi, FakePrometheus, RunnerScript, api_error, initializer_check, runner_argv, runner_env


@dataclass
class Process:
    """A child in its own session, its combined output collected for the pod log."""

    popen: subprocess.Popen
    output: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, argv: list[str], env: dict[str, str], cwd: Path) -> Process:
        popen = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, text=True, start_new_session=True)
        proc = cls(popen)
        threading.Thread(target=lambda: proc.output.extend(popen.stdout), daemon=True).start()  # type: ignore[arg-type]
        return proc

    @property
    def done(self) -> bool:
        return self.popen.poll() is not None

    def log(self) -> str:
        if self.done:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(5)
            time.sleep(0.05)  # the reader thread drains the pipe
        return "".join(self.output)

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(10)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(kw_only=True)
class LocalCluster(FakeApi):
    work: Path
    prometheus: FakePrometheus
    mock_files: dict[str, str]  # the fast mock's ConfigMap data
    restart_mock: Any  # callable(files): the kubelet replacing the mock's pod
    mock: tuple[str, str] = ("mock", "fast-mock")  # its namespace and name (ConfigMap and Deployment)
    processes: dict[str, Process] = field(default_factory=dict)
    probe_pods: list[dict] = field(default_factory=list)
    inspected: dict[str, dict] = field(default_factory=dict)  # TestRun -> the initializer's k6 inspect
    restarts: int = 0

    def __post_init__(self) -> None:
        ns, name = self.mock
        self.mock_configmap = V1ConfigMap(metadata=V1ObjectMeta(name=name, namespace=ns), data=dict(self.mock_files))
        self.generation = 1
        self.deployment_status = {"observed_generation": 1, "replicas": 1, "updated_replicas": 1, "ready_replicas": 1,
                                  "available_replicas": 1}

    # ---------------------------------------------------------------- the mock's ConfigMap and Deployment
    def read_namespaced_config_map(self, name: str, namespace: str, **_: Any) -> V1ConfigMap:
        assert (namespace, name) == self.mock
        return self.mock_configmap

    def patch_namespaced_config_map(self, name: str, namespace: str, body: dict, **_: Any) -> V1ConfigMap:
        assert (namespace, name) == self.mock
        self.mock_configmap.data.update(body["data"])
        return self.mock_configmap

    def patch_namespaced_deployment(self, name: str, namespace: str, body: dict, **_: Any) -> V1Deployment:
        assert (namespace, name) == self.mock
        self.generation += 1
        self.deployment_status.update(observed_generation=self.generation, updated_replicas=0, ready_replicas=0,
                                      available_replicas=0)
        threading.Thread(target=self._roll_out, daemon=True).start()
        return self._deployment()

    def _roll_out(self) -> None:
        self.restart_mock(dict(self.mock_configmap.data))
        self.restarts += 1
        self.deployment_status.update(updated_replicas=1, ready_replicas=1, available_replicas=1)

    def read_namespaced_deployment_status(self, name: str, namespace: str, **_: Any) -> V1Deployment:
        return self._deployment()

    def _deployment(self) -> V1Deployment:
        ns, name = self.mock
        return V1Deployment(metadata=V1ObjectMeta(name=name, namespace=ns, generation=self.generation),
                            spec=V1DeploymentSpec(replicas=1, selector=V1LabelSelector(), template=V1PodTemplateSpec()),
                            status=V1DeploymentStatus(**self.deployment_status))

    # ---------------------------------------------------------------- pods
    def read_namespaced_pod(self, name: str, namespace: str, **_: Any) -> V1Pod:
        if name not in self.pods:
            raise api_error(404, "Not Found")
        self._kubelet(name)
        return self.pods[name]

    def _log(self, name: str, container: str | None) -> str:
        proc = self.processes.get(name)
        return proc.log() if proc else ""

    def delete_namespaced_pod(self, name: str, namespace: str, **_: Any) -> None:
        if name not in self.pods:
            raise api_error(404, "Not Found")
        self._remove_pod(name)

    def _remove_pod(self, name: str) -> None:
        self.pods.pop(name, None)
        proc = self.processes.pop(name, None)
        if proc:
            proc.stop()

    def _pod(self, name: str, namespace: str, labels: dict[str, str], container: str, phase: str,
             exit_code: int | None = None) -> V1Pod:
        state = V1ContainerState(terminated=V1ContainerStateTerminated(exit_code=exit_code, finished_at=_now())) \
            if exit_code is not None else None
        pod = V1Pod(metadata=V1ObjectMeta(name=name, namespace=namespace, labels=labels),
                    spec=V1PodSpec(containers=[], node_name=f"node-{name[-1]}"),
                    status=V1PodStatus(phase=phase, container_statuses=[V1ContainerStatus(
                        name=container, image="", image_id="", ready=phase == "Running", restart_count=0,
                        state=state)]))
        self.pods[name] = pod
        return pod

    # ---------------------------------------------------------------- the probe pod's kubelet
    def create_namespaced_pod(self, namespace: str, body: dict, **_: Any) -> V1Pod:
        name = body["metadata"]["name"]
        (container,) = body["spec"]["containers"]
        self.probe_pods.append(json.loads(json.dumps(body)))
        mount = self.work / "pods" / name
        mount.mkdir(parents=True, exist_ok=True)
        files = self.config_maps[f"{namespace}/{body['spec']['volumes'][0]['configMap']['name']}"]["data"]
        for file_name, text in files.items():
            (mount / file_name).write_text(text)
        env = dict(os.environ)
        for e in container["env"]:
            ref = e["valueFrom"]["secretKeyRef"]
            env[e["name"]] = self.secrets[f"{namespace}/{ref['name']}"]["stringData"][ref["key"]]
        script = container["command"][-1]
        # The image's pip install is this machine's virtualenv already; its python is this interpreter.
        script = re.sub(r"pip install [^;]*?\|\| \{ cat /tmp/pip.log; exit 3; \}", "true", script)
        script = script.replace(container["volumeMounts"][0]["mountPath"], str(mount))
        script = script.replace("/tmp/out", str(mount / "out")).replace("python ", f"{shlex.quote(sys.executable)} ", 1)
        self.processes[name] = Process.start(["/bin/sh", "-c", script], env, mount)
        self._pod(name, namespace, body["metadata"].get("labels") or {}, container["name"], "Running")
        return self.pods[name]

    def _kubelet(self, name: str) -> None:
        proc = self.processes.get(name)
        pod = self.pods[name]
        if proc is None or not proc.done or pod.status.phase != "Running":
            return
        code = proc.popen.returncode
        self._pod(name, pod.metadata.namespace, pod.metadata.labels, pod.status.container_statuses[0].name,
                  "Succeeded" if code == 0 else "Failed", exit_code=code)

    # ---------------------------------------------------------------- the k6-operator stand-in
    def _runner_env(self, obj: dict) -> dict[str, str]:
        return {"PATH": os.environ["PATH"], "HOME": str(self.work), "K6_CSV_TIME_FORMAT": "unix_milli",
                **runner_env(obj, self.secrets)}

    def _script(self, obj: dict) -> str:
        cm = obj["spec"]["script"]["configMap"]
        return self.config_maps[f"{obj['metadata']['namespace']}/{cm['name']}"]["data"][cm["file"]]

    def _start_runners(self, obj: dict) -> None:
        name, namespace = obj["metadata"]["name"], obj["metadata"]["namespace"]
        folder = self.work / "testruns" / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "script.js").write_text(self._script(obj))
        for i in range(1, obj["spec"]["parallelism"] + 1):
            labels = {"app": "k6", "k6_cr": name, "job-name": f"{name}-{i}", "runner": "true"}
            pod = f"{name}-{i}-abcde"
            # The remote-write output has no receiver here: k6's CSV stands in for what it would have sent.
            argv = runner_argv(obj, i, "script.js", [f"csv={folder / f'raw-{i}.csv'}"])
            self.processes[pod] = Process.start(argv, self._runner_env(obj), folder)
            self._pod(pod, namespace, labels, "k6", "Running")

    def _finish_runners(self, obj: dict) -> bool:
        name = obj["metadata"]["name"]
        runners = {pod: p for pod, p in self.processes.items() if pod.startswith(f"{name}-")}
        if not all(p.done for p in runners.values()):
            return False
        scripts = []
        for pod, proc in sorted(runners.items()):
            labels = self.pods[pod].metadata.labels
            self._pod(pod, obj["metadata"]["namespace"], labels, "k6",
                      "Succeeded" if proc.popen.returncode == 0 else "Failed", exit_code=proc.popen.returncode)
            scripts.append(_script_from_csv(self.work / "testruns" / name / f"raw-{labels['job-name'][-1]}.csv"))
        self.prometheus.record_scripts(name, scripts)
        return True

    def _advance(self, obj: dict) -> None:
        status = obj["status"]
        stage = status.get("stage")
        name = obj["metadata"]["name"]
        if stage is None:
            labels = {"app": "k6", "k6_cr": name, "job-name": f"{name}-initializer"}
            self._pod(f"{name}-initializer-abcde", obj["metadata"]["namespace"], labels, "k6", "Succeeded", 0)
            check = initializer_check(obj, self._script(obj), self.secrets)
            self.inspected[name] = check
            status["stage"] = "initialization" if check["error"] is None else "error"
        elif stage == "initialization":
            status["stage"] = "created"
        elif stage == "created":
            self._start_runners(obj)
            status["stage"] = "started"
        elif stage == "started" and self._finish_runners(obj):
            status["stage"] = "finished"

    @property
    def empty(self) -> bool:
        return super().empty and not self.processes

    def close(self) -> None:
        for name in list(self.processes):
            self.processes.pop(name).stop()


def _script_from_csv(path: Path) -> RunnerScript:
    """A runner's request durations per second of its run, from k6's CSV (what remote write would carry)."""
    if not path.exists():
        return RunnerScript(samples=[])
    frame = pd.read_csv(path, usecols=["metric_name", "timestamp", "metric_value"])
    durations = frame[frame["metric_name"] == "http_req_duration"]
    if durations.empty:
        return RunnerScript(samples=[])
    second = (durations["timestamp"] // 1000).astype(int)
    first = int(second.min())
    samples: list[list[float]] = [[] for _ in range(int(second.max()) - first + 1)]
    for s, value in zip(second, durations["metric_value"], strict=True):
        samples[int(s) - first].append(float(value) / 1000.0)
    return RunnerScript(samples=samples)
