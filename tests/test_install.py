"""Installs are keyed by what is installed (kind, requested packages, the lock's digest), not by the
entry's name: entries with the same lock share one install, and `setup` and `list` say so."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from aigw_bench.local import install
from schema.catalog import InstallSpec, load_catalog
from schema.locks import read_lock

pytestmark = pytest.mark.pure

CLI = str(Path(sys.executable).parent / "aigw-bench")
HASH = "--hash=sha256:" + "1" * 64
# pip-compile's two annotation styles: "# via -r file" on one line, and a "# via" block.
PIP_LOCK = (f"certifi==2024.8.30 \\\n    {HASH}\n    # via httpx\n"
            f"httpx==0.28.1 \\\n    {HASH}\n    # via\n    #   -r requirements.in\n    #   my-gw\n"
            f"my-gw==2.1.0 \\\n    {HASH}\n    # via -r requirements.in\n")
# An npm project without dependencies: `npm ci` installs it offline, in a second.
EMPTY_PACKAGE = {"name": "aigw-bench-empty", "private": True, "dependencies": {}}
EMPTY_LOCK = {"name": "aigw-bench-empty", "lockfileVersion": 3, "requires": True,
              "packages": {"": {"name": "aigw-bench-empty"}}}


def npm_entry(root: Path, name: str, port: int, package: dict | None = None) -> Path:
    d = root / name
    (d / "local").mkdir(parents=True)
    (d / "local" / "package.json").write_text(json.dumps(package or EMPTY_PACKAGE))
    (d / "local" / "package-lock.json").write_text(json.dumps(EMPTY_LOCK))
    (d / "gateway.yaml").write_text(yaml.safe_dump({
        "name": name, "title": name, "role": "gateway", "version": "0.0.0", "source": "tests",
        "local": {"install": {"npm": "local"}, "port": port, "command": ["node", "{{ install_dir }}/x.js"]}}))
    return d


def test_a_pip_lock_says_what_it_pins_and_what_the_entry_asked_for(tmp_path):
    (tmp_path / "requirements.lock").write_text(PIP_LOCK)
    lock = read_lock("pip", "requirements.lock", tmp_path, "demo")
    assert [str(p) for p in lock.packages] == ["certifi==2024.8.30", "httpx==0.28.1", "my-gw==2.1.0"]
    assert [p.name for p in lock.requested] == ["httpx", "my-gw"]
    assert lock.key == f"pip-httpx-0.28.1+my-gw-2.1.0-{lock.digest[:12]}"


def test_a_lock_without_annotations_counts_every_package_as_requested(tmp_path):
    (tmp_path / "r.txt").write_text(f"a-b==1.0 \\\n    {HASH}\nc==2 \\\n    {HASH}\n")
    assert [p.name for p in read_lock("pip", "r.txt", tmp_path, "demo").requested] == ["a-b", "c"]


def test_an_npm_lock_says_what_package_json_asked_for(tmp_path):
    (tmp_path / "package.json").write_text(json.dumps({"dependencies": {"@scope/gw": "1.2.3"}}))
    (tmp_path / "package-lock.json").write_text(json.dumps({"lockfileVersion": 3, "packages": {
        "": {}, "node_modules/@scope/gw": {"version": "1.2.3"}, "node_modules/dep": {"version": "0.1.0"},
        "node_modules/@scope/gw/node_modules/dep": {"version": "0.2.0"},
        "node_modules/dep/node_modules/@scope/gw": {"version": "0.9.0"}}}))
    lock = read_lock("npm", ".", tmp_path, "demo")
    assert [str(p) for p in lock.requested] == ["@scope/gw@1.2.3"]
    assert {str(p) for p in lock.packages} == {"@scope/gw@1.2.3", "dep@0.1.0", "dep@0.2.0", "@scope/gw@0.9.0"}
    assert lock.key.startswith("npm-scope-gw-1.2.3-")


def test_entries_with_the_same_lock_share_one_install_whatever_their_names(tmp_path):
    a = npm_entry(tmp_path, "first", 19001)
    b = npm_entry(tmp_path, "second-with-another-name", 19002)
    c = npm_entry(tmp_path, "third", 19003, {**EMPTY_PACKAGE, "description": "another lock"})
    spec = InstallSpec(npm="local")
    dirs = [install.InstallTarget(d.name, spec, d).install_dir for d in (a, b, c)]
    assert dirs[0] == dirs[1] != dirs[2]
    assert dirs[0].parent == install.tools_dir() / "installs"
    assert "first" not in dirs[0].name and "second" not in dirs[0].name


def test_an_install_is_found_by_every_entry_that_shares_it(tmp_path, monkeypatch):
    monkeypatch.setenv("AIGW_BENCH_TOOLS", str(tmp_path / "tools"))
    spec = InstallSpec(npm="local")
    a = install.InstallTarget("a", spec, npm_entry(tmp_path, "a", 19001))
    b = install.InstallTarget("b", spec, npm_entry(tmp_path, "b", 19002))
    assert not install.is_installed(a) and not install.is_installed(b)
    assert install.install(a, log=lambda _: None) == "installed (npm)"
    assert install.is_installed(b) and install.install(b, log=lambda _: None) == "up to date"
    # A changed lock is another install: b no longer finds one.
    (b.entry_dir / "local" / "package.json").write_text(json.dumps({**EMPTY_PACKAGE, "version": "2.0.0"}))
    assert not install.is_installed(install.InstallTarget("b", spec, b.entry_dir))


@pytest.fixture
def shared_catalog(tmp_path):
    """Two entries with the same (empty) npm lock, installed in this repository's tools directory and
    removed afterwards (the mocks' installs there are reused, not reinstalled)."""
    root = tmp_path / "catalog"
    for name, port in (("alpha", 19011), ("a-much-longer-name-than-twelve-characters", 19012)):
        npm_entry(root, name, port)
    where = install.InstallTarget("alpha", InstallSpec(npm="local"), root / "alpha").install_dir
    yield root
    shutil.rmtree(where, ignore_errors=True)


def test_setup_and_list_say_which_entries_share_an_install(shared_catalog):
    cat = load_catalog(shared_catalog)
    long_name = "a-much-longer-name-than-twelve-characters"
    out = subprocess.run([CLI, "list", "--catalog", str(shared_catalog)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    rows = {line.split()[0]: line for line in out.stdout.splitlines() if line.startswith("  ") and line.split()[0]
            in cat.names}
    assert "not installed (shared with alpha)" in rows[long_name]
    out = subprocess.run([CLI, "setup", *cat.names, "--catalog", str(shared_catalog)], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    where = install.InstallTarget(long_name, InstallSpec(npm="local"), shared_catalog / long_name).install_dir
    shown = where.relative_to(Path.cwd()) if where.is_relative_to(Path.cwd()) else where
    assert f"{long_name}: installed (npm) in {shown}, shared with alpha" in out.stderr
    assert f"alpha: shares the install of {long_name} ({shown}): nothing to do" in out.stderr
    out = subprocess.run([CLI, "list", "--catalog", str(shared_catalog)], capture_output=True, text=True)
    assert f"installed (shared with {long_name})" in out.stdout


def test_setup_names_directories_no_install_uses(tmp_path, monkeypatch):
    monkeypatch.setenv("AIGW_BENCH_TOOLS", str(tmp_path))
    (tmp_path / "litellm" / "venv").mkdir(parents=True)
    (tmp_path / "installs" / "pip-old-1.0-0123456789ab").mkdir(parents=True)
    (tmp_path / "installs" / "npm-kept-1.0-ba9876543210").mkdir(parents=True)
    (tmp_path / "state").mkdir()
    kept = tmp_path / "installs" / "npm-kept-1.0-ba9876543210"
    assert install.unused_tool_dirs([kept]) == [tmp_path / "installs" / "pip-old-1.0-0123456789ab",
                                                tmp_path / "litellm"]
