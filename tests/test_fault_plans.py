"""Fault plans as data (mock_llm/faults.yaml): the shipped plans load, every bad plan is refused with the
file and the field named, the per-attempt rule is deterministic for a seed, and a mock that cannot serve
a plan refuses it by name. No processes: tests/test_mock_faults.py runs the plans on the real mock."""

from __future__ import annotations

from collections import Counter

import pytest

from aigw_bench.local.context import mock_settings
from schema.errors import ConfigError
from schema.faults import FAULT_NAMES, HEALTHY, FaultPlan, load_plan, load_plans, request_id
from schema.mock import load_mock, load_profile

pytestmark = pytest.mark.pure


def test_the_shipped_plans_load_and_cover_every_fault():
    plans = load_plans()
    used = {f.fault for plan in plans.values() for f in plan.faults}
    assert used == set(FAULT_NAMES)
    assert plans["healthy"].faults == []


def write(tmp_path, text):
    path = tmp_path / "faults.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(("plan", "message"), [
    ("{faults: [{fault: http_418, rate: 0.1}]}",
     r"plans\.p\.faults\.0: Input tag 'http_418' found using 'fault' does not match"),
    ("{faults: [{fault: http_500, rate: 0.7}, {fault: reset, rate: 0.5, from_s: 2, to_s: 3}]}",
     r"plans\.p\.faults: the rates active from 2 s to 3 s add up to 1\.2 \(at most 1\)"),
    ("{faults: [{fault: http_500, rate: 0.6}, {fault: reset, rate: 0.5}]}",
     r"plans\.p\.faults: the rates active from 0 s on add up to 1\.1"),
    ("{faults: [{fault: down, rate: 1, from_s: 5, to_s: 2}]}",
     r"plans\.p\.faults\.0\.down: to_s \(2\) must be after from_s \(5\)"),
    ("{faults: [{fault: http_500, rate: 1.5}]}", r"plans\.p\.faults\.0\.http_500\.rate: Input should be less"),
    ("{faults: [{fault: http_500, rate: 0}]}", r"plans\.p\.faults\.0\.http_500\.rate: Input should be greater"),
    ("{faults: [{fault: http_500, rate: 0.1, delay_ms: 3}]}",
     r"plans\.p\.faults\.0\.http_500\.delay_ms: Extra inputs are not permitted"),
    ("{faults: [{fault: slow_first_byte, rate: 0.1}]}",
     r"plans\.p\.faults\.0\.slow_first_byte\.delay_ms: Field required"),
    ("{seed: -1}", r"plans\.p\.seed: Input should be greater than or equal to 0"),
    ("3", r"plans\.p: expected a mapping"),
])
def test_bad_plans_name_the_file_and_the_field(tmp_path, plan, message):
    path = write(tmp_path, f"plans:\n  p: {plan}\n")
    with pytest.raises(ConfigError, match=rf"^{path}: (invalid fault plan 'p'\n  - )?{message}"):
        load_plans(path)


def test_windows_that_do_not_overlap_may_each_use_every_attempt(tmp_path):
    path = write(tmp_path, "plans:\n  p: {faults: [{fault: down, rate: 1, from_s: 2, to_s: 4}, "
                           "{fault: http_500, rate: 1, from_s: 4}]}\n")
    plan = load_plans(path)["p"]
    assert [plan.choose("x", 1, t) for t in (0, 1.99, 2, 3.99, 4, 100)] == \
        [HEALTHY, HEALTHY, "down", "down", "http_500", "http_500"]


def test_an_unknown_plan_is_named_with_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown fault plan 'nope'\. Known plans: healthy, rate-limited"):
        load_plan("nope")


def test_the_rule_is_deterministic_for_a_seed_and_draws_again_per_attempt():
    plan = load_plan("server-errors")
    ids = [request_id(n) for n in range(2000)]
    first = [plan.choose(rid, 1) for rid in ids]
    assert first == [plan.choose(rid, 1) for rid in ids]
    # Another seed, another draw; another attempt of the same id, another draw.
    other = plan.model_copy(update={"seed": plan.seed + 1})
    assert first != [other.choose(rid, 1) for rid in ids]
    assert first != [plan.choose(rid, 2) for rid in ids]
    counts = Counter(first)
    # The rates hold over 2,000 ids: within 2 points of the plan's 10% each (a fixed draw, not a sample).
    assert abs(counts["http_500"] / 2000 - 0.10) < 0.02 and abs(counts["http_503"] / 2000 - 0.10) < 0.02


def test_request_ids_have_one_width():
    assert {len(request_id(n)) for n in (0, 7, 123_456, 10**10)} == {16}


def test_wiremock_refuses_a_plan_by_name_and_the_fast_mock_takes_it():
    plan = load_plan("rate-limited")
    profile = load_profile("instant")
    with pytest.raises(ConfigError, match=r"the wiremock mock cannot serve the fault plan 'rate-limited' "
                                          r"\(.*mock_llm/wiremock/mock.yaml: fault_plans is not true\)"):
        mock_settings(load_mock("wiremock"), profile, plan)
    fast = mock_settings(load_mock("fast"), profile, plan)
    assert fast["fault_plan"] is True and '"plan":{"name":"rate-limited","seed":1' in fast["settings_json"]
    # No plan: nothing in the settings, and the mock neither injects nor counts (the default path).
    plain = mock_settings(load_mock("fast"), profile, None)
    assert plain["fault_plan"] is False and '"plan"' not in plain["settings_json"]


def test_a_plan_sets_the_mock_up_only_when_given():
    from schema.templating import render_file
    mock = load_mock("fast")
    base = {"lua_modules": [], "workers": 1, "cpu_affinity": False, "error_log": "e", "state_dir": "/s",
            "lua_dir": "/l", "listen": "1"}
    plain = render_file(mock.entry_dir / "nginx.conf.j2", {**base, **mock_settings(mock, load_profile("instant"),
                                                                                   None)})
    served = render_file(mock.entry_dir / "nginx.conf.j2", {**base, **mock_settings(
        mock, load_profile("instant"), FaultPlan(name="x"))})
    assert "lua_shared_dict aigw_requests" not in plain and "lua_check_client_abort" not in plain
    assert "lua_shared_dict aigw_requests 64m;" in served and "lua_check_client_abort on;" in served
