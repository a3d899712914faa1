"""Portkey's `resilient` variant is its x-portkey-config header: on the cloud, `cloud run` renders it with
the stack's mock and its second, healthy instance (stack output `mock_fallback_cluster_url`). No process."""

from __future__ import annotations

import json

import pytest

from aigw_bench.cloud.endpoints import stack_endpoints
from schema.catalog import load_catalog
from tests.cloud_fakes import stack_outputs

pytestmark = pytest.mark.pure


def test_portkey_resilient_header_names_the_stacks_mock_then_its_fallback():
    fallback = "http://fast-mock-fallback.mock.svc.cluster.local:8080"
    out = stack_outputs("portkey", "portkey", "http://portkey-nlb:80", ["i-1"], None, variant_urls={
        "resilient": "http://portkey-resilient-nlb:80"}, mock_fallback_cluster_url=fallback,
        mock_cluster_url="http://fast-mock.mock.svc.cluster.local:8080")
    ends = stack_endpoints(out.for_variant("resilient"), load_catalog().get("portkey").with_variant("resilient"))
    config = json.loads(ends.target.headers["x-portkey-config"])
    assert [t["custom_host"] for t in config["targets"]] == [out.mock_cluster_url + "/v1", fallback + "/v1"]
    assert ends.target.url == "http://portkey-resilient-nlb:80/v1/chat/completions"
