"""The faults suite's mocks on EKS: the fast mock switched to a scenario's fault plan, its second, healthy
instance (the fallback upstream, components/fast_mock.py) kept on the run's pacing, and both mocks' attempt
records cleared and read.

- A plan is delivered as the pacing profile is (:mod:`aigw_bench.cloud.mock_control`): written into the
  ConfigMap's ``settings.json`` beside the profile, the pod restarted, its rollout awaited. The pod's
  nginx.conf already holds what a plan needs (the records' shared dict, the client-abort watch): it is
  rendered once by `pulumi up`.
- The records (``POST /__aigw/reset``, ``GET /__aigw/requests``) are reached through the API server's
  service proxy (``/api/v1/namespaces/<ns>/services/<name>:<port>/proxy/<path>``, as the kubernetes
  client's ``connect_{get,post}_namespaced_service_proxy_with_path`` build it), from this machine, for both
  engines alike: the same authenticated access the profile switch uses, nothing in the cluster made
  public, and no SSM command or TestRun (seconds each) between two scenarios.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from aigw_bench.cloud.kube import KubeAccess, service_proxy_client
from aigw_bench.cloud.mock_control import MockProfiles
from aigw_bench.cloud.outputs import MockControl, StackOutputs
from schema.errors import CloudError, ConfigError

RECORDS_TIMEOUT = 60.0  # a scenario's records: ~200 bytes per attempt, through the API server
ROLES = ("mock", "fallback")


def require_fault_plans(out: StackOutputs, needed_by: str) -> MockControl:
    """The stack's mock control when its mock serves fault plans with a second instance; a clear error
    naming the stack, its mock and how to deploy one that does, otherwise."""
    control = out.mock_control
    if control is None or control.fallback is None or control.service is None:
        why = (f"the {out.mock_name} mock, which serves no fault plans" if out.mock_name != "fast" else
               "the fast mock without its second, healthy instance (deployed before fault plans on EKS)")
        raise ConfigError(
            f"stack '{out.stack}' deploys {why}, and {needed_by} needs them (docs/faults.md): deploy the fast "
            f"mock with this version of the program (`pulumi config set -s {out.stack} mock fast && pulumi up -s "
            f"{out.stack}`)")
    return control


@dataclass
class MockFaults:
    """One stack's two mocks for the faults suite: their settings (``profiles``: the first, ``fallback``: the
    second) and their records."""

    profiles: MockProfiles
    fallback: MockProfiles
    records: UpstreamRecords


def mock_faults(access: KubeAccess, control: MockControl, cluster: str, **timing: Any) -> MockFaults:
    assert control.fallback is not None
    return MockFaults(profiles=MockProfiles(access, control, cluster, **timing),
                      fallback=MockProfiles(access, control.fallback, cluster, **timing),
                      records=UpstreamRecords(access.configuration, control, cluster))


class UpstreamRecords:
    """Both mocks' attempt records, through the API server's service proxy."""

    def __init__(self, configuration: Any, control: MockControl, cluster: str,
                 client: Callable[..., httpx.Client] = service_proxy_client):
        assert control.fallback is not None
        self.instances = {"mock": control, "fallback": control.fallback}
        self.configuration, self.cluster, self.client = configuration, cluster, client

    def _call(self, role: str, method: str, path: str) -> dict[str, Any]:
        c = self.instances[role]
        where = f"the {role} mock's {method} {path} (Service {c.namespace}/{c.service}:{c.port}, through the API " \
                f"server of cluster {self.cluster})"
        try:
            with self.client(self.configuration, c.namespace, str(c.service), int(c.port or 0),
                             timeout=RECORDS_TIMEOUT) as http:
                resp = http.request(method, path)
        except httpx.HTTPError as exc:
            raise CloudError(f"{where} did not answer: {type(exc).__name__}: {exc}") from None
        if resp.status_code != 200:
            hint = f" (is its pod running? kubectl -n {c.namespace} get pods)" \
                if resp.status_code in (502, 503) else ""
            raise CloudError(f"{where} answered HTTP {resp.status_code}{hint}: {resp.text[:200]}")
        try:
            return resp.json()
        except ValueError:
            raise CloudError(f"{where} answered something that is not JSON: {resp.text[:200]}") from None

    def reset(self) -> None:
        for role in ROLES:
            self._call(role, "POST", "/__aigw/reset")

    def read(self) -> dict[str, dict[str, Any]]:
        out = {}
        for role in ROLES:
            doc = self._call(role, "GET", "/__aigw/requests")
            # cjson writes an empty list as {}: an empty record list, said as one (as the local session does)
            out[role] = {**doc, "attempts": doc.get("attempts") or []}
        return out
