"""The measurement suite through the cloud stage: the same steps and verdicts as a local run, with k6
and the streaming probe started on the "runner" through SSM, CPU and memory from Prometheus and the
mock's pacing switched through the Kubernetes API.

Faked at the boundaries only (tests/cloud_fakes.py): S3 is moto, SSM an agent running the stage's
own runner scripts with bash (real k6, the real probe), Prometheus and the Kubernetes API small
servers. Behind them everything is real: the fast mock runs the files the Pulumi program puts in
its ConfigMap (restarted by the fake API's "kubelet" when the stage switches the profile), and the
gateway is a proxy that wants the stack's key, as LiteLLM does. Then the report is built from the
files, as for a local run.
"""

from __future__ import annotations

import json
import time
import uuid
from functools import partial

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from aigw_bench.cli import main as cli_main
from aigw_bench.cloud.engine import Ec2Engine
from aigw_bench.cloud.kube import kube_access
from aigw_bench.cloud.outputs import StackOutputs
from aigw_bench.local.ports import free_port, require_free
from aigw_bench.local.processes import Supervisor
from aigw_bench.run.engine import RunContext
from aigw_bench.run.interrupts import Interrupted
from analysis.report import write_report
from analysis.suite import SUITE_COLUMNS
from components.fast_mock import config_files
from schema.errors import CloudError, ConfigError
from schema.mock import load_mock, load_profile
from schema.results import read_outcomes
from schema.suites import RigSizes, load_rig_sizes, load_suite
from tests.cloud_fakes import (
    FakeKubernetes,
    FakePrometheus,
    KeyCheckingProxy,
    SsmAgent,
    cloud_case,
    ec2_runner,
    run_pod_files_locally,
    stack_outputs,
)
from tests.helpers import TINY_SUITE

RUNNER = "i-0123456789abcdef0"
CONTROL = {"namespace": "mock", "configmap": "fast-mock", "settings_key": "settings.json",
           "deployment": "fast-mock", "settings_annotation": "aigw-bench/settings-sha256"}
RIG = {"ceiling": {"vus": 5, "duration": 1.0, "warmup": 0.0}, "floor": {"duration": 1.0, "warmup": 0.0}}


def tiny_cloud_suite(directory, **changes):
    """The tests' tiny suite with its sizes as the suite's cloud profile (what `cloud run` uses)."""
    data = yaml.safe_load(yaml.safe_dump(TINY_SUITE))
    data["profiles"] = {"cloud": {**data["profiles"]["local"], **changes}}
    path = directory / "tiny.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


class Pod:
    """The fast mock's pod on this machine: the EKS files, restarted by the fake API's kubelet."""

    def __init__(self, sup, work, port):
        self.sup, self.work, self.port = sup, work, port
        self.proc, self.base = run_pod_files_locally(sup, self.files("instant"), work, port)

    @staticmethod
    def files(profile: str) -> dict[str, str]:
        mock = load_mock("fast")
        return config_files(mock, mock.deployment, load_profile(profile), cpu=1)

    def restart(self, files: dict[str, str]) -> None:
        self.sup.stop(self.proc)
        require_free({"mock": self.port}, wait=5.0)
        self.proc, self.base = run_pod_files_locally(self.sup, files, self.work, self.port)


@pytest.fixture
def cluster(tmp_path, tools_ready, no_leftovers):
    """A running fast mock, the Kubernetes API in front of it, Prometheus, and the keyed gateway."""
    key = f"sk-stack-{uuid.uuid4().hex}"
    prom = FakePrometheus()
    with Supervisor() as sup:
        pod = Pod(sup, tmp_path / "pod", free_port())
        kube = FakeKubernetes("mock", "fast-mock", Pod.files("instant"), pod.restart)
        proxy = KeyCheckingProxy(key, pod.base)
        yield {"pod": pod, "kube": kube, "prom": prom, "proxy": proxy, "key": key}
        proxy.close()
        kube.close()
    prom.close()


def outputs_for(cluster, stack: str, gateway: str, **extra) -> StackOutputs:
    pod, kube = cluster["pod"], cluster["kube"]
    defaults = {"mock_url": pod.base, "mock_name": "fast", "mock_version": "openresty 1.27.1.2",
                "mock_profiles": ["instant", "llm"], "mock_control": CONTROL, "kubeconfig": kube.kubeconfig(),
                "mock_cluster_url": "http://fast-mock.mock.svc.cluster.local:8080"}
    url = pod.base if gateway == "direct" else cluster["proxy"].url
    prometheus = extra.pop("prometheus_url", cluster["prom"].url)
    return stack_outputs(stack, gateway, url, [RUNNER], prometheus, **{**defaults, **extra})


def gateway_outputs(cluster, **extra) -> StackOutputs:
    return outputs_for(cluster, "litellm", "litellm",
                       gateway_secret_headers={"Authorization": f"Bearer {cluster['key']}"}, **extra)


# For the fault tests: what they test comes after the capacity search, which two probes cover.
SHORT_CAPACITY = {"capacity": {**TINY_SUITE["profiles"]["local"]["capacity"], "max_steps": 2}}
# The streaming faults need the seed before them and the streaming step only (the rest is tested above).
SEED_AND_STREAMING = {"steps": ["seed", "streaming"]}


def run_suite(tmp_path, aws, outputs: list[StackOutputs], behave=None, suite_changes=None, **kw):
    changes = {**SHORT_CAPACITY, **(suite_changes or {})}
    case = cloud_case(tmp_path, outputs, scenario=None, suite=str(tiny_cloud_suite(tmp_path, **changes)), repeats=None)
    case.plan.rig = case.plan.rig.model_validate(RIG)
    agent = SsmAgent(aws["shim_dir"], aws["endpoint"], behave)
    runner = ec2_runner(case, agent.client, aws["s3"], poll_interval=0.1, prometheus_lag_s=1, **kw)
    return runner.run(), agent


def assert_local_layout(run_dir, outcome):
    """Every file a step names exists where the analysis will look (target dir / step dir / file)."""
    session = run_dir / "targets" / outcome.target / f"r{outcome.repeat}"
    for record in outcome.steps.values():
        for name in record.files.values():
            assert (session / record.dir / name).is_file(), (record.name, name)
    for name in outcome.files.values():
        assert (session / name).is_file(), name


def cloud_cli(monkeypatch, aws, outputs: list[StackOutputs], suite, results, sleep=None, extra=()):
    """`aigw-bench cloud run --stack ... --suite ...` in this process: the stack outputs, the AWS clients
    and the rig's sizes are the fakes'; everything from the options to the report is the command's own
    (its kubeconfig goes to the fake API server through the real kubernetes client)."""
    agent = SsmAgent(aws["shim_dir"], aws["endpoint"])
    by_stack = {o.stack: o for o in outputs}
    monkeypatch.setattr("aigw_bench.cloud.outputs.read_stack_outputs", lambda stack: by_stack[stack])
    monkeypatch.setattr("aigw_bench.cli._aws_clients", lambda: lambda region: (agent.client, aws["s3"]))
    monkeypatch.setattr("aigw_bench.run.plan.load_rig_sizes", lambda where: RigSizes.model_validate(RIG))
    fast = {"poll_interval": 0.1, "prometheus_lag_s": 1, **({"sleep": sleep(agent)} if sleep else {})}
    monkeypatch.setattr("aigw_bench.cloud.engine.Ec2Engine", partial(Ec2Engine, **fast))
    result = CliRunner().invoke(cli_main, ["cloud", "run", "--yes", "--stack", ",".join(by_stack),
                                           "--suite", str(suite), *extra,
                                           "--results", str(results)])
    (run_dir,) = [d for d in results.iterdir() if d.is_dir()]
    return result, run_dir, agent


def test_the_suite_runs_through_the_cloud_stage_and_reports_like_a_local_run(tmp_path, aws, cluster, monkeypatch):
    """`aigw-bench cloud run --stack direct,litellm --suite ...`, from the options to the report."""
    result, run_dir, agent = cloud_cli(monkeypatch, aws, [outputs_for(cluster, "direct", "direct"),
                                                          gateway_outputs(cluster)],
                                       tiny_cloud_suite(tmp_path, **SHORT_CAPACITY), tmp_path / "results")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "suite tiny on AWS, cloud sizes" in text and "direct (stack direct, fast mock)" in text
    assert (run_dir / "report.html").exists() and (run_dir / "comparison.csv").exists()
    outcomes = {o.target: o for o in read_outcomes(run_dir)}
    manifest = json.loads((run_dir / "manifest.json").read_text())
    gw, base = outcomes["litellm"], outcomes["direct"]
    assert gw.status == "ok" and base.status == "ok", (gw.reason, base.reason)
    assert list(gw.steps) == ["overhead", "seed", "capacity", "concurrency", "efficiency", "streaming"]
    assert all(r.status == "ok" for r in gw.steps.values()), {n: r.reason for n, r in gw.steps.items()}
    assert [n for n, r in base.steps.items() if r.status == "skipped"] == ["capacity", "concurrency", "efficiency"]
    for outcome in outcomes.values():
        assert_local_layout(run_dir, outcome)
    assert gw.files["summary"] == "seed/summary.json"

    # The manifest records what a local run records: suite (its cloud sizes), mock and profiles, rig.
    assert manifest["format"] == 2 and manifest["environment"] == "cloud" and manifest["main_step"] == "seed"
    assert manifest["suite"]["name"] == "tiny" and manifest["suite"]["profile"] == "cloud"
    assert manifest["mock"]["name"] == "fast" and manifest["mock"]["version"] == "openresty 1.27.1.2"
    assert manifest["mock"]["profile"]["name"] == "instant" and manifest["mock"]["streaming_profile"]["name"] == "llm"
    rig = manifest["rig"]
    assert rig["ceiling_rps"] > 0 and rig["frontier"]["bounds"] and rig["stack"] in ("direct", "litellm")
    assert rig["ceiling_rps"] == min(manifest["cloud"][s]["rig"]["ceiling_rps"] for s in ("direct", "litellm"))

    # Concurrency 1 in alternating blocks; the capacity search stepped up over real probes.
    overhead = gw.steps["overhead"]
    # 3 s of 300 ms blocks, the first half of each kept apart.
    assert overhead.data["pairs"] > 10 and overhead.data["target_ok_rate"] == 1.0
    probes = gw.steps["capacity"].data["probes"]
    assert len(probes) >= 2 and max(p["rate"] for p in probes) > probes[0]["rate"]
    # The closed-loop frontier climbed the tiny suite's levels through the runners, one k6 job per level.
    levels = gw.steps["concurrency"].data["levels"]
    assert [lv["vus"] for lv in levels] == [1, 8] and all(lv["rps"] > 0 for lv in levels), levels

    # Efficiency: CPU seconds over exactly the load's window, from the raw counter samples Prometheus
    # kept (the fake's gateway uses 1.5 cores), and the pods' memory idle, loaded and after.
    eff = gw.steps["efficiency"].data
    start, end = (float(x) for x in (run_dir / "targets/litellm/r1/efficiency/window.txt").read_text().split())
    assert eff["cpu_seconds"] == pytest.approx(1.5 * (end - start), rel=1e-6)
    assert eff["cpu_ms_per_request"] == pytest.approx(eff["cpu_seconds"] * 1000 / eff["requests"])
    assert eff["rss_idle_mib"] == eff["rss_load_mib"] == eff["rss_after_mib"] == 300
    phases = pd.read_csv(run_dir / "targets/litellm/r1/efficiency/resources-phases.csv")
    assert {"idle", "load", "after"} <= set(phases["phase"])

    # Streaming: the mock was switched to the llm profile through the Kubernetes API for it, and
    # back; the probe ran on the runner with the stack's key from the environment, never on a line.
    streams = pd.read_csv(run_dir / "targets/litellm/r1/streaming/streams.csv")
    assert set(streams["side"]) == {"direct", "target"} and (streams["status"] == 200).all()
    assert (streams["content_chunks"] == 5).all()  # the suite's output_tokens, served by the mock
    assert streams.loc[streams["side"] == "direct", "ttft_ms"].min() >= load_profile("llm").ttft_ms * 0.9
    assert (f"Bearer {cluster['key']}", True) in cluster["proxy"].seen
    assert all(auth == f"Bearer {cluster['key']}" for auth, _ in cluster["proxy"].seen)
    probe_scripts = agent.scripts("probe")
    assert probe_scripts and not any(cluster["key"] in s for s in agent.scripts())
    kube = cluster["kube"]
    patches = [(path, ctype) for method, path, ctype in kube.requests if method == "PATCH"]
    assert patches and all(ctype == "application/strategic-merge-patch+json" for _, ctype in patches)
    # llm for the baseline's streaming, instant for the gateway's session, llm again, instant at the end.
    assert kube.restarts == 4
    assert json.loads(kube.configmap["data"]["settings.json"])["profile"]["name"] == "instant"  # restored
    assert manifest["mock_restored"]

    # The same analysis as for a local run: the suite's columns, the frontier, the report.
    paths = write_report(run_dir)
    table = pd.read_csv(paths["comparison"]).set_index("target")
    assert set(SUITE_COLUMNS) <= set(table.columns)
    row = table.loc["litellm"]
    for column in ("added_p50_us", "added_p50_us_ci_low", "added_p50_us_ci_high", "added_p99_us",
                   "cpu_ms_per_request", "rss_mib", "added_ttft_p50_ms"):
        assert pd.notna(row[column]), column
    assert row["rss_mib"] == 300 and row["stream_complete_share"] == 1.0
    assert (run_dir / "frontier.csv").exists()
    assert "## The rig" in paths["markdown"].read_text()


def test_a_profile_switch_that_never_becomes_ready_fails_clearly_and_keeps_the_steps(tmp_path, aws, cluster):
    cluster["kube"].never_ready = True
    run_dir, _ = run_suite(tmp_path, aws, [outputs_for(cluster, "direct", "direct")], profile_switch_s=3,
                           suite_changes=SEED_AND_STREAMING)
    (outcome,) = read_outcomes(run_dir)
    assert outcome.status == "mock_failed"
    assert "did not become ready with the 'llm' pacing profile within 3 s" in outcome.reason
    assert "kubectl -n mock describe deployment fast-mock" in outcome.reason
    assert outcome.evidence["deployment"]["ready"] == 0
    # What was measured before the switch is kept, with its files, and reported.
    assert outcome.steps["seed"].status == "ok" and outcome.steps["overhead"].status == "skipped"
    assert_local_layout(run_dir, outcome)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert "not restored" in manifest["mock_restored"]["direct"]
    paths = write_report(run_dir)
    assert "did not become ready" in paths["markdown"].read_text()


def test_a_failing_probe_command_fails_the_streaming_step_clearly_and_keeps_the_rest(tmp_path, aws, cluster):
    broken = {"AIGW_PYTHON": "false"}  # the runner's Python cannot run the probe (as without httpx)
    run_dir, _ = run_suite(tmp_path, aws, [outputs_for(cluster, "direct", "direct")],
                           behave=lambda script: broken if "runner job (probe)" in script else "run",
                           suite_changes=SEED_AND_STREAMING)
    (outcome,) = read_outcomes(run_dir)
    assert outcome.status == "k6_failed"
    assert "the streaming probe exited with code 1 on the runner (streams.csv missing)" in outcome.reason
    assert outcome.evidence["ssm"][0]["files"] and "exit-code" in outcome.evidence["ssm"][0]["files"]
    assert outcome.steps["seed"].status == "ok"
    assert "streaming" not in outcome.steps
    assert_local_layout(run_dir, outcome)
    assert (run_dir / "targets/direct/r1/streaming/probe.log").exists()  # the evidence came back


def test_prometheus_unreachable_fails_only_efficiency_with_a_clear_reason(tmp_path, aws, cluster):
    closed = f"http://127.0.0.1:{free_port()}"
    run_dir, _ = run_suite(tmp_path, aws, [gateway_outputs(cluster, prometheus_url=closed)],
                           suite_changes={"steps": ["seed", "efficiency", "streaming"]})
    (outcome,) = read_outcomes(run_dir)
    assert outcome.status == "ok", outcome.reason
    efficiency = outcome.steps["efficiency"]
    assert efficiency.status == "failed"
    assert f"Prometheus at {closed} gave nothing for the window" in efficiency.reason
    assert "curl" in efficiency.reason  # what the runner saw
    # The other steps measured, and the session went on to streaming.
    assert [n for n, r in outcome.steps.items() if r.status == "ok"] == ["seed", "streaming"]
    assert [n for n, r in outcome.steps.items() if r.status == "skipped"] == ["overhead", "capacity", "concurrency"]
    assert_local_layout(run_dir, outcome)
    table = pd.read_csv(write_report(run_dir)["comparison"]).set_index("target")
    assert pd.isna(table.loc["litellm", "cpu_ms_per_request"]) and pd.notna(table.loc["litellm", "added_ttft_p50_ms"])


def test_without_the_aws_cli_the_kubeconfig_of_a_stack_is_refused_with_how_to_install_it(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    eks = {"apiVersion": "v1", "clusters": [{"name": "kubernetes", "cluster": {"server": "https://x.eks"}}],
           "users": [{"name": "aws", "user": {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1",
                                                       "command": "aws", "args": ["eks", "get-token"]}}}],
           "contexts": [{"name": "aws", "context": {"cluster": "kubernetes", "user": "aws"}}],
           "current-context": "aws"}
    out = stack_outputs("kong", "kong", "http://10.0.1.5", [RUNNER], None, kubeconfig=json.dumps(eks))
    with pytest.raises(CloudError, match=r"authenticates with `aws`, which is not installed: install it from"):
        kube_access(out)


def test_a_stack_whose_mock_cannot_pace_is_refused_before_anything_runs(tmp_path):
    plain = stack_outputs("kong", "kong", "http://10.0.1.5", [RUNNER], None)  # WireMock: instant only
    case = cloud_case(tmp_path, [plain], scenario=None, suite=str(tiny_cloud_suite(tmp_path)), repeats=None)
    with pytest.raises(ConfigError, match=r"stack 'kong' deploys the wiremock mock, which serves the pacing "
                                          r"profile\(s\) instant, not llm .*pulumi config set -s kong mock fast"):
        ec2_runner(case, None, None).run()
    assert not (tmp_path / "results").exists()


def test_a_restore_interrupted_by_ctrl_c_is_recorded_and_ends_quietly(tmp_path):
    """A second Ctrl-C (or SIGTERM) while the mock gets its deployed profile back must not lose the run's
    manifest."""
    out = stack_outputs("direct", "direct", "http://10.0.1.5", [RUNNER], None, mock_name="fast",
                        mock_profiles=["instant", "llm"], mock_control=CONTROL)
    case = cloud_case(tmp_path, [out], repeats=None)

    class Stuck:
        def serves(self, profile):
            return False

        def switch(self, profile, timeout_s):
            raise Interrupted("SIGTERM")

    engine = Ec2Engine(case.outputs, lambda region: (None, None))
    engine.begin(RunContext(plan=case.plan, run_dir=tmp_path, run_id="x"))
    engine._profiles = {"direct": Stuck()}
    assert engine._restore_profiles() == {
        "direct": "not restored (interrupted); the next `cloud run` sets the profile it needs"}


def test_without_a_suite_or_scenario_cloud_run_plans_the_default_suite_with_its_cloud_sizes(tmp_path):
    out = stack_outputs("direct", "direct", "http://10.0.1.5", [RUNNER], None, mock_name="fast",
                        mock_profiles=["instant", "llm"], mock_control=CONTROL)
    plan = cloud_case(tmp_path, [out], scenario=None, repeats=None).plan
    m = plan.measurement
    cloud = load_suite("default").sizes("cloud")
    assert m.suite.name == "default" and m.sizes == cloud and m.repeats == cloud.repeats
    assert m.params.vus == cloud.seed.vus and plan.rig == load_rig_sizes("cloud")
    assert (m.profile.name, m.streaming_profile.name) == ("instant", cloud.streaming.profile)


def test_ctrl_c_in_a_suite_cancels_the_command_keeps_the_steps_and_reports_them(tmp_path, aws, cluster, monkeypatch):
    def interrupt_the_probe(agent):
        def sleep(seconds):
            if any(c["status"] == "InProgress" and c["proc"] is not None and "runner job (probe)" in c["script"]
                   for c in agent.commands.values()):  # the probe's command is running on the "runner"
                raise KeyboardInterrupt
            time.sleep(seconds)
        return sleep

    result, run_dir, agent = cloud_cli(monkeypatch, aws, [outputs_for(cluster, "direct", "direct")],
                                       tiny_cloud_suite(tmp_path, **SEED_AND_STREAMING), tmp_path / "results",
                                       sleep=interrupt_the_probe)
    assert result.exit_code == 130, result.output
    assert "interrupted; what was measured is in" in " ".join(result.output.split())
    assert [c["status"] for c in agent.commands.values() if "runner job (probe)" in c["script"]] == ["Cancelled"]
    (outcome,) = read_outcomes(run_dir)
    assert outcome.status == "interrupted" and "remote commands cancelled" in outcome.reason
    assert [n for n, r in outcome.steps.items() if r.status == "ok"] == ["seed"]
    assert_local_layout(run_dir, outcome)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["interrupted"] is True and manifest["rig"]["ceiling_rps"] > 0
    # The mock was switched to llm for the probe; it gets its deployed profile back all the same.
    assert manifest["mock_restored"] == {"direct": "restored 'instant'"}
    assert json.loads(cluster["kube"].configmap["data"]["settings.json"])["profile"]["name"] == "instant"
    table = pd.read_csv(run_dir / "comparison.csv").set_index("target")
    assert pd.notna(table.loc["direct", "rps"])  # the seed step's figures, from what was kept
