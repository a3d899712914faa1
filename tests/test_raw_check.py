"""A real run (real k6 against the real mock, a few seconds): what the analysis derives from k6's
per-request samples agrees with k6's own end-of-test summary."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from analysis.buckets import BUCKET_WIDTH, QUANTILE_ERROR, histogram_quantile
from analysis.report import write_report
from analysis.timeseries import read_second_histograms
from schema.results import read_outcomes
from tests.helpers import make_runner

pytestmark = pytest.mark.slow

QUANTILES = {"p(50)": 0.5, "p(90)": 0.9, "p(95)": 0.95, "p(99)": 0.99, "p(99.9)": 0.999}


@pytest.fixture(scope="module")
def direct_run(tmp_path_factory, tools_ready):
    run_dir = make_runner(None, ["direct"], tmp_path_factory.mktemp("results")).run()
    write_report(run_dir)
    return run_dir


def test_whole_run_percentiles_from_the_merged_histogram_agree_with_k6s_summary(direct_run):
    work = direct_run / "targets" / "direct" / "r1" / "seed"
    summary = json.loads((work / "summary.json").read_text())["metrics"]
    per_second = read_second_histograms(work / "histograms.parquet")
    for metric in ("http_req_duration", "http_req_waiting"):
        k6 = summary[metric]["values"]
        merged = per_second[per_second["metric"] == metric].groupby("bucket", as_index=False)["count"].sum()
        assert merged["count"].sum() == k6["count"] > 1000, metric
        for stat, q in QUANTILES.items():
            estimate = histogram_quantile(merged, q)
            # Within the bucket error (half a bucket); k6 writes six decimals to the CSV.
            assert abs(estimate - k6[stat]) <= QUANTILE_ERROR * k6[stat] + 1e-6, (metric, stat, estimate, k6[stat])
            assert abs(estimate - k6[stat]) <= BUCKET_WIDTH * k6[stat], (metric, stat)
    series = pd.read_csv(work / "timeseries.csv")
    assert series["requests"].sum() == summary["http_reqs"]["values"]["count"]
    # timeseries.csv has four decimals.
    assert series["latency_max_ms"].max() == pytest.approx(summary["http_req_duration"]["values"]["max"], abs=6e-5)


def test_the_check_is_recorded_where_the_report_reads_it(direct_run):
    work = direct_run / "targets" / "direct" / "r1" / "seed"
    record = json.loads((work / "raw-check.json").read_text())
    assert record["agrees"] is True and record["truncated"] is None
    checked = {(i["metric"], i["stat"]) for i in record["items"]}
    assert {("http_reqs", "count"), ("http_req_duration", "p(99)"), ("http_req_waiting", "p(95)"),
            ("http_req_duration", "max"), ("http_req_duration", "avg")} <= checked
    outcome = next(o for o in read_outcomes(direct_run) if o.target == "direct")
    assert outcome.evidence["raw_check"]["agrees"] is True
    assert outcome.files["second_histograms"] == "seed/histograms.parquet"
    assert "Per-request samples disagree" not in (direct_run / "report.md").read_text()
