"""Merging several load generators' results, and the matrix (up -> run -> destroy, resumable)."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from aigw_bench.cloud.matrix import PulumiWorkspace, run_matrix
from aigw_bench.cloud.merge import merge_generators
from analysis.buckets import histogram_quantile
from analysis.k6csv import DURATION
from analysis.report import build_report
from analysis.timeseries import aggregate_raw
from schema.errors import CloudError
from tests.cloud_fakes import stack_outputs
from tests.crafted import Target, k6_csv, make_run

pytestmark = pytest.mark.pure

CLI = str(Path(sys.executable).parent / "aigw-bench")


def write_generator(directory, durations, rps):
    directory.mkdir(parents=True)
    with gzip.open(directory / "raw.csv.gz", "wt") as fh:
        fh.write(k6_csv([[(float(d), 1) for d in durations]]))
    summary = {"metrics": {
        "http_reqs": {"values": {"count": len(durations), "rate": rps}},
        "http_req_duration": {"values": {"avg": float(np.mean(durations)), "min": float(np.min(durations)),
                                         "max": float(np.max(durations)), "p(95)": float(np.quantile(durations, .95)),
                                         "count": len(durations)}},
        "aigw_ok": {"values": {"rate": 1.0}},
    }, "state": {"testRunDurationMs": 1000}}
    (directory / "summary.json").write_text(json.dumps(summary))


def test_merged_percentiles_equal_a_single_generator_on_the_same_data(tmp_path):
    rng = np.random.default_rng(11)
    fast, slow = rng.uniform(5, 15, 600), rng.uniform(90, 110, 400)
    write_generator(tmp_path / "gen1", fast, 600.0)
    write_generator(tmp_path / "gen2", slow, 400.0)
    merge_generators([tmp_path / "gen1", tmp_path / "gen2"], tmp_path)
    merged = json.loads((tmp_path / "summary.json").read_text())["metrics"]
    # One generator holding all the samples, computed the same way:
    write_generator(tmp_path / "single", np.concatenate([fast, slow]), 1000.0)
    single_hist = aggregate_raw(tmp_path / "single" / "raw.csv.gz").seconds.histogram(DURATION)
    for stat, q in (("p(50)", 0.5), ("p(90)", 0.9), ("p(95)", 0.95), ("p(99)", 0.99)):
        assert merged["http_req_duration"]["values"][stat] == histogram_quantile(single_hist, q)
        exact = float(np.quantile(np.concatenate([fast, slow]), q))
        assert merged["http_req_duration"]["values"][stat] == pytest.approx(exact, rel=0.0055)
    # Averaging the generators' own p95s would say ~57 ms; the merged data says ~108 ms.
    naive = (np.quantile(fast, .95) + np.quantile(slow, .95)) / 2
    assert merged["http_req_duration"]["values"]["p(95)"] > naive * 1.5
    assert merged["http_reqs"]["values"] == {"count": 1000, "rate": 1000.0}
    assert merged["http_req_duration"]["values"]["avg"] == pytest.approx(np.mean(np.concatenate([fast, slow])))


class FakeWorkspace:
    def __init__(self, fail_up=(), fail_destroy=()):
        self.calls, self.fail_up, self.fail_destroy = [], set(fail_up), set(fail_destroy)
        self.lock = threading.Lock()

    def _log(self, *call):
        with self.lock:
            self.calls.append(call)

    def up(self, stack, log):
        self._log("up", stack)
        if stack in self.fail_up:
            raise RuntimeError(f"{stack}: the EKS cluster did not become active")

    def destroy(self, stack, log):
        self._log("destroy", stack)
        if stack in self.fail_destroy:
            raise RuntimeError("DependencyViolation on the VPC")

    def outputs(self, stack):
        return stack_outputs(stack, stack, "http://10.0.0.1", ["i-0123456789abcdef0"], None)


RIG_CEILINGS = {"direct": 40000, "kong": 35000, "portkey": 42000, "litellm": 39000}


def crafted_benchmark(measured):
    roles = {"direct": "baseline", "kong": "gateway", "portkey": "gateway", "litellm": "gateway"}

    def benchmark(outputs, root):
        measured.append(outputs.stack)
        rps = {"direct": 20000, "kong": 9000, "portkey": 3000, "litellm": 1000}[outputs.stack]
        run = make_run(root, {outputs.stack: Target(role=roles[outputs.stack], rps=[rps])}, name="run")
        manifest = json.loads((run / "manifest.json").read_text())
        manifest["cost"] = {"hourly_usd": 4.0, "per_target_hourly_usd": {outputs.stack: 4.0}, "run_usd": 0.5}
        # Each stack's rig as the stage records it (its own mock and runners).
        rig = {"mock": "fast", "ceiling_rps": RIG_CEILINGS[outputs.stack], "floor_ms": {"p50": 0.2}}
        manifest["cloud"] = {outputs.stack: {"stack": outputs.stack, "rig": rig}}
        manifest["rig"] = rig
        (run / "manifest.json").write_text(json.dumps(manifest))
        return run

    return benchmark


def test_matrix_runs_every_stack_records_a_failure_and_destroys_everything(tmp_path):
    ws, measured = FakeWorkspace(fail_up={"litellm"}), []
    result = run_matrix(["direct", "kong", "portkey", "litellm"], tmp_path / "m", ws, crafted_benchmark(measured))
    assert sorted(measured) == ["direct", "kong", "portkey"]
    assert list(result.failed) == ["litellm"] and "did not become active" in result.failed["litellm"][0]
    # Every stack is destroyed, the failed one too (a failed `up` leaves resources behind).
    assert sorted(s for c, s in ws.calls if c == "destroy") == ["direct", "kong", "litellm", "portkey"]
    report = build_report(result.combined)
    table = report.table.set_index("target")
    assert set(table.index) == {"direct", "kong", "portkey"}
    assert table.loc["kong", "rps_pct_of_baseline"] == pytest.approx(45.0)
    assert "kong delivered 200% more RPS than portkey" in report.paths["markdown"].read_text()
    combined = json.loads((result.combined / "manifest.json").read_text())
    assert combined["cost"]["run_usd"] == 1.5
    # Judged against the weakest rig of the stacks measured (kong's), whichever stack came first.
    assert combined["rig"]["ceiling_rps"] == 35000 and combined["rig"]["stack"] == "kong"
    assert set(combined["cloud"]) == {"direct", "kong", "portkey"}


def test_matrix_resumes_without_measuring_finished_stacks_again(tmp_path):
    directory = tmp_path / "m"
    first_measured = []
    run_matrix(["kong", "litellm"], directory, FakeWorkspace(fail_up={"litellm"}), crafted_benchmark(first_measured))
    again = []
    result = run_matrix(["kong", "litellm"], directory, FakeWorkspace(), crafted_benchmark(again))
    assert again == ["litellm"]  # kong was measured already
    assert set(build_report(result.combined).table["target"]) == {"kong", "litellm"}
    rerun = []
    run_matrix(["kong"], directory, FakeWorkspace(), crafted_benchmark(rerun), rerun=True)
    assert rerun == ["kong"]


def test_a_failed_destroy_is_reported_loudly(tmp_path):
    result = run_matrix(["kong"], tmp_path / "m", FakeWorkspace(fail_destroy={"kong"}), crafted_benchmark([]))
    errors = result.state.stacks["kong"].errors
    assert errors and "destroy failed, resources may remain" in errors[0]
    assert result.state.stacks["kong"].destroyed is False


def test_keep_leaves_stacks_deployed(tmp_path):
    ws = FakeWorkspace()
    run_matrix(["kong"], tmp_path / "m", ws, crafted_benchmark([]), keep=True)
    assert ("destroy", "kong") not in ws.calls


def fake_tool(directory, name: str) -> Path:
    """A stand-in CLI that records that it was called (and does nothing else)."""
    tool = directory / name
    tool.write_text(f"#!/bin/sh\necho \"$0 $*\" >> {directory / 'calls.log'}\nexit 1\n")
    tool.chmod(0o755)
    return tool


def test_matrix_without_the_aws_cli_stops_before_any_stack_is_deployed(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_tool(bin_dir, "pulumi")  # Pulumi present, AWS CLI absent
    matrix_dir = tmp_path / "m"
    env = {**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin"}
    out = subprocess.run([CLI, "cloud", "matrix", "--stacks", "kong", "--dir", str(matrix_dir)],
                         capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 2, out.stdout + out.stderr
    text = " ".join((out.stdout + out.stderr).split())
    assert "the AWS CLI is not installed (no `aws` on PATH)" in text
    assert "docs.aws.amazon.com/cli" in text and "aws eks get-token" in text
    assert not (bin_dir / "calls.log").exists() and not matrix_dir.exists()  # nothing touched


def test_the_workspace_checks_both_clis_itself(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_tool(bin_dir, "aws")
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(CloudError, match=r"the Pulumi CLI is not installed"):
        PulumiWorkspace(tmp_path).up("kong", tmp_path / "up.log")
    fake_tool(bin_dir, "pulumi")
    (bin_dir / "aws").unlink()
    with pytest.raises(CloudError, match=r"the AWS CLI is not installed"):
        PulumiWorkspace(tmp_path).destroy("kong", tmp_path / "destroy.log")
