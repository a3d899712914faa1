"""docs/catalog.md cannot drift from the code: its field reference is generated from the models, its
template-variable tables name exactly the variables the code builds, and its worked examples'
files are valid entries."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from aigw_bench.local.context import NO_WORK_DIR, entry_context, mock_context, target_context
from aigw_bench.local.cpus import plan_cpus
from aigw_bench.local.install import InstallTarget
from schema.catalog import DEFAULT_CATALOG_DIR, load_catalog
from schema.catalog_doc import DOC, generated_block, main, reference
from schema.mock import load_mock, load_profile

TEXT = DOC.read_text()


def table_names(heading: str) -> set[str]:
    """The first column (`name`) of the first table after ``heading``."""
    rest = TEXT.split(heading, 1)[1]
    rows = rest.split("\n\n| variable |", 1)[1].split("\n\n", 1)[0]
    return set(re.findall(r"^\| `([a-z_]+)` \|", rows, re.MULTILINE))


def sh_block(heading: str, until: str) -> str:
    """The shell commands of the first ```sh block after ``heading``, up to the line starting with ``until``."""
    block = TEXT.split(heading, 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    return block.split("\n" + until, 1)[0] + "\n"


def test_the_field_reference_is_generated_from_the_models():
    assert generated_block(TEXT) == reference()
    assert main(["--check"]) == 0
    # Every key of the models is there (not only the same text as last time).
    for key in ("`runnable`", "`provides`", "`timeout_s`", "`secret_headers`", "`memory_per_replica`"):
        assert key in generated_block(TEXT)


def test_the_local_variables_are_the_ones_the_code_builds():
    litellm_like = next((g for g in load_catalog(DEFAULT_CATALOG_DIR) if g.local.install
                         and g.local.install.kind in ("npm", "pip")), None)
    assert litellm_like is not None
    context = target_context(litellm_like, load_mock(), plan_cpus(), NO_WORK_DIR)
    assert table_names("**Local**") == set(context) - set(litellm_like.local.vars)


def test_the_mocks_extra_variables_are_named():
    mock = load_mock()
    plain = entry_context(mock.local, mock.name, mock.entry_dir, NO_WORK_DIR, None, 1, "", mock)
    extra = set(mock_context(mock, plan_cpus(), NO_WORK_DIR, load_profile("instant"))) - set(plain)
    assert extra == {"contract", "profile", "settings_json"}
    sentence = TEXT.split("The mock's own templates", 1)[1].split("\n\n", 1)[0]
    assert all(f"`{name}`" in sentence for name in extra)


def test_the_cloud_variables_are_the_ones_the_program_builds():
    from components.gateway import GatewayArgs, template_context

    entry = load_catalog(DEFAULT_CATALOG_DIR).get("litellm")
    args = GatewayArgs(entry=entry, cloud=entry.cloud, replicas=3, cpu_per_replica=4.0, workers=4,
                       mock_cluster_url="http://fast-mock.mock.svc.cluster.local:8080", mock_url="",
                       provider=None, lb_controller=None, source_ranges=[], cluster_ready=[])  # type: ignore[arg-type]
    context = set(template_context(args)) - set(entry.cloud.vars) | {"files"}  # files: render_documents adds it
    assert table_names("**Cloud**") == context


@pytest.fixture
def scratch(tmp_path):
    (tmp_path / "stacks").mkdir()
    return tmp_path


def test_the_haproxy_example_is_a_valid_entry(scratch):
    subprocess.run(["bash", "-euc", sh_block("## Worked example: add HAProxy", ".venv/bin/aigw-bench setup")],
                   cwd=scratch, check=True)
    entry = load_catalog(scratch / "stacks").get("haproxy")
    assert (entry.role, entry.local.port, entry.local.install.apt) == ("floor", 18082, ["haproxy"])
    context = target_context(entry, load_mock(), plan_cpus(), scratch / "work")
    from schema.templating import render_file

    config = render_file(entry.entry_dir / "local" / "haproxy.cfg.j2", context)
    assert f"bind 127.0.0.1:{entry.local.port}" in config and "option http-no-delay" in config
    assert f"server mock {context['mock_host']}:{context['mock_port']}" in config


def test_the_litellm_example_makes_a_variant_that_shares_the_install(scratch):
    shutil.copytree(DEFAULT_CATALOG_DIR / "litellm", scratch / "stacks" / "litellm")
    subprocess.run(["bash", "-euc", sh_block("## Worked example: benchmark your own LiteLLM", "du -sh")],
                   cwd=scratch, check=True)
    cat = load_catalog(scratch / "stacks")
    original, variant = cat.get("litellm"), cat.get("litellm-router")
    assert (variant.local.port, variant.title) == (14001, "LiteLLM proxy, least-busy routing")
    assert variant.cloud.port == original.cloud.port  # only the local port changed
    assert "routing_strategy: least-busy" in (variant.entry_dir / "config.yaml.j2").read_text()
    installs = [InstallTarget(g.name, g.local.install, g.entry_dir).install_dir for g in (original, variant)]
    assert installs[0] == installs[1]
    stack = sh_block("The same variant in the cloud", ".venv/bin/python")
    (scratch / "Pulumi.litellm.yaml").write_text((DEFAULT_CATALOG_DIR.parent / "Pulumi.litellm.yaml").read_text())
    subprocess.run(["bash", "-euc", stack], cwd=scratch, check=True)
    assert "aigw-bench:gateway: litellm-router" in (scratch / "Pulumi.litellm-router.yaml").read_text()
