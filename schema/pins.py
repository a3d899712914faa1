"""Pinned, hashed packages from ``requirements.txt`` for machines the project provisions: k6 on the EC2
runner, and the streaming probe's Python packages wherever it runs away from this machine (the EC2
runner's virtualenv, the k6-operator engine's probe pod). One list, so both install the same."""

from __future__ import annotations

import re
from pathlib import Path

from schema.base import REPO_DIR

REQUIREMENTS = REPO_DIR / "requirements.txt"
# The streaming probe's packages: httpx and what it needs on Python 3.11 (tests/infra check this
# list against the installed packages' own requirements).
PROBE_PACKAGES = ("httpx", "httpcore", "h11", "anyio", "idna", "certifi", "typing-extensions")


def pin(package: str, requirements: Path = REQUIREMENTS) -> str:
    """``package==X --hash=sha256:... ...`` from requirements.txt, as one pip requirement line."""
    text = requirements.read_text()
    match = re.search(rf"^{re.escape(package)}==(\S+)((?:\s*\\\n\s+--hash=sha256:[0-9a-f]{{64}})+)", text,
                      re.MULTILINE)
    if not match:
        raise ValueError(f"{requirements}: no hashed pin of {package}")
    hashes = re.findall(r"--hash=sha256:[0-9a-f]{64}", match.group(2))
    return f"{package}=={match.group(1)} " + " ".join(hashes)


def k6_pin(requirements: Path = REQUIREMENTS) -> str:
    return pin("k6", requirements)


def probe_requirements(requirements: Path = REQUIREMENTS) -> list[str]:
    return [pin(p, requirements) for p in PROBE_PACKAGES]
