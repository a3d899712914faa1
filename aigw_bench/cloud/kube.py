"""Access to a stack's cluster from the user's machine: the official Kubernetes client built from
the stack's kubeconfig output, and an httpx client to an in-cluster Service through the API
server's service proxy (nothing in the cluster is made public for it).

pulumi-eks's kubeconfig authenticates with ``aws eks get-token`` (an exec credential plugin): the
Kubernetes client runs it and refreshes the short-lived token; the httpx client asks the same
configuration for the current token on every request.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import httpx

from aigw_bench.errors import CloudError


@dataclass(frozen=True)
class KubeAccess:
    core: Any  # kubernetes.client.CoreV1Api
    custom: Any  # kubernetes.client.CustomObjectsApi
    configuration: Any  # kubernetes.client.Configuration


def kube_access(kubeconfig: Any, stack: str) -> KubeAccess:
    """Clients for the stack's cluster from its ``kubeconfig`` output (a dict or its JSON)."""
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    if not kubeconfig:
        raise CloudError(f"stack '{stack}' has no kubeconfig output: was `pulumi up` run to completion?")
    data = json.loads(kubeconfig) if isinstance(kubeconfig, str) else kubeconfig
    try:
        api = config.new_client_from_config_dict(data)
    except (ConfigException, KeyError, TypeError) as exc:
        raise CloudError(f"stack '{stack}': its kubeconfig cannot be used ({exc}); the AWS CLI must be installed "
                         "for `aws eks get-token`") from None
    return KubeAccess(core=client.CoreV1Api(api), custom=client.CustomObjectsApi(api),
                      configuration=api.configuration)


class _KubeAuth(httpx.Auth):
    """The Kubernetes client's current credentials, refreshed before each request."""

    def __init__(self, configuration: Any):
        self.configuration = configuration

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        # get_api_key_with_prefix runs the configuration's refresh hook first (kubernetes 32.0.1).
        token = self.configuration.get_api_key_with_prefix("authorization")
        if token:
            request.headers["Authorization"] = token
        yield request


def service_proxy_client(configuration: Any, namespace: str, service: str, port: int,
                         timeout: float = 30.0) -> httpx.Client:
    """An httpx client whose base URL is ``service:port`` in ``namespace``, via the API server."""
    import ssl

    base = f"{configuration.host.rstrip('/')}/api/v1/namespaces/{namespace}/services/{service}:{port}/proxy"
    context = ssl.create_default_context(cafile=configuration.ssl_ca_cert or None)
    if configuration.cert_file:  # client-certificate kubeconfigs (pulumi-eks's uses a token)
        context.load_cert_chain(configuration.cert_file, configuration.key_file)
    return httpx.Client(base_url=base, auth=_KubeAuth(configuration), timeout=timeout, verify=context)
