"""A stack's `variants`: each variant of its entry a gateway of its own (namespace, NLB), Redis beside the ones
that need it, Kong's plugins and LiteLLM's policy config as the catalog declares them; and every variant a stack
cannot deploy refused before any resource exists. Run under Pulumi's mocks (tests/infra/run_program.py)."""

from __future__ import annotations

import pytest
import yaml

from components.config import ConfigValidationError, cost_lines, parse
from components.prices import price_table
from schema.catalog import load_catalog
from schema.cloud import variant_namespace
from schema.services import load_service
from tests.infra.conftest import Program, run_stack
from tests.infra.test_config_validation import assert_fails_creating_nothing

pytestmark = pytest.mark.pure

RELEASE = "kubernetes:helm.sh/v3:Release"
SERVICE = "kubernetes:core/v1:Service"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
NAMESPACE = "kubernetes:core/v1:Namespace"
LBC = f"{RELEASE}::lbc-release"
POOL_KEY = "aigw-bench/pool"

# The variants each shipped policies stack deploys, and those that need Redis (their catalog `services`).
STACKS = {"kong-policies": ["none", "auth", "limits", "observe", "guard", "governed"],
          "litellm-policies": ["none", "auth", "limits", "cache", "guard", "governed"]}
WITH_REDIS = {"kong-policies": {"limits", "governed"}, "litellm-policies": {"limits", "cache", "governed"}}

# Every plugin field the Kong variants set, as the plugin's schema.lua at Kong/kong 3.9.3 declares it (file:line
# in stacks/kong/gateway.yaml): a rendered field outside these would be a field the pinned version may not have.
KONG_FIELDS = {
    "ai-proxy": {"route_type", "max_request_body_size", "auth", "model"},
    "key-auth": {"key_names", "hide_credentials"},  # key-auth/schema.lua:12-17
    "rate-limiting": {"second", "policy", "redis"},  # rate-limiting/schema.lua:80,92,94
    "prometheus": {"status_code_metrics", "latency_metrics"},  # prometheus/schema.lua:20,22
    "file-log": {"path", "reopen"},  # file-log/schema.lua:11,16
    "ai-prompt-guard": {"deny_patterns", "max_request_body_size"},  # ai-prompt-guard/schema.lua:20,35
}
REDIS_FIELDS = {"host", "port"}  # kong/tools/redis/schema.lua:9-10


@pytest.fixture(scope="module")
def stacks() -> dict[str, Program]:
    out = {}
    for name in STACKS:
        result = run_stack(name)
        assert "error" not in result, result.get("error")
        out[name] = Program(result)
    return out


def redis_host(variant: str) -> str:
    return f"redis.{variant_namespace('gateway', variant)}.svc.cluster.local"


@pytest.mark.parametrize("stack", STACKS)
def test_each_variant_is_a_gateway_of_its_own_behind_its_own_internal_nlb(stacks, stack):
    p = stacks[stack]
    assert list(p.exports["variant_urls"]) == STACKS[stack]
    vpc = p.inputs("awsx:ec2:Vpc", "network-vpc")["cidrBlock"]
    for v in STACKS[stack]:
        namespace = variant_namespace("gateway", v)
        assert p.inputs(NAMESPACE, f"gateway-{v}-ns")["metadata"]["name"] == namespace
        release = p.inputs(RELEASE, f"gateway-{v}-release")
        assert release["namespace"] == namespace
        nlb = p.inputs(SERVICE, f"gateway-{v}-nlb")
        assert nlb["metadata"]["namespace"] == namespace and nlb["spec"]["type"] == "LoadBalancer"
        assert nlb["metadata"]["annotations"]["service.beta.kubernetes.io/aws-load-balancer-scheme"] == "internal"
        assert nlb["spec"]["loadBalancerSourceRanges"] == [vpc]
        assert p.depends_on(f"{SERVICE}::gateway-{v}-nlb", LBC)  # removed before the controller on destroy
        assert p.depends_on(f"{SERVICE}::gateway-{v}-nlb", f"{RELEASE}::gateway-{v}-release")
        assert p.exports["variant_urls"][v].startswith(f"http://gateway-{v}-nlb")
    # The entry itself stays where it was (the default suite's gateway_url).
    assert p.inputs(RELEASE, "gateway-release")["namespace"] == "gateway"


@pytest.mark.parametrize("stack", STACKS)
def test_redis_is_pinned_cluster_internal_on_the_tools_pool_and_only_where_a_variant_needs_it(stacks, stack):
    p = stacks[stack]
    spec = load_service("redis").cloud
    deployments = {d["name"]: d for d in p.of_type(DEPLOYMENT) if d["name"].endswith("-redis-deployment")}
    assert set(deployments) == {f"gateway-{v}-redis-deployment" for v in WITH_REDIS[stack]}
    for v in WITH_REDIS[stack]:
        d = p.inputs(DEPLOYMENT, f"gateway-{v}-redis-deployment")
        assert d["metadata"]["namespace"] == variant_namespace("gateway", v)
        pod = d["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["image"] == "redis:7.0.15-bookworm" == spec.image.ref  # a full tag, never latest
        assert container["resources"]["requests"] == container["resources"]["limits"] == {"cpu": "500m",
                                                                                          "memory": "256Mi"}
        assert pod["nodeSelector"] == {POOL_KEY: "tools"}
        assert pod["tolerations"] == [{"key": POOL_KEY, "operator": "Equal", "value": "tools", "effect": "NoSchedule"}]
        assert "--save" in container["args"] and "--appendonly" in container["args"]  # no persistence
        svc = p.inputs(SERVICE, f"gateway-{v}-redis-service")
        assert svc["spec"]["type"] == "ClusterIP" and "loadBalancerSourceRanges" not in svc["spec"]
        assert svc["metadata"] == {**svc["metadata"], "name": "redis", "namespace": variant_namespace("gateway", v)}
        assert svc["spec"]["ports"][0]["port"] == 6379
        # The variant's gateway waits for its Redis (and so is removed before it).
        assert p.depends_on(f"{RELEASE}::gateway-{v}-release", f"{DEPLOYMENT}::gateway-{v}-redis-deployment")
        assert p.depends_on(f"{RELEASE}::gateway-{v}-release", f"{SERVICE}::gateway-{v}-redis-service")
    # Nothing else makes a Redis, and no load balancer fronts one.
    assert not any("redis" in r["name"] and (r.get("inputs") or {}).get("spec", {}).get("type") == "LoadBalancer"
                   for r in p.of_type(SERVICE))


def kong_config(p: Program, variant: str) -> dict:
    return yaml.safe_load(p.inputs(RELEASE, f"gateway-{variant}-release")["values"]["dblessConfig"]["config"])


def route_plugins(config: dict, route: str) -> dict[str, dict]:
    routes = {r["name"]: r for s in config["services"] for r in s.get("routes", [])}
    return {pl["name"]: pl.get("config", {}) for pl in routes[route].get("plugins", [])}


def test_kong_variants_plugins_hold_the_checked_fields(stacks):
    p = stacks["kong-policies"]
    configs = {v: kong_config(p, v) for v in STACKS["kong-policies"]}
    for v, config in configs.items():
        for s in config["services"]:
            for r in s.get("routes", []):
                for plugin in r.get("plugins", []):
                    assert set(plugin.get("config", {})) <= KONG_FIELDS[plugin["name"]], (v, plugin)
        for plugin in config.get("plugins", []):
            assert set(plugin["config"]) <= KONG_FIELDS[plugin["name"]], (v, plugin)

    # none: ai-proxy alone, not even the entry's global prometheus plugin.
    assert set(route_plugins(configs["none"], "openai-chat")) == {"ai-proxy"} and "plugins" not in configs["none"]
    # auth: key-auth with the bench key the variant's requests send, hidden from the mock.
    auth = route_plugins(configs["auth"], "openai-chat")["key-auth"]
    assert auth == {"key_names": ["apikey"], "hide_credentials": True}
    assert configs["auth"]["consumers"] == [{"username": "aigw-bench",
                                             "keyauth_credentials": [{"key": "aigw-bench-kong-key"}]}]
    assert load_catalog().get("kong+auth").request.headers == {"apikey": "aigw-bench-kong-key"}
    # limits: non-binding on the benchmark's route, binding on the probe's, both in the variant's Redis.
    for route, second in (("openai-chat", 1000000), ("aigw-probe-limit", 20)):
        rl = route_plugins(configs["limits"], route)["rate-limiting"]
        assert rl == {"second": second, "policy": "redis", "redis": {"host": redis_host("limits"), "port": 6379}}
        assert set(rl["redis"]) <= REDIS_FIELDS
    probe = next(r for r in configs["limits"]["services"][0]["routes"] if r["name"] == "aigw-probe-limit")
    assert probe["headers"] == {"x-aigw-limit-probe": ["1"]}
    assert load_catalog().get("kong+limits").variant_spec.works[0].headers == {"x-aigw-limit-probe": "1"}
    # observe: prometheus with status metrics (the works check's counter) and file-log, the page on the proxy.
    globals_ = {pl["name"]: pl["config"] for pl in configs["observe"]["plugins"]}
    assert globals_ == {"prometheus": {"status_code_metrics": True, "latency_metrics": True},
                        "file-log": {"path": "/dev/stdout", "reopen": False}}
    status = next(s for s in configs["observe"]["services"] if s["name"] == "kong-status")
    assert status["url"] == "http://127.0.0.1:8100/metrics"
    assert status["routes"][0]["paths"] == [load_catalog().get("kong+observe").variant_spec.works[0].metrics_path]
    # guard: ai-prompt-guard denying the marker the works check sends.
    guard = route_plugins(configs["guard"], "openai-chat")["ai-prompt-guard"]
    assert guard == {"deny_patterns": [r"\baigwblockedmarker\b"], "max_request_body_size": 1048576}
    # governed: all of them, in Redis of its own.
    assert set(route_plugins(configs["governed"], "openai-chat")) == {"ai-proxy", "key-auth", "ai-prompt-guard",
                                                                       "rate-limiting"}
    assert route_plugins(configs["governed"], "aigw-probe-limit")["rate-limiting"]["redis"]["host"] == \
        redis_host("governed")
    # The entry as it is keeps its configuration (the default suite's Kong).
    assert [pl["name"] for pl in yaml.safe_load(p.inputs(RELEASE, "gateway-release")["values"]["dblessConfig"][
        "config"])["plugins"]] == ["prometheus"]


def litellm_config(p: Program, variant: str | None) -> dict:
    name = f"gateway-{variant}-release" if variant else "gateway-release"
    return p.inputs(RELEASE, name)["values"]["proxy_config"]


def test_litellm_values_hold_each_variants_policy(stacks):
    p = stacks["litellm-policies"]
    key = "os.environ/PROXY_MASTER_KEY"
    none = litellm_config(p, "none")
    # Helm merges maps (and Pulumi drops a null): the chart's default master_key is replaced by a variable
    # that no container of the release sets, which the proxy reads as no key.
    assert none["general_settings"]["master_key"] == "os.environ/AIGW_BENCH_NO_MASTER_KEY"
    values = p.inputs(RELEASE, "gateway-none-release")["values"]
    assert "AIGW_BENCH_NO_MASTER_KEY" not in values["envVars"] and "extraEnvVars" not in values
    assert litellm_config(p, "auth")["general_settings"]["master_key"] == key
    assert litellm_config(p, None)["general_settings"]["master_key"] == key
    limits = litellm_config(p, "limits")
    assert limits["router_settings"] == {"optional_pre_call_checks": ["enforce_model_rate_limits"],
                                         "redis_host": redis_host("limits"), "redis_port": 6379}
    rpm = {m["model_name"]: m["litellm_params"].get("rpm") for m in limits["model_list"]}
    assert rpm == {"gpt-4o-mini": 1000000, "aigw-probe-limit": 30}
    cache = litellm_config(p, "cache")["litellm_settings"]
    assert cache["cache"] is True
    assert cache["cache_params"] == {"type": "redis", "host": redis_host("cache"), "port": 6379}
    (guard,) = litellm_config(p, "guard")["guardrails"]
    assert guard["litellm_params"]["guardrail"] == "litellm_content_filter"
    assert guard["litellm_params"]["patterns"][0]["pattern"] == r"\baigwblockedmarker\b"
    governed = litellm_config(p, "governed")
    assert governed["general_settings"]["master_key"] == key
    assert governed["router_settings"]["redis_host"] == redis_host("governed")
    assert governed["litellm_settings"]["cache_params"]["host"] == redis_host("governed")
    assert governed["guardrails"][0]["guardrail_name"] == "aigw-prompt-guard"
    # Each variant's namespace gets the master key's Secret (the chart reads it whatever the config says).
    for v in STACKS["litellm-policies"]:
        secret = p.inputs("kubernetes:core/v1:Secret", f"gateway-{v}-secret-litellm-master-key")
        assert secret["metadata"]["namespace"] == variant_namespace("gateway", v)


def test_nginx_variants_render_their_directives_into_the_stacks_nginx_conf():
    result = run_stack("nginx", "--set", 'variants=["none", "auth", "limits", "cache", "observe"]',
                       "--set", "gatewayCpuLimit=2")
    assert "error" not in result, result.get("error")
    p = Program(result)

    def conf(variant: str | None) -> str:
        name = f"gateway-{variant}-configmap-nginx-proxy" if variant else "gateway-configmap-nginx-proxy"
        return p.inputs("kubernetes:core/v1:ConfigMap", name)["data"]["nginx.conf"]

    assert conf("none") == conf(None)  # the proxy role, as the entry
    assert '"Bearer sk-aigw-nginx-local" 1;' in conf("auth") and "if ($aigw_key_ok = 0)" in conf("auth")
    assert load_catalog().get("nginx+auth").request.headers["Authorization"] == "Bearer sk-aigw-nginx-local"
    limits = conf("limits")
    assert "zone=aigw_all:1m rate=100000r/s" in limits and "zone=aigw_probe:1m rate=20r/s" in limits
    assert "limit_req_status 429;" in limits
    cache = conf("cache")
    assert 'proxy_cache_key "$request_uri|$request_body";' in cache and "proxy_cache_methods POST;" in cache
    assert "proxy_buffer_size 64k;" in cache and "proxy_buffering on;" in cache
    observe = conf("observe")
    assert "location = /nginx_status { stub_status; }" in observe
    assert load_catalog().get("nginx+observe").variant_spec.works[0].metrics_path == "/nginx_status"
    for v in ("none", "auth", "limits", "cache", "observe"):
        cm = p.inputs("kubernetes:core/v1:ConfigMap", f"gateway-{v}-configmap-nginx-proxy")
        assert cm["metadata"]["namespace"] == variant_namespace("gateway", v)


def test_each_deployed_variant_adds_one_nlb_to_the_cost():
    cat = load_catalog()
    raw = {"gateway": "kong", "publicAccessCidrs": ["198.51.100.0/24"]}
    plain = parse(raw, "t", cat, set()).config
    with_variants = parse({**raw, "variants": ["none", "auth"], "gatewayCpuLimit": 4}, "t", cat, set()).config
    item = "internal NLBs (hourly part)"
    nlbs = {line.item: line.hourly for line in cost_lines(plain, "helm")}[item]
    more = {line.item: line.hourly for line in cost_lines(with_variants, "helm")}[item]
    price = price_table().network_load_balancer
    assert (nlbs, more) == (pytest.approx(3 * price), pytest.approx(5 * price))  # mock, Prometheus, gateway (+ 2)


@pytest.mark.parametrize(
    ("stack", "variants", "fragments"),
    [
        ("kong", '["nope"]', ["aigw-bench:variants: unknown variant 'nope' of kong", "its variants: none, auth"]),
        ("kong", '["limits-workers"]', ["unknown variant 'limits-workers' of kong",
                                        "'limits-workers' is a variant of litellm, not of kong"]),
        ("kong", '["cache"]', ["variant 'cache' of kong is not in this edition", "proxy-cache accepts POST"]),
        ("litellm", '["limits-workers"]', ["variant 'limits-workers' of litellm cannot be deployed to the cloud"]),
        ("litellm", '["observe"]', ["variant 'observe' of litellm is not in this edition", "prometheus_client"]),
        ("litellm", '["defaults"]', ["variant 'defaults' of litellm changes the local process (vars)",
                                     "add variants.defaults.cloud"]),
        ("nginx", '["guard"]', ["variant 'guard' of nginx cannot be deployed to the cloud", "no Lua module"]),
        ("direct", '["none"]', ["the direct entry deploys nothing"]),
        ("kong", '["auth", "auth"]', ["aigw-bench:variants: 'auth' listed more than once"]),
    ],
)
def test_a_variant_the_stack_cannot_deploy_is_refused_naming_it(stack, variants, fragments):
    """The config as the program parses it (milliseconds); the program itself is run for one case below."""
    raw = {"gateway": stack, "publicAccessCidrs": ["198.51.100.0/24"], "variants": yaml.safe_load(variants),
           "litellmMasterKey": "sk-test"}
    with pytest.raises(ConfigValidationError) as err:
        parse(raw, stack, load_catalog(), {"litellmMasterKey"})
    for fragment in fragments:
        assert fragment in str(err.value), str(err.value)


def test_pulumi_preview_fails_on_a_refused_variant_before_any_resource_exists():
    assert_fails_creating_nothing(run_stack("kong", "--set", 'variants=["cache"]'),
                                  "aigw-bench:variants: variant 'cache' of kong is not in this edition")


def test_variants_that_do_not_fit_the_gateway_pool_name_the_node_count():
    result = run_stack("kong", "--set", 'variants=["none", "auth"]')  # 3 gateways of 12 CPUs on one node
    assert_fails_creating_nothing(result, "aigw-bench:gatewayCpuLimit: 12 CPUs over 1 replica(s) for each of 3 "
                                          "gateways (the entry and 2 variant(s))", "nodes.gateway.count 3")


def test_backing_services_that_do_not_fit_the_tools_pool_are_refused():
    result = run_stack("kong-policies", "--set", "nodes={gateway: {instanceType: c5.4xlarge, count: 3}, "
                                                 "tools: {instanceType: t3.medium}}")
    assert_fails_creating_nothing(result, "aigw-bench:variants: the backing services of 6 variant(s) ask for 1 CPUs "
                                          "on the tools pool", "nodes.tools.count")
