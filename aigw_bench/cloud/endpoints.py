"""Where a cloud session sends its load: the stack's NLBs, the catalog entry's headers rendered for the
cloud, and the stack's secret headers kept apart (they reach the load generators through their
environment only: never a script, a command line or a result)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from aigw_bench.cloud.outputs import StackOutputs
from aigw_bench.measure.driver import Endpoint
from schema.catalog import Gateway
from schema.templating import render_map

MOCK_ROUTE = "/v1/chat/completions"


def endpoint(name: str, base_url: str, path: str, model: str, headers: dict[str, str] | None = None) -> Endpoint:
    return Endpoint(name, base_url.rstrip("/") + path, model, headers or {})


def without_headers(headers: dict[str, str], names: Iterable[str]) -> dict[str, str]:
    """``headers`` without those named (HTTP header names compare case-insensitively)."""
    drop = {n.lower() for n in names}
    return {k: v for k, v in headers.items() if k.lower() not in drop}


@dataclass(frozen=True)
class StackEndpoints:
    direct: Endpoint  # the mock's NLB
    target: Endpoint  # the gateway's NLB, with the catalog's headers minus the secret ones
    secret: dict[str, str]  # header -> value, from the stack's secret output


def stack_endpoints(out: StackOutputs, gateway: Gateway) -> StackEndpoints:
    where = f"{gateway.name}: request.headers"
    headers = render_map(gateway.request.headers, {"mock_url": out.mock_cluster_url,
                                                   "fallback_url": out.mock_fallback_cluster_url}, where)
    # Secret headers (the stack's gateway key) replace the catalog's local values of the same name.
    secret = {name: value.get_secret_value() for name, value in out.gateway_secret_headers.items()}
    return StackEndpoints(
        direct=endpoint("direct", out.mock_url, MOCK_ROUTE, gateway.request.model),
        target=endpoint(gateway.name, out.gateway_url, gateway.request.path, gateway.request.model,
                        without_headers(headers, secret)),
        secret=secret)


def rig_endpoint(out: StackOutputs, model: str) -> Endpoint:
    """The rig's target: the stack's mock itself."""
    return endpoint("rig", out.mock_url, MOCK_ROUTE, model)
