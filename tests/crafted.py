"""Crafted run directories in aigw-bench's format, with k6-shaped summaries, for analysis tests.

Each target is described by the numbers its k6 summary should carry; the files are written exactly
where the runner writes them, so the analysis reads them through its normal path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from aigw_bench.results import MANIFEST, Outcome, target_dir, write_outcome


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


def k6_summary(t: Target, repeat: int, duration_s: float) -> dict:
    rps = t.rps[repeat - 1]
    p95 = t.p95[repeat - 1] if isinstance(t.p95, list) else t.p95
    count = t.requests if t.requests is not None else int(rps * duration_s)
    trend = {"avg": t.p50 * 1.1, "min": 0.5, "med": t.p50, "max": t.p99 * 2, "p(50)": t.p50, "p(90)": p95 * 0.9,
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
    if t.dropped is not None:
        metrics["dropped_iterations"] = {"type": "counter", "contains": "default",
                                         "values": {"count": t.dropped, "rate": t.dropped / duration_s}}
    return {"metrics": metrics, "state": {"testRunDurationMs": duration_s * 1000, "isStdOutTTY": False}}


# A rig far above the crafted targets unless a test says otherwise.
RIG = {"mock": "fast", "profile": "instant", "cpu": "crafted", "ceiling_rps": 20000.0, "ceiling_vus": 50,
       "floor_ms": {"p50": 0.1, "p90": 0.15, "p99": 0.5}, "reach_rps": 16000.0}


def make_run(root: Path, targets: dict[str, Target], repeats: int = 1, duration_s: float = 20.0,
             cpu_pinning: dict | None = None, name: str = "crafted", scenario_params: dict | None = None,
             rig: dict | None = None, executor: str = "constant-vus") -> Path:
    run_dir = root / name
    run_dir.mkdir(parents=True)
    pinning = cpu_pinning or {"loadgen": [0], "mock": [0], "gateway": [1], "note": "2 CPUs (crafted)"}
    params = scenario_params or {"vus": 50, "duration": duration_s, "warmup": 5, "prompt_tokens": 1000,
                                 "max_tokens": 256, "stream": False}
    manifest = {
        "kind": "aigw-bench run", "format": 2, "environment": "local", "run_id": name,
        "created_at": "2026-11-22T00:00:00+00:00",
        "scenario": {"name": "seed" if executor == "constant-vus" else "rate", "executor": executor,
                     "description": "crafted", "params": params},
        "rig": RIG if rig is None else rig,
        "repeats": repeats,
        "order": [{"repeat": r, "target": t} for r in range(1, repeats + 1) for t in targets],
        "targets": {n: {"title": n, "role": t.role, "version": "1.0", "source": "tests"} for n, t in targets.items()},
        "mock": {"name": "fast", "title": "nginx + Lua (ngx_lua)", "version": "1.22.1", "source": "tests",
                 "profile": {"name": "instant"}},
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
