"""The worked examples of docs/catalog.md, followed as written: their shell blocks run in a scratch
directory laid out like the repository (``stacks/``, ``Pulumi.*.yaml``), up to the first command that
needs the rig. tests/test_catalog_doc.py checks what they make; tests/test_fork.py adds them to a
fork of the catalog under test."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from schema.catalog_doc import DOC

REPO = Path(__file__).resolve().parents[1]
HAPROXY = "## Worked example: add HAProxy in five minutes"
HAPROXY_CLOUD = "### The same HAProxy on EKS: a Helm chart as data"
LITELLM = "## Worked example: benchmark your own LiteLLM config"
LITELLM_CLOUD = "The same variant in the cloud"


def sh_block(heading: str, until: str) -> str:
    """The shell commands of the first ```sh block after ``heading``, up to the line starting with ``until``."""
    block = DOC.read_text().split(heading, 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    assert "\n" + until in block, f"{DOC}: no line starting with {until!r} in the block after {heading!r}"
    return block.split("\n" + until, 1)[0] + "\n"


def _follow(script: str, root: Path) -> None:
    subprocess.run(["bash", "-euc", script], cwd=root, check=True)


def _stack_file(root: Path, name: str) -> None:
    if not (root / f"Pulumi.{name}.yaml").exists():
        shutil.copy(REPO / f"Pulumi.{name}.yaml", root / f"Pulumi.{name}.yaml")


def follow_haproxy(root: Path, cloud: bool = True) -> None:
    """The HAProxy example in ``root`` (which holds ``stacks/``): the entry, then its cloud part."""
    _follow(sh_block(HAPROXY, ".venv/bin/aigw-bench setup"), root)
    if cloud:
        _stack_file(root, "nginx")  # the example derives its stack file from nginx's
        _follow(sh_block(HAPROXY_CLOUD, ".venv/bin/python -m pytest"), root)


def follow_litellm(root: Path, cloud: bool = True) -> None:
    """The LiteLLM variant in ``root``, whose ``stacks/litellm`` it copies; then its stack file."""
    _follow(sh_block(LITELLM, "du -sh"), root)
    if cloud:
        _stack_file(root, "litellm")
        _follow(sh_block(LITELLM_CLOUD, ".venv/bin/python"), root)
