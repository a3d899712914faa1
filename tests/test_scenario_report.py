"""The published harnesses' own report sections on crafted runs with known answers: a ramp's stages and
where each target stops scaling, a sustained run's drift verdicts, hey's distribution and InferXgate's
per-request figures (tokens per second, time to first byte)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.buckets import bucket_index
from analysis.drift import latency_drift, rss_drift
from analysis.report import build_report
from analysis.stages import assign_stages, schedule
from schema.results import read_outcomes, target_dir, write_outcome
from tests.crafted import Target, add_raw, make_run

pytestmark = pytest.mark.pure

# ------------------------------------------------------------------------------------ the ramp
# 1 VU, then 10 s to 2, 10 s to 4, 10 s to 8 VUs, 5 s down to 0 (35 s); k6's vus sample each second.
RAMP = {"vus": 1, "duration": 35, "warmup": 0, "prompt": "Hi", "max_tokens": 100, "stream": False,
        "think_time": 0, "stages": [{"duration": 10, "target": 2}, {"duration": 10, "target": 4},
                                    {"duration": 10, "target": 8}, {"duration": 5, "target": 0}]}
VUS = [2] * 10 + [4] * 10 + [8] * 10 + [1] * 5


def _seconds(per_stage: list[tuple[int, float]]) -> list[list[float]]:
    """Each second of each stage: n requests, 90% at ``base`` ms and 10% at 3 x ``base`` (so p50 = base,
    p95 = 3 x base, mean = 1.2 x base)."""
    out = []
    for (n, base), length in zip(per_stage, (10, 10, 10, 5), strict=True):
        second = [base] * (n - n // 10) + [3 * base] * (n // 10)
        out += [second] * length
    return out


def ramp_run(tmp_path):
    targets = {"direct": Target(role="baseline", rps=[30], tokens=10.0),
               "scales": Target(rps=[20], tokens=10.0), "knee": Target(rps=[15], tokens=10.0)}
    run = make_run(tmp_path, targets, duration_s=35, executor="ramping-vus", scenario_name="inferxgate-throughput",
                   scenario_params=RAMP, report=["completion_metrics", "stages"],
                   mock_profile={"name": "llm", "ttft_ms": 390, "per_token_ms": 12.3})
    # The first sample of active VUs comes a second into the run (as k6's does): second 0 has none.
    vus = [None, *VUS[1:]]
    add_raw(run, "direct", 1, _seconds([(10, 50), (20, 50), (40, 50), (10, 50)]), vus)
    add_raw(run, "scales", 1, _seconds([(10, 100), (20, 100), (40, 100), (10, 100)]), vus)
    # Latency up by half at 4 VUs, doubled at 8 with no more requests: each VU delivers 2/3, then half,
    # of what it did at 2.
    add_raw(run, "knee", 1, _seconds([(10, 100), (20, 150), (20, 200), (10, 100)]), vus)
    return run


def test_a_ramp_schedule_and_the_stage_of_each_second():
    stages = schedule(RAMP)
    assert stages[["start_s", "end_s", "vus_from", "vus_to"]].values.tolist() == [
        [0, 10, 1, 2], [10, 20, 2, 4], [20, 30, 4, 8], [30, 35, 8, 0]]
    assert stages["label"].tolist() == ["10 s to 2 VUs", "10 s to 4 VUs", "10 s to 8 VUs", "5 s to 0 VUs"]
    # k6's first vus sample in second 3: the schedule started at second 2, seconds 0-1 count with stage 1;
    # seconds past the schedule's end count with the last stage.
    series = pd.DataFrame({"t_s": np.arange(40), "vus": [np.nan] * 3 + [1.0] * 37})
    got = assign_stages(series, stages).tolist()
    assert got == [1] * 12 + [2] * 10 + [3] * 10 + [4] * 8


def test_per_stage_throughput_p95_and_where_scaling_stops(tmp_path):
    report = build_report(ramp_run(tmp_path))
    st = report.scenario.stages.set_index(["target", "stage"])
    scales, knee = st.loc["scales"], st.loc["knee"]
    assert scales["rps"].tolist() == [10, 20, 40, 10]
    assert scales["requests"].tolist() == [100, 200, 400, 50]
    assert scales["vus_mean"].tolist() == [2, 4, 8, 1]
    assert scales["latency_mean_ms"].tolist() == pytest.approx([120, 120, 120, 120])
    assert scales["p50_ms"].tolist() == pytest.approx([100] * 4, rel=0.006)
    assert scales["p95_ms"].tolist() == pytest.approx([300] * 4, rel=0.006)
    assert knee["latency_mean_ms"].tolist() == pytest.approx([120, 180, 240, 120])
    assert knee["p95_ms"].tolist() == pytest.approx([300, 450, 600, 300], rel=0.006)
    assert knee["ttfb_p95_ms"].tolist() == pytest.approx([270, 405, 540, 270], rel=0.006)  # waiting = 0.9 x
    assert st["ramps_down"].groupby("stage").all().tolist() == [False, False, False, True]
    # Per-VU throughput relative to the best earlier stage (stage 1, not the previous one):
    # (120 + 0) / (180 + 0) in stage 2, (120 + 0) / (240 + 0) in stage 3.
    assert knee["efficiency"].tolist()[:3] == pytest.approx([np.nan, 2 / 3, 0.5], nan_ok=True)
    assert scales["efficiency"].tolist()[:3] == pytest.approx([np.nan, 1.0, 1.0], nan_ok=True)
    assert np.isnan(knee["efficiency"].iloc[3])  # the ramp-down is not judged
    sc = report.scenario.scaling.set_index("target")
    assert (sc.loc["knee", "knee_stage"], sc.loc["knee", "knee_efficiency"]) == (2, pytest.approx(2 / 3))
    assert (sc.loc["knee", "best_stage"], sc.loc["knee", "peak_stage"], sc.loc["knee", "peak_rps"]) == (1, 2, 20)
    assert np.isnan(sc.loc["scales", "knee_stage"]) and sc.loc["scales", "last_judged_stage"] == 3
    assert (sc.loc["scales", "peak_stage"], sc.loc["scales", "peak_rps"]) == (3, 40)
    assert pd.read_csv(report.paths["stages"]).shape[0] == 12


def test_the_ramp_report_shows_stages_a_scaling_chart_and_its_headline(tmp_path):
    report = build_report(ramp_run(tmp_path))
    md, html = report.paths["markdown"].read_text(), report.paths["html"].read_text()
    for text in (md, html):
        assert "Throughput ramp: each stage" in text and "Throughput ramp: where each target stops scaling" in text
        assert "VUs ramping from 1: 10 s to 2, 10 s to 4, 10 s to 8, 5 s to 0 (35 s)" in text
    assert "| knee | 3: 10 s to 8 VUs | 4 → 8 | 8.0 | 10 | 200 | 20.0 |" in md
    assert "<svg" in html.split('id="chart-scaling"')[1][:200]
    heads = [h.text for h in report.headlines]
    knee = next(h for h in heads if h.startswith("knee"))
    assert ("stopped scaling in stage 2: each VU's throughput fell to 67% of stage 1's as mean latency rose from "
            "120 to 180 ms") in knee
    assert "scaled through stage 3" in next(h for h in heads if h.startswith("scales"))
    # Paced load: throughput restates latency, so no target-versus-target throughput statement.
    assert heads and not any("more RPS than" in h for h in heads)


# ------------------------------------------------------------------------------------- drift
def _hist(per_second: list[list[float]]) -> pd.DataFrame:
    rows = []
    for t, latencies in enumerate(per_second):
        buckets, counts = np.unique(bucket_index(np.asarray(latencies, dtype=float)), return_counts=True)
        rows += [{"metric": "http_req_duration", "t_s": t, "bucket": int(b), "count": int(c)}
                 for b, c in zip(buckets, counts, strict=True)]
    return pd.DataFrame(rows)


def _latencies(rng, seconds: int, median_ms: float, n: int = 10) -> list[list[float]]:
    return [list(rng.lognormal(np.log(median_ms), 0.1, n)) for _ in range(seconds)]


def test_latency_drift_verdicts():
    rng = np.random.default_rng(3)
    stable = latency_drift(_hist(_latencies(rng, 180, 100)), "gw", 1)
    assert stable["verdict"] == "stable" and abs(stable["change_pct"]) < 3
    assert (stable["samples_first"], stable["samples_last"]) == (600, 600)
    grows = latency_drift(_hist(_latencies(rng, 90, 100) + _latencies(rng, 90, 120)), "gw", 1)
    assert grows["verdict"] == "grows" and grows["change_pct"] == pytest.approx(20, abs=3) and grows["p_value"] < 1e-6
    falls = latency_drift(_hist(_latencies(rng, 90, 120) + _latencies(rng, 90, 100)), "gw", 1)
    assert falls["verdict"] == "falls"
    # Significant (every request of the last minute is slower) but one histogram bucket up: not growth.
    tiny = latency_drift(_hist([[100.0] * 50] * 90 + [[101.2] * 50] * 90), "gw", 1)
    assert tiny["p_value"] < 1e-6 and tiny["change_pct"] == pytest.approx(1.09, abs=0.01)
    assert tiny["verdict"] == "stable"
    short = latency_drift(_hist(_latencies(rng, 100, 100)), "gw", 1)
    assert short["verdict"] is None and "shorter than two 60 s windows" in short["note"]


def _rss(values) -> pd.DataFrame:
    return pd.DataFrame({"t_s": np.arange(len(values), dtype=float), "rss_mib": values})


def test_memory_drift_verdicts():
    t = np.arange(180)
    leak = rss_drift(_rss(200 + t * (2 / 60)), "gw", 1)  # 2 MiB a minute
    assert leak["verdict"] == "grows" and leak["slope_per_min"] == pytest.approx(2.0)
    assert leak["first"] == pytest.approx(200 + 29.5 * 2 / 60) and leak["slope_ci_low"] > 0
    # A leak with a burst at the start (15 samples at +150 MiB): the slope's estimate ignores the outliers.
    burst = rss_drift(_rss(200 + t * (2 / 60) + np.where((t >= 10) & (t < 25), 150, 0)), "gw", 1)
    assert burst["verdict"] == "grows" and burst["slope_per_min"] == pytest.approx(2.0, abs=0.05)
    sawtooth = rss_drift(_rss(200 + (t % 20) * 0.5), "gw", 1)  # garbage collection every 20 s, no trend
    assert sawtooth["verdict"] == "stable"
    settling = rss_drift(_rss(200 + t * (0.3 / 180)), "gw", 1)  # rises, but by 0.3 MiB: under the floor
    assert settling["slope_ci_low"] > 0 and settling["verdict"] == "stable"
    shrinking = rss_drift(_rss(300 - t * (5 / 60)), "gw", 1)
    assert shrinking["verdict"] == "falls"
    assert rss_drift(_rss(200 + t[:100] * 0.1), "gw", 1)["verdict"] is None


def test_the_sustained_report_shows_first_against_last_minute(tmp_path):
    targets = {"steady": Target(rps=[10], tokens=12.0), "leaky": Target(rps=[10], tokens=12.0)}
    params = {"vus": 10, "duration": 180, "warmup": 5, "prompt": "Hi", "max_tokens": 100, "stream": False,
              "think_time": 1}
    run = make_run(tmp_path, targets, duration_s=180, scenario_name="inferxgate-sustained", scenario_params=params,
                   report=["completion_metrics", "drift"])
    rng = np.random.default_rng(5)
    add_raw(run, "steady", 1, _latencies(rng, 180, 100))
    add_raw(run, "leaky", 1, _latencies(rng, 90, 100) + _latencies(rng, 90, 150))
    t = np.arange(180)
    for name, rss in (("steady", 200 + (t % 20) * 0.5), ("leaky", 200 + t * (4 / 60))):
        work = target_dir(run, name, 1)
        pd.DataFrame({"t_s": t, "role": "gateway", "cpu_cores": 0.5, "rss_mib": rss, "processes": 1}).to_csv(
            work / "resources.csv", index=False)
        outcome = next(o for o in read_outcomes(run) if o.target == name)
        outcome.files["resources"] = "resources.csv"
        write_outcome(run, outcome)
    report = build_report(run)
    drift = report.scenario.drift.set_index(["target", "quantity"])["verdict"].to_dict()
    assert drift == {("leaky", "latency"): "grows", ("leaky", "rss"): "grows",
                     ("steady", "latency"): "stable", ("steady", "rss"): "stable"}
    md, html = report.paths["markdown"].read_text(), report.paths["html"].read_text()
    for text in (md, html):
        assert "Sustained load: first minute against last" in text
    assert "| leaky | gateway RSS (median) |" in md and "<svg" in html.split('id="chart-drift"')[1][:200]
    leaky = next(h.text for h in report.headlines if h.text.startswith("leaky"))
    assert "gateway memory" in leaky and ": grows (+4.00 MiB/min" in leaky
    assert "latency p50" in leaky and ": grows (Mann-Whitney" in leaky
    assert pd.read_csv(report.paths["drift"]).shape[0] == 4


# --------------------------------------------------------------- per-request figures and hey's summary
def test_tokens_per_second_and_time_to_first_byte(tmp_path):
    targets = {"gw": Target(rps=[4], p50=1600, p95=1800, p99=1900, tokens=100.0, error_rate=0.0)}
    params = {"vus": 1, "duration": 100, "warmup": 5, "prompt": "Hi", "max_tokens": 100, "stream": False,
              "think_time": 1, "iterations": 30}
    run = make_run(tmp_path, targets, duration_s=100, executor="per-vu-iterations",
                   scenario_name="inferxgate-baseline", scenario_params=params, report=["completion_metrics"])
    report = build_report(run)
    row = report.table.set_index("target").loc["gw"]
    assert row["output_tokens_per_s"] == pytest.approx(400 * 100 / 100)  # 400 answers x 100 tokens over 100 s
    assert row["tokens_per_response"] == pytest.approx(100)
    assert row["request_tokens_per_s_p50"] == pytest.approx(100 / 1.6)
    md = report.paths["markdown"].read_text()
    assert "Per request: latency, time to first byte, output tokens" in md
    assert "| gw | 400 | 0.00% |" in md and "| 400.0 | 100.0 |" in md
    assert "1 VU x 30 requests each (at most 100 s), 1 s pause after each answer" in md
    head = next(h.text for h in report.headlines if h.text.startswith("gw"))
    assert "first byte at 1,600.0 ms (p50), 400.0 output tokens/s, 400 successful requests" in head


def test_hey_summary_in_its_own_terms(tmp_path):
    targets = {"direct": Target(role="baseline", rps=[2000], p50=5, p95=9, p99=12, requests=10_000),
               "gw": Target(rps=[500], p50=20, p95=40, p99=60, requests=10_000, error_rate=0.01)}
    params = {"vus": 50, "duration": 300, "warmup": 5, "prompt": "Hi", "system_prompt": None, "max_tokens": None,
              "temperature": None, "stream": None, "iterations": 10_000}
    run = make_run(tmp_path, targets, duration_s=20, executor="shared-iterations", scenario_name="hey",
                   scenario_params=params, report=["latency_distribution"])
    report = build_report(run)
    md = report.paths["markdown"].read_text()
    assert "hey's summary: requests/s and the latency distribution" in md
    # p10 = 0.6 x p50, p25 = 0.8 x p50, p75 = 0.7 x p95 in the crafted summary
    assert "| gw | 10,000 | 99.00% | 20.00 | 500.0 | 22.00 | 0.50 | 120.00 | 12.00 | 16.00 | 20.00 | 28.00 |" in md
    assert "10,000 requests shared by 50 VUs" in md and 'prompt "Hi", no system message, no max_tokens' in md
    head = next(h.text for h in report.headlines if h.text.startswith("gw"))
    assert "500 requests/s, average 22.00 ms, p99 60.00 ms, 99.00% successful" in head


# ------------------------------------------------------------------------- the load in words
@pytest.mark.parametrize(("name", "text"), [
    ("inferxgate-baseline", "1 VU x 30 requests each (at most 300 s), 1 s pause after each answer"),
    ("inferxgate-throughput", "VUs ramping from 1: 10 s to 5, 20 s to 10, 20 s to 20, 20 s to 30, 20 s to 50, "
                              "10 s hold at 50, 10 s to 0 (110 s), 0.5 s pause after each answer"),
    ("inferxgate-sustained", "10 VUs for 130 s, 1 s pause after each answer"),
    ("hey", "10,000 requests shared by 50 VUs (at most 300 s)"),
])
def test_the_run_announces_the_scenarios_load_as_the_report_words_it(name, text):
    from io import StringIO
    from pathlib import Path

    from rich.console import Console

    from aigw_bench.measure.events import RunStarted
    from aigw_bench.measure.plan import Knobs, measurement
    from aigw_bench.progress import ProgressPrinter

    m = measurement("local", scenario=name, suite=None, mock_profile=None, knobs=Knobs(), repeats=None)
    out = StringIO()
    ProgressPrinter(Console(file=out, width=400), plain=True)(
        RunStarted(run_dir=Path("results/x"), total=3, measurement=m, where="",
                   setting=[("mock", "fast (llm pacing)"), ("CPU pinning", "2 CPUs")]))
    assert f"scenario {name}: {text} (+5 s warm-up) per target, 3 target run(s)" in out.getvalue()
