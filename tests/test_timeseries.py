"""k6 CSV samples -> per-second series and histogram; a file cut short keeps what came before."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from analysis.timeseries import (
    TimeseriesError,
    histogram_quantile,
    latency_histogram,
    per_second,
    read_raw,
    write_timeseries,
)
from tests.crafted import k6_csv


def write_gz(path, text):
    with gzip.open(path, "wt") as fh:
        fh.write(text)


def test_per_second_counts_and_percentiles(tmp_path):
    rng = np.random.default_rng(7)
    seconds = [[(float(d), 1) for d in rng.uniform(1, 100, 200)] for _ in range(3)]
    seconds[1][:10] = [(5.0, 0)] * 10  # ten failures in second 1
    raw = tmp_path / "raw.csv.gz"
    write_gz(raw, k6_csv(seconds))
    series = per_second(read_raw(raw).frame)
    assert series["requests"].tolist() == [200, 200, 200]
    assert series["errors"].tolist() == [0, 10, 0]
    expected_p95 = np.quantile([d for d, _ in seconds[2]], 0.95)
    assert series.loc[2, "latency_p95_ms"] == pytest.approx(expected_p95, rel=1e-6)
    assert series.loc[0, "latency_max_ms"] == pytest.approx(max(d for d, _ in seconds[0]), rel=1e-6)


def test_histogram_quantiles_are_within_bucket_resolution():
    rng = np.random.default_rng(3)
    values = rng.lognormal(mean=3, sigma=0.8, size=50_000)
    frame = pd.DataFrame({"metric": "http_req_duration", "t_ms": 0, "value": values})
    hist = latency_histogram(frame)
    assert hist["count"].sum() == values.size
    for q in (0.5, 0.95, 0.99):
        assert histogram_quantile(hist, q) == pytest.approx(np.quantile(values, q), rel=0.025)


def test_histograms_merge_by_adding_counts():
    rng = np.random.default_rng(5)
    a, b = rng.uniform(1, 10, 10_000), rng.uniform(50, 100, 10_000)
    frame = lambda v: pd.DataFrame({"metric": "http_req_duration", "t_ms": 0, "value": v})  # noqa: E731
    merged = pd.concat([latency_histogram(frame(a)), latency_histogram(frame(b))])
    together = latency_histogram(frame(np.concatenate([a, b])))
    for q in (0.25, 0.5, 0.9):
        assert histogram_quantile(merged, q) == histogram_quantile(together, q)


def test_gzip_cut_short_keeps_the_complete_part(tmp_path, monkeypatch):
    import analysis.timeseries as ts

    monkeypatch.setattr(ts, "_CHUNK_ROWS", 500)  # several chunks in a small file
    seconds = [[(10.0, 1)] * 300 for _ in range(5)]
    full = tmp_path / "full.csv.gz"
    write_gz(full, k6_csv(seconds))
    cut = tmp_path / "raw.csv.gz"
    data = full.read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.6)])
    note = write_timeseries(cut, tmp_path / "timeseries.csv")
    assert note and "reading stopped after" in note
    series = pd.read_csv(tmp_path / "timeseries.csv")
    assert 0 < series["requests"].sum() < 1500
    assert (tmp_path / "raw-truncated.txt").exists()


def test_missing_or_garbage_raw_file_is_an_error(tmp_path):
    with pytest.raises(TimeseriesError, match="missing"):
        read_raw(tmp_path / "nope.csv.gz")
    bad = tmp_path / "bad.csv.gz"
    bad.write_bytes(b"not gzip at all")
    with pytest.raises(TimeseriesError, match="unreadable"):
        read_raw(bad)


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
    mix = read_raw(raw).statuses.set_index("status")["requests"].to_dict()
    assert mix == {0: 1, 200: 3, 502: 1}
