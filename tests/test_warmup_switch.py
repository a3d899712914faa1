"""The warm-up switch for iteration and ramping scenarios: whoever starts k6 for a warm-up sets
AIGW_WARMUP=1 (the script then runs a closed loop instead of its iterations or stages), and never for
the measurement: the local runner's k6 command and the cloud stage's runner job (cloud profile)."""

from __future__ import annotations

import re

import pytest

from aigw_bench.cloud.remote import render_script
from aigw_bench.local.loadgen import K6Files, start_k6


def _k6_lines(script: str) -> list[str]:
    """Each k6 run command of the runner job, its continuation lines joined."""
    joined = script.replace("\\\n", " ")
    return [line for line in joined.splitlines() if re.search(r'"\$K6" run ', line)]


def test_the_runner_warms_up_with_a_closed_loop_then_measures_the_schedule():
    script = render_script("k6", run_id="r", label="seed", bucket="b", prefix="p", generator=1, generators=1,
                           headers_key=None, wait_seconds=60, prometheus_lag=0, prometheus_step=1, queries={},
                           inputs=["script.js"], wait_urls=["http://x"], warmup=30, warmup_duration="30s",
                           duration="330s", segment_args="", raw=True, prometheus_url=None, exact=False, steady=None)
    warmup, measure = _k6_lines(script)
    assert "-e AIGW_WARMUP=1" in warmup and "-e AIGW_DURATION=30s" in warmup
    assert "AIGW_WARMUP" not in measure and "-e AIGW_DURATION=330s" in measure


class _Recorder:
    """Stands in for the Supervisor: keeps the command it was asked to start."""

    def start(self, name, argv, log, **kw):
        self.argv = argv
        return None


@pytest.mark.parametrize(("warmup", "expected"), [(True, ["AIGW_WARMUP=1"]), (False, [])])
def test_the_local_runner_tells_k6_only_the_warm_up(tmp_path, warmup, expected):
    sup = _Recorder()
    files = K6Files(summary=tmp_path / "s.json", log=tmp_path / "k6.log", raw=None)
    start_k6(sup, "k6", tmp_path / "script.js", files, duration=5, api_port=1, cpus=None,  # type: ignore[arg-type]
             warmup=warmup)
    assert [a for a in sup.argv if a.startswith("AIGW_WARMUP")] == expected
