"""Helpers shared by the local pipeline's tests (imported explicitly; fixtures live in conftest.py)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import yaml

from aigw_bench.catalog import DEFAULT_CATALOG_DIR, load_catalog, load_mock
from aigw_bench.local import install
from aigw_bench.local.cpus import plan_cpus
from aigw_bench.local.runner import LocalRunner, RunPlan
from k6_scripts.scenarios import load_scenario

# Short but real: long enough for k6 to collect a few thousand samples on this machine.
SHORT = {"duration": "3s", "warmup": "1s", "vus": 10}


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
        if tools in cmd or "/bin/k6 " in cmd or "nginx: " in cmd or "aigw-bench-fake" in cmd:
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
                repeats: int = 1, on_event=None, **overrides) -> LocalRunner:
    cat = load_catalog(catalog_dir)
    scen = load_scenario(scenario)
    params = scen.params("local", {**SHORT, **overrides})
    plan = RunPlan(catalog=cat, mock=load_mock(), targets=cat.select(targets), scenario=scen, params=params,
                   repeats=repeats, results_root=results, cpu_plan=plan_cpus())
    return LocalRunner(plan, on_event=on_event)


def build_catalog(root: Path, copies: list[str], fakes: list[dict]) -> Path:
    """A catalog directory with copies of shipped entries and fake ones."""
    for name in copies:
        shutil.copytree(DEFAULT_CATALOG_DIR / name, root / name)
    for entry in fakes:
        (root / entry["name"]).mkdir()
        (root / entry["name"] / "gateway.yaml").write_text(yaml.safe_dump(entry, sort_keys=False))
    return root


def start_mock(sup, work: Path):
    """The real WireMock mock as the local runner starts it, ready to serve; returns (process, base URL)."""
    from aigw_bench.local.probes import wait_ready
    from aigw_bench.templating import render_list

    mock = load_mock()
    spec = mock.local
    ctx = {"port": spec.port, "install_dir": str(install.install_dir_for(mock.name)), "entry_dir": str(mock.entry_dir),
           "work_dir": str(work), "cpus": 1, "cpu_list": "", "model": "", "mock_url": "", "mock_host": "127.0.0.1",
           "mock_port": spec.port}
    proc = sup.start("mock", render_list(spec.command, ctx, "mock"), work / "mock.log")
    base = f"http://127.0.0.1:{spec.port}"
    wait_ready("mock", base + spec.ready.path, timeout=spec.ready.timeout_s, proc=proc)
    return proc, base
