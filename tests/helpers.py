"""Helpers shared by the local pipeline's tests (imported explicitly; fixtures live in conftest.py)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from aigw_bench.local import install
from aigw_bench.local.context import install_vars
from aigw_bench.local.cpus import plan_cpus
from aigw_bench.local.engine import LocalEngine
from aigw_bench.measure.plan import Knobs
from aigw_bench.run.loop import Runner
from aigw_bench.run.plan import plan_run
from schema.catalog import DEFAULT_CATALOG_DIR, load_catalog
from schema.mock import DEFAULT_MOCK, load_mock
from schema.suites import load_rig_sizes

SUDO = [] if os.geteuid() == 0 else ["sudo", "-n"]  # mount needs root: `make test` runs as root or with sudo

# Short but real: long enough for k6 to collect a few thousand samples on this machine.
SHORT = {"duration": "3s", "warmup": "1s", "vus": 10}

# A suite small enough for the tests: every step runs, for about a second or two each.
TINY_SUITE = {
    "name": "tiny",
    "description": "every step of the default suite, for about a second each (tests)",
    "profiles": {"local": {
        "repeats": 1,
        "overhead": {"duration": "3s", "warmup": "1s", "warmup_max": "12s", "steady_seconds": 2,
                     "block": "300ms", "settle": "150ms"},
        "seed": {"vus": 10, "duration": "2s", "warmup": "1s"},
        "capacity": {"bounds_ms": [10, 50, 250], "default_bound_ms": 50, "step": "1s", "warmup": "0s",
                     "max_steps": 4, "min_rate": 10, "growth": 2.0, "resolution": 0.2, "max_vus": 200},
        "concurrency": {"levels": [1, 8], "duration": "1s"},
        "efficiency": {"rate": 20, "duration": "2s", "idle": "500ms", "after": "500ms"},
        "streaming": {"profile": "llm", "output_tokens": 5, "concurrency": 2, "duration": "2s"},
    }},
}


def tool_processes() -> set[int]:
    """Processes whose command line points into this repository's tools or k6 (for leak checks)."""
    found = set()
    tools = str(install.tools_dir())
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state == "Z":
            continue
        if tools in cmd or "/bin/k6 " in cmd or "nginx: " in cmd or "aigw-bench-fake" in cmd or "stream_probe" in cmd \
                or cmd.startswith("redis-server "):
            found.add(int(entry))
    return found


def answering(status: int, body: bytes) -> str:
    """A fake gateway's program (for :func:`fake_gateway`): ready on GET, answers every POST with ``status``
    and ``body``."""
    return f"""
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b'ok')
    def do_POST(self):
        self.rfile.read(int(self.headers['Content-Length']))
        body = {body!r}
        self.send_response({status}); self.send_header('Content-Length', str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
HTTPServer(('127.0.0.1', int(sys.argv[2])), H).serve_forever()
"""


@contextlib.contextmanager
def tmpfs(path: Path, size: str, read_only: bool = False):
    """A tmpfs of ``size`` mounted at ``path`` for the block; unmounted (and removed) whatever happens."""
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    mounted = subprocess.run([*SUDO, "mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.fail(f"these tests mount a tmpfs (root or passwordless sudo): {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run([*SUDO, "umount", "--lazy", str(path)], check=True)
        path.rmdir()


@contextlib.contextmanager
def failing_ext4(path: Path, size_mib: int = 64):
    """An ext4 file system of ``size_mib`` in a loop file, mounted at ``path`` with ``errors=remount-ro``
    as a server's disk is; yields a function that makes it fail the way a disk error does (ext4's own
    ``trigger_fs_error``: from then on every write is refused with EROFS, while the mount still reads rw).
    Skipped where the machine has no loop devices or no ext4 (a container without /dev/loop*)."""
    image = path.with_suffix(".img")
    with open(image, "wb") as fh:
        fh.truncate(size_mib << 20)
    path.mkdir(parents=True, exist_ok=True)
    made = subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], capture_output=True, text=True)
    mounted = made.returncode == 0 and subprocess.run(
        [*SUDO, "mount", "-o", "loop,errors=remount-ro", str(image), str(path)], capture_output=True).returncode == 0
    if not mounted:
        image.unlink()
        pytest.skip(f"no loop-mounted ext4 on this machine: {made.stderr.strip() or 'mount -o loop failed'}")
    device = Path(subprocess.run(["findmnt", "-n", "-o", "SOURCE", str(path)], capture_output=True, text=True,
                                 check=True).stdout.strip()).name

    def fail() -> None:
        subprocess.run([*SUDO, "tee", f"/sys/fs/ext4/{device}/trigger_fs_error"], input=b"aigw-bench test\n",
                       capture_output=True, check=True)

    try:
        yield fail
    finally:
        subprocess.run([*SUDO, "umount", "--lazy", str(path)], check=True)
        path.rmdir()
        image.unlink()


def fill(directory: Path) -> None:
    """Another program fills the disk (until it is refused)."""
    with open(directory / "filler", "wb", buffering=0) as fh, contextlib.suppress(OSError):
        while True:
            fh.write(b"\0" * (1 << 20))


def command_line(pid: int) -> str:
    """A process's command line (for messages), or "" once it is gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def fake_gateway(name: str, port: int, script: str, ready_timeout: float = 20.0) -> dict:
    """A catalog entry for a Python program standing in for a gateway (to inject faults)."""
    return {
        "name": name,
        "title": f"fake gateway {name}",
        "role": "gateway",
        "version": "0.0.0",
        "source": "tests",
        "local": {
            "port": port,
            # argv[1] marks the process so the leak check can find it.
            "command": ["python3", "-c", script, "aigw-bench-fake", "{{ port }}", "{{ mock_url }}"],
            "ready": {"path": "/health", "timeout_s": ready_timeout},
        },
    }


SHORT_RIG = Path(__file__).parent / "short-rig.yaml"


def make_runner(catalog_dir: Path | None, targets: list[str], results: Path, scenario: str = "seed",
                repeats: int = 1, on_event=None, mock: str = DEFAULT_MOCK, suite: Path | None = None,
                mock_profile: str | None = None, **overrides) -> Runner:
    """A runner for a short scenario run, or for a suite file (``suite``)."""
    plan = plan_run("local", targets=load_catalog(catalog_dir).select(targets), scenario=None if suite else scenario,
                    suite=str(suite) if suite else None, mock_profile=mock_profile,
                    knobs=Knobs() if suite else Knobs(**{**SHORT, **overrides}), repeats=repeats if not suite else None,
                    results_root=results)
    plan.rig = load_rig_sizes("local", SHORT_RIG)  # the rig's own measurement, shortened like the rest
    return Runner(plan, LocalEngine(load_mock(mock), plan_cpus()), on_event=on_event)


# The command line with the rig's short sizes, as make_runner's runners have them.
SHORT_RIG_ENV = {**os.environ, "AIGW_BENCH_RIG": str(SHORT_RIG)}


def write_suite(directory: Path, **changes) -> Path:
    """The tiny suite as a file (``--suite PATH``), with top-level size changes for the local profile."""
    data = yaml.safe_load(yaml.safe_dump(TINY_SUITE))
    data["profiles"]["local"].update(changes)
    path = directory / "tiny.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def build_catalog(root: Path, copies: list[str], fakes: list[dict]) -> Path:
    """A catalog directory with copies of shipped entries and fake ones."""
    for name in copies:
        shutil.copytree(DEFAULT_CATALOG_DIR / name, root / name)
    for entry in fakes:
        (root / entry["name"]).mkdir()
        (root / entry["name"] / "gateway.yaml").write_text(yaml.safe_dump(entry, sort_keys=False))
    return root


def start_mock(sup, work: Path, name: str = DEFAULT_MOCK, profile=None, port: int | None = None, plan=None):
    """A real mock started as the local runner starts it (its config rendered the same way), ready to serve;
    returns (process, base URL). ``profile``: a PacingProfile (default: instant); ``plan``: a FaultPlan."""
    from aigw_bench.local.context import mock_settings
    from aigw_bench.local.probes import wait_ready
    from schema.mock import load_profile
    from schema.templating import render_file, render_list, render_vars

    mock = load_mock(name)
    spec = mock.local
    profile = profile or load_profile("instant")
    port = port or spec.port
    ctx = {"port": port, **install_vars(spec, mock.name, mock.entry_dir), "entry_dir": str(mock.entry_dir),
           "work_dir": str(work), "cpus": 1, "cpu_list": "", "model": "", "mock_url": "", "mock_host": "127.0.0.1",
           "mock_port": port}
    ctx = {**ctx, **render_vars(spec.vars, ctx, "mock"), **mock_settings(mock, profile, plan)}
    for out, template in spec.config_files.items():
        (work / out).parent.mkdir(parents=True, exist_ok=True)
        (work / out).write_text(render_file(mock.entry_dir / template, ctx))
    proc = sup.start("mock", render_list(spec.command, ctx, "mock"), work / "mock.log")
    base = f"http://127.0.0.1:{port}"
    wait_ready("mock", base + spec.ready.path, timeout=spec.ready.timeout_s, proc=proc)
    return proc, base


def start_entry(sup, work: Path, target):
    """A real catalog target (an entry, or ENTRY+VARIANT) started as the local runner starts it, in front of the
    default mock's ports (its config rendered the same way), ready to serve; returns (process, base URL, the
    request headers it is sent, rendered)."""
    from aigw_bench.local.context import base_url, target_context, target_endpoint
    from aigw_bench.local.probes import wait_ready
    from schema.templating import render_file, render_list, render_map

    ctx = target_context(target, load_mock(), plan_cpus(), work)
    for out, template in target.local.config_files.items():
        (work / out).parent.mkdir(parents=True, exist_ok=True)
        (work / out).write_text(render_file(target.entry_dir / template, ctx))
    proc = sup.start(target.name, render_list(target.local.command, ctx, target.name), work / "target.log",
                     env=render_map(target.local.env, ctx, target.name), cwd=work)
    base = base_url(target.local, target.name, ctx)
    wait_ready(target.name, base + target.local.ready.path, timeout=target.local.ready.timeout_s, proc=proc)
    return proc, base, target_endpoint(target, ctx).headers
