"""Crafted run directories in aigw-bench's format, with k6-shaped summaries, for analysis tests.

Each target is described by the numbers its k6 summary should carry; the files are written exactly
where the runner writes them, so the analysis reads them through its normal path.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from schema.results import MANIFEST, Outcome, read_outcomes, target_dir, write_outcome


@dataclass
class Target:
    role: str = "gateway"
    rps: list[float] = field(default_factory=lambda: [1000.0])  # one value per repeat
    p50: float = 10.0
    p95: list[float] | float = 20.0
    p99: float = 30.0
    error_rate: float = 0.0
    requests: int | None = None  # default: rps x duration
    response_bytes: float = 600.0
    dropped: int | None = None
    status: str = "ok"
    body_sha256: str = "same-body"
    cpu: dict[str, float] = field(default_factory=dict)  # role -> mean cores during the run
    statuses: dict[int, int] | None = None
    tokens: float | None = None  # output tokens per successful answer (scenarios with usage_metrics)


def k6_summary(t: Target, repeat: int, duration_s: float) -> dict:
    rps = t.rps[repeat - 1]
    p95 = t.p95[repeat - 1] if isinstance(t.p95, list) else t.p95
    count = t.requests if t.requests is not None else int(rps * duration_s)
    trend = {"avg": t.p50 * 1.1, "min": 0.5, "med": t.p50, "max": t.p99 * 2, "p(10)": t.p50 * 0.6,
             "p(25)": t.p50 * 0.8, "p(50)": t.p50, "p(75)": p95 * 0.7, "p(90)": p95 * 0.9,
             "p(95)": p95, "p(99)": t.p99, "p(99.9)": t.p99 * 1.5, "count": count}
    metrics = {
        "http_reqs": {"type": "counter", "contains": "default", "values": {"count": count, "rate": rps}},
        "http_req_duration": {"type": "trend", "contains": "time", "values": trend},
        "http_req_waiting": {"type": "trend", "contains": "time", "values": {**trend, "p(95)": p95 * 0.95}},
        "aigw_ok": {"type": "rate", "contains": "default",
                    "values": {"rate": 1 - t.error_rate, "passes": int(count * (1 - t.error_rate)),
                               "fails": int(count * t.error_rate)}},
        "http_req_failed": {"type": "rate", "contains": "default", "values": {"rate": t.error_rate}},
        "aigw_response_bytes": {"type": "counter", "contains": "default",
                                "values": {"count": t.response_bytes * count, "rate": t.response_bytes * rps}},
        "vus_max": {"type": "gauge", "contains": "default", "values": {"value": 50, "min": 50, "max": 50}},
    }
    if t.tokens is not None:
        ok = int(count * (1 - t.error_rate))
        metrics["aigw_completion_tokens"] = {"type": "counter", "contains": "default",
                                             "values": {"count": t.tokens * ok, "rate": t.tokens * ok / duration_s}}
        per_request = t.tokens / (trend["avg"] / 1000)
        metrics["aigw_tokens_per_s"] = {"type": "trend", "contains": "default",
                                        "values": {"avg": per_request, "p(50)": t.tokens / (t.p50 / 1000)}}
    if t.dropped is not None:
        metrics["dropped_iterations"] = {"type": "counter", "contains": "default",
                                         "values": {"count": t.dropped, "rate": t.dropped / duration_s}}
    return {"metrics": metrics, "state": {"testRunDurationMs": duration_s * 1000, "isStdOutTTY": False}}


# A rig far above the crafted targets unless a test says otherwise.
RIG = {"mock": "fast", "profile": "instant", "cpu": "crafted", "ceiling_rps": 20000.0, "ceiling_vus": 50,
       "floor_ms": {"p50": 0.1, "p90": 0.15, "p99": 0.5}, "reach_rps": 16000.0}


def make_run(root: Path, targets: dict[str, Target], repeats: int = 1, duration_s: float = 20.0,
             cpu_pinning: dict | None = None, name: str = "crafted", scenario_params: dict | None = None,
             rig: dict | None = None, executor: str = "constant-vus", report: list[str] | None = None,
             mock_profile: dict | None = None, scenario_name: str | None = None) -> Path:
    run_dir = root / name
    run_dir.mkdir(parents=True)
    pinning = cpu_pinning or {"loadgen": [0], "mock": [0], "gateway": [1], "note": "2 CPUs (crafted)"}
    params = scenario_params or {"vus": 50, "duration": duration_s, "warmup": 5, "prompt_tokens": 1000,
                                 "max_tokens": 256, "stream": False}
    manifest = {
        "kind": "aigw-bench run", "format": 2, "environment": "local", "run_id": name,
        "created_at": "2026-11-22T00:00:00+00:00",
        "scenario": {"name": scenario_name or ("seed" if executor == "constant-vus" else "rate"), "executor": executor,
                     "description": "crafted", "params": params, "report": report or []},
        "rig": RIG if rig is None else rig,
        "repeats": repeats,
        "order": [{"repeat": r, "target": t} for r in range(1, repeats + 1) for t in targets],
        "targets": {n: {"title": n, "role": t.role, "version": "1.0", "source": "tests"} for n, t in targets.items()},
        "mock": {"name": "fast", "title": "nginx + Lua (ngx_lua)", "version": "1.22.1", "source": "tests",
                 "profile": mock_profile or {"name": "instant"}},
        "cpu_pinning": pinning,
        "machine": {"cpu_model": "crafted", "cpus_usable": 2},
        "tools": {"aigw_bench": "test"},
        "git": {"commit": "0" * 40, "dirty": False},
    }
    (run_dir / MANIFEST).write_text(json.dumps(manifest))
    for r in range(1, repeats + 1):
        for name_, t in targets.items():
            work = target_dir(run_dir, name_, r)
            work.mkdir(parents=True)
            files = {}
            if t.status in ("ok", "died", "interrupted"):
                (work / "summary.json").write_text(json.dumps(k6_summary(t, r, duration_s)))
                files["summary"] = "summary.json"
                if t.cpu:
                    rows = [{"t_s": s, "role": role, "cpu_cores": cores, "rss_mib": 100.0, "processes": 1}
                            for s in range(1, int(duration_s)) for role, cores in t.cpu.items()]
                    pd.DataFrame(rows).to_csv(work / "resources.csv", index=False)
                    files["resources"] = "resources.csv"
                if t.statuses:
                    pd.DataFrame({"status": list(t.statuses), "requests": list(t.statuses.values())}).to_csv(
                        work / "statuses.csv", index=False)
                    files["statuses"] = "statuses.csv"
                seconds = np.arange(int(duration_s))
                pd.DataFrame({"t_s": seconds, "requests": int(t.rps[r - 1]), "latency_p95_ms": t.p50 * 2}).to_csv(
                    work / "timeseries.csv", index=False)
                files["timeseries"] = "timeseries.csv"
            write_outcome(run_dir, Outcome(target=name_, repeat=r, status=t.status, files=files,
                                           body_sha256=t.body_sha256,
                                           reason=None if t.status == "ok" else "crafted failure"))
    return run_dir


HEADER = "metric_name,timestamp,metric_value,check,error,error_code,expected_response,group,method,name,proto," \
         "scenario,service,status,subproto,tls_version,url,extra_tags,metadata\n"


def k6_csv(rows_per_second: list[list[tuple[float, int]]], t0_ms: int = 1_700_000_000_000) -> str:
    """Rows as k6 writes them: per request http_reqs, http_req_duration, http_req_waiting, aigw_ok, checks."""
    lines = [HEADER]
    for second, requests in enumerate(rows_per_second):
        for i, (duration, ok) in enumerate(requests):
            t = t0_ms + second * 1000 + i
            tail = ",,,,true,,POST,,HTTP/1.1,seed,,200,,,,,\n"
            lines.append(f"http_reqs,{t},1.000000{tail}")
            lines.append(f"http_req_duration,{t},{duration:.6f}{tail}")
            lines.append(f"http_req_waiting,{t},{duration * 0.9:.6f}{tail}")
            lines.append(f"checks,{t},{ok}.000000,status is 200{tail}")
            lines.append(f"aigw_ok,{t},{ok}.000000{tail}")
    return "".join(lines)


def add_raw(run_dir: Path, target: str, repeat: int, requests: list[list[float]],
            vus: list[int | None] | None = None, t0_ms: int = 1_700_000_000_000) -> None:
    """Give a crafted session a raw k6 file (``requests[s]``: the latencies of second ``s``, all
    successful; ``vus[s]``: k6's active-VU sample in second ``s``, None for none), which the report
    derives its per-second files from."""
    text = k6_csv([[(ms, 1) for ms in second] for second in requests], t0_ms)
    for s, v in enumerate(vus or []):
        if v is not None:
            text += f"vus,{t0_ms + s * 1000 + 500},{v:.6f},,,,,,,,,,,,,,,,\n"
    work = target_dir(run_dir, target, repeat)
    with gzip.open(work / "raw.csv.gz", "wt") as fh:
        fh.write(text)
    outcome = next(o for o in read_outcomes(run_dir) if o.target == target and o.repeat == repeat)
    outcome.files["raw"] = "raw.csv.gz"
    write_outcome(run_dir, outcome)


# ---------------------------------------------------------------------------------- suite runs
@dataclass
class SuiteTarget:
    """What a suite session of one target measured (crafted): the overhead step's pairs come from a
    seeded generator, the other steps' records from these numbers."""

    role: str = "gateway"
    added_ms: float = 2.0  # what the target adds to every request
    capacity: dict[float, float | None] = field(default_factory=lambda: {10: 100.0, 50: 400.0, 250: 600.0})
    rig_bound: set[float] = field(default_factory=set)  # bounds at which it passed at the rig's reach
    unstable: dict[float, list[float]] = field(default_factory=dict)  # bound -> rates passed above a failing one
    cpu_ms: float = 2.0
    rss_mib: float = 200.0
    sustained: bool = True
    added_ttft_ms: float = 5.0
    rebuffers: bool = False
    streams_complete: bool = True
    aa_ms: float = 0.0  # for the baseline: what the rig misattributes in its A/A session
    status: str = "ok"  # "not_runnable": no step runs, the session records only why
    gap_offset_ms: float = 0.0  # added to every gap between chunks read through the target
    extra_probes: list[tuple[float, float, float]] = field(default_factory=list)  # (rate, p99_ms, p50_ms), clean
    # Its capacity probes' median stays at 1 ms whatever their p99 (pauses); else it rises with the p99 as in a
    # queue (p99 = 6.6 x p50, M/M/1).
    pauses: bool = False
    disturbed: set[int] = field(default_factory=set)  # repeats whose overhead window stayed disturbed
    disturbed_added_ms: float = 0.0  # what those sessions read instead (the other work's share)
    capacity_scale: dict[int, float] = field(default_factory=dict)  # repeat -> factor on its capacities


# What the noise guard records for a window still disturbed after measuring it again (aigw_bench/local/noise.py).
NOISY = {"noise": {"disturbed": True, "remeasured": 2, "cpu_seconds": 4.9, "cores": 0.93, "seconds": 5.0,
                   "busiest": [{"name": "python", "pid": 4242, "cpu_seconds": 4.9}]}}
SUITE_SIZES = {"capacity": {"bounds_ms": [10, 50, 250], "default_bound_ms": 50}, "efficiency": {"rate": 50}}


def _overhead_csv(path: Path, added_ms: float, seed: int, n: int = 2000) -> None:
    rng = np.random.default_rng(seed)
    direct = rng.lognormal(np.log(0.15), 0.25, n)
    target = direct * rng.lognormal(0, 0.05, n) + added_ms
    rows = [HEADER]
    for i, (d, t) in enumerate(zip(direct, target, strict=True)):
        rows.append(f"aigw_direct_ms,{1_700_000_000_000 + i},{d:.6f},,,,,,,,,overhead,,,,,,,\n")
        rows.append(f"aigw_target_ms,{1_700_000_000_000 + i},{t:.6f},,,,,,,,,overhead,,,,,,,\n")
    path.write_text("".join(rows))


def _streams(path: Path, t: SuiteTarget, seed: int, chunks: int = 20) -> None:
    rng = np.random.default_rng(seed)
    streams, gaps = [], []
    for side in ("direct", "target"):
        for i in range(60):
            ttft = 390 + rng.normal(0, 2) + (t.added_ttft_ms if side == "target" else 0)
            held = side == "target" and t.rebuffers
            spread = 1.0 if held else 12.3 * (chunks - 1)
            whole = side == "direct" or t.streams_complete
            streams.append({"side": side, "stream": i, "start_s": i * 0.1, "status": 200, "ttft_ms": ttft,
                            "first_byte_ms": ttft, "spread_ms": spread, "total_ms": ttft + spread,
                            "content_chunks": chunks if whole else chunks // 2, "usage": whole, "done": whole,
                            "error": ""})
            offset = t.gap_offset_ms if side == "target" else 0.0
            gaps += [{"side": side, "stream": i, "gap_ms": (0.05 if held else 12.3 + offset + rng.normal(0, 0.3))}
                     for _ in range(chunks - 1)]
    pd.DataFrame(streams).to_csv(path / "streams.csv", index=False)
    pd.DataFrame(gaps).to_csv(path / "gaps.csv.gz", index=False)


def make_suite_run(root: Path, targets: dict[str, SuiteTarget], name: str = "suite", rig: dict | None = None,
                   repeats: int = 1) -> Path:
    """A suite run directory: manifest with the suite, and per session the steps' records and files."""
    from schema.results import StepRecord

    seed_targets = {n: Target(role=t.role, rps=[1000.0] * repeats, status=t.status) for n, t in targets.items()}
    run_dir = make_run(root, seed_targets, name=name, rig=rig, repeats=repeats)
    manifest = json.loads((run_dir / MANIFEST).read_text())
    manifest["suite"] = {"name": "default", "profile": "local", "sizes": SUITE_SIZES}
    manifest["main_step"] = "seed"
    (run_dir / MANIFEST).write_text(json.dumps(manifest))
    for r in range(1, repeats + 1):
        for index, (name_, t) in enumerate(targets.items()):
            if t.status != "ok":
                continue
            work = target_dir(run_dir, name_, r)
            outcome = Outcome.model_validate_json((work / "outcome.json").read_text())
            (work / "overhead").mkdir()
            added = t.added_ms if t.role != "baseline" else t.aa_ms
            added = t.disturbed_added_ms if r in t.disturbed else added
            _overhead_csv(work / "overhead" / "raw.csv", added, index + 10 * r)
            (work / "streaming").mkdir()
            _streams(work / "streaming", t, index + 10 * r)
            steps = {
                "overhead": StepRecord(name="overhead", kind="overhead", status="ok", dir="overhead",
                                       files={"raw": "raw.csv"}, data={"direct_ok_rate": 1.0, "target_ok_rate": 1.0,
                                                                       **(NOISY if r in t.disturbed else {})}),
                "streaming": StepRecord(name="streaming", kind="streaming", status="ok", dir="streaming",
                                        files={"streams": "streams.csv", "gaps": "gaps.csv.gz"},
                                        data={"expected_chunks": 20, "expected_spread_ms": 12.3 * 19}),
            }
            if t.role != "baseline":
                scale = t.capacity_scale.get(r, 1.0)
                capacity = {b: c * scale if c else c for b, c in t.capacity.items()}
                bounds = [{"bound_ms": b, "capacity_rps": c, "rig_bound": b in t.rig_bound, "failing_rps":
                           None if b in t.rig_bound or c is None else c * 1.1, "p99_at_capacity_ms": b * 0.8,
                           "resolved": True, "note": None, "passed_above_rps": t.unstable.get(b, [])}
                          for b, c in capacity.items()]
                probes = [{"rate": c, "p99_ms": b * 0.8, "p50_ms": 1.0 if t.pauses else b * 0.8 / 6.6,
                           "error_rate": 0.0, "dropped": 0,
                           "achieved_rps": c, "requests": max(1000, int(c * 2)), "problem": None, "clean": True}
                          for b, c in capacity.items() if c]
                probes += [{"rate": rate, "p99_ms": p99, "p50_ms": p50, "error_rate": 0.0, "dropped": 0,
                            "achieved_rps": rate, "requests": 1000, "problem": None, "clean": True}
                           for rate, p99, p50 in t.extra_probes]
                steps["capacity"] = StepRecord(name="capacity", kind="capacity", status="ok", dir="capacity",
                                               data={"bounds": bounds, "probes": probes})
                steps["efficiency"] = StepRecord(name="efficiency", kind="efficiency", status="ok", dir="efficiency",
                                                 data={"rate": 50.0, "requests": 250.0,
                                                       "rps": 50.0 if t.sustained else 30.0, "ok_rate": 1.0,
                                                       "dropped": 0 if t.sustained else 120,
                                                       "cpu_ms_per_request": t.cpu_ms, "cpu_seconds": t.cpu_ms / 4,
                                                       "mock_cpu_seconds": 0.01, "rss_idle_mib": t.rss_mib - 20,
                                                       "rss_load_mib": t.rss_mib, "rss_after_mib": t.rss_mib - 10})
            outcome.steps = steps
            write_outcome(run_dir, outcome)
    return run_dir
