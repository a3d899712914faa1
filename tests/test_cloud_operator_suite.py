"""The default suite's steps, the rig included, through the k6-operator engine, with Kubernetes faked at
its API boundary and real work behind it (tests/k8s_local.py): every k6 job a TestRun whose runner pods
are real k6 processes, the streaming probe a pod running the real probe, the fast mock's pacing switched
through its ConfigMap and Deployment (a real local mock restarted). The same loop and steps as every
engine; then the report, built from the files as for a local run."""

from __future__ import annotations

import gzip
import json
import uuid

import pandas as pd
import pytest

from aigw_bench.cloud import operator as op
from aigw_bench.cloud.kube import KubeAccess
from aigw_bench.cloud.operator_engine import OperatorEngine, OperatorOptions
from aigw_bench.cloud.probe_pod import PROBE_IMAGE, ProbePodRunner
from aigw_bench.cloud.prometheus import Prometheus
from aigw_bench.local.ports import free_port
from aigw_bench.local.processes import Supervisor
from aigw_bench.run.loop import Runner
from analysis.report import write_report
from analysis.suite import SUITE_COLUMNS
from schema.results import read_outcomes
from tests.cloud_fakes import KeyCheckingProxy, cloud_case, stack_outputs
from tests.k8s_fakes import FakePrometheus
from tests.k8s_local import LocalCluster
from tests.test_cloud_suite import CONTROL, RIG, Pod, assert_local_layout, tiny_cloud_suite

OPERATOR = {"enabled": True, "namespace": "loadgen", "load_generator_nodes": 2,
            "load_generator_instance_type": "c6i.large", "load_generator_vcpus": 2}
PROMETHEUS = {"namespace": "monitoring", "name": "kps-prometheus", "port": 9090,
              "cluster_url": "http://kps-prometheus.monitoring.svc.cluster.local:9090"}


@pytest.fixture
def operator_run(tmp_path_factory, tools_ready, no_leftovers):
    """The tiny suite on a keyed gateway's stack, through the operator engine (the baseline's A/A path
    is the same loop and steps, exercised by the local and EC2 suite tests)."""
    tmp = tmp_path_factory.mktemp("operator")
    key = f"sk-stack-{uuid.uuid4().hex}"
    prom = FakePrometheus(runners=[])
    with Supervisor() as sup:
        pod = Pod(sup, tmp / "pod", free_port())
        cluster = LocalCluster(work=tmp / "cluster", prometheus=prom, mock_files=Pod.files("instant"),
                               restart_mock=pod.restart)
        proxy = KeyCheckingProxy(key, pod.base)
        common = {"mock_name": "fast", "mock_version": "openresty 1.27.1.2", "mock_profiles": ["instant", "llm"],
                  "mock_control": CONTROL, "mock_cluster_url": "http://fast-mock.mock.svc.cluster.local:8080",
                  "mock_url": pod.base, "k6_operator": OPERATOR, "prometheus_service": PROMETHEUS,
                  "kubeconfig": {"apiVersion": "v1"}}
        outputs = [stack_outputs("litellm", "litellm", proxy.url, ["i-0"], None,
                                 gateway_secret_headers={"Authorization": f"Bearer {key}"}, **common)]
        access = KubeAccess(core=cluster, custom=cluster, apps=cluster, configuration=None)
        engine = OperatorEngine(
            outputs, OperatorOptions(poll_interval=0.2),
            kube=lambda out: access,
            prometheus=lambda out, a: Prometheus(prom.client(), "fake Prometheus (tests)"),
            runner=lambda a: op.TestRunner(a.core, a.custom, poll_interval=0.2, cleanup_wait_s=5.0),
            probe_runner=lambda a: ProbePodRunner(a.core, poll_interval=0.2), prometheus_lag_s=0)
        case = cloud_case(tmp, outputs, scenario=None, suite=str(tiny_cloud_suite(tmp)), repeats=None)
        case.plan.rig = case.plan.rig.model_validate(RIG)
        try:
            run_dir = Runner(case.plan, engine).run()
        finally:
            proxy.close()
            cluster.close()
        yield {"run_dir": run_dir, "cluster": cluster, "proxy": proxy, "key": key, "prom": prom,
               "paths": write_report(run_dir)}


def test_a_suite_with_its_rig_runs_through_the_operator_engine_to_a_report(operator_run):
    run_dir, cluster = operator_run["run_dir"], operator_run["cluster"]
    (gw,) = read_outcomes(run_dir)
    assert gw.status == "ok", gw.reason
    assert list(gw.steps) == ["overhead", "seed", "capacity", "concurrency", "efficiency", "streaming"]
    assert all(r.status == "ok" for r in gw.steps.values()), {n: r.reason for n, r in gw.steps.items()}
    assert_local_layout(run_dir, gw)

    # The stack's rig, measured by TestRuns like every other k6 job: ceiling, floor, frontier.
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["engine"] == "operator" and manifest["suite"]["profile"] == "cloud"
    rig = manifest["rig"]
    assert rig.get("error") is None and rig["ceiling_rps"] > 0 and rig["frontier"]["bounds"], rig
    assert (run_dir / "rig" / "litellm" / "ceiling" / "gen2" / "summary.json").exists()  # split over both nodes

    # TestRuns: one runner at concurrency 1 (overhead, floor), split over both nodes where the load may
    # be; never more runners than the script's VUs; warm-ups run a closed loop.
    by_session: dict[str, list[dict]] = {}
    for t in cluster.created:
        by_session.setdefault(t["metadata"]["labels"]["aigw-bench/session"], []).append(t)
    assert set(by_session) == {"rig-litellm", "litellm-r1"}
    for t in cluster.created:
        env = {e["name"]: e.get("value") for e in t["spec"]["runner"]["env"]}
        assert t["spec"]["parallelism"] in (1, 2)
        assert (env.get("AIGW_WARMUP") == "1") == t["metadata"]["name"].endswith("-w")
    # The operator's initializer (the real `k6 inspect --execution-requirements` with each TestRun's env)
    # accepted every one: no TestRun has more runners than its script's VUs.
    assert set(cluster.inspected) == {t["metadata"]["name"] for t in cluster.created}
    assert all(c["error"] is None for c in cluster.inspected.values()), cluster.inspected
    overhead_run = json.loads((run_dir / "targets/litellm/r1/overhead/testrun.json").read_text())["testrun"]
    (paired,) = [t for t in cluster.created if t["metadata"]["name"] == overhead_run]
    assert paired["spec"]["parallelism"] == 1
    assert {e["name"]: e.get("value") for e in paired["spec"]["runner"]["env"]}["AIGW_PAIRS_LOG"] == "1"

    # Overhead: every pair the script logged reached the analysis (k6's own count of the pairs agrees).
    overhead = gw.steps["overhead"]
    logged = pd.read_csv(run_dir / "targets/litellm/r1/overhead/pairs.csv.gz")
    assert overhead.data["pairs"] > 10 and overhead.files["pairs"] == "pairs.csv.gz"
    steady = logged[logged["settle"] == 0].groupby("side").size()
    assert abs(min(steady["direct"], steady["target"]) - overhead.data["pairs"]) <= 1  # at most the last one lost

    # Capacity over split runners: the summaries' percentiles come from the merged histograms.
    probes = gw.steps["capacity"].data["probes"]
    assert len(probes) >= 2
    merged = [json.loads(p.read_text()) for p in (run_dir / "targets/litellm/r1/capacity").glob("p*/summary.json")]
    assert any("native histograms merged" in (m.get("aigw_bench_merged") or {}).get("method", "") for m in merged)

    # Efficiency: the gateway pods' CPU over k6's own window (the fake Prometheus's 1.5 cores).
    eff = gw.steps["efficiency"].data
    start, end = (float(x) for x in (run_dir / "targets/litellm/r1/efficiency/window.txt").read_text().split())
    assert eff["cpu_seconds"] == pytest.approx(1.5 * (end - start), rel=1e-6)
    assert eff["rss_idle_mib"] == eff["rss_load_mib"] == 300

    # Streaming: the probe ran in a pod (pinned image, pinned packages, the key from a Secret), its
    # files came back through its log; the mock was paced through the Kubernetes API, and restored.
    streams = pd.read_csv(run_dir / "targets/litellm/r1/streaming/streams.csv")
    assert set(streams["side"]) == {"direct", "target"} and (streams["status"] == 200).all()
    assert (streams["content_chunks"] == 5).all()
    probe_pods = cluster.probe_pods
    assert probe_pods and all(p["spec"]["containers"][0]["image"] == PROBE_IMAGE for p in probe_pods)
    assert json.loads(cluster.mock_configmap.data["settings.json"])["profile"]["name"] == "instant"
    assert manifest["mock_restored"] and cluster.restarts >= 2

    # The stack's key: on every request through the gateway, in no TestRun, pod, file or result.
    key = operator_run["key"]
    assert operator_run["proxy"].seen and all(auth == f"Bearer {key}" for auth, _ in operator_run["proxy"].seen)
    assert key not in json.dumps(cluster.created) and key not in json.dumps(probe_pods)
    for path in run_dir.rglob("*"):
        if path.is_file():
            data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
            assert key.encode() not in data, path
    assert cluster.empty, (cluster.testruns, cluster.config_maps, cluster.secrets, list(cluster.pods))

    # The same analysis as for a local run.
    table = pd.read_csv(operator_run["paths"]["comparison"]).set_index("target")
    assert set(SUITE_COLUMNS) <= set(table.columns)
    row = table.loc["litellm"]
    for column in ("added_p50_us", "added_p50_us_ci_low", "added_p99_us", "capacity_rps", "cpu_ms_per_request",
                   "rss_mib", "added_ttft_p50_ms"):
        assert pd.notna(row[column]), column
    assert (run_dir / "frontier.csv").exists()
