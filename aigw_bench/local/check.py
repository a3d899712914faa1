"""``aigw-bench check``: one catalog entry tried quickly, with the local engine's own machinery.

The engine's preflight (installs, programs, templates, ports, the version probe), then one session
exactly as a run starts it (the mock, the target on its CPUs, readiness, the benchmark's request
once), then one request and one stream through the target, answers kept; everything stops when the
session ends. No rig, no k6, no report: seconds instead of a run's minute.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from aigw_bench.local.cpus import CpuPlan
from aigw_bench.local.engine import LocalEngine
from aigw_bench.local.probes import is_wellformed_completion
from aigw_bench.measure.driver import Endpoint, SessionLost
from aigw_bench.measure.events import EventSink, ignore
from aigw_bench.measure.plan import Knobs
from aigw_bench.run.engine import RunContext
from aigw_bench.run.plan import plan_run
from k6_scripts.render import build_body
from schema.catalog import Gateway
from schema.errors import ConfigError
from schema.mock import MockDefinition
from schema.results import Outcome, Status, now_iso

REQUEST_TIMEOUT_S = 60.0
SNIPPET = 300


@dataclass
class Answer:
    """What the target answered to one request."""

    label: str
    ok: bool  # HTTP 200 and a well-formed OpenAI chat completion (or stream of chunks)
    status: int | None = None
    seconds: float = 0.0
    first_chunk_seconds: float | None = None  # streams: time to the first content chunk
    chunks: int = 0  # streams: content chunks
    done: bool = False  # streams: `data: [DONE]` seen
    usage: dict[str, Any] | None = None
    content: str = ""
    snippet: str = ""  # the start of the raw answer (for an answer that is not a completion)
    error: str | None = None


@dataclass
class CheckResult:
    target: str
    url: str = ""
    ok: bool = False
    reason: str | None = None  # why the session could not start or serve
    status: str | None = None
    version: dict[str, Any] | None = None  # pinned, installed, matches_pin
    mock_seconds: float | None = None  # the mock from start to ready
    ready_seconds: float | None = None  # the target from start to ready (None: no process of its own)
    first_request_seconds: float | None = None  # the benchmark's request once, right after ready
    answers: list[Answer] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)


def _completion(raw: bytes) -> tuple[str, dict[str, Any] | None]:
    doc = json.loads(raw)
    return doc["choices"][0]["message"]["content"], doc.get("usage")


def send_one(endpoint: Endpoint, body: str) -> Answer:
    start = time.monotonic()
    answer = Answer("request", ok=False)
    try:
        resp = httpx.post(endpoint.url, content=body.encode(), timeout=REQUEST_TIMEOUT_S, trust_env=False,
                          headers={"Content-Type": "application/json", **endpoint.headers})
    except httpx.HTTPError as exc:
        answer.error = f"{type(exc).__name__}: {exc}"
        answer.seconds = time.monotonic() - start
        return answer
    answer.seconds = time.monotonic() - start
    answer.status = resp.status_code
    answer.snippet = resp.text[:SNIPPET]
    answer.ok = resp.status_code == 200 and is_wellformed_completion(resp.content, stream=False)
    if answer.ok:
        answer.content, answer.usage = _completion(resp.content)
    return answer


def send_stream(endpoint: Endpoint, body: str) -> Answer:
    """One streamed request, read event by event (content chunks, usage, [DONE], time to first chunk)."""
    start = time.monotonic()
    answer = Answer("stream", ok=False)
    raw = b""
    pieces: list[str] = []
    headers = {"Content-Type": "application/json", "Accept": "text/event-stream", **endpoint.headers}
    try:
        with httpx.stream("POST", endpoint.url, content=body.encode(), headers=headers, timeout=REQUEST_TIMEOUT_S,
                          trust_env=False) as resp:
            answer.status = resp.status_code
            for line in resp.iter_lines():
                raw += line.encode() + b"\n"
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    answer.done = True
                    continue
                try:
                    doc = json.loads(data)
                except ValueError:
                    continue
                answer.usage = doc.get("usage") or answer.usage
                delta = ((doc.get("choices") or [{}])[0] or {}).get("delta") or {}
                if delta.get("content"):
                    if answer.first_chunk_seconds is None:
                        answer.first_chunk_seconds = time.monotonic() - start
                    answer.chunks += 1
                    pieces.append(delta["content"])
    except httpx.HTTPError as exc:
        answer.error = f"{type(exc).__name__}: {exc}"
    answer.seconds = time.monotonic() - start
    answer.content = "".join(pieces)
    answer.snippet = raw[:SNIPPET].decode(errors="replace")
    answer.ok = answer.status == 200 and is_wellformed_completion(raw, stream=True)
    return answer


def check_target(target: Gateway, mock: MockDefinition, cpu_plan: CpuPlan, work: Path,
                 mock_profile: str | None = None, emit: EventSink = ignore) -> CheckResult:
    """Start ``target`` against ``mock`` as a run does, send one request and one stream, stop everything.
    Problems found before anything starts (not installed, a template error, a port in use) raise."""
    if not target.local.runnable:
        raise ConfigError(f"{target.entry_dir / 'gateway.yaml'}: local.runnable is false: {target.name} does not "
                          f"run on this machine ({' '.join((target.local.reason or '').split())})")
    plan = plan_run("local", targets=[target], scenario="seed", suite=None, mock_profile=mock_profile, knobs=Knobs(),
                    repeats=1, results_root=work)
    engine = LocalEngine(mock, cpu_plan)
    engine.validate(plan)
    engine.prepare(emit)
    engine.preflight(plan)
    engine.begin(RunContext(plan=plan, run_dir=work, run_id=work.name, emit=emit))
    result = CheckResult(target.name, version=engine.versions.get(target.name))
    outcome = Outcome(target=target.name, repeat=1, status=Status.OK, started_at=now_iso())
    params = plan.measurement.params
    session_dir = work / "session"
    session_dir.mkdir(parents=True, exist_ok=True)
    try:
        with engine.session(target, 1, session_dir, outcome) as session:
            result.url = session.target.url
            result.mock_seconds = engine.mock_ready_seconds
            result.ready_seconds = outcome.ready_seconds
            result.first_request_seconds = outcome.evidence.get("smoke", {}).get("seconds")
            result.answers.append(send_one(session.target, build_body(params, target.request.model)))
            stream_body = build_body(params.model_copy(update={"stream": True}), target.request.model)
            result.answers.append(send_stream(session.target, stream_body))
    except SessionLost as lost:
        result.mock_seconds = engine.mock_ready_seconds
        result.status, result.reason = lost.status, lost.reason
        result.evidence = {**outcome.evidence, **lost.evidence}
        result.url = result.url or outcome.url or ""
        result.ready_seconds = outcome.ready_seconds
        return result
    result.ok = all(a.ok for a in result.answers)
    result.status = Status.OK if result.ok else Status.NOT_SERVED
    return result
