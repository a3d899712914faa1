"""Faults in a real run: a gateway that exits at start, one that never becomes ready, one that answers
errors, one killed mid-run; each is recorded with its evidence, nothing is left running, and the
targets after it are still measured. Also: k6 output cut short, port conflicts, Ctrl-C."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from aigw_bench.local.processes import Supervisor
from aigw_bench.measure.events import Tick
from analysis.report import write_report
from schema.errors import ConfigError, PortInUseError
from schema.mock import load_mock, load_profile
from schema.results import read_outcomes
from tests.helpers import SHORT_RIG_ENV, answering, build_catalog, fake_gateway, make_runner, tool_processes

pytestmark = pytest.mark.slow

EXITS = "import sys; print('fatal: invalid configuration', file=sys.stderr); sys.exit(3)"
HANGS = "import time; print('loading...', flush=True); time.sleep(300)"
ERRORS = answering(502, b'{"error": {"message": "no upstream configured"}}')


@pytest.fixture(scope="module")
def faulty_run(tmp_path_factory, tools_ready):
    root = build_catalog(tmp_path_factory.mktemp("catalog"), copies=["direct", "nginx"], fakes=[
        fake_gateway("exits", 18991, EXITS),
        fake_gateway("hangs", 18992, HANGS, ready_timeout=2),
        fake_gateway("errors", 18993, ERRORS),
    ])

    killed = {}

    def on_event(event):
        # Kill nginx's whole process group one second into its measurement.
        if isinstance(event, Tick) and event.target == "nginx" and not event.warmup and event.elapsed >= 1 \
                and not killed:
            run_dir = runner.run_dir
            pid = int((run_dir / "targets" / "nginx" / "r1" / "nginx.pid").read_text())
            os.killpg(os.getpgid(pid), signal.SIGKILL)
            killed["pid"] = pid

    before = tool_processes()
    runner = make_runner(root, ["exits", "hangs", "errors", "nginx", "direct"],
                         tmp_path_factory.mktemp("results"), on_event=on_event)
    run_dir = runner.run()
    left = tool_processes() - before
    return {"run_dir": run_dir, "left": left, "killed": killed,
            "outcomes": {o.target: o for o in read_outcomes(run_dir)}}


def test_nothing_is_left_running(faulty_run):
    assert faulty_run["left"] == set()


def test_gateway_that_exits_at_start(faulty_run):
    o = faulty_run["outcomes"]["exits"]
    assert o.status == "failed_to_start"
    assert o.evidence["exit_code"] == 3
    assert "fatal: invalid configuration" in "\n".join(o.evidence["log_tail"])


def test_gateway_that_never_becomes_ready(faulty_run):
    o = faulty_run["outcomes"]["hangs"]
    assert o.status == "not_ready"
    assert "did not become ready within 2 s" in o.reason
    assert o.evidence["log_tail"] == ["loading..."]


def test_gateway_that_answers_errors_is_not_served_with_evidence(faulty_run):
    o = faulty_run["outcomes"]["errors"]
    assert o.status == "not_served"
    assert o.evidence["smoke"]["http_status"] == 502
    assert "no upstream configured" in o.evidence["smoke"]["body_snippet"]


def test_gateway_killed_mid_run_keeps_its_partial_data(faulty_run):
    assert faulty_run["killed"], "the test never got to kill nginx"
    o = faulty_run["outcomes"]["nginx"]
    assert o.status == "died"
    assert o.evidence["signal"] == signal.SIGKILL
    assert "summary" in o.files  # k6 was stopped gracefully and wrote what it measured
    summary = json.loads((faulty_run["run_dir"] / "targets/nginx/r1/seed/summary.json").read_text())
    assert summary["metrics"]["http_reqs"]["values"]["count"] > 0
    assert o.measure_seconds < 3 + 5  # stopped early, not run to the end


def test_targets_after_the_faults_are_still_measured(faulty_run):
    assert faulty_run["outcomes"]["direct"].status == "ok"


def test_report_lists_each_fault_with_its_evidence(faulty_run):
    paths = write_report(faulty_run["run_dir"])
    text = paths["markdown"].read_text()
    assert "**exits** (repeat 1): failed to start" in text and "exit code: 3" in text
    assert "**hangs** (repeat 1): never ready" in text
    assert "**errors** (repeat 1): not served" in text and "first request answered HTTP 502" in text
    assert "**nginx** (repeat 1): died under load" in text
    table = pd.read_csv(paths["comparison"]).set_index("target")
    assert table.loc["nginx", "valid"] == False  # noqa: E712 - partial data is not a valid measurement
    assert table.loc["nginx", "requests"] > 0 and table.loc["direct", "valid"] == True  # noqa: E712


def test_summary_cut_short_is_named_and_gives_no_numbers(faulty_run, tmp_path):
    run_dir = tmp_path / "copy"
    shutil.copytree(faulty_run["run_dir"], run_dir)
    summary = run_dir / "targets/direct/r1/seed/summary.json"
    summary.write_bytes(summary.read_bytes()[: summary.stat().st_size // 2])
    paths = write_report(run_dir)
    text = paths["markdown"].read_text()
    assert "**direct** (repeat 1): invalid k6 output. direct (repeat 1): summary.json is cut short" in text
    table = pd.read_csv(paths["comparison"]).set_index("target")
    assert pd.isna(table.loc["direct", "rps"]) and table.loc["direct", "status"] == "invalid_output"
    # The baseline is gone, so nothing is computed against it (no made-up numbers).
    assert pd.isna(table.loc["nginx", "rps_pct_of_baseline"])


def test_summary_missing_is_named(faulty_run, tmp_path):
    run_dir = tmp_path / "copy"
    shutil.copytree(faulty_run["run_dir"], run_dir)
    (run_dir / "targets/direct/r1/seed/summary.json").unlink()
    text = write_report(run_dir)["markdown"].read_text()
    assert "direct (repeat 1): summary.json is missing" in text


def test_port_conflict_is_a_clear_error_before_anything_starts(tmp_path, tools_ready, no_leftovers):
    port = load_mock().local.port
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", port))
        holder.listen()
        runner = make_runner(None, ["direct"], tmp_path / "results")
        with pytest.raises(PortInUseError, match=rf"{port} \(needed by mock\)"):
            runner.run()
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())
    # The same for the rig's measurement on its own (benchmarks/rig_ceiling.py): the port is named.
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", port))
        holder.listen()
        runner = make_runner(None, ["direct"], tmp_path / "alone")
        with Supervisor() as sup, pytest.raises(PortInUseError, match=rf"{port} \(needed by mock\)"):
            runner.engine.start_mock(sup, tmp_path, load_profile("instant"))


def test_ctrl_c_stops_everything_and_keeps_what_was_measured(tmp_path, tools_ready, no_leftovers):
    results = tmp_path / "results"
    cli = Path(sys.executable).parent / "aigw-bench"
    proc = subprocess.Popen(
        [str(cli), "run", "-s", "seed", "-t", "direct,portkey", "--duration", "30s", "--warmup", "0", "--vus", "5",
         "--results", str(results)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=SHORT_RIG_ENV,
    )
    output = []
    deadline = time.monotonic() + 60
    for line in proc.stdout:
        output.append(line)
        if "direct: seed" in line or time.monotonic() > deadline:
            break
    time.sleep(3)
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=90)
    text = "".join(output) + rest
    assert proc.returncode == 130, text
    run_dir = next(results.iterdir())
    outcomes = {o.target: o for o in read_outcomes(run_dir)}
    assert outcomes["direct"].status == "interrupted"
    assert "portkey" not in outcomes  # never started
    report = (run_dir / "report.md").read_text()
    assert "**direct** (repeat 1): interrupted" in report
    assert "**portkey** (repeat 1): not run" in report
    summary = json.loads((run_dir / "targets/direct/r1/seed/summary.json").read_text())
    assert summary["metrics"]["http_reqs"]["values"]["count"] > 0


def test_a_template_error_in_an_entry_fails_before_anything_starts(tmp_path, tools_ready, no_leftovers):
    entry = fake_gateway("typo", 18994, "pass")
    entry["local"]["command"].append("--workers={{ cpu_count }}")  # the variable is called `cpus`
    root = build_catalog(tmp_path / "catalog", copies=["direct"], fakes=[entry])
    runner = make_runner(root, ["direct", "typo"], tmp_path / "results")
    with pytest.raises(ConfigError, match=r"typo: local.command\[6\]: cannot render .*'cpu_count' is undefined"):
        runner.run()
    assert not (tmp_path / "results").exists()
