"""The mock OpenAI API: its implementations, the contract they share and the pacing profiles.

```
mock_llm/
  contract.json       the exact bytes every mock answers with (both mocks assemble them from here)
  profiles.yaml       pacing profiles (time to first token, time per token, jitter)
  faults.yaml         fault plans: which attempts are answered badly, and how (schema/faults.py)
  fast/mock.yaml      nginx + Lua: the default, far faster than any gateway
  wiremock/mock.yaml  WireMock, the published benchmark's mock (instant profile only)
```

Like the gateway catalog this is data: a mock is a folder with a ``mock.yaml`` (how to install,
start and probe it, locally and on EKS) and its templates.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError, model_validator

from schema.base import REPO_DIR, Strict, format_validation_error, load_yaml, named_mappings, parse_file
from schema.catalog import LocalSpec, refuse_known_bad
from schema.cloud import MockCloudSpec
from schema.errors import ConfigError
from schema.faults import FaultPlan

MOCKS_DIR = REPO_DIR / "mock_llm"
CONTRACT_FILE = MOCKS_DIR / "contract.json"
PROFILES_FILE = MOCKS_DIR / "profiles.yaml"
ENTRY_FILE = "mock.yaml"
# The mock a run uses unless told otherwise: the one whose ceiling stays far above the gateways'.
DEFAULT_MOCK = "fast"
DEFAULT_PROFILE = "instant"

_SAFE_TEXT = re.compile(r'^[^"\\/\x00-\x1f]*$')


class PacingProfile(Strict):
    """How long the mock takes to answer; fixed when the mock starts."""

    name: str
    description: str = ""
    source: str | None = Field(None, description="where the figures come from")
    ttft_ms: float = Field(0.0, ge=0, le=600_000)
    per_token_ms: float = Field(0.0, ge=0, le=60_000)
    output_tokens: int | None = Field(None, ge=1, le=100_000)
    jitter_sigma: float = Field(0.0, ge=0, le=2)

    @property
    def paced(self) -> bool:
        return self.ttft_ms > 0 or self.per_token_ms > 0

    def nominal_seconds(self, tokens: int) -> float:
        """The wait of a non-streaming answer of ``tokens`` tokens (no jitter)."""
        return (self.ttft_ms + tokens * self.per_token_ms) / 1000.0


class MockDefinition(Strict):
    """One mock implementation (``mock_llm/<name>/mock.yaml``)."""

    name: str
    title: str
    version: str
    source: str
    description: str = ""
    profiles: list[str] = Field(default_factory=lambda: [DEFAULT_PROFILE],
                                description="the pacing profiles this implementation can serve")
    fault_plans: bool = Field(False, description="serves mock_llm/faults.yaml's plans and counts attempts per "
                                                 "request id (GET /__aigw/requests)")
    fallback_port: int | None = Field(None, ge=1, le=65535, description="local port of the second, healthy instance "
                                      "a faults scenario starts beside the mock (a gateway's fallback upstream)")
    local: LocalSpec
    cloud: MockCloudSpec | None = Field(None, description="the deployment on EKS; none: local only")
    entry_dir: Path = Field(exclude=True)

    @property
    def deployment(self) -> MockCloudSpec:
        """The cloud section, or an error naming the file when the mock has none."""
        if self.cloud is None:
            raise ConfigError(f"{self.entry_dir / ENTRY_FILE}: no cloud section: the {self.name} mock cannot be "
                              "deployed to AWS")
        return self.cloud

    def require_profile(self, profile: PacingProfile) -> None:
        if profile.name not in self.profiles:
            raise ConfigError(f"the {self.name} mock cannot serve the '{profile.name}' pacing profile (it serves: "
                              f"{', '.join(self.profiles)}); choose another with --mock or --mock-profile")


    def require_fault_plan(self, plan: FaultPlan) -> None:
        if not self.fault_plans:
            raise ConfigError(f"the {self.name} mock cannot serve the fault plan '{plan.name}' "
                              f"({self.entry_dir / ENTRY_FILE}: fault_plans is not true): it neither injects "
                              "faults per request nor counts attempts; run with --mock fast")


class StreamPieces(Strict):
    role: str
    token: str
    final: str
    done: str
    tokens: list[str] = Field(min_length=1)


class ErrorAnswer(Strict):
    status: int
    body: str


class Contract(Strict):
    """The exact bytes of every answer (``mock_llm/contract.json``); ``$NAME`` marks a substitution."""

    about: str = ""
    prompt_tokens: int = Field(ge=0)
    completion: str
    content: str
    content_tokens: int = Field(ge=1)
    stream: StreamPieces
    errors: dict[str, ErrorAnswer]

    @model_validator(mode="after")
    def _safe(self) -> Contract:
        # The Lua mock inserts these between quotes without escaping: they must need none.
        for text in [self.content, *self.stream.tokens]:
            if not _SAFE_TEXT.match(text):
                raise ValueError(f"text {text!r} needs JSON escaping (quote, backslash, slash or control character)")
        needed = {"invalid_json", "missing_messages", "rate_limited", "server_error", "unavailable", "not_found"}
        if missing := needed - set(self.errors):
            raise ValueError(f"errors: missing {', '.join(sorted(missing))}")
        return self

    def _usage(self, text: str, completion_tokens: int) -> str:
        return (text.replace("$PROMPT_TOKENS", str(self.prompt_tokens))
                .replace("$COMPLETION_TOKENS", str(completion_tokens))
                .replace("$TOTAL_TOKENS", str(self.prompt_tokens + completion_tokens)))

    def tokens(self, output_tokens: int | None) -> list[str]:
        """The streamed tokens of one answer: the contract's own, or ``output_tokens`` of them, cycled."""
        own = self.stream.tokens
        n = len(own) if output_tokens is None else output_tokens
        return [own[i % len(own)] for i in range(n)]

    def completion_body(self, output_tokens: int | None = None) -> str:
        """The non-streaming answer."""
        if output_tokens is None:
            content, n = self.content, self.content_tokens
        else:
            content, n = "".join(self.tokens(output_tokens)), output_tokens
        return self._usage(self.completion.replace("$CONTENT", json.dumps(content)), n)

    def stream_events(self, output_tokens: int | None = None) -> list[str]:
        """The streaming answer as server-sent events: role, one per token, final (usage), [DONE]."""
        tokens = self.tokens(output_tokens)
        s = self.stream
        return [s.role, *(s.token.replace("$TOKEN", json.dumps(t)) for t in tokens),
                self._usage(s.final, len(tokens)), s.done]


def _validated(model: type[BaseModel], data: dict[str, Any], path: Path) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(path, err, "mock file")) from None


@cache
def load_contract(path: Path = CONTRACT_FILE) -> Contract:
    return _validated(Contract, parse_file(path, json.loads, "JSON"), path)


def load_profiles(path: Path = PROFILES_FILE) -> dict[str, PacingProfile]:
    return {name: _validated(PacingProfile, {"name": name, **spec}, path)
            for name, spec in named_mappings(path, "profiles").items()}


def load_profile(name: str, path: Path = PROFILES_FILE) -> PacingProfile:
    profiles = load_profiles(path)
    if name not in profiles:
        raise ConfigError(f"unknown mock profile '{name}'. Known profiles: {', '.join(profiles)} ({path})")
    return profiles[name]


def list_mocks(root: Path = MOCKS_DIR) -> list[str]:
    return sorted(d.name for d in root.iterdir() if (d / ENTRY_FILE).is_file())


def load_mock(name: str = DEFAULT_MOCK, root: Path = MOCKS_DIR) -> MockDefinition:
    entry_dir = (root / name).resolve()
    path = entry_dir / ENTRY_FILE
    if not path.is_file():
        raise ConfigError(f"unknown mock '{name}'. Known mocks: {', '.join(list_mocks(root))} ({root})")
    mock = _validated(MockDefinition, {**load_yaml(path), "entry_dir": entry_dir}, path)
    if mock.name != name:
        raise ConfigError(f"{path}: name '{mock.name}' must equal its folder name '{name}'")
    refuse_known_bad(path, mock.name, mock.version, mock.local.install, entry_dir)
    known = load_profiles()
    if unknown := [p for p in mock.profiles if p not in known]:
        raise ConfigError(f"{path}: profiles: unknown {', '.join(unknown)}; known: {', '.join(known)}")
    for out_name, template in mock.local.config_files.items():
        if not (entry_dir / template).is_file():
            raise ConfigError(f"{path}: local.config_files.{out_name}: template {template} not found")
    return mock


def settings_json(profile: PacingProfile, contract_path: Path | str = CONTRACT_FILE,
                  plan: FaultPlan | None = None) -> str:
    """What the mock is told at start: where the contract is, the pacing profile and, for a faults
    scenario, the fault plan (JSON). Without a plan the mock neither injects faults nor counts."""
    settings: dict[str, Any] = {"contract": str(contract_path),
                                "profile": profile.model_dump(exclude={"description", "source"})}
    if plan is not None:
        settings["plan"] = plan.settings()
    return json.dumps(settings, separators=(",", ":"))
