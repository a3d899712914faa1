"""The fault methods both cloud engines' drivers share (aigw_bench/cloud/stack_driver.py, mock_faults.py), with
the Kubernetes side and k6 replaced by recorders (no process, no cloud): what is switched, when the request
through the target is sent and that it is never kept as a measurement, and what a failing records read says.
tests/test_cloud_faults.py runs the same code against real mocks and nginx through the faked cloud."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from aigw_bench.cloud.mock_faults import MockFaults, UpstreamRecords
from aigw_bench.cloud.outputs import MockControl
from aigw_bench.cloud.stack_driver import StackDriver
from aigw_bench.measure.driver import Endpoint, K6Job, K6Run, SessionLost
from schema.errors import CloudError
from schema.faults import HEALTHY_PLAN, load_plan
from schema.mock import load_profile
from tests.cloud_fakes import stack_outputs

pytestmark = pytest.mark.pure

CONTROL = MockControl(namespace="mock", configmap="fast-mock", settings_key="settings.json", deployment="fast-mock",
                      settings_annotation="a", service="fast-mock", port=8080,
                      fallback=MockControl(namespace="mock", configmap="fast-mock-fallback",
                                           settings_key="settings.json", deployment="fast-mock-fallback",
                                           settings_annotation="a", service="fast-mock-fallback", port=8080))


class Instance:
    """One mock's settings as MockProfiles keeps them: what it serves, and every switch asked for."""

    def __init__(self, plan=None):
        self.serving = (load_profile("instant").name, plan.name if plan else None)
        self.switches: list[tuple[str, str | None]] = []

    def serves(self, profile, plan=None) -> bool:
        return self.serving == (profile.name, plan.name if plan else None)

    def switch(self, profile, timeout_s, on_wait=None, plan=None) -> float:
        self.serving = (profile.name, plan.name if plan else None)
        self.switches.append(self.serving)
        return 0.0


@dataclass(kw_only=True)
class Recorder(StackDriver):
    """A driver whose k6 runs are recorded (and fail when ``k6_fails``), as an engine's would append them."""

    jobs: list[K6Job] = field(default_factory=list)
    k6_fails: bool = False

    def run_k6(self, job: K6Job) -> K6Run:
        self.jobs.append(job)
        self.k6_runs.append(K6Run(dir=job.dir, exit_code=None, seconds=0.0, files={}, summary=None))
        if self.k6_fails:
            raise SessionLost("k6_failed", "the runner's command failed")
        return self.k6_runs[-1]


def driver(tmp_path: Path, primary: Instance, fallback: Instance, **kw) -> Recorder:
    out = stack_outputs("nginx", "nginx", "http://nlb", ["i-1"], None, mock_name="fast",
                        mock_control=CONTROL.model_dump())
    target = Endpoint("nginx+resilient", "http://nginx-resilient-nlb/v1/chat/completions", "gpt-4o-mini", {})
    faults = MockFaults(profiles=primary, fallback=fallback, records=None)  # type: ignore[arg-type]
    return Recorder(outputs=out, work=tmp_path, direct=target, target=target, on_event=lambda e: None,
                    mock_profiles=primary, mock_faults=faults, **kw)  # type: ignore[arg-type]


def test_a_new_plan_restarts_the_mock_then_one_request_goes_through_the_target_and_is_not_kept(tmp_path):
    primary, fallback = Instance(), Instance(load_plan(HEALTHY_PLAN))
    d = driver(tmp_path, primary, fallback)
    d.use_fault_plan(load_plan("server-errors"), load_profile("instant"), '{"warm": 1}')
    assert primary.switches == [("instant", "server-errors")] and fallback.switches == []
    (job,) = d.jobs
    assert job.max_vus == 1 and not job.split and '"http://nginx-resilient-nlb/v1/chat/completions"' in job.source
    assert '{\\"warm\\": 1}' in job.source and d.k6_runs == []  # sent, never kept as a measurement


def test_the_plan_already_served_restarts_nothing_and_sends_nothing(tmp_path):
    primary, fallback = Instance(load_plan("slow-answers")), Instance(load_plan(HEALTHY_PLAN))
    d = driver(tmp_path, primary, fallback)
    d.use_fault_plan(load_plan("slow-answers"), load_profile("instant"), "{}")
    assert primary.switches == [] and d.jobs == []


def test_the_second_mock_follows_the_runs_pacing_with_the_healthy_plan(tmp_path):
    primary, fallback = Instance(), Instance(load_plan(HEALTHY_PLAN))
    d = driver(tmp_path, primary, fallback)
    d.use_fault_plan(load_plan("server-errors"), load_profile("llm"), "{}")
    assert fallback.switches == [("llm", HEALTHY_PLAN)] and primary.switches == [("llm", "server-errors")]
    d.use_profile(load_profile("instant"))  # a later session without faults: the plan is taken off
    assert primary.serving == ("instant", None)


def test_a_failed_request_through_the_target_ends_the_session_and_leaves_no_run_behind(tmp_path):
    d = driver(tmp_path, Instance(), Instance(load_plan(HEALTHY_PLAN)), k6_fails=True)
    with pytest.raises(SessionLost):
        d.use_fault_plan(load_plan("server-errors"), load_profile("instant"), "{}")
    assert d.k6_runs == []  # never adopted as a step's partial result


def test_records_the_api_server_cannot_reach_say_which_mock_and_where_to_look():
    def refuse(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/v1/namespaces/mock/services/fast-mock-fallback:8080/proxy/__aigw/requests"
        return httpx.Response(503, text="no endpoints available for service \"fast-mock-fallback\"")

    def answer(request: httpx.Request) -> httpx.Response:
        if "fallback" in request.url.path:
            return refuse(request)
        return httpx.Response(200, json={"plan": "server-errors", "attempts": {}})

    def client(configuration, namespace, service, port, timeout):
        base = f"https://api/api/v1/namespaces/{namespace}/services/{service}:{port}/proxy"
        return httpx.Client(base_url=base, transport=httpx.MockTransport(answer))

    records = UpstreamRecords(None, CONTROL, "aigw-nginx", client=client)
    with pytest.raises(CloudError) as err:
        records.read()
    text = str(err.value)
    assert "the fallback mock's GET /__aigw/requests (Service mock/fast-mock-fallback:8080" in text
    assert "HTTP 503" in text and "kubectl -n mock get pods" in text


def test_records_that_cannot_be_read_end_the_session_as_the_mocks_failure(tmp_path):
    def client(configuration, namespace, service, port, timeout):
        return httpx.Client(base_url="https://api", transport=httpx.MockTransport(lambda r: httpx.Response(502)))

    d = driver(tmp_path, Instance(), Instance(load_plan(HEALTHY_PLAN)))
    d.mock_faults.records = UpstreamRecords(None, CONTROL, "aigw-nginx", client=client)  # type: ignore[union-attr]
    for call, what in ((d.reset_upstream, "clearing"), (d.upstream_records, "reading")):
        with pytest.raises(SessionLost) as err:
            call()
        assert err.value.status == "mock_failed" and f"{what} the mocks' records: the mock mock's" in err.value.reason
