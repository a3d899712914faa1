"""Headless Chromium (Debian's package) for rendering the HTML report in tests."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

# Flags for a sandboxed machine without network: no GPU, no background traffic, a fresh profile.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise AssertionError("no Chromium on PATH: run `make test` (it installs Debian's chromium) or "
                         "`apt-get install chromium`")


def _run(args: list[str], profile: Path) -> subprocess.CompletedProcess:
    return subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                          text=True, timeout=120)


def dump_dom(html: Path, profile: Path) -> str:
    """The DOM after Chromium parsed and laid out the page."""
    out = _run(["--dump-dom", html.resolve().as_uri()], profile)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def screenshot(html: Path, png: Path, profile: Path, size: str = "1280,5200") -> Path:
    out = _run([f"--window-size={size}", f"--screenshot={png}", html.resolve().as_uri()], profile)
    assert out.returncode == 0 and png.exists(), out.stderr[-2000:]
    return png
