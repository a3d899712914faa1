"""The k6-operator engine with Kubernetes and Prometheus faked at their API boundaries
(tests/k8s_fakes.py): TestRuns walked from creation to collected results, the rig's and a scenario's,
through the run loop every engine shares; and their faults."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd
import pytest
from kubernetes.client import (
    V1ConfigMap,
    V1Deployment,
    V1DeploymentSpec,
    V1DeploymentStatus,
    V1LabelSelector,
    V1ObjectMeta,
    V1PodTemplateSpec,
)

from aigw_bench.cloud import operator as op
from aigw_bench.cloud.kube import KubeAccess
from aigw_bench.cloud.operator_engine import OperatorEngine, OperatorOptions, grafana_hint
from aigw_bench.cloud.prometheus import Prometheus
from aigw_bench.measure.events import Phase, TargetStarted, Tick
from aigw_bench.run.loop import Runner
from analysis.native_histogram import NativeHistogram, relative_error_bound
from schema.errors import CloudError
from schema.results import read_outcomes, target_dir
from schema.scenarios import parse_duration
from tests.cloud_fakes import cloud_case, stack_outputs
from tests.k8s_fakes import FakeCluster, FakePrometheus, latency_script

pytestmark = pytest.mark.pure

SECONDS = 10


class Clock:
    """Fake time for the engine's waits: sleeping advances it."""

    def __init__(self):
        self.now = 0.0

    def sleep(self, s: float) -> None:
        self.now += s

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return 1_700_000_000.0 + self.now


def outputs(stack: str = "kong-operator", *, enabled: bool = True, nodes: int = 2, secret: bool = False):
    extra = {
        "k6_operator": {"enabled": enabled, "namespace": "loadgen" if enabled else None,
                        "load_generator_nodes": nodes, "load_generator_instance_type": "c6i.4xlarge",
                        "load_generator_vcpus": 16},
        "prometheus_service": {"namespace": "monitoring", "name": "kps-prometheus", "port": 9090,
                               "cluster_url": "http://kps-prometheus.monitoring.svc.cluster.local:9090"},
        "grafana_service": {"namespace": "monitoring", "name": "kps-grafana", "port": 80,
                            "dashboard_uid": "aigw-bench-k6"},
        "kubeconfig": {"apiVersion": "v1"},
        "mock_profile": "instant",
    }
    if secret:
        extra["gateway_secret_headers"] = {"Authorization": "Bearer sk-stack-secret"}
    return stack_outputs(stack, "direct", "http://gw.internal:9021", ["i-0"], None, **extra)


def engine_for(cluster: FakeCluster, prom: FakePrometheus, clock: Clock, out, **options) -> OperatorEngine:
    access = KubeAccess(core=cluster, custom=cluster, apps=cluster, configuration=None)
    return OperatorEngine(
        [out], OperatorOptions(poll_interval=1.0, **options),
        kube=lambda o: access,
        prometheus=lambda o, a: Prometheus(prom.client(), "fake Prometheus (tests)"),
        runner=lambda a: op.TestRunner(a.core, a.custom, poll_interval=1.0,
                                       pending_deadline_s=options.get("pending_deadline_s", 60.0),
                                       cleanup_wait_s=5.0, sleep=clock.sleep, clock=clock.monotonic, wall=clock.wall),
        sleep=clock.sleep, clock=clock.monotonic, wall=clock.wall)


def not_the_rig(testrun: dict) -> bool:
    """The faults of a test hit the target's TestRuns; the rig's own (measured first) run clean."""
    return not testrun["metadata"]["labels"]["aigw-bench/session"].startswith("rig-")


def setup(runners, **cluster_kw):
    clock = Clock()
    prom = FakePrometheus(runners)
    cluster = FakeCluster(runners=runners, seconds=SECONDS, on_started=prom.record, faulty=not_the_rig, **cluster_kw)
    return cluster, prom, clock


# The rig's own measurement without warm-ups: a ceiling and a floor TestRun before the target's.
RIG = {"ceiling": {"vus": 4, "duration": 10.0, "warmup": 0.0}, "floor": {"duration": 10.0, "warmup": 0.0}}


def run_plan(tmp_path: Path, engine: OperatorEngine, *, warmup: str = "2s", events=None, on_event=None,
             vus: int = 4) -> Path:
    knobs = {"vus": vus, "duration": f"{SECONDS}s", "warmup": warmup}
    case = cloud_case(tmp_path, list(engine.stacks.values()), knobs=knobs)
    case.plan.rig = case.plan.rig.model_validate(RIG)
    sink = events if events is not None else []
    runner = Runner(case.plan, engine, on_event=on_event or sink.append)
    try:
        return runner.run()
    except KeyboardInterrupt:
        return runner.run_dir


def target_testruns(cluster: FakeCluster) -> list[dict]:
    return [t for t in cluster.created if not_the_rig(t)]


def two_runners(**kw):
    return [latency_script(1, SECONDS, 40, 0.010), latency_script(2, SECONDS, 40, 0.030, **kw)]


# ---------------------------------------------------------------------------- the whole walk
def test_a_testrun_from_creation_to_collected_results(tmp_path):
    runners = two_runners()
    cluster, prom, clock = setup(runners)
    events = []
    run_dir = run_plan(tmp_path, engine_for(cluster, prom, clock, outputs(secret=True)), events=events)
    [outcome] = read_outcomes(run_dir)
    work = target_dir(run_dir, "direct", 1) / "seed"
    assert outcome.status == "ok", outcome.reason
    # The rig first (a ceiling split over both runners, a floor on one), then the scenario's warm-up
    # and measurement, each its own TestRun, as the pinned operator's CRD spells it.
    ceiling, floor, warm, measure = cluster.created
    assert [ceiling["spec"]["parallelism"], floor["spec"]["parallelism"]] == [2, 1]
    assert target_testruns(cluster) == [warm, measure]
    assert warm["metadata"]["name"].endswith("-w") and measure["metadata"]["name"].endswith("-m")
    spec = measure["spec"]
    assert spec["parallelism"] == 2 and spec["separate"] is True
    assert spec["script"]["configMap"] == {"name": measure["metadata"]["name"], "file": "script.js"}
    # k6's run tag `target` on every sample (VUs and dropped iterations have no scenario tags).
    assert spec["arguments"] == "--out experimental-prometheus-rw --tag target=direct"
    assert ceiling["spec"]["arguments"] == "--out experimental-prometheus-rw --tag target=rig"
    for pod in (spec["runner"], spec["starter"]):
        assert pod["nodeSelector"] == {"aigw-bench/pool": "loadgen"}
        assert pod["tolerations"] == [{"key": "aigw-bench/pool", "operator": "Equal", "value": "loadgen",
                                       "effect": "NoSchedule"}]
    assert spec["runner"]["image"] == "grafana/k6:1.1.0"
    assert spec["starter"]["image"] == "ghcr.io/grafana/k6-operator:starter-v1.6.0"
    env = {e["name"]: e for e in spec["runner"]["env"]}
    assert env["K6_PROMETHEUS_RW_TREND_AS_NATIVE_HISTOGRAM"]["value"] == "true"
    assert env["K6_PROMETHEUS_RW_SERVER_URL"]["value"] == \
        "http://kps-prometheus.monitoring.svc.cluster.local:9090/api/v1/write"
    assert env["AIGW_SUMMARY"]["value"] == "/dev/stdout" and env["AIGW_DURATION"]["value"] == f"{SECONDS}s"
    warm_env = {e["name"]: e.get("value") for e in warm["spec"]["runner"]["env"]}
    # The warm-up runs a closed loop, whatever the scenario's own schedule (AIGW_WARMUP, as on EC2).
    assert warm_env["AIGW_DURATION"] == "2s" and warm_env["AIGW_WARMUP"] == "1" and "AIGW_WARMUP" not in env
    # The stack's key reaches k6 through a Secret, never the TestRun, the script or the results.
    assert env["AIGW_HEADERS"] == {"name": "AIGW_HEADERS", "valueFrom": {"secretKeyRef": {
        "name": f"{measure['metadata']['name']}-env", "key": "AIGW_HEADERS"}}}
    assert "sk-stack-secret" not in json.dumps(cluster.created)
    assert not any("sk-stack-secret" in p.read_text(errors="replace") for p in run_dir.rglob("*") if p.is_file())
    # The rig was measured through the same steps as on the EC2 engine: its ceiling caps the figures.
    rig = json.loads((run_dir / "manifest.json").read_text())["rig"]
    assert rig.get("error") is None and rig["ceiling_rps"] == pytest.approx(800 / SECONDS)
    assert (run_dir / "rig" / "kong-operator" / "ceiling" / "summary.json").exists()
    # Everything the run made is gone.
    assert cluster.empty, (cluster.testruns, cluster.config_maps, cluster.secrets, list(cluster.pods))
    # Each runner's own k6 summary is kept (the cross-check), warm-up apart.
    for i in (1, 2):
        assert json.loads((work / f"gen{i}" / "summary.json").read_text())["metrics"]["http_reqs"]["values"][
            "count"] == 400
        assert (work / f"gen{i}" / "k6.log").exists() and (work / "warmup" / f"gen{i}" / "k6.log").exists()
    # Merged: counts summed, percentiles from the merged native histograms, compared with the exact
    # percentiles of all samples.
    summary = json.loads((work / "summary.json").read_text())
    assert summary["metrics"]["http_reqs"]["values"]["count"] == 800
    everything = sorted(v for r in runners for v in r.all)
    bound = relative_error_bound(3)
    for stat, q in (("p(50)", 0.5), ("p(90)", 0.9), ("p(95)", 0.95), ("p(99)", 0.99)):
        exact_ms = everything[max(0, -(-int(q * 800) // 1) - 1)] * 1000
        got = summary["metrics"]["http_req_duration"]["values"][stat]
        assert abs(got / exact_ms - 1) <= bound, (stat, got, exact_ms)
        assert got == pytest.approx(NativeHistogram.of_samples(everything).quantile(q) * 1000)
    assert "native histograms merged" in summary["aigw_bench_merged"]["method"]
    # Per-second series from Prometheus and the per-runner agreement with k6's own summaries.
    series = pd.read_csv(work / "prometheus-timeseries.csv")
    assert len(series) == SECONDS and series["requests"].tolist() == [80.0] * SECONDS
    assert series["p99_ms"].notna().all()
    check = json.loads((work / "prometheus.json").read_text())
    assert check["agrees"] is True and check["requests"] == 800
    assert outcome.files["summary"] == "seed/summary.json" and summary["aigw_bench_merged"]["generators"] == 2
    # Resources: the pods' CPU and memory over k6's window, from Prometheus; the runners' too.
    usage = pd.read_csv(work / "resources.csv")
    assert set(usage["role"]) == {"gateway", "mock", "loadgen"}
    # Progress: stages and ticks; and the dashboard hint.
    phases = [e.phase for e in events if isinstance(e, Phase)]
    assert any("TestRun stage started" in p for p in phases)
    assert "port-forward svc/kps-grafana 3000:80" in outcome.evidence["dashboard"]
    assert any(isinstance(e, Tick) for e in events)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["engine"] == "operator" and manifest["machine"]["load_generators"] == {"direct": 2}


def test_one_runner_keeps_its_own_exact_summary(tmp_path):
    runners = [latency_script(3, SECONDS, 30, 0.02)]
    cluster, prom, clock = setup(runners)
    run_dir = run_plan(tmp_path, engine_for(cluster, prom, clock, outputs(), parallelism=1), warmup="0s")
    [outcome] = read_outcomes(run_dir)
    work = target_dir(run_dir, "direct", 1) / "seed"
    assert outcome.status == "ok"
    assert (work / "summary.json").read_text() == (work / "gen1" / "summary.json").read_text()
    assert len(target_testruns(cluster)) == 1 and cluster.empty


def test_never_more_runners_than_the_scripts_vus(tmp_path):
    """The operator's initializer puts a TestRun with more runners than the script's VUs in `error`
    (k6-operator v1.6.0 internal/controller/k6_initialize.go): a 1-VU scenario gets one runner on a
    two-node pool, its warm-up too."""
    cluster, prom, clock = setup([latency_script(5, SECONDS, 10, 0.02), latency_script(6, SECONDS, 10, 0.02)])
    run_dir = run_plan(tmp_path, engine_for(cluster, prom, clock, outputs(nodes=2)), vus=1)
    [outcome] = read_outcomes(run_dir)
    assert outcome.status == "ok", outcome.reason
    assert [t["spec"]["parallelism"] for t in target_testruns(cluster)] == [1, 1]


def test_the_warmup_is_a_closed_loop_of_warmup_vus_as_the_operators_initializer_sees_it(tmp_path):
    """inferxgate-throughput's cloud ramp takes 5.5 min up to 50 VUs; its warm-up TestRun runs k6 with
    AIGW_WARMUP=1, so the real `k6 inspect --execution-requirements` that the operator's initializer runs
    with the runner's env (tests/k8s_fakes.initializer_check) finds a closed loop of warmup_vus (5) for
    the warm-up's 30 s, not the scenario's own schedule. On an 8-node pool the warm-up gets 5 runners
    (its own VUs: 8 would be put in `error`), the 50-VU ramp all 8."""
    runners = [latency_script(i, SECONDS, 10, 0.02) for i in range(8)]
    cluster, prom, clock = setup(runners)
    out = outputs(nodes=8)
    case = cloud_case(tmp_path, [out], scenario="inferxgate-throughput", mock_profile="instant")
    case.plan.rig = case.plan.rig.model_validate(RIG)
    run_dir = Runner(case.plan, engine_for(cluster, prom, clock, out)).run()
    [outcome] = read_outcomes(run_dir)
    assert outcome.status == "ok", outcome.reason
    warm, measure = target_testruns(cluster)
    w, m = cluster.inspected[warm["metadata"]["name"]], cluster.inspected[measure["metadata"]["name"]]
    assert (w["maxVUs"], parse_duration(w["totalDuration"])) == (5, 30 + 5)  # + gracefulStop
    assert (m["maxVUs"], parse_duration(m["totalDuration"])) == (50, 330 + 5)
    assert (warm["spec"]["parallelism"], measure["spec"]["parallelism"]) == (5, 8)


def test_a_one_vu_scenario_gets_one_runner_by_default_and_an_explicit_parallelism_above_it_is_refused(tmp_path):
    """inferxgate-baseline has 1 VU: on a two-node pool the default gives every TestRun one runner (the
    operator's initializer would put two in `error`); asking for two is refused before anything starts."""
    cluster, prom, clock = setup(two_runners())
    case = cloud_case(tmp_path, [outputs()], scenario="inferxgate-baseline", mock_profile="instant")
    case.plan.rig = case.plan.rig.model_validate(RIG)
    run_dir = Runner(case.plan, engine_for(cluster, prom, clock, outputs())).run()
    [outcome] = read_outcomes(run_dir)
    assert outcome.status == "ok", outcome.reason
    assert [t["spec"]["parallelism"] for t in target_testruns(cluster)] == [1, 1]
    assert all(c["error"] is None and c["maxVUs"] == 1 for c in cluster.inspected.values() if c["maxVUs"] == 1)
    assert json.loads((run_dir / "manifest.json").read_text())["machine"]["load_generators"] == {"direct": 1}
    # The load generators' CPUs are those of the runners the TestRun had (one 16-vCPU node), not the pool's.
    usage = pd.read_csv(target_dir(run_dir, "direct", 1) / "inferxgate-baseline" / "resources.csv")
    assert set(usage.loc[usage["role"] == "loadgen", "cpus"]) == {16.0}

    cluster, prom, clock = setup(two_runners())
    with pytest.raises(CloudError, match=r"--parallelism 2, but scenario inferxgate-baseline runs at most 1 VU"):
        Runner(case.plan, engine_for(cluster, prom, clock, outputs(), parallelism=2)).run()
    assert cluster.created == []


def test_runner_pods_get_a_liveness_probe_a_saturated_k6_survives(tmp_path):
    """k6-operator v1.6.0's default (GET /v1/status, 1 s timeout, 3 failures, no restart) can kill a k6 at
    100% CPU: the runners get a TCP probe on k6's port instead, failing only after a minute of nothing
    listening. Checked as a core/v1 Probe by the Kubernetes client's own model."""
    from kubernetes.client import ApiClient

    cluster, prom, clock = setup(two_runners())
    run_plan(tmp_path, engine_for(cluster, prom, clock, outputs()), warmup="0s")
    for testrun in cluster.created:
        probe = testrun["spec"]["runner"]["livenessProbe"]
        client = ApiClient()
        model = client._ApiClient__deserialize(probe, "V1Probe")
        assert client.sanitize_for_serialization(model) == probe  # every field is a Probe field
        assert model.tcp_socket.port == op.K6_API_PORT == 6565 and model.http_get is None and model._exec is None
        assert model.period_seconds * model.failure_threshold >= 60 and model.timeout_seconds >= 5
        assert "livenessProbe" not in testrun["spec"]["starter"]


@dataclass
class StuckMockCluster(FakeCluster):
    """A cluster whose fast mock (ConfigMap fast-mock, Deployment fast-mock in namespace mock) takes new
    settings but never rolls out: its new pod is never ready."""

    settings: str = json.dumps({"contract": "/etc/mock/contract.json", "profile": {"name": "instant"}})

    def read_namespaced_config_map(self, name, namespace, **_):
        return V1ConfigMap(data={"settings.json": self.settings})

    def patch_namespaced_config_map(self, name, namespace, body, **_):
        self.settings = body["data"]["settings.json"]

    def patch_namespaced_deployment(self, name, namespace, body, **_):
        return self.read_namespaced_deployment_status(name, namespace)

    def read_namespaced_deployment_status(self, name, namespace, **_):
        return V1Deployment(metadata=V1ObjectMeta(generation=2), spec=V1DeploymentSpec(
            replicas=1, selector=V1LabelSelector(), template=V1PodTemplateSpec()), status=V1DeploymentStatus(
            observed_generation=2, replicas=1, updated_replicas=0, ready_replicas=0, available_replicas=0))


def test_a_mock_switch_that_fails_in_the_rig_is_recorded_and_the_run_goes_on(tmp_path):
    """The operator engine's rig switches the fast mock's pacing like the EC2 engine's: a switch that never
    becomes ready is the rig's recorded error (mock_failed, with the Deployment's status), not a traceback.
    The target's session does not take the ConfigMap's new settings for a mock that serves them: it waits
    for the rollout too, and records the same failure."""
    from aigw_bench.cloud.outputs import MockControl

    runners = two_runners()
    prom = FakePrometheus(runners)
    cluster = StuckMockCluster(runners=runners, seconds=SECONDS, on_started=prom.record)
    out = outputs().model_copy(update={"mock_profiles": ["instant", "llm"], "mock_control": MockControl(
        namespace="mock", configmap="fast-mock", settings_key="settings.json", deployment="fast-mock",
        settings_annotation="aigw-bench/settings-sha256")})
    case = cloud_case(tmp_path, [out], knobs={"vus": 4, "duration": f"{SECONDS}s", "warmup": "0s"},
                      mock_profile="llm")
    case.plan.rig = case.plan.rig.model_validate(RIG)
    run_dir = Runner(case.plan, engine_for(cluster, prom, Clock(), out)).run()
    rig = json.loads((run_dir / "manifest.json").read_text())["rig"]
    assert rig["status"] == "mock_failed" and "did not become ready with the 'llm' pacing profile" in rig["error"]
    assert rig["evidence"]["deployment"]["ready"] == 0
    [outcome] = read_outcomes(run_dir)
    assert outcome.status == "mock_failed" and "kubectl -n mock describe deployment fast-mock" in outcome.reason
    assert cluster.created == [] and cluster.empty


@pytest.mark.parametrize(("lost", "agrees"), [(0, True), (1, True), (2, True), (3, False), (-1, False)])
def test_prometheus_may_lack_a_runners_last_millisecond_and_never_has_more(tmp_path, lost, agrees):
    """Prometheus can refuse a runner's last remote write (the stale markers re-send a changed histogram
    at a timestamp it has), so its count is at most k6's, short by at most one millisecond of requests per
    series: here 40 req/s, one series, at least 2. More missing, or more than k6 counted, disagrees."""
    runners = [latency_script(1, SECONDS, 40, 0.010), latency_script(2, SECONDS, 40, 0.030, lost_in_prometheus=lost)]
    cluster, prom, clock = setup(runners)
    run_dir = run_plan(tmp_path, engine_for(cluster, prom, clock, outputs()), warmup="0s")
    [outcome] = read_outcomes(run_dir)
    assert outcome.status == "ok", outcome.reason
    check = json.loads((target_dir(run_dir, "direct", 1) / "seed" / "prometheus.json").read_text())
    second = check["per_runner_check"][1]
    assert (second["requests_k6"], second["requests_prometheus"]) == (400, 400 - lost)
    assert second["requests_missing"] == lost and second["requests_missing_allowed"] == 2
    assert second["agrees"] is agrees and check["agrees"] is agrees and check["requests_missing"] == lost
    assert check["per_runner_check"][0]["agrees"] is True


def test_the_series_and_the_resource_window_start_when_k6_does_not_when_the_testrun_is_created(tmp_path):
    """k6 starts 30 s after its TestRun is created (initializer, image pulls, starter): second 0 of the
    per-second series, the CPU window and the run's seconds are k6's own (a runner's end minus its
    testRunDurationMs), within the second that the API's whole-second finishedAt allows."""
    runners = two_runners()
    clock = Clock()
    prom = FakePrometheus(runners)
    cluster = FakeCluster(runners=runners, seconds=SECONDS, wall=clock.wall, k6_delay_s=30.0,
                          on_started=lambda obj: prom.record(obj, start=cluster.k6_start[obj["metadata"]["name"]]))
    run_dir = run_plan(tmp_path, engine_for(cluster, prom, clock, outputs()), warmup="0s")
    [outcome] = read_outcomes(run_dir)
    assert outcome.status == "ok", outcome.reason
    work = target_dir(run_dir, "direct", 1) / "seed"
    testrun = json.loads((work / "testrun.json").read_text())
    k6_start, created = cluster.k6_start[testrun["testrun"]], cluster.created_at[testrun["testrun"]]
    assert k6_start - created >= 30
    start, end = testrun["k6_window"]
    assert abs(start - k6_start) <= 1 and abs(end - (k6_start + SECONDS)) <= 1
    assert all(abs(r["k6_start"] - k6_start) <= 1 for r in testrun["runners"])
    series = pd.read_csv(work / "prometheus-timeseries.csv")
    assert len(series) == SECONDS and 0 < series["second"].iloc[0] <= 2
    window = [float(x) for x in (work / "window.txt").read_text().split()]
    assert abs(window[0] - k6_start) <= 1 and abs(window[1] - (k6_start + SECONDS)) <= 2
    assert outcome.steps["seed"].data["seconds"] == pytest.approx(SECONDS, abs=1)


def test_the_run_tag_target_is_one_argument_or_a_clear_error():
    from aigw_bench.cloud.operator_driver import target_tag

    assert target_tag("kong-konnect") == "--tag target=kong-konnect"
    with pytest.raises(CloudError, match="no spaces"):  # the operator splits spec.arguments on whitespace
        target_tag("my gateway")


def test_summary_is_found_in_a_runner_log_between_k6_log_lines():
    from tests.k8s_fakes import k6_summary, runner_log

    summary = k6_summary(latency_script(4, 2, 5, 0.01), 2)
    assert op.summary_from_log(runner_log(summary)) == summary
    assert op.summary_from_log('time="x" level=error msg="boom"\n') is None
    assert op.summary_from_log("{\n \"metrics\": {\n") is None  # cut short


# ---------------------------------------------------------------------------- faults
def test_runner_never_scheduled_fails_after_the_pending_deadline(tmp_path):
    cluster, prom, clock = setup(two_runners(unschedulable=True))
    started = []  # when the target's session began (after the rig's TestRuns)
    run_dir = run_plan(tmp_path, engine_for(cluster, prom, clock, outputs(), pending_deadline_s=30.0), warmup="0s",
                       on_event=lambda e: started.append(clock.now) if isinstance(e, TargetStarted) and e.index else 0)
    [outcome] = read_outcomes(run_dir)
    assert outcome.status == "k6_failed"
    assert "Pending for more than 30 s" in outcome.reason and "Unschedulable" in outcome.reason
    assert "aigw-bench/pool=loadgen" in outcome.reason and "--parallelism (2)" in outcome.reason
    assert cluster.empty
    assert clock.now - started[0] < 60, "gave up soon after the deadline"


def test_testrun_in_stage_error_is_reported_and_removed(tmp_path):
    cluster, prom, clock = setup(two_runners(), stage_error_at="initialized")
    run_dir = run_plan(tmp_path, engine_for(cluster, prom, clock, outputs()), warmup="0s")
    [outcome] = read_outcomes(run_dir)
    assert outcome.status == "k6_failed"
    assert "ended in stage 'error'" in outcome.reason
    assert "kubectl -n k6-operator logs deploy/k6-operator-controller-manager" in outcome.reason
    assert cluster.empty


def test_a_failing_runner_keeps_every_log_and_leaves_nothing(tmp_path):
    cluster, prom, clock = setup(two_runners(exit_code=107))
    run_dir = run_plan(tmp_path, engine_for(cluster, prom, clock, outputs()), warmup="0s")
    [outcome] = read_outcomes(run_dir)
    work = target_dir(run_dir, "direct", 1) / "seed"
    assert outcome.status == "k6_failed" and "runner 2" in outcome.reason and "exit code 107" in outcome.reason
    assert (work / "gen1" / "summary.json").exists() and (work / "gen2" / "k6.log").exists()
    assert cluster.empty


def test_thresholds_crossed_is_a_complete_run(tmp_path):
    cluster, prom, clock = setup(two_runners(exit_code=99))
    run_dir = run_plan(tmp_path, engine_for(cluster, prom, clock, outputs()), warmup="0s")
    [outcome] = read_outcomes(run_dir)
    assert outcome.status == "ok" and outcome.thresholds_passed is False and outcome.k6_exit_code == 99


def test_prometheus_unreachable_is_refused_before_any_load(tmp_path):
    cluster, prom, clock = setup(two_runners())
    prom.unreachable = True
    with pytest.raises(CloudError, match=r"Prometheus is unreachable \(fake Prometheus"):
        run_plan(tmp_path, engine_for(cluster, prom, clock, outputs()))
    assert cluster.created == [] and cluster.empty


def test_prometheus_lost_during_the_run_keeps_the_runners_numbers(tmp_path):
    cluster, prom, clock = setup(two_runners())
    cluster.on_started = lambda obj: setattr(prom, "unreachable", True)
    run_dir = run_plan(tmp_path, engine_for(cluster, prom, clock, outputs()), warmup="0s")
    [outcome] = read_outcomes(run_dir)
    work = target_dir(run_dir, "direct", 1) / "seed"
    assert outcome.status == "invalid_output"
    assert "Prometheus is unreachable" in outcome.reason and "gen*/summary.json" in outcome.reason
    assert (work / "gen1" / "summary.json").exists() and (work / "gen2" / "summary.json").exists()
    assert not (work / "summary.json").exists()  # no merged figure rather than a wrong one
    assert cluster.empty


def test_ctrl_c_deletes_the_testrun_and_its_pods(tmp_path):
    cluster, prom, clock = setup(two_runners(), interrupt_at="started")
    run_dir = run_plan(tmp_path, engine_for(cluster, prom, clock, outputs()), warmup="0s")
    [outcome] = read_outcomes(run_dir)
    assert outcome.status == "interrupted"
    assert cluster.empty
    assert "delete testrun (Background)" in cluster.calls


def test_pods_that_outlive_their_testrun_are_deleted_and_named(tmp_path):
    cluster, prom, clock = setup(two_runners(), sticky_pods=True)
    run_dir = run_plan(tmp_path, engine_for(cluster, prom, clock, outputs()), warmup="0s")
    [outcome] = read_outcomes(run_dir)
    assert "delete pods" in cluster.calls and cluster.empty
    assert outcome.status == "ok"


def test_a_stack_without_the_operator_crd_says_how_to_enable_it(tmp_path):
    cluster, prom, clock = setup(two_runners(), testrun_crd=False)
    run_dir = run_plan(tmp_path, engine_for(cluster, prom, clock, outputs()), warmup="0s")
    [outcome] = read_outcomes(run_dir)
    assert "k6-operator is not installed" in outcome.reason and "k6Operator.enabled true" in outcome.reason
    assert cluster.empty


@pytest.mark.parametrize(("kw", "message"), [
    ({"enabled": False}, "has no k6-operator"),
    ({"nodes": 1}, "--parallelism 2 but its load-generator pool has 1 node"),
])
def test_preflight_refuses_what_cannot_run(tmp_path, kw, message):
    cluster, prom, clock = setup(two_runners())
    engine = engine_for(cluster, prom, clock, outputs(**kw), parallelism=2)
    with pytest.raises(CloudError, match=message):
        run_plan(tmp_path, engine)
    assert cluster.created == []


def test_grafana_hint_is_a_port_forward():
    hint = grafana_hint(outputs())
    assert "kubectl -n monitoring port-forward svc/kps-grafana 3000:80" in hint
    assert "http://localhost:3000/d/aigw-bench-k6" in hint


def test_prometheus_is_reached_through_the_api_servers_service_proxy_with_fresh_credentials(tmp_path):
    from kubernetes.client import Configuration

    from aigw_bench.cloud.kube import service_proxy_client

    config = Configuration(host="https://ABC.gr7.us-east-1.eks.amazonaws.com")
    tokens = iter(["Bearer t1", "Bearer t2"])

    def refresh(c):  # what kubernetes' kubeconfig loader installs for exec credentials (aws eks get-token)
        c.api_key["authorization"] = next(tokens)

    config.refresh_api_key_hook = refresh
    client = service_proxy_client(config, "monitoring", "kps-prometheus", 9090)
    seen = []
    client._transport = httpx.MockTransport(lambda r: seen.append((str(r.url), r.headers["authorization"])) or
                                            httpx.Response(200, json={"status": "success", "data": {"result": []}}))
    prom = Prometheus(client, "test")
    prom.ready()
    prom.ready()
    base = "https://abc.gr7.us-east-1.eks.amazonaws.com/api/v1/namespaces/monitoring/services/kps-prometheus:9090/proxy"
    assert seen[0][0].startswith(base + "/api/v1/query?") and [a for _, a in seen] == ["Bearer t1", "Bearer t2"]
