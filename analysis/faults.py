"""The faults suite's figures (docs/faults.md): per target, configuration and scenario, from the raw files
each scenario left (k6's ``summary.json`` and both mocks' attempt records, ``upstream.json``) what the
client saw, what the upstream received, and how both compare with direct (k6 to the mock, the reference)
under the same plan. Written as ``faults.csv``; the report's "Resilience" section and its verdicts come
from this frame (:func:`verdicts`).

- success_rate: answers the client's validation found complete and valid, over the requests sent;
- the status mix: k6's answer classes (ok, status, transport, timeout, truncated, invalid_json) and the
  HTTP statuses (0: no answer);
- amplification: upstream attempts (both mocks) per client request, mean and max (analysis/upstream.py);
- truncated_as_success: HTTP 200 answers that ended cleanly yet were short or invalid JSON;
- cancel_propagated: of the attempts the plan held longer than the client waited (a slow first byte
  beyond its request timeout), the share the upstream saw closed before its answer;
- recovery_s: after an outage window, seconds to the first attempt the mock (not its fallback) answered
  normally: the upstream's view of the target's first success against it once it is back;
- added_p50_us / added_p99_us: the client's latency over direct's in the same scenario;
- rss_growth_mib: the gateway's memory after the scenario minus before it.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from analysis.load import RunData
from analysis.upstream import amplification, cancellation, recovery_seconds
from schema.faults import FaultPlan, SlowFirstByte, request_id
from schema.k6 import metric, read_summary_file
from schema.results import Outcome, StepRecord

STEP_PREFIX = "faults-"  # aigw_bench/measure/faults.py names each scenario's step so
DIRECT = "direct"  # the configuration of the baseline: the reference every difference is taken against
AS_IS = "as is"  # an entry run without a variant
CLASSES = ("ok", "status", "transport", "timeout", "truncated", "invalid_json")
COLUMNS = ["target", "entry", "config", "scenario", "plan", "stream", "status", "requests", "dropped", "success_rate",
           *(f"answers_{c}" for c in CLASSES), "status_mix", "truncated_as_success", "amplification_mean",
           "amplification_max", "upstream_attempts", "fallback_attempts", "unseen", "cancel_propagated",
           "cancel_after_ms", "recovery_s", "p50_ms", "p99_ms", "added_p50_us", "added_p99_us", "rss_growth_mib",
           "cpu_ms_per_request", "reason"]


class FaultsDataError(ValueError):
    """A scenario's files cannot give its figures (missing, or cut short): the message names the file."""


def _config(run: RunData, outcome: Outcome) -> tuple[str, str]:
    """(entry, configuration) of a session: the variant, ``direct`` for the baseline, else ``as is``."""
    if outcome.variant is not None:
        return outcome.entry or outcome.target, outcome.variant
    if run.roles().get(outcome.target) == "baseline":
        return outcome.target, DIRECT
    return outcome.target, AS_IS


def _json(run: RunData, outcome: Outcome, record: StepRecord, kind: str) -> dict[str, Any]:
    if kind not in record.files:
        raise FaultsDataError(f"{record.name}: no {kind} file recorded")
    path = run.step_path(outcome, record, kind)
    if kind == "summary":
        summary, problem = read_summary_file(path)
        if summary is None:
            raise FaultsDataError(f"{path}: {problem}")
        return summary
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FaultsDataError(f"{path} is missing") from None
    except ValueError as exc:
        raise FaultsDataError(f"{path} is not valid JSON (cut short?): {exc}") from None


def _statuses(summary: dict[str, Any]) -> str:
    """'200:96 429:24': the HTTP statuses k6 counted one by one (0: no answer), most frequent first."""
    found = {}
    for name, m in (summary.get("metrics") or {}).items():
        if name.startswith("http_reqs{status:"):
            count = int((m.get("values") or {}).get("count") or 0)
            if count:
                found[name[len("http_reqs{status:"):-1]] = count
    return " ".join(f"{s}:{n}" for s, n in sorted(found.items(), key=lambda kv: (-kv[1], kv[0])))


def _cancel(plan: FaultPlan, timeout_s: float, attempts: list[dict[str, Any]]) -> tuple[float | None, float | None]:
    """Of the attempts answered with a first byte later than the client waits, the share closed before the
    answer and their median time to the close; (None, None) when the plan held none past the timeout."""
    late = max((f.delay_ms for f in plan.faults if isinstance(f, SlowFirstByte)), default=None)
    if late is None or late <= timeout_s * 1000:
        return None, None
    held = [a for a in attempts if a["answer"] == "slow_first_byte"]
    if not held:
        return None, None
    found = cancellation(held)
    return found.closed / len(held), found.median_after_ms


def scenario_row(run: RunData, outcome: Outcome, record: StepRecord) -> dict[str, Any]:
    """One scenario's figures from its files. Raises FaultsDataError naming a file that is missing or cut short."""
    data = record.data
    summary = _json(run, outcome, record, "summary")
    upstream = _json(run, outcome, record, "upstream")
    plan = FaultPlan.model_validate(data["plan"])
    mock = (upstream.get("mock") or {}).get("attempts") or []
    fallback = (upstream.get("fallback") or {}).get("attempts") or []
    iterations = int(metric(summary, "iterations", "count") or 0)
    requests = int(metric(summary, "http_reqs", "count") or 0)
    classes = {c: int(metric(summary, f"aigw_answers{{class:{c}}}", "count") or 0) for c in CLASSES}
    # Requests k6 could not start on time (every VU busy waiting for an answer): the rate was not held.
    dropped = int(metric(summary, "dropped_iterations", "count") or 0)
    row: dict[str, Any] = {"requests": requests, "dropped": dropped,
                           "success_rate": classes["ok"] / requests if requests else None,
                           **{f"answers_{c}": n for c, n in classes.items()}, "status_mix": _statuses(summary),
                           "truncated_as_success": classes["truncated"] + classes["invalid_json"],
                           "p50_ms": metric(summary, "http_req_duration", "med"),
                           "p99_ms": metric(summary, "http_req_duration", "p(99)")}
    if iterations:
        amp = amplification([request_id(n) for n in range(iterations)], mock, fallback)
        row.update({"amplification_mean": amp.mean, "amplification_max": amp.max, "unseen": amp.unseen,
                    "upstream_attempts": sum(1 for a in mock if a["id"].startswith("aigw-")),
                    "fallback_attempts": sum(1 for a in fallback if a["id"].startswith("aigw-"))})
    row["cancel_propagated"], row["cancel_after_ms"] = _cancel(plan, float(data["request_timeout"]), mock + fallback)
    # The primary mock's records only: a fallback answering through the outage is not the upstream's recovery;
    # what counts is when the target succeeds against the upstream that came back (a cooldown delays it).
    row["recovery_s"] = recovery_seconds(plan, mock)
    before, after = data.get("rss_before_mib"), data.get("rss_after_mib")
    row["rss_growth_mib"] = after - before if before is not None and after is not None else None
    cpu = data.get("cpu_seconds")
    row["cpu_ms_per_request"] = cpu * 1000.0 / requests if cpu is not None and requests else None
    return row


def faults_table(run: RunData) -> pd.DataFrame:
    """One row per session and scenario; a scenario whose files cannot give figures is a row with its reason."""
    rows = []
    for outcome in run.sessions:
        entry, config = _config(run, outcome)
        for name, record in outcome.steps.items():
            if not name.startswith(STEP_PREFIX):
                continue
            row: dict[str, Any] = {"target": outcome.target, "entry": entry, "config": config,
                                   "scenario": record.data.get("scenario", name[len(STEP_PREFIX):]),
                                   "plan": (record.data.get("plan") or {}).get("name"),
                                   "stream": bool(record.data.get("stream")), "status": record.status,
                                   "reason": record.reason}
            try:
                row.update(scenario_row(run, outcome, record))
            except FaultsDataError as exc:
                row.update({"status": "invalid", "reason": "; ".join(r for r in (record.reason, str(exc)) if r)})
            rows.append(row)
    frame = pd.DataFrame(rows, columns=COLUMNS)
    return _added_latency(frame)


def _added_latency(frame: pd.DataFrame) -> pd.DataFrame:
    """p50 and p99 over direct's in the same scenario (µs); none without a direct row for it."""
    if frame.empty:
        return frame
    direct = frame[frame["config"] == DIRECT].groupby("scenario")[["p50_ms", "p99_ms"]].median()
    for q in ("p50", "p99"):
        ref = frame["scenario"].map(direct[f"{q}_ms"])
        frame[f"added_{q}_us"] = (pd.to_numeric(frame[f"{q}_ms"]) - pd.to_numeric(ref)) * 1000.0
    return frame


# ------------------------------------------------------------------------------ verdicts
# A difference from direct smaller than this is not a verdict: a few requests either way at ~100 per scenario.
SUCCESS_MARGIN = 0.02
AMPLIFIES = 1.05  # attempts per request above this: the target retries
RECOVERY_MARGIN_S = 1.0
RSS_GROWTH_MIB = 10.0


def _pct(value: float) -> str:
    return f"{value:.0%}"


def _row_verdicts(r: dict[str, Any], ref: dict[str, Any] | None) -> list[tuple[str, str]]:
    """(verdict, evidence) pairs for one scenario of one target, against direct's row ``ref``."""
    out = []
    scenario, n = r["scenario"], r["requests"]
    if r["truncated_as_success"]:
        out.append(("passes answers cut short or malformed as successes",
                    f"{scenario}: {r['truncated_as_success']} of {n} answers HTTP 200, ended cleanly, short or invalid "
                    f"JSON" + (f" (direct: {ref['truncated_as_success']})" if ref else "")))
    amp = r["amplification_mean"]
    if amp is not None and not pd.isna(amp) and amp > AMPLIFIES:
        out.append((f"multiplies upstream load x{amp:.2f} under {scenario}",
                    f"{r['upstream_attempts']} attempts on the mock and {r['fallback_attempts']} on the fallback for "
                    f"{n} requests (at most {r['amplification_max']} for one)"))
    if ref is not None and r["success_rate"] is not None and ref["success_rate"] is not None:
        got, base = r["success_rate"], ref["success_rate"]
        if got > base + SUCCESS_MARGIN:
            out.append((f"hides upstream failures under {scenario}",
                        f"{_pct(got)} of answers complete against direct's {_pct(base)} (statuses {r['status_mix']})"))
        elif got < base - SUCCESS_MARGIN:
            out.append((f"fails more often than the upstream under {scenario}",
                        f"{_pct(got)} of answers complete against direct's {_pct(base)} (statuses {r['status_mix']})"))
    cancel = r["cancel_propagated"]
    if cancel is not None and not pd.isna(cancel) and cancel < 1.0:
        out.append(("keeps the upstream request running after the client left",
                    f"{scenario}: {_pct(1 - cancel)} of the answers the plan held past the client's timeout were not "
                    "closed at the mock (answered in full, or still running when its records were read)"))
    if (ref is not None and r["recovery_s"] is not None and ref["recovery_s"] is not None
            and not pd.isna(r["recovery_s"]) and r["recovery_s"] > ref["recovery_s"] + RECOVERY_MARGIN_S):
        out.append((f"takes {r['recovery_s']:.1f} s to succeed again after an outage",
                    f"{scenario}: first normal answer {r['recovery_s']:.2f} s after the upstream came back "
                    f"(direct: {ref['recovery_s']:.2f} s)"))
    growth = r["rss_growth_mib"]
    if growth is not None and not pd.isna(growth) and growth > RSS_GROWTH_MIB:
        out.append((f"its memory grew under {scenario}", f"+{growth:.1f} MiB resident over the scenario"))
    return out


def verdicts(frame: pd.DataFrame) -> pd.DataFrame:
    """Plain-word verdicts per target and configuration, each with its evidence; the direct rows are the
    reference (what the mock did), so only what the target adds or hides becomes a verdict."""
    columns = ["target", "entry", "config", "verdict", "evidence"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    clean = frame.astype(object).where(frame.notna(), None)
    direct = {r["scenario"]: r for r in clean[clean["config"] == DIRECT].to_dict("records") if r["status"] == "ok"}
    rows = []
    for r in clean[clean["config"] != DIRECT].to_dict("records"):
        if r["status"] != "ok":
            rows.append({**{k: r[k] for k in columns[:3]}, "verdict": f"not measured under {r['scenario']}",
                         "evidence": r["reason"] or r["status"]})
            continue
        for verdict, evidence in _row_verdicts(r, direct.get(r["scenario"])):
            rows.append({**{k: r[k] for k in columns[:3]}, "verdict": verdict, "evidence": evidence})
    return pd.DataFrame(rows, columns=columns)
