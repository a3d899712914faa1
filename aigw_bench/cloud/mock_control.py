"""Switching the fast mock's pacing profile on EKS, through the Kubernetes API.

The profile is fixed when the mock starts (gateways strip unknown headers, so nothing is signalled
per request). On EKS it lives in ``settings.json`` of the mock's ConfigMap
(components/fast_mock.py); switching it = writing the new settings there, then setting their
sha256 on the Deployment's pod template, which makes the Deployment replace its pod (``Recreate``).
The switch is done when the Deployment has rolled out: its new pod is ready (and, through the load
balancer controller's readiness gate, healthy behind the NLB). Bounded in time; every failure says
what to look at.

The clients are the official ``kubernetes`` package's (aigw_bench/cloud/kube.py), configured from the
stack's ``kubeconfig`` output, which authenticates with ``aws eks get-token`` (the AWS CLI must be
installed for this step).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aigw_bench.cloud.kube import KubeAccess
from aigw_bench.cloud.outputs import MockControl
from schema.errors import CloudError
from schema.faults import FaultPlan
from schema.mock import PacingProfile, settings_json

# (connect, read) seconds for every API call.
REQUEST_TIMEOUT = (10, 30)


class ProfileNotReady(Exception):
    """The mock's Deployment did not roll out in time; carries its last status."""

    def __init__(self, reason: str, status: dict[str, Any]):
        super().__init__(reason)
        self.reason = reason
        self.status = status


def settings_sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class MockSettings:
    """The ConfigMap's settings: where the contract is, and the profile."""

    text: str

    @property
    def contract(self) -> str:
        return json.loads(self.text)["contract"]

    @property
    def profile(self) -> dict[str, Any]:
        return json.loads(self.text)["profile"]

    @property
    def plan(self) -> dict[str, Any] | None:
        """The fault plan served (None: no faults, nothing counted)."""
        return json.loads(self.text).get("plan")


def _describe(exc: Exception, what: str, cluster: str) -> CloudError:
    from kubernetes.client.exceptions import ApiException

    if isinstance(exc, ApiException):
        hint = ""
        if exc.status in (401, 403):
            hint = (f": your AWS identity needs access to cluster {cluster} (an EKS access entry; the identity "
                    "that ran `pulumi up` has one)")
        elif exc.status == 404:
            hint = ": was the stack deployed with the fast mock (`pulumi config get mock`) and `pulumi up` complete?"
        return CloudError(f"the Kubernetes API refused {what} (HTTP {exc.status} {exc.reason}){hint}")
    return CloudError(f"the Kubernetes API of cluster {cluster} cannot be reached for {what} ({type(exc).__name__}: "
                      f"{exc}); is this machine within the stack's publicAccessCidrs?")


class MockProfiles:
    """Reads and switches the profile of one stack's fast mock."""

    def __init__(self, access: KubeAccess, control: MockControl, cluster: str,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
                 interval: float = 2.0):
        self.core = access.core
        self.apps = access.apps
        self.control = control
        self.cluster = cluster
        self.sleep, self.clock, self.interval = sleep, clock, interval

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            return fn(*args, _request_timeout=REQUEST_TIMEOUT, **kwargs)
        except (ApiException, HTTPError, OSError) as exc:
            raise _describe(exc, what, self.cluster) from None

    def current(self) -> MockSettings:
        c = self.control
        cm = self._call(f"reading ConfigMap {c.namespace}/{c.configmap}", self.core.read_namespaced_config_map,
                        c.configmap, c.namespace)
        text = (cm.data or {}).get(c.settings_key)
        if text is None:
            raise CloudError(f"ConfigMap {c.namespace}/{c.configmap} has no {c.settings_key}: redeploy the stack")
        return MockSettings(text)

    def serves(self, profile: PacingProfile, plan: FaultPlan | None = None) -> bool:
        """True if the mock's settings carry ``profile`` and ``plan`` (None: no fault plan) and its Deployment
        has rolled them out (nothing to switch). Settings written by a switch whose pod never became ready
        are not served: the next session's switch waits for that rollout (bounded) instead of measuring
        against a broken mock."""
        wanted = json.loads(settings_json(profile, plan=plan))
        current = self.current()
        if current.profile != wanted["profile"] or current.plan != wanted.get("plan"):
            return False
        status = self._status()
        return self._rolled_out(status, status["generation"] or 0)

    def switch(self, profile: PacingProfile, timeout_s: float, on_wait: Callable[[float], None] | None = None,
               plan: FaultPlan | None = None) -> float:
        """Write the settings (``profile`` and ``plan``, None: no faults), restart the pod, wait for the rollout;
        returns the seconds it took."""
        c = self.control
        started = self.clock()
        text = settings_json(profile, self.current().contract, plan=plan)
        self._call(f"writing {c.settings_key} of ConfigMap {c.namespace}/{c.configmap}",
                   self.core.patch_namespaced_config_map, c.configmap, c.namespace, {"data": {c.settings_key: text}})
        patch = {"spec": {"template": {"metadata": {"annotations": {c.settings_annotation: settings_sha256(text)}}}}}
        deployment = self._call(f"restarting Deployment {c.namespace}/{c.deployment}",
                                self.apps.patch_namespaced_deployment, c.deployment, c.namespace, patch)
        generation = deployment.metadata.generation
        while True:
            status = self._status()
            if self._rolled_out(status, generation):
                return self.clock() - started
            waited = self.clock() - started
            if waited > timeout_s:
                serving = f"the '{profile.name}' pacing profile" + (f" and fault plan '{plan.name}'" if plan else "")
                raise ProfileNotReady(
                    f"the mock did not become ready with {serving} within {timeout_s:.0f} s "
                    f"(Deployment {c.namespace}/{c.deployment}: {status}); see `kubectl -n {c.namespace} describe "
                    f"deployment {c.deployment}` and its pod's events", status)
            if on_wait:
                on_wait(waited)
            self.sleep(self.interval)

    def _status(self) -> dict[str, Any]:
        c = self.control
        d = self._call(f"reading Deployment {c.namespace}/{c.deployment}", self.apps.read_namespaced_deployment_status,
                       c.deployment, c.namespace)
        s = d.status
        return {"generation": d.metadata.generation, "observed_generation": s.observed_generation,
                "replicas": s.replicas, "updated": s.updated_replicas, "ready": s.ready_replicas,
                "available": s.available_replicas, "wanted": d.spec.replicas}

    @staticmethod
    def _rolled_out(s: dict[str, Any], generation: int) -> bool:
        """As `kubectl rollout status`: the controller saw the change, every pod is new, ready and
        available, and no old pod is left."""
        wanted = s["wanted"] or 0
        return ((s["observed_generation"] or 0) >= generation and (s["updated"] or 0) == wanted
                and (s["replicas"] or 0) == wanted and (s["ready"] or 0) == wanted and (s["available"] or 0) == wanted)
