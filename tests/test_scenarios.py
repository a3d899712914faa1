"""Scenario parameters: defaults per profile, overrides, and errors before anything starts."""

from __future__ import annotations

import pytest

from aigw_bench.errors import ConfigError
from k6_scripts.scenarios import format_duration, list_scenarios, load_scenario, parse_duration


@pytest.mark.parametrize(("text", "seconds"), [("20s", 20), ("3m", 180), ("1m30s", 90), ("500ms", 0.5),
                                               ("1h", 3600), ("2.5s", 2.5), ("45", 45)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["soon", "20", "-5s", "5 s", "s", "", "1d"])
def test_nonsense_durations_are_rejected(text):
    if text == "20":
        assert parse_duration(text) == 20  # a bare number is seconds
        return
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


def test_format_duration_round_trips():
    for s in (0.5, 1, 20, 180, 90.25):
        assert parse_duration(format_duration(s)) == s


def test_shipped_scenarios_load_with_local_and_cloud_profiles():
    assert {"seed", "stream", "rate"} <= set(list_scenarios())
    for name in list_scenarios():
        scenario = load_scenario(name)
        assert scenario.params("local").duration > 0
        assert scenario.params("cloud").duration > 0


def test_seed_matches_the_published_shape_in_the_cloud_and_fits_here_locally():
    seed = load_scenario("seed")
    cloud, local = seed.params("cloud"), seed.params("local")
    assert (cloud.vus, cloud.duration, cloud.prompt_tokens, cloud.stream) == (400, 180, 1000, False)
    assert seed.executor == "constant-vus"
    assert local.vus <= 100 and local.duration <= 60 and local.prompt_tokens == 1000


def test_overrides_win_and_none_is_ignored():
    params = load_scenario("seed").params("local", {"vus": 7, "duration": "1m", "warmup": None})
    assert (params.vus, params.duration, params.warmup) == (7, 60, 5)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"vus": -1}, r"vus: Input should be greater than or equal to 1"),
        ({"vus": 0}, r"vus: Input should be greater than or equal to 1"),
        ({"duration": "0s"}, r"duration: Input should be greater than 0"),
        ({"duration": "forever"}, r"duration: 'forever' is not a duration"),
        ({"warmup": "-1s"}, r"warmup: '-1s' is not a duration"),
        ({"prompt_tokens": 0}, r"prompt_tokens: Input should be greater than or equal to 1"),
        ({"rate": 10}, r"'rate' applies to arrival-rate scenarios only"),
        ({"bogus": 1}, r"bogus: Extra inputs are not permitted"),
    ],
)
def test_bad_parameters_name_the_parameter(override, message):
    with pytest.raises(ConfigError, match=message):
        load_scenario("seed").params("local", override)


def test_arrival_rate_needs_a_rate_and_sane_vus():
    rate = load_scenario("rate")
    assert rate.params("local").rate and rate.executor == "constant-arrival-rate"
    with pytest.raises(ConfigError, match=r"max_vus \(5\) < vus \(50\)"):
        rate.params("local", {"max_vus": 5})


def test_unknown_scenario_lists_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown scenario 'soak'. Known scenarios: rate, seed, stream"):
        load_scenario("soak")


def test_shipped_suites_load_with_local_and_cloud_sizes():
    from k6_scripts.suites import list_suites, load_rig_sizes, load_suite

    assert {"default", "thorough"} <= set(list_suites())
    for name in list_suites():
        suite = load_suite(name)
        local, cloud = suite.sizes("local"), suite.sizes("cloud")
        assert cloud.capacity.step > local.capacity.step and cloud.seed.vus == 400  # the published size
        assert local.capacity.default_bound_ms in local.capacity.bounds_ms
    assert load_rig_sizes("cloud").ceiling.vus == 400


def test_bad_suite_values_name_the_file_and_field(tmp_path):
    from k6_scripts.suites import load_suite
    from tests.helpers import write_suite

    path = write_suite(tmp_path, overhead={"duration": "500ms", "warmup": "1s"})
    message = r"(?s)tiny.yaml: invalid suite.*profiles.local.overhead.duration: k6 runs last at least 1s"
    with pytest.raises(ConfigError, match=message):
        load_suite(str(path))
    path = write_suite(tmp_path, capacity={"bounds_ms": [50, 10], "default_bound_ms": 50, "step": "1s",
                                           "max_steps": 4, "min_rate": 10, "growth": 2, "resolution": 0.2,
                                           "max_vus": 10})
    with pytest.raises(ConfigError, match="bounds_ms: positive, increasing"):
        load_suite(str(path))
    with pytest.raises(ConfigError, match=r"unknown suite 'nope'\. Known suites: default, thorough"):
        load_suite("nope")
