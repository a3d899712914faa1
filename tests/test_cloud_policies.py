"""`aigw-bench cloud run --suite policies` on a stack that deploys variants: the same loop as a local run,
each variant target measured on the gateway its stack deployed for it, its `works` probe run by k6 on the
"runner" beside the load, the stack's secret key reaching the probe, and the variants the cloud cannot run
recorded as cells with their reasons.

Faked at the boundaries only (tests/cloud_fakes.py): S3 is moto, SSM an agent running the stage's own runner
scripts (real k6), Prometheus and the Kubernetes API small servers; the fast mock runs the files the Pulumi
program deploys, and the `auth` variant's gateway is a proxy that wants the stack's key, as LiteLLM does.
"""

from __future__ import annotations

import uuid

import pandas as pd
import pytest

from aigw_bench.local.ports import free_port
from aigw_bench.local.processes import Supervisor
from schema.results import read_outcomes
from tests.cloud_fakes import FakeKubernetes, FakePrometheus, KeyCheckingProxy
from tests.test_cloud_suite import Pod, cloud_cli, outputs_for
from tests.test_cloud_variants_plan import policies_cloud_suite


@pytest.fixture(scope="module")
def policies_run(tmp_path_factory, aws, tools_ready):
    """One `cloud run --stack litellm-policies --suite policies --policy auth,observe,limits-workers`."""
    tmp = tmp_path_factory.mktemp("cloud-policies")
    key = f"sk-stack-{uuid.uuid4().hex}"
    prom = FakePrometheus()
    monkeypatch = pytest.MonkeyPatch()
    try:
        with Supervisor() as sup:
            pod = Pod(sup, tmp / "pod", free_port())
            kube = FakeKubernetes("mock", "fast-mock", Pod.files("instant"), pod.restart)
            proxy = KeyCheckingProxy(key, pod.base)
            cluster = {"pod": pod, "kube": kube, "prom": prom, "proxy": proxy}
            # The entry's own gateway (the proxy too) is not what a policies run measures: the variants are.
            out = outputs_for(cluster, "litellm-policies", "litellm",
                              gateway_secret_headers={"Authorization": f"Bearer {key}"},
                              variant_urls={"auth": proxy.url})
            out = out.model_copy(update={"gateway_url": "http://198.51.100.9:1"})  # TEST-NET: never answers
            suite = policies_cloud_suite(tmp, steps=["seed"])
            result, run_dir, agent = cloud_cli(monkeypatch, aws, [out], suite, tmp / "results",
                                               extra=["--policy", "auth,observe,limits-workers"])
            seen = list(proxy.seen)
            proxy.close()
            kube.close()
        yield {"result": result, "run_dir": run_dir, "agent": agent, "seen": seen, "key": key, "proxy": proxy}
    finally:
        monkeypatch.undo()
        prom.close()


def test_the_variant_runs_on_its_own_gateway_and_its_works_probe_runs_under_load(policies_run):
    result, run_dir = policies_run["result"], policies_run["run_dir"]
    assert result.exit_code == 0, result.output
    outcomes = {o.target: o for o in read_outcomes(run_dir)}
    auth = outcomes["litellm+auth"]
    assert auth.status == "ok", auth.reason
    assert auth.url == f"{policies_run['proxy'].url}/v1/chat/completions"
    assert [n for n, r in auth.steps.items() if r.status != "skipped"] == ["seed", "works"]
    works = auth.steps["works"]
    assert works.status == "ok", works.reason
    (verdict,) = works.data["verdicts"]
    # Missing and wrong keys refused by the variant's gateway, the stack's key (from its secret output, through
    # the runner's environment) admitted.
    assert verdict["works"] is True, verdict
    assert set(verdict["statuses"]["missing"]) == set(verdict["statuses"]["wrong"]) == {"401"}
    assert set(verdict["statuses"]["right"]) == {"200"}
    seen = {auth_header for auth_header, _ in policies_run["seen"]}
    assert {None, "Bearer sk-aigw-bench-wrong-key", f"Bearer {policies_run['key']}"} <= seen
    # The probe ran on the runner, and the key never reached a script or a command.
    assert any("works" in s for s in policies_run["agent"].scripts())
    assert not any(policies_run["key"] in s for s in policies_run["agent"].scripts())
    assert policies_run["key"] not in "".join(p.read_text(errors="replace") for p in run_dir.rglob("*")
                                              if p.is_file() and p.suffix in (".json", ".js", ".log", ".csv"))


def test_variants_the_cloud_does_not_run_are_cells_with_their_reasons(policies_run):
    outcomes = {o.target: o for o in read_outcomes(policies_run["run_dir"])}
    observe, workers = outcomes["litellm+observe"], outcomes["litellm+limits-workers"]
    assert observe.status == workers.status == "not_runnable"
    assert observe.reason.startswith("not in this edition: ") and "prometheus_client" in observe.reason
    assert "cannot be deployed to the cloud" in workers.reason
    policy = pd.read_csv(policies_run["run_dir"] / "policy.csv")
    rows = {r.policy: r for r in policy.itertuples()}
    assert rows["auth"].works == "yes" and rows["auth"].supported
    assert not rows["observe"].supported and "prometheus_client" in rows["observe"].evidence
