"""The faults suite through the cloud stage (`aigw-bench cloud run --suite faults`), faked at the boundaries
as in tests/test_cloud_suite.py: S3 is moto, SSM an agent running the stage's own runner scripts with bash
(real k6), Prometheus and the Kubernetes API small servers (tests/cloud_fakes.py).

Behind the fakes everything is real: the fast mock and its second, healthy instance run the files the Pulumi
program puts in their ConfigMaps (components/fast_mock.py), each restarted by the fake API's "kubelet" when
the stage switches its settings; their attempt records come from the real mocks, through the fake API
server's service proxy, as the stage reads them on EKS; and the target is the variant `nginx+resilient`: a
real nginx on the configuration the program renders for that variant on EKS (stacks/nginx/cloud/
manifests.yaml.j2), its backup server the second mock, at the URL the stack exports for the variant
(`variant_urls`). Then faults.csv is derived from the files, as for a local run."""

from __future__ import annotations

import getpass
import json
import re

import pandas as pd
import pytest
import yaml

from aigw_bench.cloud.engine import Ec2Engine
from aigw_bench.local.ports import free_port, require_free
from aigw_bench.local.probes import wait_ready
from aigw_bench.local.processes import Supervisor
from aigw_bench.measure.plan import Knobs
from aigw_bench.run.loop import Runner
from aigw_bench.run.plan import plan_run
from analysis.report import write_report
from components.fast_mock import FALLBACK_NAME, NAME, config_files
from components.gateway import GatewayArgs, render_documents
from schema.catalog import load_catalog
from schema.errors import ConfigError
from schema.faults import HEALTHY, HEALTHY_PLAN, load_plan, request_id
from schema.mock import load_mock, load_profile
from schema.results import read_outcomes
from tests.cloud_fakes import FakeKubernetes, FakePrometheus, SsmAgent, run_pod_files_locally, stack_outputs

pytestmark = pytest.mark.slow  # one cloud run of ~25 s (rig, seed, two scenarios, restarts), shared by the module

RUNNER = "i-0123456789abcdef0"
RIG = {"ceiling": {"vus": 5, "duration": 1.0, "warmup": 0.0}, "floor": {"duration": 1.0, "warmup": 0.0}}
CONTROL = {"namespace": "mock", "configmap": NAME, "settings_key": "settings.json", "deployment": NAME,
           "settings_annotation": "aigw-bench/settings-sha256", "service": NAME, "port": 8080,
           "fallback": {"namespace": "mock", "configmap": FALLBACK_NAME, "settings_key": "settings.json",
                        "deployment": FALLBACK_NAME, "settings_annotation": "aigw-bench/settings-sha256",
                        "service": FALLBACK_NAME, "port": 8080}}
# Three scenarios of 2 s at 20 requests/s: 5xx (nginx retries each once on the backup), a client that gives up,
# and the same streaming, on the plan the mock already serves (no restart: only the reset starts it anew).
SUITE = {
    "name": "faults-cloud-short", "description": "The faults suite, two short scenarios (cloud tests).",
    "variants": "faults", "body": {"prompt_tokens": 50, "max_tokens": 16},
    "profiles": {"cloud": {
        "repeats": 1, "steps": ["seed", "faults"], "seed": {"vus": 2, "duration": "1s", "warmup": "0s"},
        "faults": {"rate": 20, "duration": "2s", "request_timeout": "12s", "vus": 10, "max_vus": 60, "settle": "300ms",
                   "scenarios": [{"name": "server-errors", "plan": "server-errors"},
                                 {"name": "cancel", "plan": "slow-answers", "request_timeout": "1s"},
                                 {"name": "cancel-stream", "plan": "slow-answers", "stream": True,
                                  "request_timeout": "1s"}]},
        "overhead": {"duration": "4s", "warmup": "1s", "block": "500ms", "settle": "100ms"},
        "capacity": {"bounds_ms": [50], "default_bound_ms": 50, "step": "2s", "max_steps": 2, "min_rate": 10,
                     "growth": 1.6, "resolution": 0.1, "max_vus": 100},
        "efficiency": {"rate": 20, "duration": "3s", "idle": "1s", "after": "1s"},
        "streaming": {"profile": "llm", "output_tokens": 20, "concurrency": 6, "duration": "4s"}}},
}


class Pod:
    """One mock instance's pod on this machine: its EKS files, restarted by the fake API's kubelet."""

    def __init__(self, sup, work, files):
        self.sup, self.work, self.port = sup, work, free_port()
        self.proc, self.base = run_pod_files_locally(sup, files, work, self.port)

    def restart(self, files: dict[str, str]) -> None:
        self.sup.stop(self.proc)
        require_free({"mock": self.port}, wait=5.0)
        self.proc, self.base = run_pod_files_locally(self.sup, files, self.work, self.port)


def start_resilient_nginx(sup, work, mock_base: str, fallback_base: str) -> str:
    """nginx on the ConfigMap the program renders for `nginx+resilient` on EKS, its upstreams this machine's
    mocks; only the listen address, the pid file, the user (this machine's) and `daemon off` (the image's
    command line) are changed or added to run it here."""
    gateway = load_catalog().get("nginx").with_variant("resilient")
    args = GatewayArgs(entry=gateway, cloud=gateway.deployment, replicas=1, cpu_per_replica=1.0, workers=1,
                       mock_cluster_url=mock_base, mock_url="", provider=None, lb_controller=None,  # type: ignore[arg-type]
                       source_ranges=[], cluster_ready=[], fallback_cluster_url=fallback_base)
    _, docs = render_documents(args)
    conf = next(d for d in docs if d["kind"] == "ConfigMap")["data"]["nginx.conf"]
    port = free_port()
    conf = re.sub(r"^(\s*listen )\d+;", rf"\g<1>127.0.0.1:{port};", conf, flags=re.M)
    work.mkdir(parents=True, exist_ok=True)
    (work / "nginx.conf").write_text(conf)
    main = f"daemon off; pid {work}/nginx.pid; user {getpass.getuser()};"
    proc = sup.start("gateway", ["nginx", "-p", f"{work}/", "-c", str(work / "nginx.conf"), "-e", "stderr", "-g", main],
                     work / "nginx.log")
    base = f"http://127.0.0.1:{port}"
    wait_ready("gateway", base + "/healthz", timeout=20, proc=proc)
    return base


def mock_files(plan=None) -> dict[str, str]:
    mock = load_mock("fast")
    return config_files(mock, mock.deployment, load_profile("instant"), cpu=1, plan=plan)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, tools_ready):
    """Both mocks' pods, the Kubernetes API in front of them (their settings, their records through the
    service proxy), Prometheus, and nginx+resilient in front of the two mocks."""
    work = tmp_path_factory.mktemp("cluster")
    prom = FakePrometheus()
    with Supervisor() as sup:
        mock = Pod(sup, work / "mock", mock_files())
        fallback = Pod(sup, work / "fallback", mock_files(load_plan(HEALTHY_PLAN)))
        kube = FakeKubernetes("mock", NAME, mock_files(), mock.restart)
        kube.add_mock(FALLBACK_NAME, mock_files(load_plan(HEALTHY_PLAN)), fallback.restart)
        kube.proxy_to(NAME, 8080, mock.base)
        kube.proxy_to(FALLBACK_NAME, 8080, fallback.base)
        gateway = start_resilient_nginx(sup, work / "nginx", mock.base, fallback.base)
        yield {"mock": mock, "fallback": fallback, "kube": kube, "prom": prom, "gateway": gateway}
        kube.close()
    prom.close()


def nginx_outputs(mock: str, fallback: str, gateway: str, kubeconfig: str, prometheus: str, **extra):
    return stack_outputs("nginx", "nginx", "http://nginx-as-shipped.invalid:80", [RUNNER], prometheus, **{
        "mock_url": mock, "mock_name": "fast", "mock_version": "openresty 1.27.1.2",
        "mock_profiles": ["instant", "llm"], "mock_control": CONTROL, "kubeconfig": kubeconfig,
        "mock_cluster_url": mock, "mock_fallback_cluster_url": fallback, "variant_urls": {"resilient": gateway},
        **extra})


def faults_plan(tmp_path, outputs):
    suite = tmp_path / "faults-cloud-short.yaml"
    suite.write_text(yaml.safe_dump(SUITE, sort_keys=False))
    plan = plan_run("cloud", targets=[load_catalog().get(o.gateway_name) for o in outputs], scenario=None,
                    suite=str(suite), mock_profile=None, knobs=Knobs(), repeats=None,
                    results_root=tmp_path / "results", variants=["resilient"])
    plan.rig = plan.rig.model_validate(RIG)
    return plan


@pytest.fixture(scope="module")
def cloud_run(tmp_path_factory, aws, cluster):
    tmp_path = tmp_path_factory.mktemp("run")
    outputs = [nginx_outputs(cluster["mock"].base, cluster["fallback"].base, cluster["gateway"],
                             cluster["kube"].kubeconfig(), cluster["prom"].url)]
    agent = SsmAgent(aws["shim_dir"], aws["endpoint"])
    engine = Ec2Engine(outputs, lambda region: (agent.client, aws["s3"]), poll_interval=0.1, prometheus_lag_s=1)
    run_dir = Runner(faults_plan(tmp_path, outputs), engine).run()
    write_report(run_dir)
    return {"run_dir": run_dir, "agent": agent, "faults": pd.read_csv(run_dir / "faults.csv"),
            "outcome": {o.target: o for o in read_outcomes(run_dir)}["nginx+resilient"]}


def planned(plan: str, requests: int) -> dict[str, str]:
    p = load_plan(plan)
    return {request_id(n): p.choose(request_id(n), 1) for n in range(requests)}


def row(cloud_run, scenario: str) -> dict:
    (r,) = cloud_run["faults"].query("scenario == @scenario").to_dict("records")
    return r


def test_the_variant_runs_each_scenario_on_its_stack_and_keeps_both_mocks_records(cloud_run, cluster):
    outcome = cloud_run["outcome"]
    assert outcome.status == "ok", outcome.reason
    assert outcome.url == cluster["gateway"] + "/v1/chat/completions"  # the variant's own URL (variant_urls)
    for name in ("faults-server-errors", "faults-cancel", "faults-cancel-stream"):
        step = outcome.steps[name]
        assert step.status == "ok", step.reason
        records = json.loads((cloud_run["run_dir"] / "targets/nginx+resilient/r1" / step.dir / "upstream.json")
                             .read_text())
        assert set(records) == {"mock", "fallback"} and records["mock"]["attempts"]
        assert records["fallback"]["plan"] == HEALTHY_PLAN
    # The warm-up request after each restart is not a measurement: no step, no file under a step's name.
    assert not [n for n in outcome.steps if n.startswith("warm")]
    assert set(cloud_run["faults"]["config"]) == {"resilient"}


def test_nginx_resilient_on_eks_retries_each_5xx_once_on_the_second_mock_exactly(cloud_run):
    r = row(cloud_run, "server-errors")
    plan = planned("server-errors", int(r["requests"]))
    faulted = sum(1 for a in plan.values() if a != HEALTHY)
    assert faulted > 0
    assert (r["upstream_attempts"], r["fallback_attempts"]) == (len(plan), faulted)
    assert r["amplification_max"] == 2 and r["success_rate"] == 1.0 and r["status_mix"] == f"200:{len(plan)}"


def test_a_client_that_gives_up_is_seen_closing_the_upstream_through_the_gateway(cloud_run):
    r = row(cloud_run, "cancel")
    slow = list(planned("slow-answers", int(r["requests"])).values()).count("slow_first_byte")
    assert slow > 0 and r["answers_timeout"] == slow
    assert r["cancel_propagated"] == 1.0 and 900 <= r["cancel_after_ms"] < 3000


def test_a_scenario_on_the_plan_already_served_is_not_restarted_and_counts_from_zero(cloud_run):
    r = row(cloud_run, "cancel-stream")
    slow = list(planned("slow-answers", int(r["requests"])).values()).count("slow_first_byte")
    assert slow > 0 and r["answers_timeout"] == slow and r["cancel_propagated"] == 1.0
    # the same request ids as `cancel`, on the same running mock: its records were cleared by the reset
    assert r["upstream_attempts"] == r["requests"] and r["amplification_max"] == 1


def test_each_plan_went_through_the_configmap_and_the_mocks_were_left_as_deployed(cloud_run, cluster):
    kube = cluster["kube"]
    # server-errors, slow-answers (kept for cancel-stream), then the deployed settings (no plan) at the end.
    assert kube.restarts_of[NAME] == 3 and kube.restarts_of[FALLBACK_NAME] == 0
    assert "plan" not in json.loads(kube.configmap_of(NAME)["data"]["settings.json"])
    assert json.loads(kube.configmap_of(FALLBACK_NAME)["data"]["settings.json"])["plan"]["name"] == HEALTHY_PLAN
    proxied = [(m, p) for m, p, _ in kube.requests if "/proxy/" in p]
    assert ("POST", f"/api/v1/namespaces/mock/services/{NAME}:8080/proxy/__aigw/reset") in proxied
    assert ("GET", f"/api/v1/namespaces/mock/services/{FALLBACK_NAME}:8080/proxy/__aigw/requests") in proxied
    # one warm-up request through the target after each of the two restarts, from the runner, where k6 runs
    assert len([s for s in cloud_run["agent"].scripts() if "first request after the mock" in s]) == 2


# ------------------------------------------------------------------------ bad input, before anything runs
def test_a_stack_whose_mock_serves_no_fault_plans_is_refused_naming_it(tmp_path):
    def outputs(**extra):
        return nginx_outputs("http://mock-nlb:8080", "", "http://nginx-resilient-nlb:80", "{}", "http://prom:9090",
                             **extra)

    wiremock = outputs(mock_name="wiremock", mock_control=None, mock_profiles=["instant"])
    with pytest.raises(ConfigError) as err:
        Ec2Engine([wiremock], lambda region: (None, None)).validate(faults_plan(tmp_path, [wiremock]))
    text = " ".join(str(err.value).split())
    assert "stack 'nginx' deploys the wiremock mock, which serves no fault plans" in text
    assert "pulumi config set -s nginx mock fast && pulumi up -s nginx" in text
    old = outputs(mock_control={k: v for k, v in CONTROL.items() if k != "fallback"})
    with pytest.raises(ConfigError, match="the fast mock without its second, healthy instance"):
        Ec2Engine([old], lambda region: (None, None)).validate(faults_plan(tmp_path, [old]))
    Ec2Engine([outputs()], lambda region: (None, None)).validate(faults_plan(tmp_path, [outputs()]))  # deployed
