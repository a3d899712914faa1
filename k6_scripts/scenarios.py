"""Scenarios (``k6_scripts/scenarios/*.yaml``) and their validated parameters.

A scenario fixes the shape of the load (executor, streaming or not); its parameters (VUs, duration,
prompt size, ...) have defaults per profile (``local`` or ``cloud``) and every one can be overridden.
Bad values fail here, before anything starts, with a message naming the parameter.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from aigw_bench.catalog import load_yaml
from aigw_bench.errors import ConfigError

SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"

Executor = Literal["constant-vus", "constant-arrival-rate"]
Profile = Literal["local", "cloud"]

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_DURATION_FULL = re.compile(r"^(?:\d+(?:\.\d+)?(?:ms|s|m|h))+$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds in a k6 duration string (``20s``, ``3m``, ``1m30s``, ``500ms``); a bare number is seconds."""
    value = str(text).strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", value):
        return float(value)
    if not _DURATION_FULL.match(value):
        raise ValueError(f"'{text}' is not a duration; use forms like 20s, 3m, 1m30s, 500ms")
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(value))


def format_duration(seconds: float) -> str:
    """A k6 duration string for a number of seconds (millisecond precision)."""
    ms = round(seconds * 1000)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


class ScenarioParams(BaseModel):
    """The knobs of one run. Durations are seconds (parsed from k6 duration strings)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    vus: int = Field(ge=1, le=100_000, description="virtual users (pre-allocated VUs for arrival-rate)")
    duration: float = Field(gt=0, le=24 * 3600, description="measured duration per target and repeat")
    warmup: float = Field(0, ge=0, le=3600, description="load before the measurement, excluded from results")
    prompt_tokens: int = Field(ge=1, le=200_000, description="size of the user prompt in (estimated) tokens")
    max_tokens: int = Field(256, ge=1, le=200_000, description="max_tokens in the request body")
    stream: bool = False
    rate: int | None = Field(None, ge=1, le=10_000_000, description="requests per second (arrival-rate)")
    max_vus: int | None = Field(None, ge=1, le=100_000, description="VU ceiling (arrival-rate)")
    request_timeout: float = Field(60, gt=0, le=3600, description="per-request timeout")
    prompt_seed: int = Field(1, ge=0, description="seed of the deterministic prompt text")
    full_check_every: int = Field(
        1, ge=1, le=1000,
        description="parse every Nth answer of each VU in full (JSON); the others are checked for the answer's "
                    "markers only, which costs the load generator less")

    @field_validator("duration", "warmup", "request_timeout", mode="before")
    @classmethod
    def _parse_duration(cls, value: Any) -> Any:
        if isinstance(value, str):
            return parse_duration(value)
        return value

    @field_validator("duration", "warmup")
    @classmethod
    def _k6_minimum(cls, value: float) -> float:
        # k6 refuses scenarios shorter than a second (exit code 104); a warm-up of 0 is none.
        if 0 < value < 1:
            raise ValueError("k6 runs last at least 1s (a warm-up of 0 is none)")
        return value


class Scenario(BaseModel):
    """A scenario file: the load's shape plus default parameters per profile."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str
    executor: Executor
    template: str = "chat_completions.js.j2"
    mock_profile: str = Field("instant", description="the mock's pacing profile (mock_llm/profiles.yaml)")
    defaults: dict[str, Any] = Field(default_factory=dict)
    profiles: dict[Profile, dict[str, Any]]

    @model_validator(mode="after")
    def _profiles_valid(self) -> Scenario:
        for profile in self.profiles:
            self.params(profile)  # raises on a bad default
        return self

    def params(self, profile: Profile, overrides: dict[str, Any] | None = None) -> ScenarioParams:
        """Defaults, then the profile's values, then ``overrides`` (None values are ignored)."""
        if profile not in self.profiles:
            raise ConfigError(f"scenario '{self.name}' has no '{profile}' profile")
        merged = {**self.defaults, **self.profiles[profile]}
        merged.update({k: v for k, v in (overrides or {}).items() if v is not None})
        try:
            params = ScenarioParams.model_validate(merged)
        except ValidationError as err:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
                for e in err.errors()
            )
            raise ConfigError(f"scenario '{self.name}': invalid parameter: {problems}") from None
        if self.executor == "constant-arrival-rate":
            if params.rate is None:
                raise ConfigError(f"scenario '{self.name}': 'rate' (requests per second) is required")
            if params.max_vus is not None and params.max_vus < params.vus:
                raise ConfigError(f"scenario '{self.name}': max_vus ({params.max_vus}) < vus ({params.vus})")
        elif params.rate is not None:
            raise ConfigError(
                f"scenario '{self.name}' uses {self.executor}: 'rate' applies to arrival-rate scenarios only"
            )
        return params


def list_scenarios(directory: Path = SCENARIO_DIR) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.yaml"))


def load_scenario(name: str, directory: Path = SCENARIO_DIR) -> Scenario:
    path = directory / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown scenario '{name}'. Known scenarios: {', '.join(list_scenarios(directory))}")
    data = load_yaml(path)
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors())
        raise ConfigError(f"{path}: invalid scenario: {problems}") from None
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    if scenario.name != name:
        raise ConfigError(f"{path}: name '{scenario.name}' must equal the file name '{name}'")
    return scenario


T = TypeVar("T")


def interleaved_order(targets: list[T], repeats: int) -> list[tuple[int, T]]:
    """(repeat, target) pairs: each repeat runs every target once, starting one further along the list,
    so slow drifts of the machine (heat, caches, noisy neighbours) do not always hit the same target."""
    if repeats < 1:
        raise ConfigError(f"repeats must be at least 1 (got {repeats})")
    n = len(targets)
    return [(r, targets[(i + r - 1) % n]) for r in range(1, repeats + 1) for i in range(n)]


def scenario_record(scenario: Scenario, params: ScenarioParams) -> dict[str, Any]:
    """The scenario as the manifest records it."""
    return {"name": scenario.name, "executor": scenario.executor, "description": scenario.description,
            "params": params.model_dump()}
