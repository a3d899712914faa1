"""Fault plans of the mock LLM (``mock_llm/faults.yaml``): which attempts it answers badly, and how.

A plan mixes faults at stated rates, each over the whole scenario or a time window. The mock picks the
answer of every attempt deterministically: ``u``, the first 32 bits of ``md5("<seed>:<request
id>:<attempt>")`` over 2**32, is compared with the cumulative rates of the faults active at that
moment, in the order the plan lists them. The same seed and the same request ids give the same faults,
whichever worker answers and whatever the gateway in front; a retry (attempt 2, 3, ...) draws again, as
it would from a real provider. :func:`choose` is that rule in Python (tests and the analysis use it to
know what the mock was told to do); mock_llm/fast/mock.lua implements the same.

The request id travels in the body's ``user`` field (a standard OpenAI parameter every gateway
forwards), of the same width for every request, so the work stays equal across targets.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, model_validator

from schema.base import REPO_DIR, Strict, format_validation_error, named_mappings
from schema.errors import ConfigError

FAULTS_FILE = REPO_DIR / "mock_llm" / "faults.yaml"
HEALTHY = "ok"  # the answer of an attempt no fault was drawn for
HEALTHY_PLAN = "healthy"  # the plan of the mock's second instance (the fallback): no fault, every attempt counted
# The body field that carries the request id, and its fixed width (``aigw-`` + 11 digits).
ID_FIELD = "user"
ID_PREFIX = "aigw-"
ID_WIDTH = 16


def request_id(n: int) -> str:
    """The id of the ``n``-th request: the same width for every n, so every body has the same size."""
    return f"{ID_PREFIX}{n:0{ID_WIDTH - len(ID_PREFIX)}d}"


class _Fault(Strict):
    rate: float = Field(gt=0, le=1, description="fraction of attempts, while the fault is active")
    from_s: float = Field(0.0, ge=0, description="active from this second of the scenario")
    to_s: float | None = Field(None, gt=0, description="until this second (none: to the end)")

    @model_validator(mode="after")
    def _window(self) -> _Fault:
        if self.to_s is not None and self.to_s <= self.from_s:
            raise ValueError(f"to_s ({self.to_s:g}) must be after from_s ({self.from_s:g})")
        return self

    def active(self, t: float) -> bool:
        return self.from_s <= t and (self.to_s is None or t < self.to_s)


class Http429(_Fault):
    """429 with the contract's rate-limit error and a ``Retry-After`` header."""

    fault: Literal["http_429"]
    retry_after_s: int = Field(1, ge=0, le=3600)


class Http500(_Fault):
    fault: Literal["http_500"]


class Http503(_Fault):
    fault: Literal["http_503"]


class Reset(_Fault):
    """The connection closed after the request was read, before any byte of an answer."""

    fault: Literal["reset"]


class SlowFirstByte(_Fault):
    """Nothing sent for ``delay_ms``, then the normal answer."""

    fault: Literal["slow_first_byte"]
    delay_ms: int = Field(ge=1, le=600_000)


class CutStream(_Fault):
    """Streaming: the role event and ``after_chunks`` content events, then the connection closed (no final
    chunk, no [DONE]). Non-streaming: the same share of the body, sent under the full Content-Length."""

    fault: Literal["cut_stream"]
    after_chunks: int = Field(ge=0, le=100_000)


class Truncated(_Fault):
    """HTTP 200 that ends cleanly but short: what a gateway that re-frames a cut answer delivers. Streaming:
    ``after_chunks`` content events, then the stream's clean end (no final chunk, no [DONE]);
    non-streaming: a valid completion whose content stops after ``after_chunks`` tokens."""

    fault: Literal["truncated"]
    after_chunks: int = Field(ge=0, le=100_000)


class Malformed(_Fault):
    """HTTP 200 that ends cleanly but is not valid JSON: the non-streaming body cut in half under a matching
    Content-Length; in a stream, one event whose JSON is cut in half (the rest of the stream follows)."""

    fault: Literal["malformed"]


class Down(_Fault):
    """The upstream is down: every connection closed at once, without an answer, while active (a time
    window; the mock comes back at its end)."""

    fault: Literal["down"]


Fault = Annotated[Http429 | Http500 | Http503 | Reset | SlowFirstByte | CutStream | Truncated | Malformed | Down,
                  Field(discriminator="fault")]
FAULT_NAMES = ("http_429", "http_500", "http_503", "reset", "slow_first_byte", "cut_stream", "truncated",
               "malformed", "down")


class FaultPlan(Strict):
    """One plan: a seed and the faults it mixes."""

    name: str
    description: str = ""
    seed: int = Field(1, ge=0, le=2**31 - 1)
    faults: list[Fault] = Field(default_factory=list)

    @model_validator(mode="after")
    def _rates_add_up(self) -> FaultPlan:
        # The rates active at any moment must leave room for the healthy answer: checked on every
        # interval between two window edges.
        edges = sorted({0.0, *(f.from_s for f in self.faults), *(f.to_s for f in self.faults if f.to_s)})
        for start, end in zip(edges, [*edges[1:], None], strict=True):
            total = sum(f.rate for f in self.faults if f.active(start))
            if total > 1 + 1e-9:
                during = f"from {start:g} s" + (f" to {end:g} s" if end is not None else " on")
                raise ValueError(f"the rates active {during} add up to {total:g} (at most 1)")
        return self

    def choose(self, rid: str, attempt: int, t: float = 0.0) -> str:
        """The answer the mock gives attempt ``attempt`` (1, 2, ...) of request ``rid`` at ``t`` seconds into
        the scenario: a fault's name or ``"ok"``."""
        # md5, not crc32: crc32 is linear, so ids that differ in one digit drew faults in runs (114 adjacent
        # pairs among 188 hits at 2% of 10,000 sequential ids, against 3 with md5, ~4 expected by chance).
        u = int(hashlib.md5(f"{self.seed}:{rid}:{attempt}".encode()).hexdigest()[:8], 16) / 2**32
        edge = 0.0
        for fault in self.faults:
            if fault.active(t):
                edge += fault.rate
                if u < edge:
                    return fault.fault
        return HEALTHY

    def settings(self) -> dict[str, Any]:
        """What the mock is told at start (part of its settings JSON)."""
        return self.model_dump(exclude={"description"}, exclude_none=True)


def load_plans(path: Path = FAULTS_FILE) -> dict[str, FaultPlan]:
    out = {}
    for name, spec in named_mappings(path, "plans").items():
        try:
            out[name] = FaultPlan.model_validate({"name": name, **spec})
        except ValidationError as err:
            # Every line names its field from the top of the file (plans.<name>.faults.0.rate); a rule over
            # the whole list (the rates adding up) is reported on plans.<name>.faults.
            lines = format_validation_error(path, err, f"fault plan '{name}'").splitlines()
            lines[1:] = [line.replace("  - (top level): ", "  - faults: ").replace("  - ", f"  - plans.{name}.", 1)
                         for line in lines[1:]]
            raise ConfigError("\n".join(lines)) from None
    return out


def load_plan(name: str, path: Path = FAULTS_FILE) -> FaultPlan:
    plans = load_plans(path)
    if name not in plans:
        raise ConfigError(f"unknown fault plan '{name}'. Known plans: {', '.join(plans)} ({path})")
    return plans[name]
