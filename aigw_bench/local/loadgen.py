"""Running k6 as a supervised child, and reading its live counters for the progress display."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import httpx

from aigw_bench.local.processes import ManagedProcess, Supervisor
from aigw_bench.run.environment import k6_binary
from schema.scenarios import format_duration


@dataclass(frozen=True)
class K6Files:
    summary: Path
    log: Path
    raw: Path | None


def start_k6(
    sup: Supervisor,
    name: str,
    script: Path,
    files: K6Files,
    *,
    duration: float,
    api_port: int,
    cpus: list[int] | None,
    warmup: bool = False,
    steady: str | None = None,
) -> ManagedProcess:
    """k6 on ``script`` for ``duration``; ``warmup``: the run before the measurement (AIGW_WARMUP=1 makes
    iteration and ramping scenarios warm up with a plain closed loop instead of their own schedule);
    ``steady``: AIGW_STEADY, the warm-up ends when the target is steady (``duration`` the longest)."""
    argv = [
        k6_binary(), "run",
        "--no-usage-report",  # k6 otherwise reports usage to the internet
        "--no-color",
        "--address", f"127.0.0.1:{api_port}",
        "-e", f"AIGW_SUMMARY={files.summary}",
        "-e", f"AIGW_DURATION={format_duration(duration)}",
    ]
    if warmup:
        argv += ["-e", "AIGW_WARMUP=1"]
    if warmup and steady:
        argv += ["-e", f"AIGW_STEADY={steady}"]
    if files.raw is not None:
        argv += ["--out", f"csv={files.raw}"]
    argv.append(str(script))
    env = {"K6_CSV_TIME_FORMAT": "unix_milli", "K6_NO_USAGE_REPORT": "true"}
    return sup.start(name, argv, files.log, env=env, cwd=script.parent, cpus=cpus, stop_timeout=20)


@dataclass(frozen=True)
class LiveStats:
    requests: int
    rps: float
    ok_rate: float | None


def live_stats(api_port: int) -> LiveStats | None:
    """k6's counters so far, from its REST API on loopback; None while it is not up."""

    def metric(client: httpx.Client, name: str) -> dict | None:
        try:
            resp = client.get(f"http://127.0.0.1:{api_port}/v1/metrics/{name}")
            return resp.json()["data"]["attributes"]["sample"] if resp.status_code == 200 else None
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return None

    with httpx.Client(timeout=0.5, trust_env=False) as client:
        reqs = metric(client, "http_reqs")
        if reqs is None:
            return None
        ok = metric(client, "aigw_ok")
    return LiveStats(int(reqs.get("count", 0)), float(reqs.get("rate", 0.0)), ok.get("rate") if ok else None)
