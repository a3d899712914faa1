"""The mock's contract, against the real running mocks: the fast one (nginx + Lua) and WireMock.

Both answer the same bytes (mock_llm/contract.json), stream server-sent events flushed one by one,
refuse a body that is not JSON or has no `messages` with an OpenAI-style 400; the fast one paces its
answers as the profile says (within 10%). Faults: tests/test_mock_faults.py.
"""

from __future__ import annotations

import itertools
import json
import time

import httpx
import pytest

from aigw_bench.local.processes import Supervisor
from schema.mock import load_contract, load_profile
from tests.helpers import start_mock

pytestmark = pytest.mark.slow

CHAT = "/v1/chat/completions"
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}
MOCKS = ["fast", "wiremock"]


@pytest.fixture(scope="module", params=MOCKS)
def mock(request, tmp_path_factory, tools_ready):
    with Supervisor() as sup:
        _, base = start_mock(sup, tmp_path_factory.mktemp(request.param), request.param)
        with httpx.Client(base_url=base, timeout=10, trust_env=False) as client:
            yield request.param, client


def post(client: httpx.Client, body: object, raw: bytes | None = None) -> httpx.Response:
    content = raw if raw is not None else json.dumps(body).encode()
    return client.post(CHAT, content=content, headers={"Content-Type": "application/json"})


def sse_events(text: str) -> list[str]:
    return [e + "\n\n" for e in text.split("\n\n") if e]


def test_non_streaming_answer_is_the_contracts_bytes(mock):
    _, client = mock
    resp = post(client, BODY)
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("application/json")
    assert resp.text == load_contract().completion_body()
    doc = resp.json()
    assert doc["object"] == "chat.completion" and doc["usage"]["completion_tokens"] == 24


def test_streaming_answer_is_the_contracts_events_ending_in_done(mock):
    _, client = mock
    resp = post(client, {**BODY, "stream": True})
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
    events = sse_events(resp.text)
    assert events == load_contract().stream_events()
    final = json.loads(events[-2][len("data: "):])
    assert final["choices"][0]["finish_reason"] == "stop" and final["usage"]["total_tokens"] == 1010
    assert events[-1] == "data: [DONE]\n\n"


@pytest.mark.parametrize(("raw", "error"), [
    (b"this is not json", "invalid_json"),
    (b'{"model": "m"}', "missing_messages"),
    (b'{"model": "m", "messages": {"role": "user"}}', "missing_messages"),
    (b'{"model": "m", "messages": []}', "missing_messages"),
])
def test_bad_bodies_get_an_openai_style_400(mock, raw, error):
    _, client = mock
    resp = post(client, None, raw=raw)
    expected = load_contract().errors[error]
    assert resp.status_code == 400 == expected.status
    assert resp.text == expected.body
    assert resp.json()["error"]["type"] == "invalid_request_error"


def test_other_routes_are_not_found(mock):
    _, client = mock
    resp = client.get("/v1/models")
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "unknown_url"


# ------------------------------------------------------------------------------ the fast mock
PACED = load_profile("llm").model_copy(update={"ttft_ms": 200.0, "per_token_ms": 25.0, "output_tokens": 6})


@pytest.fixture(scope="module")
def paced(tmp_path_factory, tools_ready):
    with Supervisor() as sup:
        _, base = start_mock(sup, tmp_path_factory.mktemp("paced"), "fast", profile=PACED, port=18971)
        with httpx.Client(base_url=base, timeout=10, trust_env=False) as client:
            yield client


def timed_stream(client: httpx.Client) -> tuple[float, list[float], list[str]]:
    """(time to first content event, arrival times of content events, all events) in seconds."""
    start = time.perf_counter()
    arrivals, events, buffer = [], [], ""
    with client.stream("POST", CHAT, content=json.dumps({**BODY, "stream": True}),
                       headers={"Content-Type": "application/json"}) as resp:
        for text in resp.iter_text():
            now = time.perf_counter() - start
            buffer += text
            while "\n\n" in buffer:
                event, buffer = buffer.split("\n\n", 1)
                events.append(event + "\n\n")
                if '"content":"' in event and '"content":""' not in event:
                    arrivals.append(now)
    return arrivals[0], arrivals, events


def test_streaming_pacing_is_within_ten_percent_of_the_profile(paced):
    ttfts, gaps = [], []
    for _ in range(5):
        ttft, arrivals, events = timed_stream(paced)
        ttfts.append(ttft)
        gaps += [b - a for a, b in itertools.pairwise(arrivals)]
        # One event per token, each flushed on its own: the count and the bytes are the contract's.
        assert len(arrivals) == PACED.output_tokens
        assert events == load_contract().stream_events(PACED.output_tokens)
    ttfts.sort()
    gaps.sort()
    assert ttfts[len(ttfts) // 2] == pytest.approx(PACED.ttft_ms / 1000, rel=0.10)
    assert gaps[len(gaps) // 2] == pytest.approx(PACED.per_token_ms / 1000, rel=0.10)


def test_non_streaming_waits_ttft_plus_tokens_times_per_token(paced):
    waits = []
    for _ in range(5):
        start = time.perf_counter()
        resp = post(paced, BODY)
        waits.append(time.perf_counter() - start)
        assert resp.text == load_contract().completion_body(PACED.output_tokens)
        assert resp.json()["usage"]["completion_tokens"] == PACED.output_tokens
    waits.sort()
    assert waits[2] == pytest.approx(PACED.nominal_seconds(PACED.output_tokens), rel=0.10)
