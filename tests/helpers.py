"""Helpers shared by the local pipeline's tests (imported explicitly; fixtures live in conftest.py)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import yaml

from aigw_bench.local import install
from aigw_bench.local.cpus import plan_cpus
from aigw_bench.local.engine import LocalEngine
from aigw_bench.measure.plan import Knobs
from aigw_bench.run.loop import Runner
from aigw_bench.run.plan import plan_run
from schema.catalog import DEFAULT_CATALOG_DIR, load_catalog
from schema.mock import DEFAULT_MOCK, load_mock

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
        if tools in cmd or "/bin/k6 " in cmd or "nginx: " in cmd or "aigw-bench-fake" in cmd or "stream_probe" in cmd:
            found.add(int(entry))
    return found


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


def make_runner(catalog_dir: Path | None, targets: list[str], results: Path, scenario: str = "seed",
                repeats: int = 1, on_event=None, mock: str = DEFAULT_MOCK, suite: Path | None = None,
                mock_profile: str | None = None, **overrides) -> Runner:
    """A runner for a short scenario run, or for a suite file (``suite``)."""
    plan = plan_run("local", targets=load_catalog(catalog_dir).select(targets), scenario=None if suite else scenario,
                    suite=str(suite) if suite else None, mock_profile=mock_profile,
                    knobs=Knobs() if suite else Knobs(**{**SHORT, **overrides}), repeats=repeats if not suite else None,
                    results_root=results)
    if plan.measurement.suite is None:
        # The rig's own measurement, shortened like everything else in the tests.
        plan.rig = plan.rig.model_copy(update={
            "ceiling": plan.rig.ceiling.model_copy(update={"duration": 2.0, "warmup": 1.0}),
            "floor": plan.rig.floor.model_copy(update={"duration": 1.0, "warmup": 0.0})})
    return Runner(plan, LocalEngine(load_mock(mock), plan_cpus()), on_event=on_event)


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


def start_mock(sup, work: Path, name: str = DEFAULT_MOCK, profile=None, port: int | None = None):
    """A real mock started as the local runner starts it (its config rendered the same way), ready to serve;
    returns (process, base URL). ``profile``: a PacingProfile (default: instant)."""
    from aigw_bench.local.probes import wait_ready
    from schema.mock import load_contract, load_profile, settings_json
    from schema.templating import render_file, render_list, render_vars

    mock = load_mock(name)
    spec = mock.local
    profile = profile or load_profile("instant")
    port = port or spec.port
    ctx = {"port": port, "install_dir": str(install.install_dir_for(mock.name)), "entry_dir": str(mock.entry_dir),
           "work_dir": str(work), "cpus": 1, "cpu_list": "", "model": "", "mock_url": "", "mock_host": "127.0.0.1",
           "mock_port": port}
    ctx = {**ctx, **render_vars(spec.vars, ctx, "mock"), "contract": load_contract(), "profile": profile,
           "settings_json": settings_json(profile)}
    for out, template in spec.config_files.items():
        (work / out).parent.mkdir(parents=True, exist_ok=True)
        (work / out).write_text(render_file(mock.entry_dir / template, ctx))
    proc = sup.start("mock", render_list(spec.command, ctx, "mock"), work / "mock.log")
    base = f"http://127.0.0.1:{port}"
    wait_ready("mock", base + spec.ready.path, timeout=spec.ready.timeout_s, proc=proc)
    return proc, base
