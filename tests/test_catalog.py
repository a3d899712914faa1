"""The catalog is data. Every entry of the catalog under test (``stacks/``, or ``$AIGW_BENCH_CATALOG``)
is checked against the rules, whatever it is called and however many entries there are; bad entries
fail with the file and the field named. tests/test_fork.py runs this file against a catalog with
throwaway entries added, as a fork would have."""

from __future__ import annotations

import json

import pytest
import yaml

from aigw_bench.local.context import NO_WORK_DIR, base_url, target_context, target_endpoint
from aigw_bench.local.cpus import plan_cpus
from schema import catalog as catalog_module
from schema.catalog import load_catalog
from schema.errors import ConfigError
from schema.mock import load_mock
from schema.templating import render_file, render_list, render_map

pytestmark = pytest.mark.pure

GOOD = {
    "name": "demo",
    "title": "Demo",
    "role": "gateway",
    "version": "1.0.0",
    "source": "tests",
    "local": {"port": 19999, "command": ["true"]},
}
CATALOG = load_catalog()
ENTRIES = list(CATALOG)
RUNNABLE = [g for g in ENTRIES if g.local.runnable]
FAKE_HASH = "--hash=sha256:" + "0" * 64


def write_entry(root, name, entry, files: dict[str, str] | None = None):
    (root / name).mkdir(parents=True)
    (root / name / "gateway.yaml").write_text(yaml.safe_dump(entry))
    for rel, text in (files or {}).items():
        (root / name / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / name / rel).write_text(text)


def pip_lock(*pins: tuple[str, str, str]) -> str:
    """A pip-compile style lock: (name, version, via) per package."""
    return "".join(f"{n}=={v} \\\n    {FAKE_HASH}\n    # via {via}\n" for n, v, via in pins)


# ------------------------------------------------------------------ every entry, as data
@pytest.mark.parametrize("entry", ENTRIES, ids=lambda g: g.name)
def test_entry_uses_the_openai_chat_route(entry):
    assert entry.request.path.endswith("/chat/completions")


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda g: g.name)
def test_entry_runs_somewhere_or_says_why_not(entry):
    assert entry.local.runnable or entry.cloud is not None, f"{entry.name} runs neither locally nor in the cloud"
    if not entry.local.runnable:
        assert entry.local.reason and len(entry.local.reason.split()) >= 5, "say why it cannot run here"


@pytest.mark.parametrize("entry", [g for g in ENTRIES if g.local.install and g.local.install.kind != "apt"],
                         ids=lambda g: g.name)
def test_entry_installs_from_a_hashed_lock_that_pins_its_version(entry):
    lock = entry.local.install.lock(entry.entry_dir, entry.name)
    assert lock.packages, "the lock pins nothing"
    if lock.kind == "pip":
        text = lock.files[0].read_text()
        pins = [line for line in text.splitlines() if line and not line.startswith((" ", "#", "-"))]
        # Every requirement carries a hash (pip --require-hashes refuses otherwise).
        assert pins and all(line.endswith("\\") for line in pins)
    else:
        packages = json.loads(lock.files[1].read_text())["packages"]
        assert all(info.get("integrity") for where, info in packages.items() if where and not info.get("link"))
    if len(lock.requested) == 1:
        # The version written into every result is the one the lock installs.
        assert entry.version == lock.requested[0].version, (entry.version, str(lock.requested[0]))


@pytest.mark.parametrize("entry", RUNNABLE, ids=lambda g: g.name)
def test_entry_templates_render_with_the_local_context(entry):
    """Command, env, config files, base URL and headers render (a typo in a template fails here)."""
    ctx = target_context(entry, load_mock(), plan_cpus(), NO_WORK_DIR)
    spec = entry.local
    if spec.command:
        assert render_list(spec.command, ctx, "command")
    render_map(spec.env, ctx, "env")
    for template in spec.config_files.values():
        render_file(entry.entry_dir / template, ctx)
    assert base_url(spec, entry.name, ctx).startswith("http://127.0.0.1:")
    assert target_endpoint(entry, ctx).url.endswith(entry.request.path)


def test_order_is_baseline_then_floors_then_gateways_by_name():
    order = {"baseline": 0, "floor": 1, "gateway": 2}
    keys = [(order[CATALOG.get(n).role], n) for n in CATALOG.names]
    assert keys == sorted(keys)


def test_the_baseline_is_the_mock_itself():
    baseline = CATALOG.baseline
    if baseline is None:
        pytest.skip("this catalog has no baseline")
    assert baseline.local.command is None and baseline.local.install is None
    ctx = target_context(baseline, load_mock(), plan_cpus(), NO_WORK_DIR)
    assert base_url(baseline.local, baseline.name, ctx) == ctx["mock_url"]


def test_unknown_target_lists_the_known_ones():
    first = CATALOG.names[0]
    with pytest.raises(ConfigError, match=rf"unknown target 'nope'.*Known targets: {', '.join(CATALOG.names)}"):
        CATALOG.select([first, "nope"])


# ---------------------------------------------------------------- bad entries, by name
def test_a_known_bad_version_is_refused_whatever_the_entry_is_called(tmp_path):
    lock = pip_lock(("litellm", "1.82.6", "-r requirements.in"), ("httpx", "0.28.1", "litellm"))
    write_entry(tmp_path, "my-router", {**GOOD, "name": "my-router", "version": "1.82.7",
                                        "local": {**GOOD["local"], "install": {"pip": "local/requirements.lock"}}},
                {"local/requirements.lock": lock})
    with pytest.raises(ConfigError) as err:
        load_catalog(tmp_path)
    message = str(err.value)
    assert str(tmp_path / "my-router" / "gateway.yaml") in message
    assert "version: litellm 1.82.7 (installed by local/requirements.lock) must not be installed" in message
    assert "malicious PyPI upload" in message


def test_a_known_bad_release_in_the_lock_is_refused_even_as_a_dependency(tmp_path):
    lock = pip_lock(("my-gateway", "2.0.0", "-r requirements.in"), ("litellm", "1.82.8", "my-gateway"))
    write_entry(tmp_path, "mine", {**GOOD, "name": "mine", "version": "2.0.0",
                                   "local": {**GOOD["local"], "install": {"pip": "requirements.lock"}}},
                {"requirements.lock": lock})
    with pytest.raises(ConfigError, match=r"mine/gateway.yaml: local.install.pip: requirements.lock installs "
                                          r"litellm==1\.82\.8, which must not be installed: malicious"):
        load_catalog(tmp_path)


def test_a_known_bad_npm_release_is_refused(tmp_path, monkeypatch):
    monkeypatch.setitem(catalog_module.KNOWN_BAD_RELEASES, "npm", {"@acme/gw": {"3.1.4": "hijacked maintainer"}})
    package = {"name": "x", "dependencies": {"@acme/gw": "3.1.4"}}
    lock = {"name": "x", "lockfileVersion": 3, "packages": {
        "": package, "node_modules/@acme/gw": {"version": "3.1.4", "integrity": "sha512-x"}}}
    write_entry(tmp_path, "acme", {**GOOD, "name": "acme", "version": "3.1.4",
                                   "local": {**GOOD["local"], "install": {"npm": "local"}}},
                {"local/package.json": json.dumps(package), "local/package-lock.json": json.dumps(lock)})
    with pytest.raises(ConfigError, match=r"package-lock.json installs @acme/gw@3\.1\.4, which must not be installed: "
                                          r"hijacked maintainer"):
        load_catalog(tmp_path)


def test_without_a_lock_the_entry_name_is_the_package(tmp_path):
    write_entry(tmp_path, "litellm", {**GOOD, "name": "litellm", "version": "1.107.0",
                                      "local": {"runnable": False, "reason": "cloud only"},
                                      "cloud": {"kind": "none"}})
    with pytest.raises(ConfigError, match=r"version: litellm 1\.107\.0 must not be installed: reported compromised"):
        load_catalog(tmp_path)


def test_a_good_release_of_the_same_package_loads(tmp_path):
    lock = pip_lock(("litellm", "1.82.6", "-r requirements.in"))
    write_entry(tmp_path, "my-router", {**GOOD, "name": "my-router", "version": "1.82.6",
                                        "local": {**GOOD["local"], "install": {"pip": "requirements.lock"}}},
                {"requirements.lock": lock})
    assert load_catalog(tmp_path).get("my-router").version == "1.82.6"


def test_an_unpinned_lock_is_refused(tmp_path):
    write_entry(tmp_path, "demo", {**GOOD, "local": {**GOOD["local"], "install": {"pip": "requirements.lock"}}},
                {"requirements.lock": "litellm>=1.0\n"})
    with pytest.raises(ConfigError, match=r"requirements.lock: litellm is not pinned to one version"):
        load_catalog(tmp_path)


def test_a_missing_lock_is_named(tmp_path):
    write_entry(tmp_path, "demo", {**GOOD, "local": {**GOOD["local"], "install": {"pip": "requirements.lock"}}})
    with pytest.raises(ConfigError, match=r"demo/gateway.yaml: install source .*demo/requirements.lock is missing"):
        load_catalog(tmp_path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": "blue"}, r"colour: Extra inputs are not permitted"),
        ({"role": "router"}, r"role: Input should be 'baseline', 'floor' or 'gateway'"),
        ({"local": {"runnable": False}}, r"local: .*needs a 'reason'"),
        ({"local": {"command": ["x"]}}, r"local: .*needs the 'port'"),
        ({"local": {"port": 80, "command": ["x"]}}, r"local.port: Input should be greater than or equal to 1024"),
        ({"request": {"path": "/v1/completions"}}, r"request.path: .*chat/completions"),
        ({"local": {"port": 19999, "command": ["x"], "install": {"npm": "a", "pip": "b"}}},
         r"local.install: .*exactly one of npm, pip, apt"),
    ],
)
def test_invalid_entries_name_file_and_field(tmp_path, change, message):
    write_entry(tmp_path, "demo", {**GOOD, **change})
    with pytest.raises(ConfigError, match=message) as err:
        load_catalog(tmp_path)
    assert str(tmp_path / "demo" / "gateway.yaml") in str(err.value)


def test_name_must_match_folder(tmp_path):
    write_entry(tmp_path, "other", GOOD)
    with pytest.raises(ConfigError, match="must equal its folder name 'other'"):
        load_catalog(tmp_path)


def test_missing_config_template_is_reported(tmp_path):
    write_entry(tmp_path, "demo", {**GOOD, "local": {**GOOD["local"], "config_files": {"a.conf": "missing.j2"}}})
    with pytest.raises(ConfigError, match=r"local.config_files.a.conf: template missing.j2 not found"):
        load_catalog(tmp_path)


def test_broken_yaml_names_the_file(tmp_path):
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "gateway.yaml").write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_catalog(tmp_path)


def test_a_key_given_twice_is_refused_with_its_line(tmp_path):
    """YAML would keep the second `variants:` and drop the first without a word (a merge did that)."""
    text = yaml.safe_dump(GOOD, sort_keys=False) + "variants:\n  a: {suite: policies, summary: one}\n"
    text += "variants:\n  b: {suite: faults, summary: two}\n"
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "gateway.yaml").write_text(text)
    with pytest.raises(ConfigError, match=r"found the key 'variants' twice in one mapping") as err:
        load_catalog(tmp_path)
    second = text.count("\n") - 1  # the second `variants:` line
    assert str(tmp_path / "demo" / "gateway.yaml") in str(err.value) and f"line {second}," in str(err.value)


def test_two_baselines_are_refused(tmp_path):
    for name in ("a", "b"):
        write_entry(tmp_path, name, {**GOOD, "name": name, "role": "baseline", "local": {}})
    with pytest.raises(ConfigError, match=r"more than one baseline entry \(a, b\)"):
        load_catalog(tmp_path)


def test_adding_a_gateway_is_one_folder(tmp_path):
    write_entry(tmp_path, "demo", GOOD)
    cat = load_catalog(tmp_path)
    assert cat.names == ["demo"]
    assert cat.get("demo").local.port == 19999


def test_the_catalog_directory_comes_from_the_environment(tmp_path, monkeypatch):
    write_entry(tmp_path, "demo", GOOD)
    monkeypatch.setenv("AIGW_BENCH_CATALOG", str(tmp_path))
    assert load_catalog().names == ["demo"]


# ------------------------------------------------------------------ renamed entries
def test_a_former_name_selects_the_entry_and_is_reported_as_renamed(tmp_path):
    write_entry(tmp_path, "direct", {**GOOD, "name": "direct", "role": "baseline", "local": {},
                                     "formerly": ["wiremock"]})
    write_entry(tmp_path, "demo", GOOD)
    cat = load_catalog(tmp_path)
    assert [g.name for g in cat.select(["wiremock", "demo"])] == ["direct", "demo"]
    assert cat.get("wiremock").name == "direct" and "wiremock" not in cat.names
    assert cat.renamed(["wiremock", "demo"]) == {"wiremock": "direct"} and cat.renamed(["direct"]) == {}


def test_a_former_name_that_another_entry_holds_is_refused(tmp_path):
    write_entry(tmp_path, "direct", {**GOOD, "name": "direct", "role": "baseline", "local": {}, "formerly": ["demo"]})
    write_entry(tmp_path, "demo", GOOD)
    with pytest.raises(ConfigError, match=r"direct/gateway.yaml: formerly: 'demo' is the name of another entry"):
        load_catalog(tmp_path)


def test_the_cli_takes_a_former_name_with_a_notice(tmp_path):
    from click.testing import CliRunner

    from aigw_bench.cli import main

    write_entry(tmp_path, "direct", {**GOOD, "name": "direct", "role": "baseline", "local": {},
                                     "formerly": ["wiremock"]})
    out = CliRunner().invoke(main, ["render", "-t", "wiremock", "-s", "seed", "--catalog", str(tmp_path)])
    assert out.exit_code == 0, out.output
    assert "notice: target 'wiremock' is now called 'direct'; 'wiremock' is accepted in this release only" in out.output
    assert 'const TARGET = "direct";' in out.output
