"""Access to a stack's cluster from the user's machine: the official Kubernetes client built from
the stack's kubeconfig output (the one reader and the one client factory of the cloud stage), and an
httpx client to an in-cluster Service through the API server's service proxy (nothing in the cluster
is made public for it).

pulumi-eks's kubeconfig authenticates with ``aws eks get-token`` (an exec credential plugin): the
Kubernetes client runs it and refreshes the short-lived token; the httpx client asks the same
configuration for the current token on every request.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import httpx

from aigw_bench.cloud.outputs import INSTALL_AWS_CLI, StackOutputs
from schema.errors import CloudError


@dataclass(frozen=True)
class KubeAccess:
    core: Any  # kubernetes.client.CoreV1Api
    custom: Any  # kubernetes.client.CustomObjectsApi
    apps: Any  # kubernetes.client.AppsV1Api
    configuration: Any  # kubernetes.client.Configuration


def read_kubeconfig(out: StackOutputs) -> dict[str, Any]:
    """The stack's ``kubeconfig`` output as a mapping; its exec credential plugin must be installed,
    or the client would carry on without credentials and be refused with 401."""
    if out.kubeconfig is None:
        raise CloudError(f"stack '{out.stack}' exports no kubeconfig (the cloud stage reaches the cluster with it): "
                         "was `pulumi up` run to completion with this version of the program?")
    doc = json.loads(out.kubeconfig.get_secret_value())
    for user in doc.get("users", []):
        command = ((user.get("user") or {}).get("exec") or {}).get("command")
        if command and shutil.which(command) is None:
            how = INSTALL_AWS_CLI if command == "aws" else "install it, or use a kubeconfig without it"
            raise CloudError(f"stack '{out.stack}': its kubeconfig (stack output `kubeconfig`) authenticates with "
                             f"`{command}`, which is not installed: {how}")
    return doc


def kube_access(out: StackOutputs) -> KubeAccess:
    """Clients for the stack's cluster, from its ``kubeconfig`` output."""
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    try:
        api = config.new_client_from_config_dict(read_kubeconfig(out))
    except (ConfigException, KeyError, TypeError) as exc:
        raise CloudError(f"stack '{out.stack}': its kubeconfig output is not usable ({exc})") from None
    return KubeAccess(core=client.CoreV1Api(api), custom=client.CustomObjectsApi(api), apps=client.AppsV1Api(api),
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
