"""What an entry's lock files install, read from the files themselves: every pinned package with its
version, which of them the entry asked for (the rest are their dependencies), and a digest of the
files. Installs are keyed by this (two entries with the same lock share one install, whatever they
are called), and the known-bad-release guard reads it (a bad release is refused in any entry).

- pip: a hashed requirements file as ``pip-compile --generate-hashes`` writes it. The packages the
  entry asked for are those annotated ``# via -r <file>`` (pip-compile's annotation); a file without
  annotations counts every package as asked for.
- npm: ``package.json`` (what is asked for) and ``package-lock.json`` (lockfile version 2 or 3: the
  ``packages`` map, every installed package with its version).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from schema.errors import ConfigError

Ecosystem = Literal["pypi", "npm"]


@dataclass(frozen=True)
class Package:
    ecosystem: Ecosystem
    name: str  # canonical (PyPI: PEP 503 normalised; npm: as in the lock, scope included)
    version: str
    requested: bool  # asked for by the entry (not only a dependency of what it asked for)

    def __str__(self) -> str:
        return f"{self.name}=={self.version}" if self.ecosystem == "pypi" else f"{self.name}@{self.version}"


@dataclass(frozen=True)
class Lock:
    """The lock files of one install and what they pin."""

    kind: Literal["pip", "npm"]
    files: tuple[Path, ...]
    packages: tuple[Package, ...]

    @property
    def requested(self) -> list[Package]:
        return [p for p in self.packages if p.requested]

    @property
    def digest(self) -> str:
        """sha256 over the files' names and bytes: the same lock gives the same digest wherever it is."""
        h = hashlib.sha256()
        for f in self.files:
            h.update(f.name.encode())
            h.update(f.read_bytes())
        return h.hexdigest()

    @property
    def key(self) -> str:
        """A directory name for the install: kind, what is asked for (readable), and the digest (exact)."""
        label = "+".join(f"{p.name.lstrip('@').replace('/', '-')}-{p.version}" for p in self.requested[:2])
        label = re.sub(r"[^A-Za-z0-9._+-]", "-", label)[:60] or "lock"
        return f"{self.kind}-{label}-{self.digest[:12]}"


def _pip_packages(path: Path) -> list[Package]:
    """Pinned requirements of a hashed requirements file, continuation lines joined, hashes dropped."""
    text = path.read_text()
    # One logical line per requirement (backslash continuations), each with the comments that follow
    # it (pip-compile's "# via" annotations).
    entries: list[tuple[str, list[str]]] = []
    logical = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if logical:
            logical += " " + stripped.rstrip("\\")
            if not stripped.endswith("\\"):
                entries.append((logical, []))
                logical = ""
            continue
        if not stripped:
            continue
        if stripped.startswith("#"):
            if entries:
                entries[-1][1].append(stripped)
            continue
        if stripped.startswith("-"):
            continue  # options (--index-url, -r other.txt ...): not packages
        if stripped.endswith("\\"):
            logical = stripped.rstrip("\\")
        else:
            entries.append((stripped, []))
    annotated = any(c.startswith("# via") for _, comments in entries for c in comments)
    out = []
    for line, comments in entries:
        spec = re.sub(r"\s--hash[= ]\S+", "", f" {line}").strip()
        try:
            req = Requirement(spec)
        except InvalidRequirement as exc:
            raise ConfigError(f"{path}: cannot read the requirement {spec!r}: {exc}") from None
        pins = [s.version for s in req.specifier if s.operator in ("==", "===")]
        if len(pins) != 1:
            raise ConfigError(f"{path}: {req.name} is not pinned to one version (use ==, as pip-compile writes)")
        via = " ".join(comments)
        requested = not annotated or re.search(r"(^|\s|#)-r\s", via) is not None
        out.append(Package("pypi", canonicalize_name(req.name), pins[0], requested))
    return out


def _npm_packages(package_json: Path, lock_json: Path) -> list[Package]:
    def read(path: Path) -> dict:
        try:
            data = json.loads(path.read_text())
        except ValueError as exc:
            raise ConfigError(f"{path}: not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a JSON object")
        return data

    wanted = set(read(package_json).get("dependencies") or {})
    packages = read(lock_json).get("packages")
    if not isinstance(packages, dict):
        raise ConfigError(f"{lock_json}: no 'packages' map (lockfileVersion 2 or 3 needed: npm 7 or later)")
    out = []
    for where, info in packages.items():
        if not where or not isinstance(info, dict) or "version" not in info or info.get("link"):
            continue
        name = info.get("name") or where.rsplit("node_modules/", 1)[-1]
        top = where == f"node_modules/{name}"
        out.append(Package("npm", name, str(info["version"]), top and name in wanted))
    return out


def lock_files(kind: str, source: str, entry_dir: Path, who: str) -> list[Path]:
    """The files of an install source (``local.install.pip`` or ``.npm``), which must exist."""
    base = entry_dir / source
    files = [base / "package.json", base / "package-lock.json"] if kind == "npm" else [base]
    for f in files:
        if not f.is_file():
            raise ConfigError(f"{who}: install source {f} is missing")
    return files


def read_lock(kind: Literal["pip", "npm"], source: str, entry_dir: Path, who: str) -> Lock:
    files = lock_files(kind, source, entry_dir, who)
    packages = _pip_packages(files[0]) if kind == "pip" else _npm_packages(*files)
    return Lock(kind, tuple(files), tuple(packages))
