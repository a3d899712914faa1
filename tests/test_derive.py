"""A report derives per-second files only where they are missing or stale, several at once, and reuses the rest."""

from __future__ import annotations

import gzip
import json
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from typing import ClassVar

import pandas as pd
import pytest

from analysis import derive
from analysis.derive import ensure_derived
from analysis.report import build_report
from analysis.timeseries import SERIES_FILES, write_timeseries
from schema.results import read_outcomes, target_dir, write_outcome
from tests.crafted import Target, k6_csv, make_run

pytestmark = pytest.mark.pure


def add_raw(run_dir, target, seconds, repeat=1):
    work = target_dir(run_dir, target, repeat)
    with gzip.open(work / "raw.csv.gz", "wt") as fh:
        fh.write(k6_csv(seconds))
    outcome = next(o for o in read_outcomes(run_dir) if o.target == target and o.repeat == repeat)
    outcome.files["raw"] = "raw.csv.gz"
    write_outcome(run_dir, outcome)
    return work


def requests_per_second(work):
    return pd.read_csv(work / "timeseries.csv")["requests"].tolist()


def test_report_reuses_fresh_series_and_derives_stale_ones_again(tmp_path):
    run_dir = make_run(tmp_path, {"direct": Target(role="baseline")}, duration_s=3)
    work = add_raw(run_dir, "direct", [[(10.0, 1)] * 50] * 3)
    changed = ensure_derived(run_dir, read_outcomes(run_dir))
    assert [o.target for o in changed] == ["direct"]
    assert requests_per_second(work) == [50, 50, 50]
    outcome = read_outcomes(run_dir)[0]
    assert all(outcome.files[k] == v for k, v in SERIES_FILES.items())
    assert outcome.evidence["raw_check"]["checked"] > 0

    # Same raw file name, other content, but older than the derived files: reused, the raw file is not read.
    stamp = (work / "timeseries.csv").stat().st_mtime
    with gzip.open(work / "raw.csv.gz", "wt") as fh:
        fh.write(k6_csv([[(10.0, 1)] * 7] * 2))
    os.utime(work / "raw.csv.gz", (stamp - 60, stamp - 60))
    assert ensure_derived(run_dir, read_outcomes(run_dir)) == []
    build_report(run_dir)
    assert requests_per_second(work) == [50, 50, 50]

    # Newer raw file: derived again.
    os.utime(work / "raw.csv.gz", (stamp + 60, stamp + 60))
    assert len(ensure_derived(run_dir, read_outcomes(run_dir))) == 1
    assert requests_per_second(work) == [7, 7]

    # Derived by an older version of the analysis: derived again.
    check = json.loads((work / "raw-check.json").read_text())
    (work / "raw-check.json").write_text(json.dumps({**check, "format": 1}))
    os.utime(work / "raw.csv.gz", (stamp - 60, stamp - 60))
    assert len(ensure_derived(run_dir, read_outcomes(run_dir))) == 1


def test_files_a_runner_wrote_are_listed_in_its_outcome_without_deriving_again(tmp_path):
    run_dir = make_run(tmp_path, {"direct": Target(role="baseline")}, duration_s=3)
    work = add_raw(run_dir, "direct", [[(10.0, 1)] * 20] * 2)
    write_timeseries(work / "raw.csv.gz", work / "timeseries.csv")  # as the runners do
    before = (work / "timeseries.csv").stat().st_mtime_ns
    assert len(ensure_derived(run_dir, read_outcomes(run_dir))) == 1
    assert (work / "timeseries.csv").stat().st_mtime_ns == before
    outcome = read_outcomes(run_dir)[0]
    assert outcome.files["raw_check"] == "raw-check.json" and "raw_check" in outcome.evidence
    assert ensure_derived(run_dir, read_outcomes(run_dir)) == []


class CountingPool(ProcessPoolExecutor):
    started: ClassVar[list[int]] = []

    def __init__(self, workers, **kwargs):
        CountingPool.started.append(workers)
        super().__init__(workers, **kwargs)


def three_stale_targets(tmp_path):
    targets = {"direct": Target(role="baseline"), "nginx": Target(role="floor"), "portkey": Target()}
    run_dir = make_run(tmp_path, targets, duration_s=3)
    for i, name in enumerate(targets):
        add_raw(run_dir, name, [[(5.0 + i + j % 13, int(j % 9 != 0)) for j in range(100 + 10 * i)]] * 3)
    reference = tmp_path / "reference"
    for name in targets:
        shutil.copytree(target_dir(run_dir, name, 1), reference / name)
        write_timeseries(reference / name / "raw.csv.gz", reference / name / "timeseries.csv")
    return run_dir, reference, list(targets)


def assert_same_files(run_dir, reference, targets):
    for name in targets:
        for file in ("timeseries.csv", "histogram.csv", "statuses.csv", "histograms.parquet", "raw-check.json"):
            assert (target_dir(run_dir, name, 1) / file).read_bytes() == (reference / name / file).read_bytes()


def test_with_cpus_for_several_files_stale_targets_are_derived_side_by_side_in_worker_processes(tmp_path,
                                                                                               monkeypatch):
    run_dir, reference, targets = three_stale_targets(tmp_path)
    monkeypatch.setattr(derive, "usable_cpus", lambda: 6)
    monkeypatch.setattr(derive, "ProcessPoolExecutor", CountingPool)
    CountingPool.started.clear()
    assert len(ensure_derived(run_dir, read_outcomes(run_dir))) == 3
    assert CountingPool.started == [2]  # 6 CPUs, ~3 per file
    assert_same_files(run_dir, reference, targets)


def test_on_two_cpus_stale_targets_are_derived_one_after_the_other_with_both(tmp_path, monkeypatch):
    run_dir, reference, targets = three_stale_targets(tmp_path)
    monkeypatch.setattr(derive, "usable_cpus", lambda: 2)
    monkeypatch.setattr(derive, "ProcessPoolExecutor", CountingPool)
    CountingPool.started.clear()
    seen = []
    real = derive.aggregate_raw
    monkeypatch.setattr(derive, "aggregate_raw", lambda raw, threads=None: seen.append(threads) or real(raw))
    assert len(ensure_derived(run_dir, read_outcomes(run_dir))) == 3
    assert CountingPool.started == [] and seen == [2, 2, 2]
    assert_same_files(run_dir, reference, targets)


def test_a_raw_file_that_disagrees_with_the_summary_is_a_finding(tmp_path):
    run_dir = make_run(tmp_path, {"direct": Target(role="baseline", rps=[100.0])}, duration_s=3)
    # The summary says 300 requests; the raw file holds 120.
    add_raw(run_dir, "direct", [[(10.0, 1)] * 40] * 3)
    report = build_report(run_dir)
    found = [f for f in report.findings if f.rule == "raw_mismatch"]
    assert len(found) == 1 and "http_reqs count: 120 from the raw samples, 300 in k6's summary" in found[0].message
    assert "Per-request samples disagree with k6's summary" in report.paths["markdown"].read_text()
