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

import contextlib
import json
import os
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from schema.base import REPO_DIR
from schema.errors import ResultsError
from schema.manifest import Manifest

DEFAULT_RESULTS_DIR = REPO_DIR / "results"
MANIFEST = "manifest.json"
OUTCOME = "outcome.json"


class Status(StrEnum):
    """What happened to one target in one repeat; ``text`` is how the report and the terminal say it."""

    OK = "ok", "measured"
    NOT_RUNNABLE = "not_runnable", "not runnable here"  # the catalog says it cannot run here (reason given)
    FAILED_TO_START = "failed_to_start", "failed to start"  # the process exited before it was ready
    NOT_READY = "not_ready", "never ready"  # it never answered its readiness probe
    NOT_SERVED = "not_served", "not served"  # up, but did not answer the benchmark's request correctly
    DIED = "died", "died under load"  # it exited while under load; partial data kept
    MOCK_FAILED = "mock_failed", "mock failed"  # the mock could not start: nothing about the target measured
    K6_FAILED = "k6_failed", "load generator failed"  # the load generator failed
    INVALID_OUTPUT = "invalid_output", "invalid k6 output"  # k6 ran but its output is missing or cut short
    INTERRUPTED = "interrupted", "interrupted"  # Ctrl-C / SIGTERM / a full disk; partial data kept
    # What outcome.json says while its session runs: read after the run, the runner died mid-session
    # (SIGKILL, the machine stopped) without recording how it ended; what the steps wrote is kept.
    UNFINISHED = "unfinished", "no end recorded"
    UNREADABLE = "unreadable", "record unreadable"  # outcome.json cut short or damaged: the session is not reported
    NOT_RUN = "not_run", "not run"  # never written by a runner: the analysis's word for a target the run never reached

    def __new__(cls, value: str, text: str) -> Status:
        member = str.__new__(cls, value)
        member._value_ = value
        member.text = text  # type: ignore[attr-defined]
        return member


# Status -> its words; for the analysis, which also meets statuses as plain strings in frames.
STATUS_TEXT: dict[str, str] = {s.value: s.text for s in Status}  # type: ignore[attr-defined]


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
    # A catalog variant run as its own target (ENTRY+VARIANT): the entry and the variant; absent otherwise.
    entry: str | None = None
    variant: str | None = None
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
    """Write atomically: a reader never sees half a file (a full disk leaves the previous one, not a cut one)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):  # a read-only disk has no half file to remove
            tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):  # name the file meant, not its temporary name
            raise type(exc)(exc.errno, exc.strerror, str(path)) from exc
        raise


def write_outcome(run_dir: Path, outcome: Outcome) -> Path:
    path = target_dir(run_dir, outcome.target, outcome.repeat) / OUTCOME
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, outcome.model_dump(exclude={k for k in ("entry", "variant") if getattr(outcome, k) is None}))
    return path


def read_manifest_data(run_dir: Path) -> dict[str, Any]:
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
    """Every session's outcome. One that cannot be read (cut short, damaged) becomes an outcome of status
    ``unreadable`` naming the file and the error: the other sessions are still reported."""
    outcomes = []
    for path in sorted((run_dir / "targets").glob(f"*/r*/{OUTCOME}")):
        try:
            outcomes.append(Outcome.model_validate(json.loads(path.read_bytes())))
        except (OSError, ValueError) as exc:
            outcomes.append(_unreadable(run_dir, path, exc))
    return outcomes


def _unreadable(run_dir: Path, path: Path, exc: Exception) -> Outcome:
    if isinstance(exc, json.JSONDecodeError):
        cut = not exc.doc.rstrip().endswith("}")  # an outcome is one JSON object: its text ends with its "}"
        problem = (f"cut short (its {len(exc.doc):,} characters end inside the JSON)" if cut
                   else f"not valid JSON ({exc.msg}: line {exc.lineno} column {exc.colno})")
    elif isinstance(exc, ValidationError):
        problem = "not an outcome: " + "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}" for e in exc.errors()[:3])
    else:
        problem = str(exc)
    repeat = path.parent.name.removeprefix("r")
    return Outcome(target=path.parent.parent.name, repeat=int(repeat) if repeat.isdigit() else 0,
                   status=Status.UNREADABLE,
                   reason=f"{path.relative_to(run_dir)} is {problem}; nothing of this session is reported "
                          "(its other files are kept)")


def read_manifest(run_dir: Path) -> Manifest:
    """The run's manifest as the typed model (older formats migrated on load)."""
    path = run_dir / MANIFEST
    try:
        return Manifest.model_validate(read_manifest_data(run_dir))
    except ValueError as exc:
        raise ResultsError(f"{path}: not a manifest this version can read ({exc})") from None


def write_manifest(run_dir: Path, manifest: Manifest) -> None:
    write_json(run_dir / MANIFEST, manifest.model_dump(mode="json", exclude_none=False))
