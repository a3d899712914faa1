"""Scenario parameters: defaults per profile, overrides, and errors before anything starts."""

from __future__ import annotations

import pytest

from schema.errors import ConfigError
from schema.scenarios import format_duration, list_scenarios, load_scenario, parse_duration

pytestmark = pytest.mark.pure


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
    known = "hey, inferxgate-baseline, inferxgate-sustained, inferxgate-throughput, rate, seed, stream"
    with pytest.raises(ConfigError, match=rf"unknown scenario 'soak'. Known scenarios: {known}"):
        load_scenario("soak")


def test_shipped_suites_load_with_local_and_cloud_sizes():
    from schema.suites import list_suites, load_rig_sizes, load_suite

    assert {"default", "thorough"} <= set(list_suites())
    for name in list_suites():
        suite = load_suite(name)
        if suite.sizes("local").faults is not None:  # the faults suite: the same scenarios on EKS, larger
            local, cloud = suite.sizes("local").faults, suite.sizes("cloud").faults
            assert cloud is not None and cloud.scenarios == local.scenarios and cloud.rate > local.rate
            continue
        local, cloud = suite.sizes("local"), suite.sizes("cloud")
        assert cloud.capacity.step > local.capacity.step and cloud.seed.vus == 400  # the published size
        assert local.capacity.default_bound_ms in local.capacity.bounds_ms
    assert load_rig_sizes("cloud").ceiling.vus == 400


def test_bad_suite_values_name_the_file_and_field(tmp_path):
    from schema.suites import load_suite
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
    with pytest.raises(ConfigError, match=r"unknown suite 'nope'\. Known suites: default, faults, policies, thorough"):
        load_suite("nope")


def test_a_suite_profile_may_run_some_steps_only(tmp_path):
    from schema.suites import load_suite
    from tests.helpers import write_suite

    sizes = load_suite(str(write_suite(tmp_path, steps=["capacity", "seed"]))).sizes("local")
    assert [s for s in ("overhead", "seed", "capacity", "concurrency", "efficiency", "streaming") if sizes.runs(s)] \
        == ["seed", "capacity"]
    every = load_suite(str(write_suite(tmp_path))).sizes("local")
    assert sizes.session_seconds() < every.session_seconds()
    with pytest.raises(ConfigError, match=r"profiles\.local.*the seed \(the published shape\) is always run"):
        load_suite(str(write_suite(tmp_path, steps=["overhead"])))
    with pytest.raises(ConfigError, match="'concurrency' is listed but the profile has no concurrency sizes"):
        load_suite(str(write_suite(tmp_path, steps=["seed", "concurrency"], concurrency=None)))
    with pytest.raises(ConfigError, match=r"steps\.0"):
        load_suite(str(write_suite(tmp_path, steps=["warmup", "seed"])))


# ------------------------------------------------------------------- executors and their parameters
def _scenario(tmp_path, executor: str, **fields):
    """A scenario file of one executor with the given defaults (``local`` profile only)."""
    import yaml

    data = {"name": "t", "description": "test", "executor": executor,
            "defaults": {"prompt_tokens": 10, "vus": 2, **fields}, "profiles": {"local": {}}}
    for key in ("report",):
        if key in fields:
            data[key] = data["defaults"].pop(key)
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(data))
    return lambda: load_scenario("t", tmp_path)


@pytest.mark.parametrize(("executor", "fields", "message"), [
    ("per-vu-iterations", {"duration": "1m"}, r"uses per-vu-iterations: 'iterations' is required \(per VU\)"),
    ("shared-iterations", {"duration": "1m"}, r"'iterations' is required \(in total, shared by the VUs\)"),
    ("shared-iterations", {"duration": "1m", "iterations": 1}, r"iterations \(1\) < vus \(2\)"),
    ("constant-vus", {"duration": "1m", "iterations": 5}, r"'iterations' applies to per-vu-iterations and shared"),
    ("ramping-vus", {}, r"duration: Field required"),
    ("ramping-vus", {"stages": [{"duration": "5s", "target": 3}], "duration": "9s"},
     r"duration: a ramping-vus scenario lasts as long as its stages"),
    ("ramping-vus", {"stages": [{"duration": "soon", "target": 3}]}, r"stages.0.duration: 'soon' is not a duration"),
    ("constant-vus", {"duration": "1m", "stages": [{"duration": "5s", "target": 3}]},
     r"'stages' applies to ramping-vus only"),
    ("constant-vus", {"duration": "1m", "warmup_vus": 3}, r"'warmup_vus' applies to iteration and ramping"),
    ("constant-vus", {"duration": "1m", "prompt": "Hi"}, r"prompt_tokens .* or as prompt .*not both"),
    ("constant-vus", {"duration": "1m", "report": ["stages"]}, r"report section 'stages' needs the ramping-vus"),
])
def test_executor_parameters_are_checked_by_name(tmp_path, executor, fields, message):
    with pytest.raises(ConfigError, match=message):
        _scenario(tmp_path, executor, **fields)()


def test_a_ramp_lasts_as_long_as_its_stages(tmp_path):
    scenario = _scenario(tmp_path, "ramping-vus", stages=[{"duration": "10s", "target": 5},
                                                        {"duration": "1m", "target": 0}])()
    params = scenario.params("local")
    assert params.duration == 70 and [s.target for s in params.stages] == [5, 0]
    with pytest.raises(ConfigError, match=r"leave duration .*--duration.* out"):
        scenario.params("local", {"duration": "30s"})


def test_a_later_prompt_replaces_an_earlier_one_of_either_kind():
    hey = load_scenario("hey")
    assert hey.params("local").prompt == "Hi"
    generated = hey.params("local", {"prompt_tokens": 50})  # --prompt-tokens on the hey scenario
    assert (generated.prompt, generated.prompt_tokens) == (None, 50)
    literal = load_scenario("seed").params("local", {"prompt": "Hello"})
    assert (literal.prompt, literal.prompt_tokens) == ("Hello", None)


def test_the_published_harnesses_scaled_locally_keep_their_load_and_fit_the_machine():
    for name in ("inferxgate-baseline", "inferxgate-throughput", "inferxgate-sustained", "hey"):
        scenario = load_scenario(name)
        local, cloud = scenario.params("local"), scenario.params("cloud")
        assert (local.vus, local.think_time, local.warmup_vus) == (cloud.vus, cloud.think_time, cloud.warmup_vus)
        assert local.duration <= 300 and local.warmup < cloud.warmup
    ramp_local, ramp_cloud = (load_scenario("inferxgate-throughput").params(p) for p in ("local", "cloud"))
    assert [s.target for s in ramp_local.stages] == [s.target for s in ramp_cloud.stages]  # the same VU steps
    assert ramp_local.duration * 3 == ramp_cloud.duration  # in a third of the time
