"""Render a scenario's k6 script for one target.

The request body is built here, once, from the scenario parameters and the model name, so every
target receives the same bytes; the script embeds it as a string. What differs per target (URL and
headers) comes from the catalog entry, already rendered for the environment (local or cloud).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import jinja2

from k6_scripts.prompt import estimate_tokens, generate_prompt
from schema.faults import ID_PREFIX, ID_WIDTH, request_id
from schema.scenarios import Scenario, ScenarioParams, format_duration

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"

# The HTTP statuses a faults scenario counts one by one (its status mix; 0: no answer, a transport error or
# a timeout); any other is in http_reqs' total.
FAULT_STATUSES = (0, 200, 400, 408, 429, 499, 500, 502, 503, 504)

# Optional body fields, in the order they are written; a parameter set to None leaves its field out.
_OPTIONAL_FIELDS = ("max_tokens", "temperature", "stream")


@dataclass(frozen=True)
class RenderTarget:
    """Where the load goes: a target's name, full URL of the chat route, and request headers."""

    name: str
    url: str
    model: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RenderedScript:
    source: str
    body: str
    body_sha256: str
    prompt_tokens: int
    prompt_bytes: int


def user_prompt(params: ScenarioParams) -> str:
    """The user message: the scenario's literal prompt, or a generated one of ``prompt_tokens``."""
    if params.prompt is not None:
        return params.prompt
    assert params.prompt_tokens is not None  # ScenarioParams requires one of the two
    return generate_prompt(params.prompt_tokens, seed=params.prompt_seed)


def build_body(params: ScenarioParams, model: str, user: str | None = None) -> str:
    """The chat-completions request body as sent on the wire (compact JSON, fixed key order).

    Only what the scenario asks for is sent: no system message when ``system_prompt`` is None, and
    no ``max_tokens`` / ``temperature`` / ``stream`` field when that parameter is None (e.g. the
    ``hey`` run's body is just the model and one user message)."""
    messages = [] if params.system_prompt is None else [{"role": "system", "content": params.system_prompt}]
    messages.append({"role": "user", "content": user_prompt(params)})
    body: dict[str, object] = {"model": model, "messages": messages}
    if user is not None:
        body["user"] = user
    for name in _OPTIONAL_FIELDS:
        value = getattr(params, name)
        if value is not None:
            body[name] = value
    if params.stream:
        # As a client that wants token counts asks for them: without it the OpenAI API (and gateways
        # that follow it) leave usage out of a stream.
        body["stream_options"] = {"include_usage": True}
    return json.dumps(body, separators=(",", ":"))


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )


def _render(template: str, params: ScenarioParams, target: RenderTarget, user: str | None = None,
            **extra: object) -> RenderedScript:
    body = build_body(params, target.model, user)
    digest = hashlib.sha256(body.encode()).hexdigest()
    source = _environment().get_template(template).render(
        params=params,
        target=target,
        body=body,
        body_sha256=digest,
        duration=format_duration(params.duration),
        timeout=format_duration(params.request_timeout),
        full_check_every=params.full_check_every,
        stages=[{"duration": format_duration(s.duration), "target": s.target} for s in params.stages or ()],
        **extra,
    )
    prompt = json.loads(body)["messages"][-1]["content"]
    return RenderedScript(
        source=source,
        body=body,
        body_sha256=digest,
        prompt_tokens=estimate_tokens(prompt),
        prompt_bytes=len(prompt.encode()),
    )


def render_script(scenario: Scenario, params: ScenarioParams, target: RenderTarget) -> RenderedScript:
    """A scenario's script for one target."""
    return _render(scenario.template, params, target, scenario=scenario)


def render_paired(params: ScenarioParams, target: RenderTarget, direct: RenderTarget, block: float,
                  settle: float) -> RenderedScript:
    """The overhead measurement: one VU alternating blocks of ``block`` seconds between the mock directly
    and the mock via ``target``, the requests of each block's first ``settle`` seconds kept apart."""
    if direct.model != target.model:
        raise ValueError("the direct and the target side must send the same body (same model name)")
    return _render("paired.js.j2", params, target, direct=direct, block_ms=round(block * 1000),
                   settle_ms=round(settle * 1000))


def render_works(params: ScenarioParams, target: RenderTarget, checks: list[dict], mock_count_url: str,
                 rate: float, duration: float) -> RenderedScript:
    """The policies' correctness probes (``works``) beside a steady load of ``rate`` req/s for ``duration`` s."""
    parts = urlsplit(target.url)
    sized = params.model_copy(update={"duration": duration})
    return _render("works.js.j2", sized, target, checks=checks, mock_count_url=mock_count_url, rate=rate,
                   base_url=f"{parts.scheme}://{parts.netloc}")


def render_faults(params: ScenarioParams, target: RenderTarget, expected_content: str) -> RenderedScript:
    """A faults scenario's script: a fixed arrival rate, a request id per request in the body's ``user``
    field (the first id, of the same width as every other, is rendered into the body and replaced per
    request), every answer validated against ``expected_content`` (what the mock sends)."""
    placeholder = request_id(0)
    return _render("faults.js.j2", params, target, user=placeholder, id_placeholder=placeholder,
                   id_prefix=ID_PREFIX, id_digits=ID_WIDTH - len(ID_PREFIX), expected_content=expected_content,
                   statuses=FAULT_STATUSES, graceful_stop=format_duration(params.request_timeout + 2.0))


def render_warm(target: RenderTarget, body: str, timeout: float) -> str:
    """One request through ``target`` with ``body``, whatever its answer (after the mock restarted)."""
    return _environment().get_template("warm.js.j2").render(
        target=target, body=body, timeout=format_duration(timeout), max_duration=format_duration(timeout + 5.0))
