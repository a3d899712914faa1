"""How long, and how much memory, building a report takes on a large result set.

Generates a synthetic run in the results format (the published matrix: baseline, floor and three
gateways, 3 repeats each, 3 minutes per repeat at 30,000 RPS, with per-second series, latency
histograms, resource samples and k6-shaped summaries), then builds the full report (comparison,
validity, markdown, HTML with charts, Parquet) in a fresh process and reports wall time and peak
RSS. Optionally also times the per-request stage (k6 CSV -> per-second series and histograms) on
N seconds of 30,000 RPS raw samples, in a fresh process, and how much of the file it used; and the
same for several such files at once (repeats: one worker process per usable CPU).

    .venv/bin/python benchmarks/report_perf.py                    # report stage
    .venv/bin/python benchmarks/report_perf.py --raw-seconds 180  # plus one 3-minute raw file
    .venv/bin/python benchmarks/report_perf.py --raw-seconds 20 --raw-files 3  # plus 3 files at once
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from analysis.buckets import bucket_index, bucket_upper_ms  # noqa: E402
from analysis.k6csv import usable_cpus  # noqa: E402
from schema.results import MANIFEST, Outcome, target_dir, write_outcome  # noqa: E402

TARGETS = {"direct": "baseline", "nginx": "floor", "kong": "gateway", "portkey": "gateway", "litellm": "gateway"}
RPS = 30_000
SECONDS = 180
REPEATS = 3


def _summary(rps: float, lat: np.ndarray, seconds: int) -> dict:
    q = lambda p: float(np.quantile(lat, p))  # noqa: E731
    trend = {"avg": float(lat.mean()), "min": float(lat.min()), "med": q(0.5), "max": float(lat.max()),
             "p(50)": q(0.5), "p(90)": q(0.9), "p(95)": q(0.95), "p(99)": q(0.99), "p(99.9)": q(0.999),
             "count": int(rps * seconds)}
    return {"metrics": {
        "http_reqs": {"values": {"count": int(rps * seconds), "rate": rps}},
        "http_req_duration": {"values": trend}, "http_req_waiting": {"values": trend},
        "aigw_ok": {"values": {"rate": 0.9995}}, "http_req_failed": {"values": {"rate": 0.0005}},
        "aigw_response_bytes": {"values": {"avg": 620.0, "min": 620.0, "max": 620.0}},
    }, "state": {"testRunDurationMs": seconds * 1000}}


def make_synthetic_run(root: Path) -> Path:
    rng = np.random.default_rng(42)
    run_dir = root / "synthetic-30k"
    run_dir.mkdir(parents=True)
    manifest = {
        "kind": "aigw-bench run", "format": 1, "environment": "synthetic", "run_id": run_dir.name,
        "created_at": "2026-11-22T00:00:00+00:00",
        "scenario": {"name": "seed", "executor": "constant-vus", "description": "synthetic",
                     "params": {"vus": 400, "duration": SECONDS, "warmup": 30, "prompt_tokens": 1000,
                                "max_tokens": 256, "stream": False}},
        "repeats": REPEATS,
        "order": [{"repeat": r, "target": t} for r in range(1, REPEATS + 1) for t in TARGETS],
        "targets": {t: {"title": t, "role": role, "version": "x", "source": "synthetic"}
                    for t, role in TARGETS.items()},
        "mock": {"name": "wiremock", "version": "3.13.2", "source": "synthetic"},
        "cpu_pinning": {"loadgen": None, "mock": None, "gateway": None, "note": "synthetic"},
        "machine": {"cpus_usable": 16}, "tools": {}, "git": {},
    }
    (run_dir / MANIFEST).write_text(json.dumps(manifest))
    for i, target in enumerate(TARGETS):
        rps = RPS / (1 + i * 0.8)
        for r in range(1, REPEATS + 1):
            work = target_dir(run_dir, target, r)
            work.mkdir(parents=True)
            # Latency samples to derive the histogram and summary from (a million, scaled to the count).
            lat = rng.lognormal(mean=np.log(5 + 10 * i), sigma=0.5, size=1_000_000)
            (work / "summary.json").write_text(json.dumps(_summary(rps, lat, SECONDS)))
            idx, counts = np.unique(bucket_index(lat), return_counts=True)
            scale = rps * SECONDS / lat.size
            pd.DataFrame({"bucket": idx, "upper_ms": bucket_upper_ms(idx),
                          "count": np.round(counts * scale).astype(int)}).to_csv(work / "histogram.csv", index=False)
            t = np.arange(SECONDS)
            per_sec = rng.normal(rps, rps * 0.02, SECONDS).round()
            pd.DataFrame({
                "t_s": t, "epoch_s": t + 1_800_000_000, "requests": per_sec, "ok": per_sec, "errors": 0,
                "latency_mean_ms": 6 + 10 * i, "latency_p50_ms": 5 + 10 * i, "latency_p90_ms": 9 + 12 * i,
                "latency_p95_ms": rng.normal(11 + 14 * i, 1, SECONDS), "latency_p99_ms": 15 + 20 * i,
                "latency_max_ms": 40 + 30 * i, "ttfb_p50_ms": 5 + 10 * i, "ttfb_p95_ms": 11 + 14 * i,
            }).to_csv(work / "timeseries.csv", index=False)
            pd.DataFrame([{"t_s": s, "role": role, "cpu_cores": rng.uniform(2, 12), "rss_mib": 500.0, "processes": 8}
                          for s in range(1, SECONDS) for role in ("loadgen", "mock", "gateway")]
                         ).to_csv(work / "resources.csv", index=False)
            pd.DataFrame({"status": [200], "requests": [int(rps * SECONDS)]}).to_csv(work / "statuses.csv",
                                                                                    index=False)
            write_outcome(run_dir, Outcome(target=target, repeat=r, status="ok", body_sha256="b", files={
                "summary": "summary.json", "timeseries": "timeseries.csv", "histogram": "histogram.csv",
                "resources": "resources.csv", "statuses": "statuses.csv"}))
    return run_dir


def make_raw_csv(path: Path, seconds: int) -> int:
    """k6-shaped CSV (every metric k6 writes per request) for `seconds` at RPS; returns requests."""
    rng = np.random.default_rng(7)
    header = ("metric_name,timestamp,metric_value,check,error,error_code,expected_response,group,method,name,"
              "proto,scenario,service,status,subproto,tls_version,url,extra_tags,metadata\n")
    metrics = ["http_reqs", "http_req_duration", "http_req_blocked", "http_req_connecting", "http_req_tls_handshaking",
               "http_req_sending", "http_req_waiting", "http_req_receiving", "http_req_failed", "checks", "checks",
               "aigw_ok", "aigw_response_bytes", "data_sent", "data_received", "iterations", "iteration_duration"]
    with gzip.open(path, "wt", compresslevel=1) as fh:
        fh.write(header)
        for s in range(seconds):
            n = RPS
            ts = 1_800_000_000_000 + s * 1000 + np.sort(rng.integers(0, 1000, n))
            lat = rng.lognormal(np.log(8), 0.5, n)
            tail = ",,,,true,,POST,,HTTP/1.1,seed,,200,,,,,\n"
            lines = []
            for t, v in zip(ts.tolist(), lat.tolist(), strict=True):
                for m in metrics:
                    lines.append(f"{m},{t},{v if m.endswith(('duration', 'waiting')) else 1.0:.6f}{tail}")
            fh.write("".join(lines))
    return RPS * seconds


def _measure(code: str) -> dict:
    """Run `code` in a fresh interpreter; wall time, its peak RSS and its worker processes' (if any)."""
    script = (f"import sys, time, resource; sys.path.insert(0, {str(REPO)!r}); t = time.perf_counter(); {code}; "
              "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "
              "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    seconds, rss_kib, children_kib = out.stdout.split()[-3:]
    return {"seconds": float(seconds), "peak_rss_mib": int(rss_kib) / 1024,
            "children_rss_mib": int(children_kib) / 1024}


def _raw_run(root: Path, raw: Path, files: int) -> Path:
    """A run directory whose `files` targets each hold (a link to) the same raw file and a summary."""
    run_dir = root / "raw-run"
    run_dir.mkdir()
    names = [f"target{i + 1}" for i in range(files)]
    (run_dir / MANIFEST).write_text(json.dumps({"kind": "aigw-bench run", "format": 1, "targets": {
        n: {"role": "gateway"} for n in names}, "order": [{"repeat": 1, "target": n} for n in names]}))
    for name in names:
        work = target_dir(run_dir, name, 1)
        work.mkdir(parents=True)
        (work / "raw.csv.gz").hardlink_to(raw)
        (work / "summary.json").write_text("{}")
        write_outcome(run_dir, Outcome(target=name, repeat=1, status="ok",
                                       files={"summary": "summary.json", "raw": "raw.csv.gz"}))
    return run_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--raw-seconds", type=int, default=0, help="also time N seconds of raw samples (30k RPS)")
    parser.add_argument("--raw-files", type=int, default=1, help="also derive this many such files at once")
    parser.add_argument("--keep", type=Path, help="write the synthetic run here instead of a temporary directory")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        run_dir = make_synthetic_run(root)
        print(f"synthetic run: {len(TARGETS)} targets x {REPEATS} repeats x {SECONDS} s at up to {RPS:,} RPS "
              f"({time.perf_counter() - t:.1f} s to generate) in {run_dir}")
        m = _measure(f"from analysis.report import build_report; build_report({str(run_dir)!r})")
        print(f"build_report (comparison, validity, markdown, HTML + 5 charts, Parquet): "
              f"{m['seconds']:.2f} s, peak RSS {m['peak_rss_mib']:.0f} MiB")
        if args.raw_seconds:
            raw = root / "raw.csv.gz"
            requests = make_raw_csv(raw, args.raw_seconds)
            m = _measure(f"from analysis.timeseries import write_timeseries; "
                         f"write_timeseries(__import__('pathlib').Path({str(raw)!r}), "
                         f"__import__('pathlib').Path({str(root / 'ts.csv')!r}))")
            print(f"write_timeseries on {requests:,} requests ({args.raw_seconds} s at {RPS:,} RPS, "
                  f"{raw.stat().st_size / 2**20:.0f} MiB gzip): {m['seconds']:.2f} s, "
                  f"peak RSS {m['peak_rss_mib']:.0f} MiB, {requests / m['seconds']:,.0f} requests/s")
            check = json.loads((root / "raw-check.json").read_text())
            print(f"  read {check['rows_read']:,} rows, used {check['rows_used']:,} "
                  f"({check['rows_used'] / check['rows_read']:.1%}: the other metrics are never needed)")
            if args.raw_files > 1:
                run_dir = _raw_run(root, raw, args.raw_files)
                m = _measure(f"from analysis.derive import ensure_derived; from schema.results import "
                             f"read_outcomes; p = __import__('pathlib').Path({str(run_dir)!r}); "
                             f"ensure_derived(p, read_outcomes(p))")
                workers = f", {m['children_rss_mib']:.0f} MiB (largest worker process)" if m["children_rss_mib"] else ""
                print(f"ensure_derived on {args.raw_files} such files ({usable_cpus()} usable CPUs): "
                      f"{m['seconds']:.2f} s ({m['seconds'] / args.raw_files:.2f} s per file), peak RSS "
                      f"{m['peak_rss_mib']:.0f} MiB{workers}")


if __name__ == "__main__":
    main()
