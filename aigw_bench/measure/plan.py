"""What a run measures, from the command line's choices: a scenario or a suite, with the sizes of one
place (``local`` or ``cloud``). Shared by every engine, so that all read the same options the same
way; every problem fails here, before anything starts."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from schema.errors import ConfigError
from schema.mock import PacingProfile, load_profile
from schema.scenarios import Profile, Scenario, ScenarioParams, load_scenario
from schema.suites import Suite, SuiteSizes, load_suite


def _knob(kind: type, text: str, short: str | None = None) -> Any:
    """A knob: None (the scenario's own value) unless given; its type and help make its CLI option."""
    return field(default=None, metadata={"type": kind, "help": text, "short": short})


@dataclass(frozen=True)
class Knobs:
    """The scenario options of the command line (``--vus``, ``--duration``, ...): one definition, from
    which every command that sizes a scenario (run, cloud run, cloud matrix, render) makes its options."""

    vus: int | None = _knob(int, "Virtual users (overrides the scenario).")
    duration: str | None = _knob(str, "Measured duration per target, k6 form: 20s, 3m, 1m30s.", "-d")
    warmup: str | None = _knob(str, "Warm-up before each measurement (excluded), e.g. 5s; 0 to skip.")
    prompt_tokens: int | None = _knob(int, "Prompt size in (estimated) tokens.")
    max_tokens: int | None = _knob(int, "max_tokens in the request body.")
    rate: int | None = _knob(int, "Requests per second (arrival-rate scenarios).")
    max_vus: int | None = _knob(int, "VU ceiling (arrival-rate scenarios).")

    def given(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class Measurement:
    scenario: Scenario  # the scenario, or the suite's published shape (seed)
    params: ScenarioParams  # the scenario's, or the suite's request body and timeouts
    profile: PacingProfile  # the mock's pacing at the start of every session
    repeats: int
    where: Profile  # whose sizes: this machine's (local) or the EKS environment's (cloud)
    suite: Suite | None = None
    sizes: SuiteSizes | None = None
    streaming_profile: PacingProfile | None = None

    @property
    def name(self) -> str:
        """What the run directory is called after: suite-NAME, or the scenario."""
        return f"suite-{self.suite.name}" if self.suite else self.scenario.name

    @property
    def main_step(self) -> str:
        """The step whose k6 summary fills the comparison table: the scenario, or the suite's seed."""
        return "seed" if self.suite else self.scenario.name

    def profiles(self) -> list[PacingProfile]:
        """Every pacing profile the mock must serve for this measurement (the streaming step's only if it runs)."""
        streams = self.sizes is None or self.sizes.runs("streaming")
        return [p for p in (self.profile, self.streaming_profile if streams else None) if p is not None]


def measurement(where: Profile, *, scenario: str | None, suite: str | None, mock_profile: str | None,
                knobs: Knobs, repeats: int | None) -> Measurement:
    """A scenario (``--scenario``, sized by ``knobs``) or a suite (its file's ``where`` sizes)."""
    if scenario and suite:
        raise ConfigError("choose a scenario (--scenario) or a suite (--suite), not both")
    if scenario:
        scen = load_scenario(scenario)
        return Measurement(scenario=scen, params=scen.params(where, knobs.given()), where=where,
                           profile=load_profile(mock_profile or scen.mock_profile), repeats=repeats or 1)
    given = sorted(knobs.given())
    if given:
        options = ", ".join("--" + k.replace("_", "-") for k in given)
        raise ConfigError(f"{options}: these size a scenario (--scenario); a suite's sizes are in its file, "
                          f"k6_scripts/suites/<name>.yaml (its '{where}' profile)")
    chosen = load_suite(suite or "default")
    sizes = chosen.sizes(where)
    seed = load_scenario("seed")
    params = seed.params(where, {"prompt_tokens": chosen.body.prompt_tokens, "max_tokens": chosen.body.max_tokens,
                                 "vus": sizes.seed.vus, "duration": sizes.seed.duration, "warmup": sizes.seed.warmup})
    return Measurement(scenario=seed, params=params, profile=load_profile(mock_profile or "instant"), where=where,
                       repeats=repeats or sizes.repeats, suite=chosen, sizes=sizes,
                       streaming_profile=load_profile(sizes.streaming.profile))
