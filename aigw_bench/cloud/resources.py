"""Resource usage of a cloud run in the local format (rows of t_s, role, cpu_cores, rss_mib).

- gateway and mock pods: Prometheus answers the runner fetched inside the VPC (the runner scripts'
  ``prometheus`` macro). ``prom-<role>-cpu/mem.json``: range queries (5 s steps) for the charts and
  memory; ``promraw-<role>-cpu.json``: the raw samples of the CPU counters around the window, from
  which :func:`cpu_seconds` interpolates the CPU time used between its start and its end.
- loadgen: the runner's own ``vmstat 1`` during the measurement (``nproc.txt`` gives its CPUs).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROLES = ("gateway", "mock")


def namespace_selectors(namespaces: dict[str, str]) -> dict[str, str]:
    """role -> namespace as role -> the selector of every pod in it."""
    return {role: f'namespace="{ns}"' for role, ns in namespaces.items()}


def _containers(selector: str) -> str:
    # Every container the selector matches; not the pod-level cgroup (container="") nor the pause container.
    return f'{selector},container!="",container!="POD"'


@dataclass(frozen=True)
class Queries:
    series: dict[str, str]  # name -> PromQL for query_range (charts, memory)
    counters: dict[str, str]  # name -> series selector of a CPU counter (raw samples)


def prometheus_queries(selectors: dict[str, str]) -> Queries:
    """PromQL for each role's pods (role -> label selector): CPU in cores, working-set memory in bytes."""
    series, counters = {}, {}
    for role, selector in selectors.items():
        containers = _containers(selector)
        series[f"{role}-cpu"] = f"sum(rate(container_cpu_usage_seconds_total{{{containers}}}[1m]))"
        series[f"{role}-mem"] = f"sum(container_memory_working_set_bytes{{{containers}}})"
        counters[f"{role}-cpu"] = f"container_cpu_usage_seconds_total{{{containers}}}"
    return Queries(series, counters)


class PrometheusAnswerError(ValueError):
    pass


def _answer(path: Path) -> list[dict[str, Any]]:
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise PrometheusAnswerError(f"{path.name}: not JSON ({exc})") from None
    if doc.get("status") != "success":
        raise PrometheusAnswerError(f"{path.name}: Prometheus answered {doc.get('status')}: {doc.get('error')}")
    return doc.get("data", {}).get("result", [])


def _series(path: Path) -> pd.Series:
    """(unix time -> value) of a range answer with one series (a sum); empty if Prometheus had none."""
    result = _answer(path)
    if not result:
        return pd.Series(dtype=float)
    return pd.Series({float(t): float(v) for t, v in result[0]["values"]})


def _at(times: np.ndarray, values: np.ndarray, t: float) -> float:
    """A counter's value at ``t``, linear between the samples around it (clamped at the ends)."""
    return float(np.interp(t, times, values))


def cpu_seconds(path: Path, start: float, end: float) -> float:
    """CPU seconds all containers used in [start, end], from raw counter samples (one series per
    container). Counter resets (a restarted container) are undone first; a container with no sample
    before ``start`` counts from its first sample."""
    total = 0.0
    for item in _answer(path):
        samples = np.array([(float(t), float(v)) for t, v in item.get("values", [])])
        if len(samples) == 0:
            continue
        times, values = samples[:, 0], samples[:, 1]
        # As Prometheus' rate(): after a drop the counter restarted from 0; what it had counts on.
        offsets = np.concatenate([[0.0], np.cumsum(np.where(np.diff(values) < 0, values[:-1], 0.0))])
        values = values + offsets
        total += max(0.0, _at(times, values, end) - _at(times, values, start))
    return total


def _vmstat(path: Path, cpus: int) -> list[dict[str, Any]]:
    rows = []
    lines = [ln.split() for ln in path.read_text().splitlines()]
    header = next((ln for ln in lines if "id" in ln and "us" in ln), None)
    if header is None:
        return rows
    idle_col = header.index("id")
    wait_col = header.index("wa") if "wa" in header else None
    samples = [ln for ln in lines if ln and ln[0].isdigit() and len(ln) == len(header)]
    for t, ln in enumerate(samples[1:], start=1):  # the first line averages since boot
        idle = float(ln[idle_col]) + (float(ln[wait_col]) if wait_col is not None else 0.0)
        rows.append({"t_s": float(t), "role": "loadgen", "cpu_cores": round((100.0 - idle) / 100.0 * cpus, 3),
                     "rss_mib": float("nan"), "processes": float("nan"), "cpus": cpus})
    return rows


@dataclass
class Usage:
    """What one runner job measured: sample rows, CPU seconds per role, and what was missing."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def window(directory: Path) -> tuple[float, float] | None:
    path = directory / "window.txt"
    if not path.exists():
        return None
    start, end = (float(x) for x in path.read_text().split()[:2])
    return start, end


def pod_usage(directory: Path, roles: tuple[str, ...] = ROLES) -> Usage:
    """The pods' rows (t_s relative to the window's start) and, where raw samples came, CPU seconds."""
    usage = Usage()
    span = window(directory)
    errors = directory / "prom-errors.txt"
    if errors.exists() and errors.read_text().strip():
        usage.problems.append("Prometheus: " + " | ".join(errors.read_text().split("\n")[-6:]).strip(" |"))
    if span is None:
        usage.problems.append("the runner wrote no window.txt")
        return usage
    start, end = span
    for role in roles:
        cpu_file, mem_file, raw_file = (directory / f"prom-{role}-cpu.json", directory / f"prom-{role}-mem.json",
                                        directory / f"promraw-{role}-cpu.json")
        try:
            if cpu_file.exists() and mem_file.exists():
                joined = pd.DataFrame({"cpu_cores": _series(cpu_file), "rss_mib": _series(mem_file) / 2**20})
                for t, row in joined.dropna(how="all").iterrows():
                    usage.rows.append({"t_s": float(t) - start, "role": role, "cpu_cores": row["cpu_cores"],
                                       "rss_mib": row["rss_mib"], "processes": float("nan")})
            if raw_file.exists():
                usage.cpu_seconds[role] = cpu_seconds(raw_file, start, end)
        except (PrometheusAnswerError, KeyError, TypeError, ValueError) as exc:
            usage.problems.append(f"{role}: {exc}")
    return usage


def loadgen_usage(directories: list[Path]) -> Usage:
    """The runners' vmstat: rows of the first runner; CPU seconds summed over all of them."""
    usage = Usage()
    for i, d in enumerate(directories):
        vmstat, nproc = d / "vmstat.txt", d / "nproc.txt"
        if not (vmstat.exists() and nproc.exists()):
            continue
        rows = _vmstat(vmstat, int(nproc.read_text().strip() or 1))
        usage.cpu_seconds["loadgen"] = usage.cpu_seconds.get("loadgen", 0.0) + sum(r["cpu_cores"] for r in rows)
        if i == 0:
            usage.rows += rows
    return usage


def write_rows(rows: list[dict[str, Any]], path: Path) -> None:
    pd.DataFrame(rows, columns=["t_s", "role", "cpu_cores", "rss_mib", "processes", "cpus"]).to_csv(path, index=False)
