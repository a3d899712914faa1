"""k6 CSV samples -> per-second series and histograms, streamed; a file cut short keeps what came before."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pandas as pd
import pytest

from analysis.buckets import QUANTILE_ERROR, histogram_quantile, latency_histogram
from analysis.k6csv import DURATION
from analysis.timeseries import (
    SERIES_FILES,
    TimeseriesError,
    aggregate_raw,
    read_second_histograms,
    window_quantiles,
    write_series,
    write_timeseries,
)
from tests.crafted import HEADER, k6_csv

pytestmark = pytest.mark.pure

# k6 writes values with six decimals: an estimate may be off by that much on top of the bucket error.
ROUNDING_MS = 1e-6


def write_gz(path, text):
    with gzip.open(path, "wt") as fh:
        fh.write(text)


def within_bucket_error(estimate, exact):
    return abs(estimate - exact) <= QUANTILE_ERROR * abs(exact) + ROUNDING_MS


def test_per_second_counts_and_percentiles(tmp_path):
    rng = np.random.default_rng(7)
    seconds = [[(float(d), 1) for d in rng.uniform(1, 100, 200)] for _ in range(3)]
    seconds[1][:10] = [(5.0, 0)] * 10  # ten failures in second 1
    raw = tmp_path / "raw.csv.gz"
    write_gz(raw, k6_csv(seconds))
    series = aggregate_raw(raw).seconds.per_second()
    assert series["requests"].tolist() == [200, 200, 200]
    assert series["errors"].tolist() == [0, 10, 0]
    for s in range(3):
        durations = [round(d, 6) for d, _ in seconds[s]]
        for q, column in ((0.5, "latency_p50_ms"), (0.95, "latency_p95_ms"), (0.99, "latency_p99_ms")):
            assert within_bucket_error(series.loc[s, column], np.quantile(durations, q)), (s, column)
        assert series.loc[s, "latency_max_ms"] == max(durations)
        assert series.loc[s, "latency_mean_ms"] == pytest.approx(np.mean(durations), rel=1e-12)
        ttfb = [round(d * 0.9, 6) for d, _ in seconds[s]]
        assert within_bucket_error(series.loc[s, "ttfb_p95_ms"], np.quantile(ttfb, 0.95))


def test_histogram_quantiles_are_within_the_bucket_error():
    rng = np.random.default_rng(3)
    values = rng.lognormal(mean=3, sigma=0.8, size=50_000)
    hist = latency_histogram(values)
    assert hist["count"].sum() == values.size
    for q in (0.001, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0):
        assert within_bucket_error(histogram_quantile(hist, q), np.quantile(values, q)), q


def test_quantiles_interpolate_between_sparse_samples_like_k6():
    # k6 (and numpy) interpolate between the two samples around rank q * (n - 1): with few samples
    # far apart, taking either one alone would be off by far more than a bucket.
    values = np.array([1.0, 2.0, 4.0, 8.0, 100.0])
    hist = latency_histogram(values)
    for q in (0.1, 0.3, 0.5, 0.7, 0.9, 0.95):
        assert within_bucket_error(histogram_quantile(hist, q), np.quantile(values, q)), q


def test_histograms_merge_by_adding_counts():
    rng = np.random.default_rng(5)
    a, b = rng.uniform(1, 10, 10_000), rng.uniform(50, 100, 10_000)
    merged = pd.concat([latency_histogram(a), latency_histogram(b)])
    together = latency_histogram(np.concatenate([a, b]))
    for q in (0.25, 0.5, 0.9):
        assert histogram_quantile(merged, q) == histogram_quantile(together, q)


def shuffled_k6_csv(rng, seconds=6, per_second=400):
    """k6-like rows: requests of varied latency and status, every metric k6 writes, rows a little out of order."""
    lines = [HEADER]
    t0 = 1_700_000_000_000
    for i in range(seconds * per_second):
        t = t0 + int(i * 1000 / per_second) + int(rng.integers(0, 3))
        d = float(rng.lognormal(2, 1))
        status = int(rng.choice([200, 200, 200, 502, 0]))
        tail = f",,,,true,,POST,,HTTP/1.1,seed,,{status},,,,,\n"
        rows = [("http_reqs", 1.0), ("http_req_duration", d), ("http_req_blocked", 0.01), ("http_req_waiting", d * 0.7),
                ("checks", 1.0), ("aigw_ok", float(status == 200)), ("iterations", 1.0), ("data_sent", 5784.0)]
        lines += [f"{m},{t},{v:.6f}{tail}" for m, v in rows]
    cut = len(lines) // 2  # k6 flushes buffered samples: a few arrive after later ones
    lines[cut : cut + 18] = lines[cut + 9 : cut + 18] + lines[cut : cut + 9]
    lines.append("vus,1700000006000,10.000000,,,,,,,,,,,,,,,,\n")
    return "".join(lines)


def derived_files(agg, out):
    out.mkdir()
    write_series(agg, out)
    return {name: (out / name).read_bytes() for key, name in SERIES_FILES.items() if key != "raw_check"}


def test_results_are_identical_whether_the_file_is_read_in_one_chunk_or_many(tmp_path):
    raw = tmp_path / "raw.csv.gz"
    write_gz(raw, shuffled_k6_csv(np.random.default_rng(11)))
    one = aggregate_raw(raw, block_bytes=1 << 30, threads=1)
    many = aggregate_raw(raw, block_bytes=2_000, threads=3)
    assert one.stats.rows == many.stats.rows == 6 * 400 * 8 + 1
    assert derived_files(one, tmp_path / "one") == derived_files(many, tmp_path / "many")
    series = pd.read_csv(tmp_path / "many" / "timeseries.csv")
    assert series["requests"].sum() == 2400
    assert series["latency_mean_ms"].iloc[:6].notna().all()
    # k6's last vus sample came a second after the last request: the series runs to it, with the VUs.
    assert series["requests"].iloc[6] == 0 and series["vus"].iloc[:6].isna().all() and series["vus"].iloc[6] == 10


def test_cut_short_file_keeps_the_seconds_before_the_cut(tmp_path):
    seconds = [[(10.0 + i % 7, 1) for i in range(300)] for _ in range(5)]
    full = tmp_path / "full.csv.gz"
    write_gz(full, k6_csv(seconds))
    cut = tmp_path / "raw.csv.gz"
    cut.write_bytes(full.read_bytes()[: int(full.stat().st_size * 0.6)])
    note = write_timeseries(cut, tmp_path / "timeseries.csv")
    assert note and "reading stopped after" in note
    assert (tmp_path / "raw-truncated.txt").read_text().strip() == note
    series = pd.read_csv(tmp_path / "timeseries.csv")
    reference = aggregate_raw(full).seconds.per_second()
    # Every second wholly before the cut is there, exactly as in the complete file; the last one is partial.
    complete = series.iloc[:-1]
    assert len(complete) >= 2
    pd.testing.assert_frame_equal(complete.reset_index(drop=True),
                                  pd.read_csv(pd.io.common.StringIO(reference.iloc[: len(complete)].to_csv(
                                      index=False, float_format="%.4f"))))
    assert 0 < series["requests"].iloc[-1] <= 300
    # How the file is cut into blocks does not change what is kept.
    small = aggregate_raw(cut, block_bytes=1_000, threads=2)
    assert small.stats.rows == aggregate_raw(cut).stats.rows
    assert small.seconds.per_second().equals(aggregate_raw(cut).seconds.per_second())


def test_missing_garbage_or_wrong_raw_file_is_an_error(tmp_path):
    with pytest.raises(TimeseriesError, match="missing"):
        aggregate_raw(tmp_path / "nope.csv.gz")
    bad = tmp_path / "bad.csv.gz"
    bad.write_bytes(b"not gzip at all")
    with pytest.raises(TimeseriesError, match="unreadable"):
        aggregate_raw(bad)
    other = tmp_path / "other.csv.gz"
    write_gz(other, "a,b,c\n1,2,3\n")
    with pytest.raises(TimeseriesError, match=r"not k6 CSV output.*metric_name"):
        aggregate_raw(other)
    seconds = tmp_path / "seconds.csv.gz"  # k6's default time format: unix seconds
    write_gz(seconds, k6_csv([[(10.0, 1)]], t0_ms=1_700_000_000))
    with pytest.raises(TimeseriesError, match="K6_CSV_TIME_FORMAT=unix_milli"):
        aggregate_raw(seconds)


def test_status_mix_counts_requests_by_http_status(tmp_path):
    text = k6_csv([[(10.0, 1)] * 5])
    lines = text.splitlines(keepends=True)
    # Turn two requests into a 502 and a connection failure (k6 writes status 0 for no response).
    bad = [line.replace(",200,", ",502,") if line.startswith("http_reqs") and i < 5 else line
           for i, line in enumerate(lines)]
    bad = [line.replace(",200,", ",0,") if line.startswith("http_reqs") and 20 < i < 30 else line
           for i, line in enumerate(bad)]
    raw = tmp_path / "raw.csv.gz"
    write_gz(raw, "".join(bad))
    assert aggregate_raw(raw).seconds.statuses == {0: 1, 200: 3, 502: 1}


def test_without_the_status_tag_the_status_mix_is_empty_not_made_up(tmp_path):
    text = k6_csv([[(10.0, 1)] * 5]).replace(",status,", ",state,")
    raw = tmp_path / "raw.csv.gz"
    write_gz(raw, text)
    write_timeseries(raw, tmp_path / "timeseries.csv")
    assert pd.read_csv(tmp_path / "statuses.csv").empty
    assert pd.read_csv(tmp_path / "timeseries.csv")["requests"].tolist() == [5]


def test_window_quantiles_from_the_per_second_histograms(tmp_path):
    rng = np.random.default_rng(17)
    seconds = [[(float(d), 1) for d in rng.lognormal(2 + s / 10, 0.6, 300)] for s in range(12)]
    raw = tmp_path / "raw.csv.gz"
    write_gz(raw, k6_csv(seconds))
    write_timeseries(raw, tmp_path / "timeseries.csv")
    hists = read_second_histograms(tmp_path / "histograms.parquet")
    windows = window_quantiles(hists, 5, [0.5, 0.99])
    assert windows["t_s"].tolist() == [0, 5, 10] and windows["samples"].tolist() == [1500, 1500, 600]
    for row in windows.itertuples():
        exact = [round(d, 6) for s in seconds[row.t_s : row.t_s + 5] for d, _ in s]
        assert within_bucket_error(row.p50, np.quantile(exact, 0.5))
        assert within_bucket_error(row.p99, np.quantile(exact, 0.99))
    # One-second windows are the series' own percentiles.
    series = pd.read_csv(tmp_path / "timeseries.csv")
    per_second = window_quantiles(hists, 1, [0.95])
    assert per_second["p95"].round(4).tolist() == series["latency_p95_ms"].tolist()
    ttfb = window_quantiles(hists, 12, [0.5], metric="http_req_waiting")
    exact_ttfb = [round(d * 0.9, 6) for s in seconds for d, _ in s]
    assert within_bucket_error(ttfb["p50"].iloc[0], np.quantile(exact_ttfb, 0.5))


def summary_for(durations, requests=None):
    q = {"med": 0.5, "p(50)": 0.5, "p(90)": 0.9, "p(95)": 0.95, "p(99)": 0.99, "p(99.9)": 0.999}
    values = {stat: float(np.quantile(durations, p)) for stat, p in q.items()}
    values.update(count=len(durations), max=float(np.max(durations)), avg=float(np.mean(durations)))
    return {"metrics": {"http_reqs": {"values": {"count": requests or len(durations)}},
                        "http_req_duration": {"values": values}}}


def test_whole_run_check_against_k6s_summary(tmp_path):
    rng = np.random.default_rng(23)
    durations = np.round(rng.lognormal(2.5, 0.7, 3000), 6)
    raw = tmp_path / "raw.csv.gz"
    write_gz(raw, k6_csv([[(float(d), 1) for d in durations[i : i + 1000]] for i in range(0, 3000, 1000)]))
    (tmp_path / "summary.json").write_text(json.dumps(summary_for(durations)))
    write_timeseries(raw, tmp_path / "timeseries.csv")
    record = json.loads((tmp_path / "raw-check.json").read_text())
    assert record["agrees"] is True
    stats = {(i["metric"], i["stat"]) for i in record["items"]}
    assert {("http_reqs", "count"), ("http_req_duration", "p(99)"), ("http_req_duration", "max"),
            ("http_req_duration", "avg")} <= stats
    # A summary of other requests (one more request, a higher p95) is caught.
    wrong = summary_for(durations, requests=3001)
    wrong["metrics"]["http_req_duration"]["values"]["p(95)"] *= 1 + 2 * QUANTILE_ERROR
    (tmp_path / "summary.json").write_text(json.dumps(wrong))
    write_timeseries(raw, tmp_path / "timeseries.csv")
    record = json.loads((tmp_path / "raw-check.json").read_text())
    assert record["agrees"] is False
    assert {(i["metric"], i["stat"]) for i in record["items"] if not i["agrees"]} == {
        ("http_reqs", "count"), ("http_req_duration", "p(95)")}


def test_histogram_file_matches_the_raw_samples(tmp_path):
    rng = np.random.default_rng(29)
    durations = rng.lognormal(1, 1, 2000)
    raw = tmp_path / "raw.csv.gz"
    write_gz(raw, k6_csv([[(float(d), 1) for d in durations]]))
    write_timeseries(raw, tmp_path / "timeseries.csv")
    hist = pd.read_csv(tmp_path / "histogram.csv")
    assert list(hist.columns) == ["bucket", "upper_ms", "count"]
    expected = latency_histogram(np.round(durations, 6))
    assert hist["bucket"].tolist() == expected["bucket"].tolist()
    assert hist["count"].tolist() == expected["count"].tolist()
    assert aggregate_raw(raw).seconds.histogram(DURATION)["count"].sum() == 2000


def test_active_vus_per_second_and_across_load_generators(tmp_path):
    """k6 samples `vus` about once a second: a second keeps its highest sample; generators' VUs add up."""
    def raw(name, vus_rows):
        lines = k6_csv([[(5.0, 1)], [(5.0, 1)], [(5.0, 1)]]).splitlines(keepends=True)
        lines += [f"vus,{1_700_000_000_000 + ms},{v:.6f},,,,,,,,,,,,,,,,\n" for ms, v in vus_rows]
        path = tmp_path / name
        write_gz(path, "".join(lines))
        return aggregate_raw(path)

    a = raw("a.csv.gz", [(1000, 5), (1500, 3), (2000, 4)])  # two samples in second 1: the higher counts
    assert a.seconds.per_second()["vus"].tolist()[:3] == [pytest.approx(float("nan"), nan_ok=True), 5, 4]
    b = raw("b.csv.gz", [(2000, 2)])
    a.seconds.merge(b.seconds)
    vus = a.seconds.per_second()["vus"]
    assert np.isnan(vus.iloc[0]) and vus.iloc[1] == 5 and vus.iloc[2] == 6  # second 1 only in a; second 2: 4 + 2
