"""The report's judgements on crafted result sets: every validity rule, repeats and intervals,
headline caveats, cost, run-to-run comparison. (Real runs are covered in test_local_run.py.)"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest

from analysis.compare import comparison
from analysis.compare_runs import compare_runs
from analysis.load import load_run
from analysis.report import build_report
from analysis.stats import summarize_repeats
from tests.crafted import SuiteTarget, Target, make_run, make_suite_run

pytestmark = pytest.mark.pure

CLEAN = {
    "direct": Target(role="baseline", rps=[5000], p50=5, p95=10, p99=15, cpu={"loadgen": 0.3, "mock": 0.3}),
    "nginx": Target(role="floor", rps=[3000], p50=6, p95=12, p99=18, cpu={"loadgen": 0.3, "mock": 0.3}),
    "fastgw": Target(rps=[1000], p50=20, p95=40, p99=60, cpu={"loadgen": 0.2, "mock": 0.2, "gateway": 1.0}),
    "slowgw": Target(rps=[250], p50=80, p95=160, p99=240, cpu={"loadgen": 0.1, "mock": 0.1, "gateway": 1.0}),
}


def report_for(tmp_path, targets, **kw):
    return build_report(make_run(tmp_path, targets, **kw))


def rules(report) -> set[tuple[str, str]]:
    return {(f.rule, f.target) for f in report.findings}


CLOSED_LOOP = "closed loop: throughput at each target's limit; its latency is queueing, not overhead"


def test_a_clean_set_has_no_findings_and_a_headline(tmp_path):
    report = report_for(tmp_path, CLEAN)
    assert report.findings == []
    assert report.headlines[0].text == "fastgw delivered 300% more RPS than slowgw (closed loop)"
    assert "one repeat" in report.headlines[0].caveats[0] and CLOSED_LOOP in report.headlines[0].caveats
    md = report.paths["markdown"].read_text()
    assert "## Validity" not in md and md.index("## Headline") < md.index("## The rig") < md.index("## Results")


def test_a_closed_loop_gives_no_added_latency_an_arrival_rate_does(tmp_path):
    closed = report_for(tmp_path / "closed", CLEAN)
    assert not any("added" in h.text or "latency" in h.text for h in closed.headlines)
    assert "+p50 ms" not in closed.paths["markdown"].read_text()
    assert "latency is queueing" in closed.paths["markdown"].read_text()
    open_model = report_for(tmp_path / "open", CLEAN, executor="constant-arrival-rate")
    added = [h.text for h in open_model.headlines if "added" in h.text]
    assert "fastgw added +15.00 ms at p50 and +30.00 ms at p95 over direct-to-mock at the same arrival rate" in added
    assert "+p50 ms" in open_model.paths["markdown"].read_text()


def test_error_rate_above_threshold(tmp_path):
    report = report_for(tmp_path, {**CLEAN, "slowgw": Target(rps=[250], error_rate=0.05)})
    assert ("errors", "slowgw") in rules(report)
    row = report.table.set_index("target").loc["slowgw"]
    assert not row["valid"]
    # An invalid target drops out of the gateway-vs-gateway headline.
    assert not any("slowgw" in h.text and "more RPS" in h.text for h in report.headlines)


def test_a_target_near_the_rig_ceiling_is_rig_bound_and_reads_at_least(tmp_path):
    rig = {"mock": "fast", "profile": "instant", "cpu": "crafted", "ceiling_rps": 5000.0, "ceiling_vus": 50,
           "floor_ms": {"p50": 0.1, "p99": 0.5}}
    report = report_for(tmp_path, {**CLEAN, "fastgw": Target(rps=[4100], p50=6, p95=11, p99=16)}, rig=rig)
    assert ("rig_bound", "fastgw") in rules(report)  # 4100 / 5000 = 82% of the ceiling
    assert ("rig_bound", "slowgw") not in rules(report)
    row = report.table.set_index("target").loc["fastgw"]
    assert bool(row["rig_bound"]) and row["rig_ceiling_rps"] == 5000
    md = report.paths["markdown"].read_text()
    assert "| fastgw | gateway | 1.0 | measured | 82,000 | >= 4,100.0 | 82% |" in md
    assert "| slowgw | gateway | 1.0 | measured | 5,000 | 250.0 | 5% |" in md
    assert "ceiling **5,000 RPS**" in md


def test_without_a_rig_measurement_the_report_says_so(tmp_path):
    report = report_for(tmp_path, CLEAN, rig={"mock": "fast", "error": "the mock exited with code 1"})
    assert ("rig", "rig") in rules(report)
    assert "could not be measured: the mock exited with code 1" in report.paths["markdown"].read_text()


def test_load_generator_saturated_cpu(tmp_path):
    busy = Target(role="baseline", rps=[5000], cpu={"loadgen": 0.55, "mock": 0.45})
    report = report_for(tmp_path, {**CLEAN, "direct": busy})
    assert ("loadgen_bottleneck", "direct") in rules(report)
    assert ("loadgen_bottleneck", "fastgw") not in rules(report)


def test_load_generator_with_separate_cpus_is_judged_alone(tmp_path):
    pinning = {"loadgen": [0], "mock": [1], "gateway": [2, 3], "note": "4 CPUs"}
    report = report_for(tmp_path, {**CLEAN, "direct": Target(role="baseline", rps=[5000],
                                                                cpu={"loadgen": 0.5, "mock": 0.95})},
                        cpu_pinning=pinning)
    assert ("loadgen_bottleneck", "direct") not in rules(report)


def test_dropped_iterations_in_arrival_rate_runs(tmp_path):
    report = report_for(tmp_path, {**CLEAN, "slowgw": Target(rps=[250], dropped=1200)})
    finding = next(f for f in report.findings if f.rule == "loadgen_bottleneck" and f.target == "slowgw")
    assert "dropped 1,200 iterations" in finding.message


def test_too_few_requests_for_p99(tmp_path):
    report = report_for(tmp_path, {**CLEAN, "slowgw": Target(rps=[250], requests=400)})
    finding = next(f for f in report.findings if f.rule == "few_requests")
    assert finding.target == "slowgw" and "p99" in finding.message and "p95" not in finding.message


def test_unequal_work_response_size_body_and_status_mix(tmp_path):
    targets = {**CLEAN,
               "fastgw": Target(rps=[1000], response_bytes=900),
               "slowgw": Target(rps=[250], body_sha256="other-body", statuses={200: 4990, 502: 10})}
    report = report_for(tmp_path, targets)
    messages = {f.target: f.message for f in report.findings if f.rule == "unequal_work" and f.target == "fastgw"}
    assert "900 bytes" in messages["fastgw"]
    slow = [f.message for f in report.findings if f.rule == "unequal_work" and f.target == "slowgw"]
    assert any("different request body" in m for m in slow)
    assert any("HTTP 502: 10" in m for m in slow)


def test_validity_comes_before_the_headline_in_both_reports(tmp_path):
    report = report_for(tmp_path, {**CLEAN, "slowgw": Target(rps=[250], error_rate=0.2)})
    md = report.paths["markdown"].read_text()
    html = report.paths["html"].read_text()
    assert md.index("## Validity") < md.index("## Headline")
    assert html.index('id="validity"') < html.index('id="headline"')


def test_repeats_give_mean_interval_and_cv(tmp_path):
    targets = {**CLEAN, "fastgw": Target(rps=[1000, 1100, 900], p95=[40, 42, 38]),
               "slowgw": Target(rps=[250, 260, 240], p95=[160, 170, 150])}
    for t in ("direct", "nginx"):
        targets[t] = Target(role=CLEAN[t].role, rps=[CLEAN[t].rps[0]] * 3, p50=CLEAN[t].p50, p95=CLEAN[t].p95,
                            p99=CLEAN[t].p99)
    report = report_for(tmp_path, targets, repeats=3)
    row = report.table.set_index("target").loc["fastgw"]
    values = np.array([1000, 1100, 900])
    assert row["rps"] == pytest.approx(1000)
    # Three repeats: their range, not Student's t with 2 degrees of freedom (which would give 752-1248).
    assert (row["rps_ci_low"], row["rps_ci_high"]) == pytest.approx((900, 1100))
    assert row["rps_cv"] == pytest.approx(values.std(ddof=1) / 1000)
    head = report.headlines[0]
    assert head.text.startswith("fastgw delivered 300% more RPS than slowgw")
    assert head.caveats == [CLOSED_LOOP]  # intervals far apart: the difference is significant
    assert "### Repeats" in report.paths["markdown"].read_text()


def test_overlapping_intervals_are_not_called_significant(tmp_path):
    targets = {"direct": Target(role="baseline", rps=[5000] * 3),
               "a": Target(rps=[1000, 1300, 800]), "b": Target(rps=[950, 1000, 1050])}
    report = report_for(tmp_path, targets, repeats=3)
    head = next(h for h in report.headlines if "more RPS" in h.text)
    assert "the RPS difference is within the repeats' intervals: not significant" in head.caveats
    assert ("noisy", "a") in rules(report)


def test_summarize_repeats_single_value_has_no_interval():
    frame = pd.DataFrame({"target": ["x"], "repeat": [1], "metric": ["rps"], "value": [10.0]})
    out = summarize_repeats(frame).iloc[0]
    assert out["n"] == 1 and math.isnan(out["ci_low"]) and math.isnan(out["cv"])


def test_cost_per_million_requests_for_cloud_runs(tmp_path):
    run_dir = make_run(tmp_path, CLEAN)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    manifest["cost"] = {"hourly_usd": 3.6, "run_usd": 0.9, "price_table": "us-east-1 2026-11"}
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    report = build_report(run_dir)
    md = report.paths["markdown"].read_text()
    # 3.6 USD/h at 1000 RPS = 3.6 / 3.6e6 * 1e6 = 1.0 USD per million requests.
    assert "| fastgw | 1,000 | 1.0000 |" in md
    assert "this run about 0.90 USD" in md
    assert 'id="cost"' in report.paths["html"].read_text()


def test_html_is_self_contained(tmp_path):
    html = report_for(tmp_path, CLEAN).paths["html"].read_text()
    # Nothing is fetched when it opens: no scripts, stylesheets, images or fonts from anywhere.
    for needle in ("<script", "<link", 'src="', "href=\"http", "url(http", "@import"):
        assert needle not in html, needle
    assert html.count("<svg") >= 4  # throughput, latency, over time, resources (no histograms crafted)


def test_parquet_copies_hold_the_data(tmp_path):
    report = report_for(tmp_path, CLEAN)
    series = pd.read_parquet(report.paths["timeseries"])
    assert set(series["target"]) == set(CLEAN) and {"t_s", "requests", "repeat"} <= set(series.columns)
    metrics = pd.read_parquet(report.paths["metrics"])
    assert metrics.query("target == 'fastgw' and metric == 'rps'")["value"].iloc[0] == 1000


def test_compare_runs_flags_a_regression_beyond_the_threshold(tmp_path):
    before = make_run(tmp_path, CLEAN, name="before")
    after = make_run(tmp_path, {**CLEAN, "fastgw": Target(rps=[800], p50=20, p95=41, p99=60)}, name="after")
    result = compare_runs(before, after, threshold=0.05)
    reg = result.regressions.set_index(["target", "metric"])
    assert ("fastgw", "rps") in reg.index
    assert reg.loc[("fastgw", "rps"), "change_pct"] == pytest.approx(-20)
    assert ("fastgw", "latency_p95_ms") not in reg.index  # +2.5%: within the noise threshold


def test_compare_runs_uses_intervals_when_both_have_repeats(tmp_path):
    mk = lambda rps: {"direct": Target(role="baseline", rps=[5000] * 3), "gw": Target(rps=rps)}  # noqa: E731
    before = make_run(tmp_path, mk([1000, 1010, 990]), repeats=3, name="before")
    noisy_after = make_run(tmp_path, mk([900, 1100, 950]), repeats=3, name="after")
    result = compare_runs(before, noisy_after)
    row = result.table.set_index(["target", "metric"]).loc[("gw", "rps")]
    assert row["judged_by"] == "intervals" and row["verdict"] == "within noise"


def test_compare_judges_added_latency_against_the_rigs_own_resolution(tmp_path):
    """Two suite runs where the floor moved 8 µs, beyond its tight interval but within what the A/A
    control read in each run (8 µs, then 10 µs): within noise. A gateway 1 ms slower: a regression."""
    def run(name, aa_ms, floor_ms, gw_ms):
        return make_suite_run(tmp_path / name, {"direct": SuiteTarget(role="baseline", aa_ms=aa_ms),
                                                "floor": SuiteTarget(role="floor", added_ms=floor_ms),
                                                "gw": SuiteTarget(added_ms=gw_ms)}, name=name)
    result = compare_runs(run("before", 0.008, 0.100, 2.0), run("after", 0.010, 0.108, 3.0))
    rows = result.table.set_index(["target", "metric"])
    floor = rows.loc[("floor", "added_p50_us")]
    assert floor["after"] - floor["before"] == pytest.approx(8, abs=2)
    assert floor["verdict"] == "within noise" and "A/A control" in floor["judged_by"], floor
    assert rows.loc[("gw", "added_p50_us"), "verdict"] == "regression"


def test_table_is_one_row_per_target_in_role_order(tmp_path):
    table = comparison(load_run(make_run(tmp_path, CLEAN)))
    assert table["target"].tolist() == ["direct", "nginx", "fastgw", "slowgw"]


def test_targets_of_one_role_are_told_apart_in_tables_and_charts(tmp_path):
    """Two floors and a config variant of a gateway: a colour of its own each, the title beside each name."""
    targets = {**CLEAN,
               "haproxy": Target(role="floor", rps=[2900], p50=6, p95=12, p99=18, cpu={"loadgen": 0.3, "mock": 0.3}),
               "fastgw-variant": Target(rps=[990], p50=20, p95=40, p99=60,
                                        cpu={"loadgen": 0.2, "mock": 0.2, "gateway": 1.0})}
    report = report_for(tmp_path, targets)
    html = report.paths["html"].read_text()
    swatches = dict((t, c) for c, t in re.findall(r'class="swatch" style="background: (#[0-9A-Fa-f]{6})"></span>'
                                                  r'([\w-]+)', html))
    assert set(swatches) == set(targets) and len(set(swatches.values())) == len(targets)
    md = report.paths["markdown"].read_text()
    assert "| haproxy (haproxy) |" in md and "| fastgw-variant (fastgw-variant) |" in md
