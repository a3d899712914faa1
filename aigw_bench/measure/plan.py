"""What a run measures, from the command line's choices: a scenario or a suite, with the sizes of one
place (``local`` or ``cloud``). Shared by the local runner and the cloud stage, so that both read the
same options the same way; every problem fails here, before anything starts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aigw_bench.errors import ConfigError
from aigw_bench.mock import PacingProfile, load_profile
from k6_scripts.scenarios import Profile, Scenario, ScenarioParams, load_scenario
from k6_scripts.suites import Suite, SuiteSizes, load_suite


class PlanNames:
    """What every plan (local or cloud) derives from its suite or scenario."""

    suite: Suite | None
    scenario: Scenario

    @property
    def name(self) -> str:
        return f"suite-{self.suite.name}" if self.suite else self.scenario.name

    @property
    def main_step(self) -> str:
        """The step whose k6 summary fills the comparison table: the scenario, or the suite's seed."""
        return "seed" if self.suite else self.scenario.name


@dataclass(frozen=True)
class Measurement:
    scenario: Scenario  # the scenario, or the suite's published shape (seed)
    params: ScenarioParams  # the scenario's, or the suite's request body and timeouts
    profile: PacingProfile  # the mock's pacing at the start of every session
    repeats: int
    suite: Suite | None = None
    sizes: SuiteSizes | None = None
    streaming_profile: PacingProfile | None = None


def measurement(where: Profile, *, scenario: str | None, suite: str | None, mock_profile: str | None,
                knobs: dict[str, Any], repeats: int | None) -> Measurement:
    """A scenario (``--scenario``, sized by ``knobs``) or a suite (its file's ``where`` sizes)."""
    if scenario and suite:
        raise ConfigError("choose a scenario (--scenario) or a suite (--suite), not both")
    if scenario:
        scen = load_scenario(scenario)
        return Measurement(scenario=scen, params=scen.params(where, knobs),
                           profile=load_profile(mock_profile or scen.mock_profile), repeats=repeats or 1)
    given = sorted(k for k, v in knobs.items() if v is not None)
    if given:
        options = ", ".join("--" + k.replace("_", "-") for k in given)
        raise ConfigError(f"{options}: these size a scenario (--scenario); a suite's sizes are in its file, "
                          f"k6_scripts/suites/<name>.yaml (its '{where}' profile)")
    chosen = load_suite(suite or "default")
    sizes = chosen.sizes(where)
    seed = load_scenario("seed")
    params = seed.params(where, {"prompt_tokens": chosen.body.prompt_tokens, "max_tokens": chosen.body.max_tokens,
                                 "vus": sizes.seed.vus, "duration": sizes.seed.duration, "warmup": sizes.seed.warmup})
    return Measurement(scenario=seed, params=params, profile=load_profile(mock_profile or "instant"),
                       repeats=repeats or sizes.repeats, suite=chosen, sizes=sizes,
                       streaming_profile=load_profile(sizes.streaming.profile))
