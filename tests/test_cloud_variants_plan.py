"""Variant targets on deployed stacks, before anything runs: each ENTRY+VARIANT goes to the gateway its stack
deployed for it (`variant_urls`), a variant the stack did not deploy is refused with the commands that deploy
it, and a variant the cloud cannot deploy is a cell with the catalog's reason. No process is started."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from aigw_bench.cloud.endpoints import stack_endpoints
from aigw_bench.cloud.engine import Ec2Engine
from schema.catalog import load_catalog
from schema.errors import CloudError, ConfigError
from tests.cloud_fakes import cloud_case, stack_outputs

pytestmark = pytest.mark.pure

RUNNER = "i-0123456789abcdef0"
POLICIES_SHORT = Path(__file__).with_name("policies-short.yaml")
KEY = {"Authorization": "Bearer sk-stack-key"}


def policies_cloud_suite(directory, **changes):
    """tests/policies-short.yaml with its sizes as the cloud profile (what `cloud run` uses)."""
    data = yaml.safe_load(POLICIES_SHORT.read_text())
    data["profiles"] = {"cloud": {**data["profiles"]["local"], **changes}}
    path = directory / "policies-short.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def litellm_stack(**variant_urls: str):
    return stack_outputs("litellm-policies", "litellm", "http://gateway.elb:80", [RUNNER], None, mock_name="fast",
                         mock_profiles=["instant", "llm"], gateway_secret_headers=KEY, variant_urls=variant_urls)


def test_each_variant_target_goes_to_its_own_gateway_and_namespace(tmp_path):
    out = litellm_stack(none="http://gateway-none.elb:80", auth="http://gateway-auth.elb:80")
    auth = load_catalog().get("litellm+auth")
    engine = Ec2Engine([out], lambda region: (None, None))
    seen = engine.outputs(auth).for_variant(auth.variant)
    assert (seen.gateway_url, seen.gateway_namespace) == ("http://gateway-auth.elb:80", "gateway-auth")
    ends = stack_endpoints(seen, auth)
    assert ends.target.url == "http://gateway-auth.elb:80/v1/chat/completions"
    assert ends.secret == {"Authorization": "Bearer sk-stack-key"}  # the stack's key, as for the entry
    assert ends.direct.url == f"{out.mock_url}/v1/chat/completions"
    with pytest.raises(CloudError, match=r"stack 'litellm-policies' deploys no variant 'cache' of litellm \(it "
                                         r"deploys none, auth\)"):
        out.for_variant("cache")


def test_a_variant_the_stack_did_not_deploy_is_refused_with_the_commands_that_deploy_it(tmp_path):
    out = litellm_stack(none="http://gateway-none.elb:80", auth="http://gateway-auth.elb:80")
    case = cloud_case(tmp_path, [out], scenario=None, suite=policies_cloud_suite(tmp_path), repeats=None)
    engine = Ec2Engine([out], lambda region: (None, None))
    with pytest.raises(ConfigError) as err:
        engine.validate(case.plan)
    text = str(err.value)
    assert "stack 'litellm-policies' does not deploy the litellm variant(s) limits, cache, guard, governed" in text
    assert ("pulumi config set -s litellm-policies --path 'variants[2]' limits && pulumi config set -s "
            "litellm-policies --path 'variants[3]' cache") in text
    assert "pulumi up -s litellm-policies; or run only the deployed ones with --policy none,auth" in text
    # Neither the one the edition lacks (observe) nor the one the cloud cannot deploy is asked for.
    assert "observe" not in text and "limits-workers" not in text


def test_a_variant_the_cloud_cannot_deploy_is_a_cell_with_the_catalogs_reason(tmp_path):
    out = litellm_stack(none="http://gateway-none.elb:80")
    engine = Ec2Engine([out], lambda region: (None, None))
    cat = load_catalog()
    assert "cannot be deployed to the cloud: a question of this machine" in engine.not_runnable(
        cat.get("litellm+limits-workers"))
    assert engine.not_runnable(cat.get("litellm+observe")) is None  # the loop says "not in this edition"
    assert engine.not_runnable(cat.get("litellm+none")) is None
    # A variant that changes only the local process would be the entry as it is under its name: refused.
    assert "has no cloud section" in engine.not_runnable(cat.get("litellm+defaults"))
    assert "no Lua module" in engine.not_runnable(cat.get("nginx+guard"))
    # With only the deployed ones chosen, the plan validates.
    case = cloud_case(tmp_path, [out], scenario=None, suite=policies_cloud_suite(tmp_path), repeats=None)
    case.plan.targets[:] = [t for t in case.plan.targets if t.variant in ("none", "observe", "limits-workers")]
    engine.validate(case.plan)
