"""Installing and checking the tools each local process needs, from the catalog's install specs.

Everything goes under ``.tools/<name>/`` (override with ``AIGW_BENCH_TOOLS``), pinned by lock files
that carry hashes: npm ``package-lock.json`` (integrity) installed with ``npm ci --ignore-scripts``,
pip lock files installed with ``--require-hashes`` into a virtualenv per entry. A stamp records the
lock's digest, so a changed lock reinstalls and an unchanged one costs nothing.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from schema.catalog import REPO_DIR, InstallSpec
from schema.errors import SetupError
from schema.templating import render_list

STAMP = ".aigw-installed"


def tools_dir() -> Path:
    return Path(os.environ.get("AIGW_BENCH_TOOLS", REPO_DIR / ".tools")).resolve()


def install_dir_for(name: str) -> Path:
    return tools_dir() / name


@dataclass(frozen=True)
class InstallTarget:
    """Something to install: a catalog entry or the mock."""

    name: str
    spec: InstallSpec
    entry_dir: Path


def _digest(*files: Path) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def _lock_files(target: InstallTarget) -> list[Path]:
    spec = target.spec
    if spec.npm:
        src = target.entry_dir / spec.npm
        files = [src / "package.json", src / "package-lock.json"]
    elif spec.pip:
        files = [target.entry_dir / spec.pip]
    else:
        return []
    for f in files:
        if not f.is_file():
            raise SetupError(f"{target.name}: install source {f} is missing (catalog entry {target.entry_dir})")
    return files


def _missing_provides(spec: InstallSpec) -> list[str]:
    """What an apt install promised and is not there: binaries not on PATH, absolute paths not present."""
    return [p for p in spec.provides or []
            if not (Path(p).exists() if os.path.isabs(p) else shutil.which(p) is not None)]


def is_installed(target: InstallTarget) -> bool:
    spec = target.spec
    if spec.apt:
        return not _missing_provides(spec)
    stamp = install_dir_for(target.name) / STAMP
    return stamp.is_file() and stamp.read_text().strip() == _digest(*_lock_files(target))


def _run(argv: list[str], cwd: Path | None, what: str, log: Callable[[str], None]) -> None:
    log(f"  $ {' '.join(argv)}")
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise SetupError(f"{what} failed (exit {proc.returncode}):\n{tail}")


def install(target: InstallTarget, log: Callable[[str], None] = print) -> str:
    """Install if missing or stale; returns what was done."""
    if is_installed(target):
        return "up to date"
    spec = target.spec
    dest = install_dir_for(target.name)
    if spec.npm:
        if not shutil.which("npm"):
            raise SetupError(f"{target.name}: npm is needed (Node.js 20): apt-get install -y nodejs npm")
        dest.mkdir(parents=True, exist_ok=True)
        for f in _lock_files(target):
            shutil.copy2(f, dest / f.name)
        _run(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"], dest,
             f"{target.name}: npm ci", log)
    elif spec.pip:
        venv = dest / "venv"
        if not (venv / "bin" / "python").exists():
            _run([sys.executable, "-m", "venv", str(venv)], None, f"{target.name}: python -m venv", log)
        _run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
              "--require-hashes", "--no-deps", "-r", str(_lock_files(target)[0])], None,
             f"{target.name}: pip install --require-hashes", log)
    else:
        _install_apt(target, log)
        return "installed (apt)"
    (dest / STAMP).write_text(_digest(*_lock_files(target)) + "\n")
    return f"installed ({spec.kind})"


def _install_apt(target: InstallTarget, log: Callable[[str], None]) -> None:
    packages = list(target.spec.apt or [])
    if os.geteuid() == 0:
        prefix: list[str] = []
    elif shutil.which("sudo"):
        prefix = ["sudo", "-n"]
    else:
        raise SetupError(
            f"{target.name}: needs the Debian package(s) {' '.join(packages)}; "
            f"install them with: sudo apt-get install -y {' '.join(packages)}"
        )
    env_prefix = ["env", "DEBIAN_FRONTEND=noninteractive"]
    _run([*prefix, *env_prefix, "apt-get", "update", "-qq"], None, f"{target.name}: apt-get update", log)
    _run([*prefix, *env_prefix, "apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages], None,
         f"{target.name}: apt-get install {' '.join(packages)}", log)
    missing = _missing_provides(target.spec)
    if missing:
        raise SetupError(f"{target.name}: installed {' '.join(packages)} but {', '.join(missing)} "
                         "is still missing (not on PATH, or no such file)")


def require_installed(target: InstallTarget) -> None:
    if not is_installed(target):
        raise SetupError(
            f"{target.name} is not installed (or its lock file changed): run `make setup` "
            f"(or `aigw-bench setup {target.name}`)"
        )


def require_executable(argv0: str, who: str) -> None:
    """The program a command starts must exist before the runner relies on it."""
    if os.sep in argv0:
        if not os.access(argv0, os.X_OK):
            raise SetupError(f"{who}: {argv0} is missing or not executable; run `make setup`")
    elif shutil.which(argv0) is None:
        hint = {"java": "apt-get install -y openjdk-17-jre-headless", "node": "install Node.js 20"}.get(argv0, "")
        raise SetupError(f"{who}: '{argv0}' is not on PATH{'; ' + hint if hint else ''}")


def probe_version(command: list[str], regex: str, context: Mapping[str, Any], who: str) -> str | None:
    """Run a version probe and return the first group of the regex, or None if it did not match."""
    argv = render_list(command, context, f"{who}: version_probe.command")
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(regex, proc.stdout + proc.stderr, re.MULTILINE)
    return match.group(1) if match else None


def versions_match(pinned: str, installed: str | None) -> bool:
    """'3.10' matches '3.10.0.4'; '1.22.1' matches '1.22.1' (not '1.22.10')."""
    return installed is not None and (installed == pinned or installed.startswith(pinned + "."))
