"""The streaming probe as a pod on the load-generator pool, for the k6-operator engine (no EC2 runner).

The probe (aigw_bench/measure/stream_probe.py) needs Python and httpx: the pod runs the pinned
official Python image, installs the probe's packages from the same hashed pins as the EC2 runner
(schema/pins.py, ``pip --require-hashes``, through the cluster's NAT like every image pull), runs the
probe, and hands its files back in its log (a pod's files end with it; its log is read back whole
through the API): a gzipped tar between two marker lines, base64-encoded. The script, the body and
the requirements come in a ConfigMap; the secret headers in a Secret (environment only). The pod,
the ConfigMap and the Secret are deleted when it ends, fails or is interrupted.
"""

from __future__ import annotations

import base64
import contextlib
import io
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aigw_bench.cloud.operator import Placement
from schema.errors import CloudError

# python:3.11 (the lock's Python), Debian bookworm slim, the full patch version pinned.
PROBE_IMAGE = "python:3.11.14-slim-bookworm"
FILES_BEGIN = "AIGW-FILES-BEGIN"
FILES_END = "AIGW-FILES-END"
MOUNT = "/probe"


class ProbePodError(CloudError):
    """The probe pod could not be run to its end (refused, or it did not end in time)."""


@dataclass(frozen=True)
class ProbePodResult:
    phase: str  # Succeeded or Failed
    log: str


@dataclass(frozen=True)
class ProbePodSpec:
    name: str
    namespace: str
    placement: Placement
    files: dict[str, str]  # ConfigMap: file name -> text (stream_probe.py, body.json, requirements.txt)
    args: list[str]  # the probe's arguments, --out excluded
    secret_env: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def secret_name(self) -> str:
        return f"{self.name}-env"


def command(spec: ProbePodSpec) -> list[str]:
    """Install the pinned packages, run the probe, print its files between the markers."""
    probe = " ".join(["python", f"{MOUNT}/stream_probe.py", *(_quote(a) for a in spec.args), "--out", "/tmp/out"])
    script = "; ".join([
        "set -eu",
        f"pip install --quiet --no-cache-dir --disable-pip-version-check --require-hashes -r {MOUNT}/requirements.txt "
        "> /tmp/pip.log 2>&1 || { cat /tmp/pip.log; exit 3; }",
        probe,
        f"echo {FILES_BEGIN}",
        "tar -C /tmp/out -czf - . | base64",
        f"echo {FILES_END}",
    ])
    return ["/bin/sh", "-c", script]


def _quote(arg: str) -> str:
    return "'" + arg.replace("'", "'\"'\"'") + "'"


def pod_manifest(spec: ProbePodSpec) -> dict[str, Any]:
    env = [{"name": k, "valueFrom": {"secretKeyRef": {"name": spec.secret_name, "key": k}}}
           for k in sorted(spec.secret_env)]
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": spec.name, "namespace": spec.namespace, "labels": spec.labels},
        "spec": {
            "restartPolicy": "Never",
            "nodeSelector": spec.placement.node_selector,
            "tolerations": spec.placement.tolerations,
            "containers": [{"name": "probe", "image": PROBE_IMAGE, "command": command(spec), "env": env,
                            "volumeMounts": [{"name": "probe", "mountPath": MOUNT, "readOnly": True}]}],
            "volumes": [{"name": "probe", "configMap": {"name": spec.name}}],
        },
    }


def unpack(log: str, out: Path) -> list[str]:
    """The files between the markers of ``log``, written into ``out``; their names."""
    lines = log.splitlines()
    try:
        begin, end = lines.index(FILES_BEGIN), lines.index(FILES_END)
    except ValueError:
        raise ProbePodError("the probe pod's log has no files (it ended before the probe finished)") from None
    data = base64.b64decode("".join(lines[begin + 1:end]))
    out.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        tar.extractall(out, filter="data")
        return [m.name.removeprefix("./") for m in tar.getmembers() if m.isfile()]


class ProbePodRunner:
    """Runs one probe pod to its end against the Kubernetes API (``core``: a CoreV1Api or a fake)."""

    def __init__(self, core: Any, *, poll_interval: float = 2.0, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic):
        self.core = core
        self.poll_interval, self.sleep, self.clock = poll_interval, sleep, clock

    def run(self, spec: ProbePodSpec, timeout_s: float,
            on_wait: Callable[[float, str], None] | None = None) -> ProbePodResult:
        """The pod's phase and log once it ended; raises ProbePodError if it could not run. Always cleans up."""
        from kubernetes.client.exceptions import ApiException

        try:
            self.core.create_namespaced_config_map(spec.namespace, {
                "apiVersion": "v1", "kind": "ConfigMap", "data": spec.files,
                "metadata": {"name": spec.name, "namespace": spec.namespace, "labels": spec.labels}})
            if spec.secret_env:
                self.core.create_namespaced_secret(spec.namespace, {
                    "apiVersion": "v1", "kind": "Secret", "type": "Opaque", "stringData": dict(spec.secret_env),
                    "metadata": {"name": spec.secret_name, "namespace": spec.namespace, "labels": spec.labels}})
            self.core.create_namespaced_pod(spec.namespace, pod_manifest(spec))
            phase = self._wait(spec, timeout_s, on_wait)
            return ProbePodResult(phase, self.core.read_namespaced_pod_log(spec.name, spec.namespace,
                                                                           container="probe"))
        except ApiException as exc:
            raise ProbePodError(f"the Kubernetes API refused a request for the probe pod {spec.namespace}/"
                                f"{spec.name}: {exc.status} {exc.reason}") from None
        finally:
            self._cleanup(spec)

    def _wait(self, spec: ProbePodSpec, timeout_s: float, on_wait: Callable[[float, str], None] | None) -> str:
        started = self.clock()
        while True:
            pod = self.core.read_namespaced_pod(spec.name, spec.namespace)
            phase = pod.status.phase if pod.status else "Pending"
            if phase in ("Succeeded", "Failed"):
                return phase
            waited = self.clock() - started
            if waited > timeout_s:
                raise ProbePodError(f"the probe pod {spec.namespace}/{spec.name} did not end within {timeout_s:.0f} s "
                                    f"(phase {phase}); kubectl -n {spec.namespace} describe pod {spec.name}")
            if on_wait:
                on_wait(waited, phase)
            self.sleep(self.poll_interval)

    def _cleanup(self, spec: ProbePodSpec) -> None:
        from kubernetes.client.exceptions import ApiException

        for delete in (lambda: self.core.delete_namespaced_pod(spec.name, spec.namespace, grace_period_seconds=0),
                       lambda: self.core.delete_namespaced_config_map(spec.name, spec.namespace),
                       lambda: self.core.delete_namespaced_secret(spec.secret_name, spec.namespace)
                       if spec.secret_env else None):
            with contextlib.suppress(ApiException):
                delete()
