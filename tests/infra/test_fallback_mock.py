"""The faults suite on EKS, under Pulumi's mocks: the fast mock's nginx.conf holds what a fault plan needs,
its second, healthy instance (the fallback upstream) is deployed apart from it, and a gateway's
`resilient` configuration names that instance's in-cluster URL."""

from __future__ import annotations

import json
import re

import pytest

from aigw_bench.cloud.outputs import StackOutputs
from components.fast_mock import FALLBACK_CPU, FALLBACK_NAME, SETTINGS_ANNOTATION, sha256
from components.gateway import GatewayArgs, render_documents
from schema.catalog import load_catalog
from schema.faults import HEALTHY_PLAN, load_plan
from schema.mock import load_mock
from tests.infra.conftest import Program

pytestmark = pytest.mark.pure

DEPLOYMENT = "kubernetes:apps/v1:Deployment::mock-deployment"
FALLBACK_DEPLOYMENT = "kubernetes:apps/v1:Deployment::mock-fallback-deployment"
FALLBACK_SERVICE = "kubernetes:core/v1:Service::mock-fallback-service"
FALLBACK_FILES = "kubernetes:core/v1:ConfigMap::mock-fallback-files"
POOL = "aigw-bench/pool"


def fallback_pod(p: Program) -> dict:
    return p.by_key[FALLBACK_DEPLOYMENT]["inputs"]["spec"]["template"]


def test_every_mock_pods_nginx_conf_holds_the_records_dict_and_watches_clients(programs):
    p = programs["kong"]
    for files in (p.by_key["kubernetes:core/v1:ConfigMap::mock-files"], p.by_key[FALLBACK_FILES]):
        conf = files["inputs"]["data"]["nginx.conf"]
        # what mock.lua asserts when a plan is served (a plan switched in by settings.json alone)
        assert re.search(r"^\s*lua_shared_dict aigw_requests 64m;$", conf, re.M)
        assert re.search(r"^\s*lua_check_client_abort on;$", conf, re.M)
        assert re.search(r"^\s*lua_need_request_body on;$", conf, re.M)
        assert "location = /__aigw/requests" in conf and "location = /__aigw/reset" in conf


def test_the_fallback_is_a_pinned_one_pod_deployment_on_the_tools_pool_requests_equal_limits(programs):
    p = programs["kong"]
    template = fallback_pod(p)
    spec = template["spec"]
    (container,) = spec["containers"]
    assert container["image"] == load_mock("fast").deployment.image.ref == p.exports["mock_image"]
    resources = container["resources"]
    assert resources["requests"] == resources["limits"] and float(resources["limits"]["cpu"]) == FALLBACK_CPU
    # not the mock pool: the first mock's pod takes that node's allocatable CPU
    assert spec["nodeSelector"] == {POOL: "tools"}
    assert spec["tolerations"] == [{"key": POOL, "operator": "Equal", "value": "tools", "effect": "NoSchedule"}]
    deployment = p.by_key[FALLBACK_DEPLOYMENT]["inputs"]
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert re.search(r"^worker_processes 1;$", p.by_key[FALLBACK_FILES]["inputs"]["data"]["nginx.conf"], re.M)
    assert p.depends_on(FALLBACK_DEPLOYMENT, FALLBACK_FILES)


def test_the_fallback_serves_the_healthy_plan_and_its_settings_restart_it(programs):
    p = programs["kong"]
    settings = p.by_key[FALLBACK_FILES]["inputs"]["data"]["settings.json"]
    assert json.loads(settings)["plan"] == load_plan(HEALTHY_PLAN).settings()
    assert "plan" not in json.loads(p.by_key["kubernetes:core/v1:ConfigMap::mock-files"]["inputs"]["data"][
        "settings.json"])  # the first mock starts without faults; `cloud run` switches its plan
    assert fallback_pod(p)["metadata"]["annotations"][SETTINGS_ANNOTATION] == sha256(settings)


def test_the_fallback_service_is_cluster_ip_only_and_selects_only_the_fallback_pod(programs):
    p = programs["kong"]
    service = p.by_key[FALLBACK_SERVICE]["inputs"]
    labels = fallback_pod(p)["metadata"]["labels"]
    assert service["spec"]["type"] == "ClusterIP" and service["spec"]["selector"] == labels
    mock_labels = p.by_key[DEPLOYMENT]["inputs"]["spec"]["template"]["metadata"]["labels"]
    assert labels != mock_labels  # neither Service (nor the mock's NLB) selects the other's pod
    assert p.inputs("kubernetes:core/v1:Service", "mock-llm-nlb")["spec"]["selector"] == mock_labels
    # nothing but the ClusterIP: no NLB fronts the fallback
    assert [r for r in p.of_type("kubernetes:core/v1:Service") if r["inputs"]["spec"]["selector"] == labels] == \
        [p.by_key[FALLBACK_SERVICE]]
    name, ns = service["metadata"]["name"], service["metadata"]["namespace"]
    assert name == FALLBACK_NAME
    assert p.exports["mock_fallback_cluster_url"] == f"http://{name}.{ns}.svc.cluster.local:8080"


def test_outputs_tell_cloud_run_where_both_mocks_records_are(programs):
    out = StackOutputs.from_outputs("kong", programs["kong"].exports)
    control = out.mock_control
    assert control is not None and control.service == "fast-mock" and control.port == 8080
    assert control.fallback is not None and control.fallback.service == control.fallback.deployment == FALLBACK_NAME
    assert control.fallback.configmap == FALLBACK_NAME and control.fallback.namespace == out.mock_namespace


def test_wiremock_deploys_no_fallback(wiremock_kong):
    assert FALLBACK_DEPLOYMENT not in wiremock_kong.by_key
    assert wiremock_kong.exports["mock_fallback_cluster_url"] == ""


def _args(program: Program, gateway) -> GatewayArgs:
    """What the program passes a gateway, with the stack's mock and fallback URLs (its exports)."""
    return GatewayArgs(entry=gateway, cloud=gateway.deployment, replicas=1, cpu_per_replica=2.0, workers=2,
                       mock_cluster_url=program.exports["mock_cluster_url"], mock_url="http://nlb:8080",
                       provider=None, lb_controller=None, source_ranges=[], cluster_ready=[],  # type: ignore[arg-type]
                       fallback_cluster_url=program.exports["mock_fallback_cluster_url"])


def test_nginx_resilient_names_the_fallback_as_its_backup_server(programs):
    p = programs["nginx"]
    entry = load_catalog().get("nginx")
    _, docs = render_documents(_args(p, entry.with_variant("resilient")))
    conf = next(d for d in docs if d["kind"] == "ConfigMap")["data"]["nginx.conf"]
    host_port = p.exports["mock_fallback_cluster_url"].removeprefix("http://")
    assert re.search(rf"^\s*server {re.escape(host_port)} backup;$", conf, re.M)
    assert "proxy_next_upstream error timeout http_429 http_500 http_502 http_503 non_idempotent;" in conf
    assert "proxy_next_upstream_tries 2;" in conf and "max_fails=0;" in conf
    _, plain = render_documents(_args(p, entry))  # the entry as it is: no fallback, no retry
    plain_conf = next(d for d in plain if d["kind"] == "ConfigMap")["data"]["nginx.conf"]
    assert "backup" not in plain_conf and "proxy_next_upstream" not in plain_conf


def test_litellm_resilient_names_the_fallback_deployment(programs):
    p = programs["litellm"]
    values, _ = render_documents(_args(p, load_catalog().get("litellm").with_variant("resilient")))
    config = values["proxy_config"]
    fallback = next(m for m in config["model_list"] if m["model_name"].endswith("-fallback"))
    assert fallback["litellm_params"]["api_base"] == p.exports["mock_fallback_cluster_url"] + "/v1"
    assert config["router_settings"]["num_retries"] == 1
    assert config["router_settings"]["fallbacks"] == [{"gpt-4o-mini": [fallback["model_name"]]}]
