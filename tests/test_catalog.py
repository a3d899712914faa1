"""The catalog is data: every shipped entry loads, and bad entries fail with the file and field named."""

from __future__ import annotations

import pytest
import yaml

from schema.catalog import DEFAULT_CATALOG_DIR, KNOWN_BAD_RELEASES, load_catalog
from schema.errors import ConfigError
from schema.mock import load_mock

GOOD = {
    "name": "demo",
    "title": "Demo",
    "role": "gateway",
    "version": "1.0.0",
    "source": "tests",
    "local": {"port": 19999, "command": ["true"]},
}


def write_entry(root, name, entry):
    (root / name).mkdir(parents=True)
    (root / name / "gateway.yaml").write_text(yaml.safe_dump(entry))


def test_shipped_catalog_has_the_issue_entries():
    cat = load_catalog()
    assert set(cat.names) >= {"wiremock", "nginx", "portkey", "litellm", "kong"}
    assert cat.baseline is not None and cat.baseline.name == "wiremock"
    # Order: baseline, floor, then gateways.
    assert cat.names[:2] == ["wiremock", "nginx"]


def test_kong_is_declared_but_not_runnable_here_with_a_reason():
    kong = load_catalog().get("kong")
    assert kong.local.runnable is False
    assert "registries" in (kong.local.reason or "")


def test_every_target_uses_the_openai_chat_route():
    for g in load_catalog():
        assert g.request.path.endswith("/chat/completions"), g.name


def test_baseline_version_is_the_mocks_version():
    assert load_catalog().get("wiremock").version == load_mock("wiremock").version


def test_litellm_is_pinned_exactly_and_not_a_known_bad_release():
    litellm = load_catalog().get("litellm")
    assert litellm.version not in KNOWN_BAD_RELEASES["litellm"]
    lock = (DEFAULT_CATALOG_DIR / "litellm" / litellm.local.install.pip).read_text()
    assert f"litellm=={litellm.version} \\" in lock
    # Every requirement in the lock carries a hash (pip --require-hashes refuses otherwise).
    pins = [line for line in lock.splitlines() if line and not line.startswith((" ", "#"))]
    assert pins and all(line.endswith("\\") for line in pins)


def test_known_bad_release_is_refused(tmp_path):
    write_entry(tmp_path, "litellm", {**GOOD, "name": "litellm", "version": "1.82.8"})
    with pytest.raises(ConfigError, match=r"1\.82\.8 .*must not be installed"):
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


def test_unknown_target_lists_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown target 'nope'.*Known targets: wiremock, nginx"):
        load_catalog().select(["wiremock", "nope"])


def test_broken_yaml_names_the_file(tmp_path):
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "gateway.yaml").write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_catalog(tmp_path)


def test_adding_a_gateway_is_one_folder(tmp_path):
    write_entry(tmp_path, "demo", GOOD)
    cat = load_catalog(tmp_path)
    assert cat.names == ["demo"]
    assert cat.get("demo").local.port == 19999
