"""Resource usage of a cloud run in the local format (``resources.csv``: t_s, role, cpu_cores, rss_mib).

- gateway and mock: Prometheus ``query_range`` results the runner fetched inside the VPC;
- loadgen: the runner's own ``vmstat 1`` during the measurement.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd


def prometheus_queries(gateway_namespace: str, mock_namespace: str) -> dict[str, str]:
    """PromQL for CPU (cores) and working-set memory (bytes) of every container in a namespace."""
    def sel(ns: str) -> str:
        return f'namespace="{ns}",container!="",container!="POD"'

    return {
        "gateway-cpu": f"sum(rate(container_cpu_usage_seconds_total{{{sel(gateway_namespace)}}}[1m]))",
        "gateway-mem": f"sum(container_memory_working_set_bytes{{{sel(gateway_namespace)}}})",
        "mock-cpu": f"sum(rate(container_cpu_usage_seconds_total{{{sel(mock_namespace)}}}[1m]))",
        "mock-mem": f"sum(container_memory_working_set_bytes{{{sel(mock_namespace)}}})",
    }


def _matrix(path: Path) -> pd.Series:
    """(unix time -> value) of a Prometheus range-query answer with one series."""
    doc = json.loads(path.read_text())
    if doc.get("status") != "success":
        raise ValueError(f"{path.name}: Prometheus answered {doc.get('status')}: {doc.get('error')}")
    result = doc.get("data", {}).get("result", [])
    if not result:
        return pd.Series(dtype=float)
    values = result[0]["values"]
    return pd.Series({float(t): float(v) for t, v in values})


def _vmstat(path: Path, cpus: int) -> pd.DataFrame:
    rows = []
    lines = [ln.split() for ln in path.read_text().splitlines()]
    header = next((ln for ln in lines if "id" in ln and "us" in ln), None)
    if header is None:
        return pd.DataFrame()
    idle_col = header.index("id")
    wait_col = header.index("wa") if "wa" in header else None
    samples = [ln for ln in lines if ln and ln[0].isdigit() and len(ln) == len(header)]
    for t, ln in enumerate(samples[1:], start=1):  # the first line averages since boot
        idle = float(ln[idle_col]) + (float(ln[wait_col]) if wait_col is not None else 0.0)
        rows.append({"t_s": float(t), "role": "loadgen", "cpu_cores": round((100.0 - idle) / 100.0 * cpus, 3),
                     "rss_mib": float("nan"), "processes": float("nan"), "cpus": cpus})
    return pd.DataFrame(rows)


def cloud_resources(work: Path) -> pd.DataFrame | None:
    """Build the resource frame from what the runner uploaded; None if nothing usable came back."""
    frames = []
    window = work / "window.txt"
    start = float(window.read_text().split()[0]) if window.exists() else None
    for role in ("gateway", "mock"):
        cpu_file, mem_file = work / f"prom-{role}-cpu.json", work / f"prom-{role}-mem.json"
        if not (cpu_file.exists() and mem_file.exists() and start is not None):
            continue
        try:
            cpu, mem = _matrix(cpu_file), _matrix(mem_file)
        except (ValueError, KeyError, json.JSONDecodeError):
            continue
        joined = pd.DataFrame({"cpu_cores": cpu, "rss_mib": mem / 2**20}).dropna(how="all")
        frames.append(pd.DataFrame({"t_s": joined.index - start, "role": role,
                                    "cpu_cores": joined["cpu_cores"].to_numpy(),
                                    "rss_mib": joined["rss_mib"].to_numpy(), "processes": float("nan")}))
    vmstat, nproc = work / "vmstat.txt", work / "nproc.txt"
    if vmstat.exists() and nproc.exists():
        frames.append(_vmstat(vmstat, int(nproc.read_text().strip() or 1)))
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else None
