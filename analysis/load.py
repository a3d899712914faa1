"""Load a run directory into tidy frames.

- ``outcomes``: one row per target x repeat: status, reason, evidence summary.
- ``metrics``: one row per target x repeat x metric, values straight from k6's summary.json.

A summary that is missing or cut short does not stop the analysis: that target's outcome row says
which file and why, and it contributes no numbers (none are made up).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.logtext import plain_lines
from schema.k6 import read_summary_file
from schema.manifest import Manifest, RigRecord
from schema.results import Outcome, StepRecord, read_manifest, read_outcomes, target_dir

# metric column -> (k6 metric, stat). Latency in ms (k6's unit for trends), rates as fractions.
SUMMARY_FIELDS: dict[str, tuple[str, str]] = {
    "requests": ("http_reqs", "count"),
    "rps": ("http_reqs", "rate"),
    "ok_rate": ("aigw_ok", "rate"),
    "http_failed_rate": ("http_req_failed", "rate"),
    "latency_avg_ms": ("http_req_duration", "avg"),
    "latency_min_ms": ("http_req_duration", "min"),
    "latency_p10_ms": ("http_req_duration", "p(10)"),
    "latency_p25_ms": ("http_req_duration", "p(25)"),
    "latency_p50_ms": ("http_req_duration", "p(50)"),
    "latency_p75_ms": ("http_req_duration", "p(75)"),
    "latency_p90_ms": ("http_req_duration", "p(90)"),
    "latency_p95_ms": ("http_req_duration", "p(95)"),
    "latency_p99_ms": ("http_req_duration", "p(99)"),
    "latency_p999_ms": ("http_req_duration", "p(99.9)"),
    "latency_max_ms": ("http_req_duration", "max"),
    "ttfb_avg_ms": ("http_req_waiting", "avg"),
    "ttfb_p50_ms": ("http_req_waiting", "p(50)"),
    "ttfb_p95_ms": ("http_req_waiting", "p(95)"),
    "ttfb_p99_ms": ("http_req_waiting", "p(99)"),
    "response_bytes_total": ("aigw_response_bytes", "count"),
    "ok_requests": ("aigw_ok", "passes"),
    # Scenarios with usage_metrics: output tokens of the successful answers, in total and per second of
    # the run, and each request's own tokens per second (tokens over that request's duration).
    "completion_tokens": ("aigw_completion_tokens", "count"),
    "output_tokens_per_s": ("aigw_completion_tokens", "rate"),
    "request_tokens_per_s_avg": ("aigw_tokens_per_s", "avg"),
    "request_tokens_per_s_p50": ("aigw_tokens_per_s", "p(50)"),
    "dropped_iterations": ("dropped_iterations", "count"),
    "vus_max": ("vus_max", "max"),
    "data_received_bytes": ("data_received", "count"),
    "data_sent_bytes": ("data_sent", "count"),
}


class SummaryError(Exception):
    pass


def disturbed(record: StepRecord) -> bool:
    """The noise guard found the step's window disturbed by other work, still, after measuring it again (or,
    for a capacity search, one of its probes: a probe's verdict decides the figure)."""
    probes = record.data.get("probes") or []
    return bool((record.data.get("noise") or {}).get("disturbed") or any(p.get("disturbed") for p in probes))


@dataclass
class RunData:
    run_dir: Path
    manifest: Manifest
    outcomes: pd.DataFrame  # one row per target x repeat
    metrics: pd.DataFrame  # target, repeat, metric, value (from summary.json)
    timeseries: pd.DataFrame  # target, repeat + the per-second columns
    resources: pd.DataFrame  # target, repeat, t_s, role, cpu_cores, rss_mib, processes
    histograms: pd.DataFrame  # target, repeat, bucket, upper_ms, count
    statuses: pd.DataFrame  # target, repeat, status, requests
    raw_checks: pd.DataFrame  # target, repeat, agrees, disagreeing: raw samples against k6's summary
    sessions: list[Outcome] = field(default_factory=list)  # the outcomes as recorded, with their steps

    @property
    def is_suite(self) -> bool:
        return self.manifest.is_suite

    @property
    def rig(self) -> RigRecord:
        return self.manifest.rig_record

    def roles(self) -> dict[str, str]:
        return self.manifest.roles()

    def step_records(self, step: str) -> list[tuple[Outcome, StepRecord]]:
        """Every session's record of one step (all repeats), with the session it belongs to. A record whose
        window other work on the machine still disturbed after the noise guard measured it again is left out
        where the same target has a clean one: a disturbed window is said (validity), never a figure beside
        a clean one. With no clean session it stays, and validity says its figures are not the target's own."""
        records = [(o, o.steps[step]) for o in self.sessions if step in o.steps]
        clean = {o.target for o, r in records if not disturbed(r)}
        return [(o, r) for o, r in records if not (disturbed(r) and o.target in clean)]

    def step_path(self, outcome: Outcome, record: StepRecord, name: str | None = None) -> Path:
        """A step's directory, or one of its files."""
        base = target_dir(self.run_dir, outcome.target, outcome.repeat) / record.dir
        return base / record.files[name] if name else base

    @property
    def baseline(self) -> str | None:
        return self.manifest.baseline


def read_summary(path: Path) -> dict[str, float]:
    """The metric values of one k6 summary.json, keyed by :data:`SUMMARY_FIELDS` names."""
    data, problem = read_summary_file(path)
    if data is None:
        raise SummaryError(problem)
    metrics = data["metrics"]
    values: dict[str, float] = {}
    for column, (metric, stat) in SUMMARY_FIELDS.items():
        value = metrics.get(metric, {}).get("values", {}).get(stat)
        if value is not None:
            values[column] = float(value)
    duration_ms = data.get("state", {}).get("testRunDurationMs")
    if duration_ms is not None:
        values["test_duration_s"] = float(duration_ms) / 1000.0
    if "ok_rate" in values:
        values["error_rate"] = 1.0 - values["ok_rate"]
    if values.get("ok_requests") and "completion_tokens" in values:
        values["tokens_per_response"] = values["completion_tokens"] / values["ok_requests"]
    sizes = metrics.get("aigw_response_bytes", {})
    if sizes.get("type") == "trend":  # summaries written before the counter (format 1)
        values["response_bytes_avg"] = float(sizes["values"]["avg"])
    elif values.get("requests") and "response_bytes_total" in values:
        values["response_bytes_avg"] = values["response_bytes_total"] / values["requests"]
    return values


def _outcome_row(o: Outcome) -> dict[str, Any]:
    ev = o.evidence
    return {
        "target": o.target,
        "repeat": o.repeat,
        "status": o.status,
        "reason": o.reason,
        "exit_code": ev.get("exit_code"),
        "k6_exit_code": o.k6_exit_code,
        "thresholds_passed": o.thresholds_passed,
        "ready_seconds": o.ready_seconds,
        "url": o.url,
        "body_sha256": o.body_sha256,
        "smoke_status": (ev.get("smoke") or {}).get("http_status"),
        "log_tail": "\n".join(plain_lines(ev.get("log_tail") or ev.get("k6_log_tail") or [])),
        "raw_truncated": ev.get("raw_truncated"),
    }


def _not_reached(m: Manifest) -> str:
    """Why a session of the plan has no outcome: the run stopped (and why), or its runner died."""
    if m.stopped:
        return f"the run was stopped before this target: {m.stopped}"
    if m.finished_at is None:
        return ("the runner ended before this target without recording why (killed, or the machine stopped), "
                "or the run is still going")
    return "the run stopped before this target"


def load_run(run_dir: Path) -> RunData:
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    outcomes = read_outcomes(run_dir)
    rows, metric_rows = [], []
    for o in outcomes:
        row = _outcome_row(o)
        if o.measured:
            path = target_dir(run_dir, o.target, o.repeat) / o.files["summary"]
            try:
                values = read_summary(path)
            except SummaryError as exc:
                row["status"] = "invalid_output"
                row["reason"] = f"{o.target} (repeat {o.repeat}): {exc}; no numbers reported for it"
                values = {}
            metric_rows.extend(
                {"target": o.target, "repeat": o.repeat, "metric": k, "value": v} for k, v in values.items()
            )
        elif o.status == "ok":
            row["status"] = "invalid_output"
            row["reason"] = f"{o.target} (repeat {o.repeat}): no k6 summary recorded"
        rows.append(row)
    # Targets in the manifest with no outcome at all (the run stopped before them).
    seen = {(r["target"], r["repeat"]) for r in rows}
    for entry in manifest.order:
        key = (entry.target, entry.repeat)
        if key not in seen:
            rows.append({"target": key[0], "repeat": key[1], "status": "not_run", "reason": _not_reached(manifest)})
    outcome_frame = pd.DataFrame(rows)
    metrics = pd.DataFrame(metric_rows, columns=["target", "repeat", "metric", "value"])
    measured = [o for o in outcomes if o.measured]
    return RunData(
        run_dir, manifest, outcome_frame, metrics,
        timeseries=_collect(run_dir, measured, "timeseries"),
        resources=_collect(run_dir, measured, "resources"),
        histograms=_collect(run_dir, measured, "histogram"),
        statuses=_collect(run_dir, measured, "statuses"),
        raw_checks=_raw_checks(run_dir, measured),
        sessions=outcomes,
    )


def _raw_checks(run_dir: Path, outcomes: list[Outcome]) -> pd.DataFrame:
    """Each target's ``raw-check.json``: do its per-request samples agree with k6's own summary?"""
    rows = []
    for o in outcomes:
        name = o.files.get("raw_check")
        if not name:
            continue
        try:
            record = json.loads((target_dir(run_dir, o.target, o.repeat) / name).read_text())
        except (OSError, json.JSONDecodeError):
            continue
        disagreeing = [f"{i['metric']} {i['stat']}: {i['raw']:.6g} from the raw samples, {i['k6']:.6g} in k6's summary"
                       for i in record.get("items", []) if not i.get("agrees")]
        rows.append({"target": o.target, "repeat": o.repeat, "agrees": record.get("agrees"),
                     "checked": len(record.get("items", [])), "disagreeing": disagreeing,
                     "quantile_error_pct": record.get("quantile_error_pct"), "truncated": record.get("truncated")})
    return pd.DataFrame(rows, columns=["target", "repeat", "agrees", "checked", "disagreeing", "quantile_error_pct",
                                       "truncated"])


def _collect(run_dir: Path, outcomes: list[Outcome], key: str) -> pd.DataFrame:
    """Concatenate one per-target CSV (named in the outcomes' files) across targets and repeats.

    These files are derived data for charts and validity checks; an unreadable one is skipped
    (the table's numbers come from summary.json alone)."""
    frames = []
    for o in outcomes:
        name = o.files.get(key)
        if not name:
            continue
        path = target_dir(run_dir, o.target, o.repeat) / name
        try:
            frame = pd.read_csv(path)
        except (OSError, ValueError, pd.errors.EmptyDataError):
            continue
        frames.append(frame.assign(target=o.target, repeat=o.repeat))
    if not frames:
        return pd.DataFrame(columns=["target", "repeat"])
    return pd.concat(frames, ignore_index=True)
