"""Fault plans on the real fast mock (nginx + Lua): each fault happens exactly where the plan's rule puts
it (so at its planned rate, deterministically for the seed), attempts per request id are counted
exactly, a client that leaves is seen by the mock with the time it left, an outage window closes every
connection and the mock comes back at its end, and k6's validation of every answer (the faults script)
sorts what the client saw into exactly the classes the mock's records predict.

One mock serves the mixed plan for the whole module (a few seconds in all); the outage runs on a second
instance of its own.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter

import httpx
import pytest

from aigw_bench.local.processes import Supervisor
from aigw_bench.run.environment import k6_binary
from k6_scripts.render import RenderTarget, render_faults
from schema.faults import HEALTHY, FaultPlan, request_id
from schema.mock import load_contract
from schema.scenarios import load_scenario
from tests.helpers import start_mock

pytestmark = pytest.mark.slow

CHAT = "/v1/chat/completions"
PORT, OUTAGE_PORT = 18976, 18977
SLOW_MS = 3000
MIXED = FaultPlan.model_validate({"name": "mixed", "seed": 7, "faults": [
    {"fault": "http_429", "rate": 0.08, "retry_after_s": 2},
    {"fault": "http_500", "rate": 0.08},
    {"fault": "http_503", "rate": 0.08},
    {"fault": "reset", "rate": 0.08},
    {"fault": "cut_stream", "rate": 0.08, "after_chunks": 3},
    {"fault": "truncated", "rate": 0.08, "after_chunks": 3},
    {"fault": "malformed", "rate": 0.08},
    {"fault": "slow_first_byte", "rate": 0.02, "delay_ms": SLOW_MS},
]})
N = 1000
# What the client sees of each answer (the k6 script's classes, docs/faults.md).
CLIENT_CLASS = {HEALTHY: "ok", "http_429": "status", "http_500": "status", "http_503": "status",
                "reset": "transport", "down": "transport", "cut_stream": "transport", "truncated": "truncated",
                "malformed": "invalid_json", "slow_first_byte": "timeout"}


def body(rid: str, stream: bool = False) -> dict:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "user": rid, "stream": stream}


@pytest.fixture(scope="module")
def mixed(tmp_path_factory, tools_ready):
    with Supervisor() as sup:
        _, base = start_mock(sup, tmp_path_factory.mktemp("mixed"), "fast", port=PORT, plan=MIXED)
        with httpx.Client(base_url=base, timeout=10, trust_env=False) as client:
            yield client


def reset(client: httpx.Client) -> None:
    assert client.post("/__aigw/reset").json() == {"reset": True}


def records(client: httpx.Client) -> list[dict]:
    doc = client.get("/__aigw/requests").json()
    assert doc["lost"] == 0 and doc["plan"] == MIXED.name and doc["seed"] == MIXED.seed
    return doc["attempts"] or []  # cjson writes an empty list as {}


def observe(client: httpx.Client, rid: str, stream: bool = False) -> tuple[str, httpx.Response | None]:
    try:
        resp = client.post(CHAT, json=body(rid, stream))
    except httpx.TransportError as exc:
        return type(exc).__name__, None
    return str(resp.status_code), resp


def test_each_fault_lands_where_the_seed_puts_it_at_its_rate(mixed):
    reset(mixed)
    planned = {request_id(n): MIXED.choose(request_id(n), 1) for n in range(N)}
    seen = {}
    for rid, answer in planned.items():
        if answer != "slow_first_byte":  # the slow ones are the disconnect test's
            seen[rid] = observe(mixed, rid)
    recs = {r["id"]: r for r in records(mixed)}
    # The mock answered each attempt exactly as the plan's rule says (the same rule in Python and Lua).
    assert {rid: recs[rid]["answer"] for rid in seen} == {rid: planned[rid] for rid in seen}
    assert all(r["attempt"] == 1 for r in recs.values()) and len(recs) == len(seen)
    # Each fault's share of 1,000 ids is within 3 points of its rate (a fixed draw for seed 7, not a sample).
    counts = Counter(planned.values())
    for fault in MIXED.faults:
        assert abs(counts[fault.fault] / N - fault.rate) < 0.03, fault.fault
    # And the client saw each as it should.
    for rid, (status, resp) in seen.items():
        answer = planned[rid]
        expected = {HEALTHY: "200", "http_429": "429", "http_500": "500", "http_503": "503",
                    "reset": "RemoteProtocolError", "cut_stream": "RemoteProtocolError", "truncated": "200",
                    "malformed": "200"}[answer]
        assert status == expected, (rid, answer)
        if answer == "http_429":
            assert resp.headers["retry-after"] == "2"
            assert resp.text == load_contract().errors["rate_limited"].body
        if answer == "http_503":
            assert resp.text == load_contract().errors["unavailable"].body
        if answer == "malformed":
            with pytest.raises(json.JSONDecodeError):
                json.loads(resp.text)
        if answer == "truncated":
            assert resp.json()["choices"][0]["message"]["content"] != load_contract().content
        if answer == HEALTHY:
            assert resp.text == load_contract().completion_body()
    ends = Counter(r["ending"] for r in recs.values())
    assert ends["closed_by_mock"] == counts["reset"] + counts["cut_stream"]
    assert ends["complete"] == len(seen) - ends["closed_by_mock"]


def test_attempts_per_id_are_counted_exactly_and_each_draws_again(mixed):
    reset(mixed)
    for n, tries in [(5001, 1), (5002, 4), (5003, 7)]:
        for _ in range(tries):
            if MIXED.choose(request_id(n), _ + 1) != "slow_first_byte":
                observe(mixed, request_id(n))
    got = Counter(r["id"] for r in records(mixed))
    expected = Counter({request_id(n): sum(MIXED.choose(request_id(n), a) != "slow_first_byte"
                                           for a in range(1, tries + 1))
                        for n, tries in [(5001, 1), (5002, 4), (5003, 7)]})
    assert got == expected
    for r in records(mixed):
        assert r["answer"] == MIXED.choose(r["id"], r["attempt"])


def sse(text: str) -> list[str]:
    return [e for e in text.split("\n\n") if e]


def ids_for(answer: str, start: int, count: int = 1) -> list[str]:
    found = [request_id(n) for n in range(start, start + 100_000) if MIXED.choose(request_id(n), 1) == answer]
    return found[:count]


def test_streams_cut_truncated_and_malformed(mixed):
    reset(mixed)
    contract = load_contract()
    [cut] = ids_for("cut_stream", 20_000)
    received = ""
    with mixed.stream("POST", CHAT, json=body(cut, True)) as resp:  # noqa: SIM117
        with pytest.raises(httpx.RemoteProtocolError):  # the connection closed: the client sees it fail
            for text in resp.iter_text():
                received += text
    assert sse(received) == [e.strip("\n") for e in contract.stream_events()[:4]]  # role + 3 tokens
    [short] = ids_for("truncated", 20_000)
    status, resp = observe(mixed, short, stream=True)
    assert status == "200" and sse(resp.text) == [e.strip("\n") for e in contract.stream_events()[:4]]
    [bad] = ids_for("malformed", 20_000)
    status, resp = observe(mixed, bad, stream=True)
    events = sse(resp.text)
    assert status == "200" and events[-1] == "data: [DONE]" and len(events) == len(contract.stream_events())
    broken = [e for e in events[:-1] if not _json_ok(e[len("data: "):])]
    assert len(broken) == 1
    ends = {r["id"]: r["ending"] for r in records(mixed)}
    assert ends == {cut: "closed_by_mock", short: "complete", bad: "complete"}


def _json_ok(text: str) -> bool:
    try:
        json.loads(text)
    except json.JSONDecodeError:
        return False
    return True


@pytest.mark.parametrize("stream", [False, True])
def test_a_client_that_leaves_is_seen_by_the_mock(mixed, stream):
    reset(mixed)
    [rid] = ids_for("slow_first_byte", 30_000 + 1000 * stream)
    start = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        mixed.post(CHAT, json=body(rid, stream), timeout=httpx.Timeout(10, read=0.3))
    waited = time.monotonic() - start
    deadline = time.monotonic() + 5
    while (recs := records(mixed)) and recs[0]["ending"] == "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    [rec] = recs
    assert rec["id"] == rid and rec["answer"] == "slow_first_byte" and rec["ending"] == "client_closed"
    # Seen when the client closed (after its 0.3 s), long before the mock's own 3 s would have ended it;
    # the margins hold on a loaded machine (the close is seen within a second of it).
    assert 250 <= rec["after_ms"] < SLOW_MS - 1000 and rec["after_ms"] <= waited * 1000 + 1000


OUTAGE = FaultPlan.model_validate({"name": "outage", "seed": 1, "faults": [
    {"fault": "down", "rate": 1.0, "from_s": 1.0, "to_s": 2.0}]})


def test_an_outage_closes_every_connection_for_its_window_then_the_mock_is_back(tmp_path, tools_ready):
    with Supervisor() as sup:
        _, base = start_mock(sup, tmp_path, "fast", port=OUTAGE_PORT, plan=OUTAGE)
        with httpx.Client(base_url=base, timeout=5, trust_env=False) as client:
            client.post("/__aigw/reset")
            seen = {}
            for n in range(30):  # one request every 0.1 s for 3 s: before, during and after the window
                seen[request_id(n)] = observe(client, request_id(n))[0]
                time.sleep(0.1)
            recs = client.get("/__aigw/requests").json()["attempts"]
    by_answer = Counter()
    for r in recs:
        t = r["t_s"]
        if min(abs(t - 1.0), abs(t - 2.0)) > 0.01:  # the mock's clock is rounded to the ms at the edges
            assert r["answer"] == OUTAGE.choose(r["id"], 1, t)
        by_answer[r["answer"]] += 1
        assert seen[r["id"]] == ("RemoteProtocolError" if r["answer"] == "down" else "200")
    # The window is a second of a 3 s sweep: some attempts fell in it, and the mock answered after it.
    assert by_answer["down"] >= 3 and any(r["t_s"] > 2.0 and r["answer"] == HEALTHY for r in recs)


@pytest.mark.parametrize("stream", [False, True])
def test_k6_sorts_every_answer_into_the_class_the_mock_predicts(mixed, tmp_path, stream):
    """The client-side validation: k6's classes, counted over a short run at a fixed rate, equal what the
    mock's records say each attempt was (a cut stream is a transport error, a truncated one is caught as
    truncated, malformed JSON as invalid_json, a slow first byte beyond the timeout as timeout)."""
    reset(mixed)
    scenario = load_scenario("rate")
    params = scenario.params("local", {"rate": 100, "vus": 20, "max_vus": 60, "duration": 2,
                                       "request_timeout": 1, "stream": stream})
    target = RenderTarget("direct", f"http://127.0.0.1:{PORT}{CHAT}", "gpt-4o-mini")
    expected = "".join(load_contract().tokens(None)) if stream else load_contract().content
    script = render_faults(params, target, expected)
    (tmp_path / "faults.js").write_text(script.source)
    summary = tmp_path / "summary.json"
    subprocess.run([k6_binary(), "run", "--no-usage-report", "--quiet", "-e", f"AIGW_SUMMARY={summary}",
                    str(tmp_path / "faults.js")], check=True, capture_output=True, timeout=60, cwd=tmp_path)
    time.sleep(0.3)  # the mock notes a client's close as it sees it
    metrics = json.loads(summary.read_text())["metrics"]
    got = {name.split("class:")[1].rstrip("}"): m["values"]["count"]
           for name, m in metrics.items() if name.startswith("aigw_answers{class:") and m["values"]["count"]}
    recs = records(mixed)
    assert len(recs) == metrics["http_reqs"]["values"]["count"] >= 150
    assert got == dict(Counter(CLIENT_CLASS[r["answer"]] for r in recs))
    # k6 gave up on every slow first byte after its 1 s timeout, and the mock saw each client leave then
    # (before its own 3 s: the upstream request was cancelled with the client's).
    slow = [r for r in recs if r["answer"] == "slow_first_byte"]
    assert slow and all(r["ending"] == "client_closed" and r["after_ms"] >= 900 for r in slow), slow


CASES_JS = r"""
import { classify } from './faults.js';
const contract = JSON.parse(open('./contract.json'));
const events = contract.events;  // the whole stream, as the mock sends it
const join = (list) => list.join('');
const res = (body, extra) => Object.assign({ status: 200, error: '', error_code: 0, body: body }, extra || {});
const cases = {
  whole: [res(join(events)), 'ok'],
  no_done: [res(join(events.slice(0, -1))), 'truncated'],
  no_finish_reason: [res(join(events).replace('"finish_reason":"stop"', '"finish_reason":null')), 'truncated'],
  no_usage: [res(join(events).replace(/,"usage":\{[^}]*\}/, '')), 'truncated'],
  short_content: [res(join([events[0], events[1], ...events.slice(-2)])), 'truncated'],
  bad_event: [res(join(events).replace('data: {"id"', 'data: {"id')), 'invalid_json'],
  status_503: [res('{}', { status: 503 }), 'status'],
  reset: [res(join(events.slice(0, 3)), { error: 'unexpected EOF', error_code: 1000 }), 'transport'],
  timeout: [res(null, { status: 0, error: 'request timeout', error_code: 1050 }), 'timeout'],
};
export default function () {
  const wrong = Object.entries(cases).filter(([, [r, want]]) => classify(r) !== want)
    .map(([name, [r, want]]) => `${name}: ${classify(r)} (want ${want})`);
  if (wrong.length) throw new Error(wrong.join('; '));
  console.log('all ' + Object.keys(cases).length + ' cases classified');
}
"""


def test_the_stream_validation_catches_each_missing_piece_on_its_own(tmp_path):
    """Crafted streams, each with one piece missing (no [DONE], no finish_reason, no usage, short content,
    one bad event), classified by the script's own classify() in k6 (no network)."""
    params = load_scenario("rate").params("local", {"rate": 1, "vus": 1, "duration": 1, "stream": True})
    target = RenderTarget("direct", "http://127.0.0.1:9/v1/chat/completions", "gpt-4o-mini")
    (tmp_path / "faults.js").write_text(render_faults(params, target, "".join(load_contract().tokens(None))).source)
    (tmp_path / "contract.json").write_text(json.dumps({"events": load_contract().stream_events()}))
    (tmp_path / "cases.js").write_text(CASES_JS)
    done = subprocess.run([k6_binary(), "run", "--no-usage-report", "--quiet", "--iterations", "1", "cases.js"],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 0 and "all 9 cases classified" in done.stderr + done.stdout, done.stderr[-2000:]
