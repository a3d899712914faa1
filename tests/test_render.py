"""Rendered k6 scripts: same body for every target, real k6 accepts them, knobs land where they should."""

from __future__ import annotations

import json
import subprocess

import pytest

from aigw_bench.results import k6_binary
from k6_scripts.render import RenderTarget, build_body, render_script
from k6_scripts.scenarios import load_scenario

TARGETS = [
    RenderTarget("wiremock", "http://127.0.0.1:18080/v1/chat/completions", "gpt-4o-mini"),
    RenderTarget("portkey", "http://127.0.0.1:18787/v1/chat/completions", "gpt-4o-mini",
                 {"x-portkey-provider": "openai", "x-portkey-custom-host": "http://127.0.0.1:18080/v1"}),
]


def k6_inspect(tmp_path, source: str) -> dict:
    script = tmp_path / "script.js"
    script.write_text(source)
    out = subprocess.run([k6_binary(), "inspect", str(script)], capture_output=True, text=True, timeout=60)
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
    assert sc["tags"] == {"target": "wiremock"}
    if scenario.executor == "constant-vus":
        assert sc["vus"] == 17
    else:
        assert sc["preAllocatedVUs"] == 17 and sc["rate"] == params.rate
    assert "aigw_ok" in options["thresholds"]


def test_stream_scenario_asks_for_a_stream():
    params = load_scenario("stream").params("local")
    assert json.loads(build_body(params, "m"))["stream"] is True
