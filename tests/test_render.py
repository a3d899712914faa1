"""Rendered k6 scripts: same body for every target, real k6 accepts them, knobs land where they should."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from aigw_bench.run.environment import k6_binary
from k6_scripts.render import RenderTarget, build_body, render_script
from schema.scenarios import load_scenario, parse_duration

pytestmark = pytest.mark.pure

TARGETS = [
    RenderTarget("direct", "http://127.0.0.1:18080/v1/chat/completions", "gpt-4o-mini"),
    RenderTarget("portkey", "http://127.0.0.1:18787/v1/chat/completions", "gpt-4o-mini",
                 {"x-portkey-provider": "openai", "x-portkey-custom-host": "http://127.0.0.1:18080/v1"}),
]


def k6_inspect(tmp_path, source: str, *args: str) -> dict:
    script = tmp_path / "script.js"
    script.write_text(source)
    out = subprocess.run([k6_binary(), "inspect", *args, str(script)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_every_target_gets_the_same_body():
    scenario = load_scenario("seed")
    params = scenario.params("local")
    rendered = [render_script(scenario, params, t) for t in TARGETS]
    assert len({r.body for r in rendered}) == 1
    assert len({r.body_sha256 for r in rendered}) == 1
    body = json.loads(rendered[0].body)
    assert body["model"] == "gpt-4o-mini" and body["stream"] is False
    assert body["messages"][1]["role"] == "user" and rendered[0].prompt_tokens == 1000


def test_only_url_and_headers_differ_between_targets():
    scenario = load_scenario("seed")
    params = scenario.params("local")
    a, b = (render_script(scenario, params, t).source for t in TARGETS)
    assert '"http://127.0.0.1:18787/v1/chat/completions"' in b and "x-portkey-custom-host" in b
    assert "x-portkey" not in a


@pytest.mark.parametrize("name", ["seed", "stream", "rate"])
def test_real_k6_accepts_each_scenario_with_its_knobs(tmp_path, name):
    scenario = load_scenario(name)
    params = scenario.params("local", {"vus": 17, "duration": "42s"})
    options = k6_inspect(tmp_path, render_script(scenario, params, TARGETS[0]).source)
    sc = options["scenarios"][name]
    assert sc["executor"] == scenario.executor
    assert sc["duration"] == "42s"
    assert sc["tags"] == {"target": "direct"}
    if scenario.executor == "constant-vus":
        assert sc["vus"] == 17
    else:
        assert sc["preAllocatedVUs"] == 17 and sc["rate"] == params.rate
    assert "aigw_ok" in options["thresholds"]


def test_stream_scenario_asks_for_a_stream():
    params = load_scenario("stream").params("local")
    assert json.loads(build_body(params, "m"))["stream"] is True


# --------------------------------------------------------------- the published harnesses' scenarios
# What each original ran (docs/inferxgate.md, docs/hey.md), written out here rather than read from the
# scenario files, so that a changed file fails: cloud = the published sizes; local = the scaled ones.
RAMP_CLOUD = [("30s", 5), ("1m0s", 10), ("1m0s", 20), ("1m0s", 30), ("1m0s", 50), ("30s", 50), ("30s", 0)]
RAMP_LOCAL = [("10s", 5), ("20s", 10), ("20s", 20), ("20s", 30), ("20s", 50), ("10s", 50), ("10s", 0)]
PUBLISHED = {
    ("inferxgate-baseline", "cloud"): {"executor": "per-vu-iterations", "vus": 1, "iterations": 30,
                                       "maxDuration": "10m0s"},
    ("inferxgate-baseline", "local"): {"executor": "per-vu-iterations", "vus": 1, "iterations": 30,
                                       "maxDuration": "5m0s"},
    ("inferxgate-throughput", "cloud"): {"executor": "ramping-vus", "startVUs": 1, "gracefulRampDown": "30s",
                                         "stages": RAMP_CLOUD},
    ("inferxgate-throughput", "local"): {"executor": "ramping-vus", "startVUs": 1, "gracefulRampDown": "30s",
                                         "stages": RAMP_LOCAL},
    ("inferxgate-sustained", "cloud"): {"executor": "constant-vus", "vus": 10, "duration": "10m0s"},
    ("inferxgate-sustained", "local"): {"executor": "constant-vus", "vus": 10, "duration": "2m10s"},
    ("hey", "cloud"): {"executor": "shared-iterations", "vus": 50, "iterations": 100_000, "maxDuration": "10m0s"},
    ("hey", "local"): {"executor": "shared-iterations", "vus": 50, "iterations": 10_000, "maxDuration": "5m0s"},
}
# The warm-up each one runs first (AIGW_WARMUP=1): VUs of its closed loop.
WARMUP_VUS = {"inferxgate-baseline": 1, "inferxgate-throughput": 5, "inferxgate-sustained": 10, "hey": 50}


@pytest.mark.parametrize(("name", "profile"), sorted(PUBLISHED))
def test_published_harnesses_render_their_executor_stages_and_sizes(tmp_path, name, profile):
    scenario = load_scenario(name)
    params = scenario.params(profile)
    source = render_script(scenario, params, TARGETS[0]).source
    sc = k6_inspect(tmp_path, source)["scenarios"][name]
    expected = dict(PUBLISHED[(name, profile)])
    stages = expected.pop("stages", None)
    assert {k: sc.get(k) for k in expected} == expected
    if stages is not None:
        assert [(s["duration"], s["target"]) for s in sc["stages"]] == stages
        assert params.duration == sum(parse_duration(d) for d, _ in stages)  # the run's length: the stages'
    assert sc["tags"] == {"target": "direct"}
    # The warm-up is a closed loop for the warm-up's duration, not another round of the schedule.
    warm = k6_inspect(tmp_path, source, "-e", "AIGW_WARMUP=1", "-e", "AIGW_DURATION=7s")["scenarios"][name]
    assert (warm["executor"], warm["vus"], warm["duration"]) == ("constant-vus", WARMUP_VUS[name], "7s")


def test_hey_sends_exactly_the_published_tiny_body():
    params = load_scenario("hey").params("cloud")
    tiny = '{"model":"gpt-3.5-turbo","messages":[{"role":"user","content":"Hi"}]}'
    assert build_body(params, "gpt-3.5-turbo") == tiny


@pytest.mark.parametrize("name", ["inferxgate-baseline", "inferxgate-throughput", "inferxgate-sustained"])
def test_inferxgate_scenarios_send_its_body_and_count_output_tokens(name):
    scenario = load_scenario(name)
    params = scenario.params("local")
    body = json.loads(build_body(params, "m"))
    prompt = "What is 2 + 2? Answer with just the number."
    assert body == {"model": "m", "messages": [{"role": "user", "content": prompt}],
                    "max_tokens": 100, "temperature": 0.7, "stream": False}
    assert scenario.mock_profile == "llm" and params.request_timeout == 120
    source = render_script(scenario, params, TARGETS[0]).source
    assert "completionTokens.add(tokens)" in source and "new Trend('aigw_tokens_per_s')" in source
    assert "completionTokens" not in render_script(load_scenario("seed"), load_scenario("seed").params("local"),
                                                   TARGETS[0]).source  # opt-in: no extra sample per request


@pytest.mark.parametrize(("name", "think"), [("inferxgate-baseline", 1.0), ("inferxgate-throughput", 0.5),
                                             ("inferxgate-sustained", 1.0), ("hey", 0.0), ("seed", 0.0)])
def test_think_time_is_the_original_pause(name, think):
    params = load_scenario(name).params("cloud")
    assert params.think_time == think
    source = render_script(load_scenario(name), params, TARGETS[0]).source
    assert float(re.search(r"parseFloat\(__ENV.AIGW_THINK_TIME \|\| ([0-9.]+)\)", source).group(1)) == think
