"""The per-second files of every target and repeat: derived once from the raw file, then reused.

The runners derive them right after each target (``write_timeseries``; nothing else is measured
meanwhile). A report (``aigw-bench report <dir>``) reuses them when they are complete, of the
current format and newer than their raw file, and otherwise derives them again: side by side in
worker processes where the CPUs this process may use allow (:func:`_run_all`), else one after the
other, each with every CPU. Several load generators' raw files are reduced the same way before
their aggregates are added (:func:`aggregate_files`).
"""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from analysis.k6csv import usable_cpus
from analysis.timeseries import (
    DERIVED_FORMAT,
    SERIES_FILES,
    RawAggregate,
    TimeseriesError,
    aggregate_raw,
    check_summary_line,
    write_series,
)
from schema.results import Outcome, target_dir, write_outcome

T = TypeVar("T")
_CPUS_PER_FILE = 3


def is_fresh(work: Path, raw: Path) -> bool:
    """True if every derived file exists, is newer than ``raw`` and of the current format."""
    paths = [work / name for name in SERIES_FILES.values()]
    try:
        if min(p.stat().st_mtime_ns for p in paths) < raw.stat().st_mtime_ns:
            return False
    except OSError:
        return False
    return _check_record(work) is not None


def _check_record(work: Path) -> dict[str, Any] | None:
    """The target's ``raw-check.json`` if it is readable and of the current format."""
    try:
        record = json.loads((work / SERIES_FILES["raw_check"]).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("format") == DERIVED_FORMAT else None


def _derive(work: Path, raw: Path, threads: int) -> dict[str, Any]:
    """Derive one target's files; the check record, or ``{"error": ...}`` if the raw file is unusable."""
    summary = work / "summary.json"
    try:
        agg = aggregate_raw(raw, threads=threads)
    except TimeseriesError as exc:
        return {"error": str(exc)}
    return write_series(agg, work, summary if summary.exists() else None)


def series_dir(run_dir: Path, outcome: Outcome) -> Path:
    """Where an outcome's k6 files are, and its derived files go: the folder of its raw file (the main
    step's folder in a session, e.g. ``seed/``), or of its summary when there is no raw file."""
    work = target_dir(run_dir, outcome.target, outcome.repeat)
    anchor = outcome.files.get("raw") or outcome.files.get("summary")
    return (work / anchor).parent if anchor else work


def _listed(outcome: Outcome, prefix: str) -> dict[str, str]:
    return {key: f"{prefix}{name}" for key, name in SERIES_FILES.items()}


def record_derived(outcome: Outcome, result: dict[str, Any], prefix: str = "") -> None:
    """Note the derived files (``prefix``: their folder within the session's) and their check, or why
    there are none, in the outcome."""
    if "error" in result:
        outcome.evidence["timeseries_error"] = result["error"]
        return
    outcome.evidence.pop("timeseries_error", None)
    outcome.files.update(_listed(outcome, prefix))
    if result.get("truncated"):
        outcome.evidence["raw_truncated"] = result["truncated"]
    outcome.evidence["raw_check"] = check_summary_line(result)


def _run_all(func: Callable[..., T], *args: list[Any]) -> list[T]:
    """``func(*args[i], threads=...)`` for every i: in worker processes if the machine has the CPUs.

    One file keeps about three CPUs busy (a thread decompressing and folding, two parsing; see
    :mod:`analysis.k6csv`), so files run side by side only when there are CPUs for more than one,
    each with its share of parsing threads. On 2 CPUs two 3-minute 30,000 RPS files took 24-29 s
    either way (one after the other, or at once in two processes of one parsing thread each); one
    after the other needs half the memory and no process start-up."""
    jobs = len(args[0])
    cpus = usable_cpus()
    workers = max(1, min(jobs, cpus // _CPUS_PER_FILE))
    threads = max(1, cpus // workers)
    if workers == 1:
        return [func(*a, threads=threads) for a in zip(*args, strict=True)]
    # spawn, not fork: this process may hold pyarrow's and numpy's threads, which fork does not copy safely.
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(partial(func, threads=threads), *args))


def _prefix(run_dir: Path, outcome: Outcome, work: Path) -> str:
    relative = work.relative_to(target_dir(run_dir, outcome.target, outcome.repeat)).as_posix()
    return "" if relative == "." else f"{relative}/"


def ensure_derived(run_dir: Path, outcomes: list[Outcome]) -> list[Outcome]:
    """Derive what is missing or stale in a run directory, and list in each outcome the derived files
    it does not list yet (a runner that only wrote them); returns the outcomes that changed."""
    stale: list[tuple[Outcome, Path, Path]] = []
    changed: list[Outcome] = []
    for o in outcomes:
        if not o.measured:
            continue
        work = series_dir(run_dir, o)
        prefix = _prefix(run_dir, o, work)
        raw = work / Path(o.files["raw"]).name if "raw" in o.files else None
        if raw is not None and raw.exists() and not is_fresh(work, raw):
            stale.append((o, work, raw))
            continue
        record = _check_record(work)
        listed = all(o.files.get(k) == v for k, v in _listed(o, prefix).items()) and "raw_check" in o.evidence
        if record is not None and not listed:
            record_derived(o, record, prefix)
            changed.append(o)
    results = _run_all(_derive, [w for _, w, _ in stale], [r for _, _, r in stale]) if stale else []
    for (o, work, _), result in zip(stale, results, strict=True):
        record_derived(o, result, _prefix(run_dir, o, work))
    changed += [o for o, _, _ in stale]
    for o in changed:
        write_outcome(run_dir, o)
    return changed


def _aggregate(path: Path, threads: int) -> RawAggregate:
    return aggregate_raw(path, threads=threads)


def aggregate_files(paths: list[Path]) -> list[RawAggregate]:
    """Reduce several raw files (e.g. one per load generator) to aggregates, side by side where there are CPUs."""
    return _run_all(_aggregate, list(paths)) if paths else []
