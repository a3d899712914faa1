"""The fast mock on EKS (the default `mock`), under Pulumi's mocks: the properties that matter.

What the pod runs is checked against the pins of mock_llm/fast/mock.yaml; what it serves, against
the local files (the same Lua, the same contract, nginx.conf from the same template), with the
settings (pacing profile) where `cloud run` expects them. tests/test_fast_mock_eks.py runs these
files on a real nginx.
"""

from __future__ import annotations

import json
import re

import pytest

from aigw_bench.cloud.outputs import MockControl, StackOutputs
from components.fast_mock import SETTINGS_ANNOTATION, sha256
from components.prices import allocatable_cpu
from schema.mock import CONTRACT_FILE, load_mock, load_profile, settings_json
from tests.infra.conftest import SHIPPED, Program, run_stack

pytestmark = pytest.mark.pure

DEPLOYMENT = "kubernetes:apps/v1:Deployment::mock-deployment"
CONFIGMAP = "kubernetes:core/v1:ConfigMap::mock-files"
NLB = "kubernetes:core/v1:Service::mock-llm-nlb"
POOL = "aigw-bench/pool"


def pod_spec(p: Program) -> dict:
    return p.by_key[DEPLOYMENT]["inputs"]["spec"]["template"]["spec"]


@pytest.mark.parametrize("stack", SHIPPED)
def test_every_shipped_stack_deploys_the_fast_mock_by_default(programs, stack):
    p = programs[stack]
    assert p.exports["mock_name"] == "fast" and p.exports["mock_profile"] == "instant"
    assert DEPLOYMENT in p.by_key and "kubernetes:helm.sh/v3:Release::mock-release" not in p.by_key


def test_image_is_the_pinned_openresty_full_tag(programs):
    p = programs["kong"]
    cloud = load_mock("fast").deployment
    (container,) = pod_spec(p)["containers"]
    pinned = cloud.image.ref
    assert container["image"] == pinned == p.exports["mock_image"]
    # <openresty version>-<image revision>-<flavor>: the revision makes it immutable (the short
    # "1.27.1.2-bookworm" alias moves, and lagged behind revisions 10-12).
    assert re.fullmatch(r"openresty/openresty:\d+\.\d+\.\d+\.\d+-\d+-bookworm", container["image"])
    assert p.exports["mock_version"] == "openresty 1.27.1.2" and "1.27.1.2-" in container["image"]
    assert container["command"][:1] == ["/usr/bin/openresty"] and "-e" in container["command"]
    assert container["command"][container["command"].index("-c") + 1] == "/etc/mock/nginx.conf"


def test_workers_equal_the_pods_cpus_and_requests_equal_limits(programs):
    p = programs["kong"]
    (container,) = pod_spec(p)["containers"]
    resources = container["resources"]
    assert resources["requests"] == resources["limits"]
    cpu = float(resources["limits"]["cpu"])
    assert cpu == allocatable_cpu(16)  # the whole c5.4xlarge mock node
    nginx_conf = p.inputs("kubernetes:core/v1:ConfigMap", "mock-files")["data"]["nginx.conf"]
    assert re.search(r"^worker_processes (\d+);$", nginx_conf, re.M).group(1) == str(int(cpu))
    dev = programs["dev"]  # a c5.xlarge mock node: 4 vCPUs
    dev_conf = dev.inputs("kubernetes:core/v1:ConfigMap", "mock-files")["data"]["nginx.conf"]
    dev_cpu = float(pod_spec(dev)["containers"][0]["resources"]["limits"]["cpu"])
    assert re.search(r"^worker_processes (\d+);$", dev_conf, re.M).group(1) == str(int(dev_cpu)) == "3"


def test_mock_cpu_setting_sizes_pod_and_workers():
    p = Program(run_stack("kong", "--set", "mockCpu=6"))
    (container,) = pod_spec(p)["containers"]
    assert container["resources"]["limits"]["cpu"] == "6" == container["resources"]["requests"]["cpu"]
    assert "worker_processes 6;" in p.inputs("kubernetes:core/v1:ConfigMap", "mock-files")["data"]["nginx.conf"]


def test_configmap_serves_the_local_files_built_for_openresty(programs):
    p = programs["kong"]
    data = p.inputs("kubernetes:core/v1:ConfigMap", "mock-files")["data"]
    assert set(data) == {"nginx.conf", "mock.lua", "contract.json", "settings.json"}
    mock = load_mock("fast")
    assert data["mock.lua"] == (mock.entry_dir / "mock.lua").read_text()
    assert data["contract.json"] == CONTRACT_FILE.read_text()
    conf = data["nginx.conf"]
    assert "load_module" not in conf  # ngx_lua is built into OpenResty
    assert re.search(r"^error_log stderr warn;$", conf, re.M)
    assert 'lua_package_path "/etc/mock/?.lua;;";' in conf
    assert 'require("mock").init_file("/etc/mock/settings.json")' in conf
    assert "listen 8080 reuseport" in conf and "pid /tmp/nginx.pid;" in conf
    assert "location = /healthz" in conf and "location = /v1/chat/completions" in conf


def test_settings_carry_the_chosen_profile():
    default = Program(run_stack("dev"))
    paced = Program(run_stack("dev", "--set", "mockProfile=llm"))
    for p, name in ((default, "instant"), (paced, "llm")):
        settings = p.inputs("kubernetes:core/v1:ConfigMap", "mock-files")["data"]["settings.json"]
        assert settings == settings_json(load_profile(name), "/etc/mock/contract.json")
        assert json.loads(settings)["profile"]["name"] == name == p.exports["mock_profile"]
        annotations = p.by_key[DEPLOYMENT]["inputs"]["spec"]["template"]["metadata"]["annotations"]
        assert annotations[SETTINGS_ANNOTATION] == sha256(settings)  # a new profile restarts the pod
    assert json.loads(paced.inputs("kubernetes:core/v1:ConfigMap", "mock-files")["data"]["settings.json"])[
        "profile"]["ttft_ms"] == load_profile("llm").ttft_ms


def test_pod_on_the_mock_pool_unprivileged_recreated_and_probed(programs):
    p = programs["kong"]
    deployment = p.by_key[DEPLOYMENT]["inputs"]
    spec = pod_spec(p)
    assert deployment["spec"]["replicas"] == 1
    # The pod takes the node's allocatable CPU: a rolling update's surge pod could never be scheduled.
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert spec["nodeSelector"] == {POOL: "mock"}
    assert spec["tolerations"] == [{"key": POOL, "operator": "Equal", "value": "mock", "effect": "NoSchedule"}]
    (container,) = spec["containers"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": 8080}
    security = container["securityContext"]
    assert security["runAsNonRoot"] is True and security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False and security["capabilities"] == {"drop": ["ALL"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes[mounts["/etc/mock"]["name"]]["configMap"]["name"] == \
        p.inputs("kubernetes:core/v1:ConfigMap", "mock-files")["metadata"]["name"]
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]  # nginx's pid and temp files
    # New pods are Ready only once healthy behind the NLB (the controller's readiness gate).
    ns = p.inputs("kubernetes:core/v1:Namespace", "mock-ns")
    assert ns["metadata"]["labels"] == {"elbv2.k8s.aws/pod-readiness-gate-inject": "enabled"}


def test_nlb_and_cluster_service_select_the_mock_pod_and_admit_only_the_vpc(programs):
    p = programs["kong"]
    labels = p.by_key[DEPLOYMENT]["inputs"]["spec"]["template"]["metadata"]["labels"]
    vpc = p.inputs("awsx:ec2:Vpc", "network-vpc")["cidrBlock"]
    nlb = p.by_key[NLB]["inputs"]["spec"]
    assert nlb["type"] == "LoadBalancer" and nlb["selector"] == labels
    assert nlb["loadBalancerSourceRanges"] == [vpc]
    assert nlb["ports"][0]["targetPort"] == 8080 and p.exports["mock_url"].endswith(":8080")
    cluster = p.inputs("kubernetes:core/v1:Service", "mock-service")
    assert cluster["spec"]["type"] == "ClusterIP" and cluster["spec"]["selector"] == labels
    name, ns = cluster["metadata"]["name"], cluster["metadata"]["namespace"]
    assert p.exports["mock_cluster_url"] == f"http://{name}.{ns}.svc.cluster.local:8080"


def test_ordering_configmap_nodes_and_dns_before_the_pod_controller_before_the_nlb(programs):
    p = programs["kong"]
    assert p.depends_on(DEPLOYMENT, CONFIGMAP)
    for group in ("pools-gateway", "pools-mock", "pools-tools"):
        assert p.depends_on(DEPLOYMENT, f"eks:index:ManagedNodeGroup::{group}")
    assert p.depends_on(DEPLOYMENT, "aws:eks/addon:Addon::cluster-dns-coredns")
    assert p.depends_on(NLB, "kubernetes:helm.sh/v3:Release::lbc-release")
    assert p.depends_on(NLB, DEPLOYMENT)
    assert p.depends_on(CONFIGMAP, "kubernetes:core/v1:Namespace::mock-ns")


def test_outputs_tell_cloud_run_how_to_switch_the_profile(programs):
    p = programs["kong"]
    outputs = StackOutputs.from_outputs("kong", p.exports)
    configmap = p.inputs("kubernetes:core/v1:ConfigMap", "mock-files")["metadata"]
    deployment = p.by_key[DEPLOYMENT]["inputs"]["metadata"]
    service = p.inputs("kubernetes:core/v1:Service", "mock-service")
    fallback = outputs.mock_control.fallback  # tests/infra/test_fallback_mock.py
    assert outputs.mock_control == MockControl(
        namespace=configmap["namespace"], configmap=configmap["name"], settings_key="settings.json",
        deployment=deployment["name"], settings_annotation=SETTINGS_ANNOTATION,
        service=service["metadata"]["name"], port=service["spec"]["ports"][0]["port"], fallback=fallback)
    assert deployment["namespace"] == configmap["namespace"] == outputs.mock_namespace
    assert outputs.mock_name == "fast" and outputs.mock_profiles == ["instant", "llm"]
    assert p.exports["chart_versions"]["mock"] == f"image {p.exports['mock_image']}"


def test_wiremock_variant_is_placed_and_fenced_like_the_fast_mock(wiremock_kong):
    p = wiremock_kong
    values = p.inputs("kubernetes:helm.sh/v3:Release", "mock-release")["values"]
    assert values["nodeSelector"] == {POOL: "mock"}
    vpc = p.inputs("awsx:ec2:Vpc", "network-vpc")["cidrBlock"]
    assert p.inputs("kubernetes:core/v1:Service", "mock-llm-nlb")["spec"]["loadBalancerSourceRanges"] == [vpc]
    assert p.depends_on(NLB, "kubernetes:helm.sh/v3:Release::lbc-release")
    assert StackOutputs.from_outputs("kong", p.exports).mock_control is None
