"""Registry mirrors (stack config `registryMirrors`) under Pulumi's mocks: every node group of the stack gets
the user-data script part that writes containerd's hosts.toml per registry; the script itself is run here
(into a directory standing for /etc/containerd/certs.d) and its files read as TOML, as containerd reads
them. Without the key, no node group changes."""

from __future__ import annotations

import subprocess
import tomllib

import pytest

from components.registry_mirrors import CERTS_DIR, SCRIPT_CONTENT_TYPE
from tests.infra.conftest import Program, run_stack
from tests.infra.test_config_validation import assert_fails_creating_nothing

pytestmark = pytest.mark.pure

NODE_GROUP = "eks:index:ManagedNodeGroup"
MIRRORS = '{"docker.io": "https://mirror.example.com/", "quay.io": "http://quay-cache.internal:5000"}'


@pytest.fixture(scope="module")
def mirrored() -> Program:
    result = run_stack("kong-operator-mirrored", "--set", f"registryMirrors={MIRRORS}", base="kong-operator")
    assert "error" not in result, result.get("error")
    return Program(result)


def test_every_node_group_pulls_through_the_mirrors(mirrored, tmp_path):
    groups = mirrored.of_type(NODE_GROUP)
    assert {g["name"] for g in groups} == {"pools-gateway", "pools-mock", "pools-tools", "generators-loadgen"}
    scripts = set()
    for group in groups:
        (part,) = group["inputs"]["nodeadmExtraOptions"]
        assert part["contentType"] == SCRIPT_CONTENT_TYPE
        assert group["inputs"]["operatingSystem"] == "AL2023"  # nodeadm user data: AL2023 only
        scripts.add(part["content"])
    (script,) = scripts  # the same on every node
    certs = tmp_path / "certs.d"
    done = subprocess.run(["bash", "-c", script.replace(CERTS_DIR, str(certs))], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert sorted(p.relative_to(certs).as_posix() for p in certs.rglob("hosts.toml")) == \
        ["docker.io/hosts.toml", "quay.io/hosts.toml"]
    docker = tomllib.loads((certs / "docker.io/hosts.toml").read_text())
    assert docker == {"server": "https://registry-1.docker.io",
                      "host": {"https://mirror.example.com": {"capabilities": ["pull", "resolve"]}}}
    quay = tomllib.loads((certs / "quay.io/hosts.toml").read_text())
    assert quay == {"server": "https://quay.io",
                    "host": {"http://quay-cache.internal:5000": {"capabilities": ["pull", "resolve"]}}}


def test_without_mirrors_no_node_group_changes(programs):
    for p in programs.values():
        for group in p.of_type(NODE_GROUP):
            assert "nodeadmExtraOptions" not in (group["inputs"] or {}), group["name"]


@pytest.mark.parametrize(("mirrors", "message"), [
    ('{"docker hub": "https://mirror.example.com"}', "'docker hub' is not a registry host"),
    ('{"docker.io": "mirror.example.com"}', "'mirror.example.com' is not a registry mirror URL"),
    ('{"docker.io": "https://harbor.example.com/v2/proxy"}', "give the mirror's scheme, host and port only"),
    ('{"docker.io": "https://user:secret@mirror.example.com"}', "'mirror.example.com' has credentials in its URL"),
])
def test_a_bad_mirror_is_refused_naming_the_key(mirrors, message):
    result = run_stack("kong", "--set", f"registryMirrors={mirrors}")
    assert_fails_creating_nothing(result, "aigw-bench:registryMirrors", message)
    assert "secret" not in result["error"]
