"""Bad stack config fails before any resource is declared, naming the key and the allowed values."""

from __future__ import annotations

import ipaddress

import pytest

from components.config import ConfigValidationError, parse
from components.subnets import subnet_layout
from schema.catalog import load_catalog
from tests.infra.conftest import run_stack

pytestmark = pytest.mark.pure


def assert_fails_creating_nothing(result: dict, *fragments: str) -> None:
    assert "error" in result, "the program accepted the config"
    assert result["error"].startswith("RunError: ")
    for fragment in fragments:
        assert fragment in result["error"], result["error"]
    # Only the stack itself was registered: no resource of the program exists.
    assert [r["type"] for r in result["resources"]] == ["pulumi:pulumi:Stack"]


def test_unknown_gateway():
    # The allowed names are the catalog's (under test: a fork's has more), in its order.
    allowed = ", ".join(g.name for g in load_catalog() if g.cloud is not None)
    assert_fails_creating_nothing(run_stack("kong", "--set", "gateway=traefik"),
                                  "aigw-bench:gateway: unknown gateway 'traefik'", f"allowed: {allowed}")


def test_cpu_limit_larger_than_the_gateway_node_can_allocate():
    assert_fails_creating_nothing(run_stack("kong", "--set", "gatewayCpuLimit=16"),
                                  "aigw-bench:gatewayCpuLimit: 16 CPUs", "a node can allocate 15.6",
                                  "allowed: at most 15.6")


def test_cpu_limit_that_fits_across_more_nodes_is_accepted():
    result = run_stack("kong", "--set", "gatewayCpuLimit=24", "--set", "gatewayReplicas=2",
                       "--set", "nodes={gateway: {instanceType: c5.4xlarge, count: 2}}")
    assert "error" not in result, result.get("error")


@pytest.mark.parametrize("replicas", ["0", "-1"])
def test_replicas_below_one(replicas):
    assert_fails_creating_nothing(run_stack("kong", "--set", f"gatewayReplicas={replicas}"),
                                  "aigw-bench:gatewayReplicas: Input should be greater than or equal to 1")


@pytest.mark.parametrize("cidr", ["10.0.0.0/33", "203.0.113.7/24", "my-office"])
def test_malformed_cidr(cidr):
    assert_fails_creating_nothing(run_stack("kong", "--set", f'publicAccessCidrs=["{cidr}"]'),
                                  "aigw-bench:publicAccessCidrs", "is not an IPv4 CIDR block like 10.0.0.0/16")


def test_konnect_stack_without_its_secrets():
    result = run_stack("kong-konnect", "--unset", "konnectCert", "--unset", "konnectKey")
    assert_fails_creating_nothing(result, "aigw-bench:konnectCert is missing", "pulumi config set --secret konnectCert")


def test_konnect_certificate_given_as_plain_text_is_refused():
    result = run_stack("kong-konnect", "--set", "konnectKey=plain")
    assert_fails_creating_nothing(result, "aigw-bench:konnectKey must be a secret")


def test_konnect_stack_without_its_endpoints():
    result = run_stack("kong-konnect", "--unset", "konnectControlPlane")
    assert_fails_creating_nothing(result, "aigw-bench:konnectControlPlane is required by the kong-konnect entry")


@pytest.mark.parametrize(("value", "message"), [
    ("c5-4xlarge", "is not an EC2 instance type of the form family.size"),
    ("huge", "is not an EC2 instance type of the form family.size"),
    ("x9.4xlarge", "is not in the pinned price table"),
])
def test_instance_type_not_of_the_aws_form(value, message):
    assert_fails_creating_nothing(run_stack("kong", "--set", f"runner={{instanceType: {value}}}"),
                                  "aigw-bench:runner.instanceType", message)


def test_litellm_without_its_master_key():
    assert_fails_creating_nothing(run_stack("litellm", "--unset", "litellmMasterKey"),
                                  "aigw-bench:litellmMasterKey is missing")


def test_a_typo_in_a_key_is_not_ignored():
    assert_fails_creating_nothing(run_stack("kong", "--set", "gatewayCpuLimt=10"),
                                  "unknown config key(s) aigw-bench:gatewayCpuLimt", "allowed:")


def test_parse_reports_every_problem_at_once():
    with pytest.raises(ConfigValidationError) as err:
        parse({"gateway": "kong", "gatewayReplicas": 0, "vpcCidr": "nope", "natGateways": "two"}, "kong",
              load_catalog(), set())
    text = str(err.value)
    assert "aigw-bench:gatewayReplicas" in text and "aigw-bench:vpcCidr" in text
    assert "aigw-bench:natGateways: Input should be 'single' or 'one-per-az'" in text


@pytest.mark.parametrize(("cidr", "zones", "allowed"), [
    ("10.0.0.0/18", 2, "a /17 or larger"),  # accepted before (/16 to /20 was allowed)
    ("10.0.0.0/20", 2, "a /17 or larger"),
    ("10.0.0.0/17", 3, "a /16 or larger"),
])
def test_vpc_cidr_that_cannot_hold_the_subnets_is_refused(cidr, zones, allowed):
    with pytest.raises(ConfigValidationError) as err:
        parse({"gateway": "kong", "vpcCidr": cidr, "availabilityZones": zones}, "kong", load_catalog(), set())
    text = str(err.value)
    assert f"aigw-bench:vpcCidr: {cidr} gives each of {zones} availability zones" in text
    assert allowed in text


@pytest.mark.parametrize(("cidr", "zones"), [("10.0.0.0/17", 2), ("10.42.0.0/16", 3), ("172.16.0.0/16", 2)])
def test_vpc_cidr_that_holds_the_subnets_is_accepted(cidr, zones):
    raw = {"gateway": "kong", "vpcCidr": cidr, "availabilityZones": zones, "publicAccessCidrs": ["198.51.100.0/24"]}
    settings = parse(raw, "kong", load_catalog(), set())
    layout = subnet_layout(settings.config.vpc_cidr, zones)
    nets = [n for _, n in layout]
    assert len(nets) == 2 * zones and all(n.subnet_of(ipaddress.IPv4Network(cidr)) for n in nets)
    assert not any(a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1:])


def test_subnet_layout_is_the_one_awsx_computes():
    # The expectation of awsx's own test (awsx/ec2/subnetDistributorLegacy.test.ts, "Legacy"
    # strategy): 10.0.0.0/16 over 3 AZs with a /19 private and a /20 public subnet per AZ.
    layout = subnet_layout("10.0.0.0/16", 3, private_mask=19, public_mask=20)
    assert [(t, str(n)) for t, n in layout] == [
        ("private", "10.0.0.0/19"), ("public", "10.0.32.0/20"), ("private", "10.0.64.0/19"),
        ("public", "10.0.96.0/20"), ("private", "10.0.128.0/19"), ("public", "10.0.160.0/20")]


def test_too_small_vpc_fails_the_program_before_any_resource():
    assert_fails_creating_nothing(run_stack("kong", "--set", "vpcCidr=10.0.0.0/18"), "aigw-bench:vpcCidr: 10.0.0.0/18")


def test_runner_ami_that_is_not_an_ami_id():
    assert_fails_creating_nothing(run_stack("kong", "--set", "runner={ami: ubuntu-latest}"),
                                  "aigw-bench:runner.ami: String should match pattern")


@pytest.mark.parametrize("stack", ["kong", "direct", "dev"])
def test_a_shipped_stack_without_the_users_address_range_is_refused(stack):
    result = run_stack(stack, "--unset", "publicAccessCidrs")
    assert_fails_creating_nothing(result, "aigw-bench:publicAccessCidrs is required",
                                  "curl -s https://checkip.amazonaws.com",
                                  "pulumi config set --path 'publicAccessCidrs[0]'",
                                  "pulumi config set apiEndpointOpenToInternet true")


def test_address_range_and_open_endpoint_together_contradict():
    assert_fails_creating_nothing(run_stack("kong", "--set", "apiEndpointOpenToInternet=true"),
                                  "aigw-bench:apiEndpointOpenToInternet and aigw-bench:publicAccessCidrs contradict")


def test_unknown_mock_names_the_key_and_the_allowed_mocks():
    assert_fails_creating_nothing(run_stack("kong", "--set", "mock=mockoon"),
                                  "aigw-bench:mock: unknown mock 'mockoon'; allowed: fast, wiremock")


def test_a_profile_the_chosen_mock_cannot_serve_is_refused():
    assert_fails_creating_nothing(run_stack("kong", "--set", "mock=wiremock", "--set", "mockProfile=llm"),
                                  "aigw-bench:mockProfile: the wiremock mock cannot serve 'llm'",
                                  "allowed with it: instant")
    assert_fails_creating_nothing(run_stack("kong", "--set", "mockProfile=gpt5"),
                                  "aigw-bench:mockProfile: unknown pacing profile 'gpt5'", "allowed: instant, llm")
