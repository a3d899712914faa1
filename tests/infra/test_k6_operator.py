"""The k6-operator engine under Pulumi's mocks: its load-generator pool, the pinned operator
release on the tools pool, the Grafana dashboard, and the config that turns them on."""

from __future__ import annotations

import json

import pytest

from components import k6_operator
from components.config import DEFAULT_LOADGEN_NODES
from components.dashboards import dashboard_files
from components.prices import price_table
from tests.infra.conftest import Program, run_stack
from tests.infra.test_config_validation import assert_fails_creating_nothing

pytestmark = pytest.mark.pure

RELEASE = "kubernetes:helm.sh/v3:Release"
NODE_GROUP = "eks:index:ManagedNodeGroup"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
POOL_KEY = "aigw-bench/pool"
OPERATOR = f"{RELEASE}::k6-operator-release"
LOADGEN = f"{NODE_GROUP}::generators-loadgen"


@pytest.fixture(scope="module")
def operator(programs) -> Program:
    return programs["kong-operator"]


def test_the_shipped_operator_stack_has_the_pool_and_the_release(operator):
    assert LOADGEN in operator.by_key and OPERATOR in operator.by_key
    assert operator.exports["k6_operator"] == {
        "enabled": True, "namespace": "loadgen", "load_generator_nodes": 2,
        "load_generator_instance_type": "c6i.4xlarge", "load_generator_vcpus": 16, "load_generator_hourly_usd": 0.68}


def test_load_generator_pool_tainted_labelled_and_sized_by_config(operator):
    pool = operator.inputs(NODE_GROUP, "generators-loadgen")
    assert pool["labels"] == {POOL_KEY: "loadgen"}
    assert pool["taints"] == [{"key": POOL_KEY, "value": "loadgen", "effect": "NO_SCHEDULE"}]
    assert pool["instanceTypes"] == ["c6i.4xlarge"]
    assert pool["scalingConfig"] == {"desiredSize": 2, "minSize": 2, "maxSize": 2}
    assert pool["operatingSystem"] == "AL2023"
    assert pool["subnetIds"] == ["subnet-priv-a", "subnet-priv-b"]


def test_an_empty_load_generator_pool_keeps_the_eks_minimum_max_size():
    p = Program(run_stack("kong-operator-empty", "--set", "nodes={loadgen: {count: 0}}", base="kong-operator"))
    # EKS: minSize/desiredSize may be 0, maxSize must be at least 1 (NodegroupScalingConfig).
    assert p.inputs(NODE_GROUP, "generators-loadgen")["scalingConfig"] == \
        {"desiredSize": 0, "minSize": 0, "maxSize": 1}
    assert not any("load-generator" in k for k in p.exports["cost_breakdown"])  # no nodes, no cost


def test_operator_release_pinned_on_the_tools_pool_and_after_its_pool(operator):
    release = operator.inputs(RELEASE, "k6-operator-release")
    assert release["chart"] == "k6-operator"
    assert release["version"] == "4.6.0" == k6_operator.CHART.version
    assert release["repositoryOpts"]["repo"] == "https://grafana.github.io/helm-charts"
    assert release["namespace"] == "k6-operator"
    values = release["values"]
    assert values["nodeSelector"] == {POOL_KEY: "tools"}
    assert {"key": POOL_KEY, "operator": "Equal", "value": "tools", "effect": "NoSchedule"} in values["tolerations"]
    assert values["installCRDs"] is True
    assert values["namespace"] == {"create": False}  # the program makes the namespace
    assert values["metrics"]["serviceMonitor"]["enabled"] is False
    assert operator.depends_on(OPERATOR, LOADGEN)
    assert operator.depends_on(OPERATOR, "aws:eks/addon:Addon::cluster-dns-coredns")
    # The TestRuns' namespace goes before the operator on destroy.
    assert operator.depends_on("kubernetes:core/v1:Namespace::k6-operator-testruns-ns", OPERATOR)
    assert operator.exports["chart_versions"]["k6-operator"] == "4.6.0"


def test_operator_resources_are_children_of_their_component(operator):
    for name in ("k6-operator-ns", "k6-operator-testruns-ns"):
        parent = operator.one("kubernetes:core/v1:Namespace", name)["parent"]
        assert parent == "aigw-bench:index:K6Operator::k6-operator"
    assert operator.by_key[OPERATOR]["parent"] == "aigw-bench:index:K6Operator::k6-operator"
    assert operator.by_key[LOADGEN]["parent"] == "aigw-bench:index:NodePools::generators"


def test_load_generators_are_in_the_cost(operator):
    table = price_table()
    assert operator.exports["cost_breakdown"]["load-generator nodes (c6i.4xlarge)"] == \
        pytest.approx(2 * table.instances["c6i.4xlarge"].hourly)


@pytest.mark.parametrize("stack", ["kong", "dev", "portkey"])
def test_stacks_without_the_operator_have_neither_pool_nor_release(programs, stack):
    p = programs[stack]
    assert LOADGEN not in p.by_key and OPERATOR not in p.by_key
    assert p.exports["k6_operator"]["enabled"] is False
    assert p.exports["k6_operator"]["load_generator_nodes"] == 0
    assert not any("load-generator" in k for k in p.exports["cost_breakdown"])


def test_default_pool_size_when_the_operator_is_enabled():
    p = Program(run_stack("kong-op-default", "--set", "k6Operator={enabled: true}", base="kong"))
    assert p.inputs(NODE_GROUP, "generators-loadgen")["scalingConfig"]["desiredSize"] == DEFAULT_LOADGEN_NODES


def test_load_generator_nodes_without_the_operator_are_refused():
    assert_fails_creating_nothing(
        run_stack("kong-lg", "--set", "nodes={loadgen: {count: 3}}", base="kong"),
        "aigw-bench:nodes.loadgen.count: 3 load-generator node(s)", "aigw-bench:k6Operator.enabled is not true")


def test_bad_operator_and_pool_values_name_the_key():
    assert_fails_creating_nothing(
        run_stack("kong-op-bad", "--set", "k6Operator={enabled: maybe}", base="kong"), "aigw-bench:k6Operator.enabled")
    assert_fails_creating_nothing(
        run_stack("kong-op-type", "--set", "nodes={loadgen: {instanceType: c6i.huge, count: 2}}",
                  "--set", "k6Operator={enabled: true}", base="kong"), "aigw-bench:nodes.loadgen.instanceType")
    assert_fails_creating_nothing(
        run_stack("kong-op-many", "--set", "nodes={loadgen: {count: 99}}",
                  "--set", "k6Operator={enabled: true}", base="kong"), "aigw-bench:nodes.loadgen.count")
    assert_fails_creating_nothing(
        run_stack("kong-op-unknown", "--set", "k6Operator={enabled: true, engine: x}", base="kong"),
        "aigw-bench:k6Operator.engine")


@pytest.mark.parametrize("stack", ["kong", "kong-operator"])
def test_dashboard_provisioned_for_the_grafana_sidecar(programs, stack):
    p = programs[stack]
    cm = p.inputs(CONFIG_MAP, "dashboards-k6-load")
    assert cm["metadata"]["labels"] == {"grafana_dashboard": "1"}  # kube-prometheus-stack 88.5.3 sidecar
    assert cm["metadata"]["namespace"] == "monitoring"
    dashboard = json.loads(cm["data"]["k6-load.json"])
    assert dashboard["uid"] == p.exports["grafana_service"]["dashboard_uid"]
    assert p.depends_on(f"{CONFIG_MAP}::dashboards-k6-load", f"{RELEASE}::observability-release")
    assert p.exports["grafana_service"] == {"namespace": "monitoring", "name": "kps-grafana", "port": 80,
                                            "dashboard_uid": "aigw-bench-k6"}


def test_dashboard_queries_what_k6_and_the_cluster_export():
    dashboard = json.loads(dashboard_files()["k6-load.json"])
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    text = "\n".join(exprs)
    # k6 v1.1.0 experimental-prometheus-rw names: prefix k6_, counters _total, time trends as
    # native histograms in seconds (internal/output/prometheusrw/remotewrite).
    assert "k6_http_reqs_total" in text and "k6_http_req_duration_seconds" in text
    assert "histogram_quantile(0.99, sum by (target) (rate(k6_http_req_duration_seconds" in text
    assert "_bucket" not in text  # native histograms have no _bucket series
    # CPU and memory of the gateway's, the mock's and the load generators' pods (docs/cloud.md, Grafana).
    for ns in ("$gateway_namespace", "$mock_namespace", "$loadgen_namespace"):
        assert f'container_cpu_usage_seconds_total{{namespace="{ns}"' in text
        assert f'container_memory_working_set_bytes{{namespace="{ns}"' in text
    defaults = {v["name"]: v["query"] for v in dashboard["templating"]["list"] if v["type"] == "textbox"}
    assert defaults == {"gateway_namespace": "gateway", "mock_namespace": "mock",
                        "loadgen_namespace": k6_operator.TESTRUN_NAMESPACE}
    # Every panel says what it shows (docs/cloud.md repeats them, panel by panel).
    assert all(p.get("description") for p in dashboard["panels"] if p["type"] != "row")


@pytest.mark.parametrize("stack", ["kong", "kong-operator", "dev", "litellm"])
def test_cost_from_the_stack_file_is_what_the_deployed_stack_reports(programs, stack):
    """`cloud matrix` plans with this before deploying; the program exports the same figure."""
    from components.config import stack_file_hourly_cost
    from schema.catalog import load_catalog
    from tests.infra.test_stacks import REPO

    assert stack_file_hourly_cost(REPO / f"Pulumi.{stack}.yaml", load_catalog()) == \
        pytest.approx(programs[stack].exports["hourly_cost_usd"])
