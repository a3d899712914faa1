"""Installing and checking the tools each local process needs, from the catalog's install specs.

Installs go under ``.tools/installs/<key>/`` (override ``.tools`` with ``AIGW_BENCH_TOOLS``), keyed by
what is installed, not by who asks: the key is the kind, the packages the lock asks for and the lock
files' digest (:class:`schema.locks.Lock`), so two entries with the same lock share one install and a
changed lock gets a new one. Pinned by lock files that carry hashes: npm ``package-lock.json``
(integrity) installed with ``npm ci --ignore-scripts``, pip lock files installed with
``--require-hashes`` into a virtualenv of their own. A stamp written last marks a finished install.
Debian packages (apt) are the system's: nothing goes under ``.tools``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from schema.catalog import REPO_DIR, InstallSpec
from schema.errors import ConfigError, SetupError
from schema.locks import Lock
from schema.templating import render_list

STAMP = ".aigw-installed"
INSTALLS = "installs"
STATE = "state"


def tools_dir() -> Path:
    return Path(os.environ.get("AIGW_BENCH_TOOLS", REPO_DIR / ".tools")).resolve()


@dataclass(frozen=True)
class InstallTarget:
    """Something to install for a catalog entry or a mock (``name``, for messages)."""

    name: str
    spec: InstallSpec
    entry_dir: Path

    @cached_property
    def lock(self) -> Lock | None:
        try:
            return self.spec.lock(self.entry_dir, self.name)
        except ConfigError as exc:
            raise SetupError(str(exc)) from None

    @property
    def install_dir(self) -> Path | None:
        """Where the install lives (npm, pip): the same for every entry with the same lock. None for apt."""
        return tools_dir() / INSTALLS / self.lock.key if self.lock else None


def install_dir_of(spec: InstallSpec | None, name: str, entry_dir: Path) -> Path | None:
    """The install directory of an entry's ``local.install`` (None: nothing installed under .tools)."""
    return InstallTarget(name, spec, entry_dir).install_dir if spec else None


def unused_tool_dirs(in_use: list[Path]) -> list[Path]:
    """Directories under .tools that no install of the catalog uses (earlier per-name installs, old locks)."""
    root = tools_dir()
    if not root.is_dir():
        return []
    found = [d for d in root.iterdir() if d.is_dir() and d.name not in (INSTALLS, STATE)]
    if (root / INSTALLS).is_dir():
        found += [d for d in (root / INSTALLS).iterdir() if d.is_dir() and d not in in_use]
    return sorted(found)


def disk_usage(path: Path) -> int:
    """Bytes used by the files under ``path`` (symlinks not followed)."""
    total = 0
    for base, _, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):  # a file removed meanwhile
                total += os.lstat(os.path.join(base, f)).st_blocks * 512
    return total


def _missing_provides(spec: InstallSpec) -> list[str]:
    """What an apt install promised and is not there: binaries not on PATH, absolute paths not present."""
    return [p for p in spec.provides or []
            if not (Path(p).exists() if os.path.isabs(p) else shutil.which(p) is not None)]


def is_installed(target: InstallTarget) -> bool:
    if target.lock is None:
        return not _missing_provides(target.spec)
    stamp = target.install_dir / STAMP  # type: ignore[operator]
    return stamp.is_file() and stamp.read_text().strip() == target.lock.digest


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
    spec, lock, dest = target.spec, target.lock, target.install_dir
    if lock is None or dest is None:
        _install_apt(target, log)
        return "installed (apt)"
    if spec.npm:
        if not shutil.which("npm"):
            raise SetupError(f"{target.name}: npm is needed (Node.js 20): apt-get install -y nodejs npm")
        dest.mkdir(parents=True, exist_ok=True)
        for f in lock.files:
            shutil.copy2(f, dest / f.name)
        _run(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"], dest,
             f"{target.name}: npm ci", log)
    else:
        venv = dest / "venv"
        if not (venv / "bin" / "python").exists():
            _run([sys.executable, "-m", "venv", str(venv)], None, f"{target.name}: python -m venv", log)
        _run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
              "--require-hashes", "--no-deps", "-r", str(lock.files[0])], None,
             f"{target.name}: pip install --require-hashes", log)
    (dest / STAMP).write_text(lock.digest + "\n")
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
