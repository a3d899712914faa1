"""Registry mirrors for the nodes' image pulls (stack config ``registryMirrors``).

Every node pulls its images through the VPC's NAT address, and Docker Hub counts anonymous pulls per
address: 100 per 6 hours per IPv4 address ("Unauthenticated Users | 100 per IPv4 address or IPv6 /64
subnet"; a multi-arch image counts one pull per architecture: docker/docs
content/manuals/docker-hub/usage/pulls.md), answering 429 beyond. A mirror (a pull-through cache of
your own, or a public mirror of Docker Hub) takes those pulls.

Each mirror becomes a containerd ``hosts.toml`` for its registry on every node, written by a user-data
script part (pulumi-eks ManagedNodeGroup ``nodeadm_extra_options``, AL2023 only). AL2023's containerd
reads ``config_path = "/etc/containerd/certs.d:/etc/docker/certs.d"`` (awslabs/amazon-eks-ami
nodeadm/internal/containerd/config2.template.toml:18-19), and nodeadm starts containerd and the
kubelet after cloud-init's scripts ran (templates/al2023/runtime/rootfs/etc/systemd/system/
nodeadm-run.service: After=cloud-final.service), so the file is there before the first pull. containerd
tries the mirror first and falls back to the registry itself (containerd docs/hosts.md: "the hosts will
be tried first in the order listed ... server will be used as a fallback"). The image references stay
as they are: nothing else in the program changes.

The mirror must serve anonymous pulls: containerd sends a mirror no credentials of its own. An ECR
pull-through cache needs AWS credentials and image references rewritten to its repository URI, so it
is not a mirror in this sense.
"""

from __future__ import annotations

import shlex
from urllib.parse import urlsplit

CERTS_DIR = "/etc/containerd/certs.d"
# containerd's own example for Docker Hub (docs/hosts.md "Setup a Local Mirror for Docker").
UPSTREAM = {"docker.io": "https://registry-1.docker.io"}
SCRIPT_CONTENT_TYPE = 'text/x-shellscript; charset="us-ascii"'


def check_mirror(url: str) -> str:
    """``url`` if it is http(s)://host[:port] with no path, query or credentials; ValueError otherwise."""
    parts = urlsplit(url)
    if parts.username or parts.password:  # said without echoing them
        raise ValueError(f"the mirror for {parts.hostname!r} has credentials in its URL: give the mirror's scheme, "
                         "host and port only (containerd sends a mirror no credentials of its own)")
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{url!r} is not a registry mirror URL like https://mirror.example.com")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"{url!r}: give the mirror's scheme, host and port only (no path or query)")
    return url.rstrip("/")


def hosts_toml(registry: str, mirror: str) -> str:
    """containerd's hosts.toml for ``registry``: the mirror first, the registry itself as the fallback."""
    server = UPSTREAM.get(registry, f"https://{registry}")
    return (f'server = "{server}"\n\n'
            f'[host."{mirror}"]\n'
            '  capabilities = ["pull", "resolve"]\n')


def node_script(mirrors: dict[str, str]) -> str:
    """The user-data script part that writes each registry's hosts.toml."""
    lines = ["#!/bin/bash",
             "# aigw-bench: registry mirrors (stack config registryMirrors, components/registry_mirrors.py)",
             "set -euo pipefail"]
    for registry, mirror in sorted(mirrors.items()):
        directory = shlex.quote(f"{CERTS_DIR}/{registry}")
        lines += [f"mkdir -p {directory}",
                  f"cat > {directory}/hosts.toml <<'AIGW_EOF'",
                  hosts_toml(registry, mirror).rstrip("\n"),
                  "AIGW_EOF"]
    return "\n".join(lines) + "\n"
