"""A session's outcome from its steps, the same for local and cloud runs (results format 2).

The comparison table reads the session's main step (the scenario, or the suite's published shape)
through ``outcome.files``, paths relative to the session's directory; the suite's figures come from
the step records. These functions keep both in the shape the analysis reads.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from aigw_bench.measure.driver import K6Run
from analysis.derive import ensure_derived
from schema.results import Outcome, Status, StepRecord


def adopt_main_step(outcome: Outcome, record: StepRecord) -> None:
    """The main step's files and k6 facts become the session's (the comparison table reads them)."""
    outcome.files.update({k: f"{record.dir}/{v}" for k, v in record.files.items()})
    outcome.body_sha256 = record.data.get("body_sha256")
    outcome.k6_exit_code = record.data.get("exit_code")
    outcome.thresholds_passed = record.data.get("thresholds_passed")
    outcome.measure_seconds = record.data.get("seconds")
    if record.status != "ok" and outcome.status == "ok":
        outcome.status, outcome.reason = Status.INVALID_OUTPUT, record.reason


def recorder(outcome: Outcome, main_step: str, save: Callable[[Outcome], None]) -> Callable[[StepRecord], None]:
    """The ``on_step`` of a session: each step's record joins the outcome, which is saved at once (what
    is measured is on disk before the next step starts)."""

    def on_step(record: StepRecord) -> None:
        outcome.steps[record.name] = record
        if record.name == main_step:
            adopt_main_step(outcome, record)
        save(outcome)

    return on_step


def adopt_partial(outcome: Outcome, k6_runs: list[K6Run], session_dir: Path, main_step: str) -> None:
    """A session cut short: the main step's k6 files, if its run had started, are still the session's."""
    if main_step in outcome.steps:
        return
    for run in k6_runs:
        if run.dir == session_dir / main_step:
            outcome.files.update({k: f"{main_step}/{v}" for k, v in run.files.items()})
            outcome.k6_exit_code = run.exit_code
            outcome.measure_seconds = round(run.seconds, 2)


def finish_outcome(run_dir: Path, work: Path, outcome: Outcome) -> None:
    """A session's last word on its main step: no summary is invalid output; otherwise its per-second
    series, histograms and the raw-vs-summary check, derived from the per-request samples now (as
    ``aigw-bench report`` would), unless the engine's merge already wrote them."""
    if outcome.status == Status.OK and "summary" not in outcome.files:
        outcome.status = Status.INVALID_OUTPUT
        outcome.reason = outcome.reason or "k6 wrote no summary; see the main step's k6.log"
    if outcome.measured:
        ensure_derived(run_dir, [outcome])
