"""A fork adds folders to the catalog (and stack files) and `make test` must still pass: the catalog's,
the command line's and the Pulumi program's tests run here against a copy of the catalog under test
with entries added (a floor that sorts first, a config-only variant of an entry with an install, a
cloud-only entry without a cloud template, and docs/catalog.md's worked examples as written: HAProxy
with its Helm chart, the LiteLLM router variant with its stack), through $AIGW_BENCH_CATALOG and
$AIGW_BENCH_STACK_FILES, each as a separate pytest process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from schema.catalog import load_catalog
from tests.doc_examples import follow_haproxy, follow_litellm
from tests.helpers import fake_gateway

pytestmark = pytest.mark.pure

REPO = Path(__file__).resolve().parents[1]
ENTRY_FILE = "gateway.yaml"


def _fork(root: Path) -> list[str]:
    """The catalog under test copied to ``root`` with throwaway entries added; returns their names."""
    cat = load_catalog()
    shutil.copytree(cat.root, root)
    added = []
    floor = {**fake_gateway("a-throwaway-floor-with-a-long-name", 18996, "pass"), "role": "floor"}
    (root / floor["name"]).mkdir()
    (root / floor["name"] / ENTRY_FILE).write_text(yaml.safe_dump(floor, sort_keys=False))
    added.append(floor["name"])
    # A variant of the first entry with an install: the same folder, another name and port.
    source = next((g for g in cat if g.local.runnable and g.local.install and g.local.port), None)
    if source is not None:
        variant = f"{source.name}-variant"
        shutil.copytree(source.entry_dir, root / variant)
        data = yaml.safe_load((root / variant / ENTRY_FILE).read_text())
        data.update(name=variant, title=f"{source.title} (variant)")
        data["local"]["port"] = 18997
        (root / variant / ENTRY_FILE).write_text(yaml.safe_dump(data, sort_keys=False))
        added.append(variant)
    cloud_only = {"name": "zz-cloud-only", "title": "cloud only", "role": "gateway", "version": "1.0",
                  "source": "tests", "local": {"runnable": False, "reason": "a throwaway entry that runs on EKS only"},
                  "cloud": {"kind": "none"}}
    (root / "zz-cloud-only").mkdir()
    (root / "zz-cloud-only" / ENTRY_FILE).write_text(yaml.safe_dump(cloud_only, sort_keys=False))
    added.append("zz-cloud-only")
    # The documented examples, followed as written (when the catalog under test can take them).
    for p in Path(os.environ.get("AIGW_BENCH_STACK_FILES") or REPO).glob("Pulumi.*.yaml"):
        shutil.copy(p, root.parent / p.name)
    if "haproxy" not in cat and "nginx" in cat:
        follow_haproxy(root.parent)
        added.append("haproxy")
    if "litellm-router" not in cat and "litellm" in cat:
        follow_litellm(root.parent)
        added.append("litellm-router")
    return added


@pytest.fixture(scope="module")
def fork(tmp_path_factory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("fork") / "stacks"
    added = _fork(root)
    assert set(added) <= set(load_catalog(root).names)
    return root, added


def pytest_in(root: Path, *args: str) -> subprocess.CompletedProcess:
    """pytest in a process of its own, with the fork's catalog and stack files."""
    env = {**os.environ, "AIGW_BENCH_CATALOG": str(root), "AIGW_BENCH_STACK_FILES": str(root.parent)}
    return subprocess.run([sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", "-o", "addopts=", *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=900)


def passed(out: subprocess.CompletedProcess) -> None:
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    summary = out.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary and "error" not in summary


def test_the_catalog_and_cli_tests_pass_for_a_fork_with_added_entries(fork):
    root, added = fork
    out = pytest_in(root, "tests/test_catalog.py", "tests/test_cli.py")
    passed(out)
    # The added entries were tested as data, not only loaded.
    for name in added:
        assert f"test_entry_runs_somewhere_or_says_why_not[{name}] PASSED" in out.stdout, name
    assert f"test_entry_templates_render_with_the_local_context[{added[0]}] PASSED" in out.stdout


def test_the_pulumi_program_tests_pass_for_a_fork_with_added_stacks(fork):
    root, added = fork
    stacks = [name for name in ("haproxy", "litellm-router") if name in added]
    # The tests a fork's entries reach: those parametrized by stack (selected by the added stacks' names)
    # and those that list the catalog's cloud entries. The rest name shipped stacks only and ran above.
    out = pytest_in(root, "tests/infra", "-k", " or ".join([*stacks, "test_config_validation"]))
    passed(out)
    for stack in stacks:  # the fork's stacks went through the generic properties
        for test in ("test_every_load_balancer_is_internal_and_admits_only_the_vpc",
                     "test_gateway_cpu_limits_sum_to_the_cap_and_requests_equal_limits",
                     "test_workloads_are_scheduled_only_on_their_pool",
                     "test_teardown_order_every_load_balancer_depends_on_the_controller"):
            assert f"{test}[{stack}] PASSED" in out.stdout, (test, stack)
