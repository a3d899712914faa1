"""A fork adds folders to the catalog and `make test` must still pass: the catalog's and the command
line's tests run here against a copy of the catalog under test with throwaway entries added (a floor
that sorts first, a config-only variant of an entry with an install, a cloud-only entry without a
cloud template), through $AIGW_BENCH_CATALOG, as a separate pytest process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from schema.catalog import load_catalog
from tests.helpers import fake_gateway

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
    return added


def test_the_catalog_and_cli_tests_pass_for_a_fork_with_added_entries(tmp_path):
    root = tmp_path / "stacks"
    added = _fork(root)
    assert set(added) <= set(load_catalog(root).names)
    env = {**os.environ, "AIGW_BENCH_CATALOG": str(root)}
    out = subprocess.run([sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", "-o", "addopts=",
                          "tests/test_catalog.py", "tests/test_cli.py"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    # The added entries were tested as data, not only loaded.
    for name in added:
        assert f"test_entry_runs_somewhere_or_says_why_not[{name}] PASSED" in out.stdout, name
    assert f"test_entry_templates_render_with_the_local_context[{added[0]}] PASSED" in out.stdout
    summary = out.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary and "error" not in summary
