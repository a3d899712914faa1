"""The rig's ceiling is what k6 and the mock can deliver, whatever the run's pacing: with a paced
mock a closed loop measures only VUs / pacing (Little's law), so the ceiling is taken unpaced and the
floor with the run's own pacing. A driver that records what it is asked stands in for the machines."""

from __future__ import annotations

from pathlib import Path

import pytest

from aigw_bench.measure.driver import Endpoint, K6Job, K6Run
from aigw_bench.measure.steps import measure_rig
from schema.mock import load_profile
from schema.scenarios import load_scenario
from schema.suites import load_rig_sizes

pytestmark = pytest.mark.pure


class PacedMock:
    """Serves as fast as the rig allows unpaced (1,000 RPS), at 1.6 s per answer when paced."""

    def __init__(self, profile: str) -> None:
        self.profile = load_profile(profile)
        self.direct = self.target = Endpoint("direct", "http://127.0.0.1:1/v1/chat/completions", "m")
        self.log: list[str] = []

    def use_profile(self, profile) -> None:
        self.log.append(f"profile {profile.name}")
        self.profile = profile

    def run_k6(self, job: K6Job) -> K6Run:
        self.log.append(f"{job.label} @ {self.profile.name}")
        latency_ms = 1600.0 if self.profile.paced else 0.1
        rps = 1000.0 if not self.profile.paced else 50 / 1.6
        summary = {"metrics": {"http_reqs": {"values": {"rate": rps}},
                               "aigw_ok": {"values": {"rate": 1.0}},
                               "http_req_duration": {"values": {"p(50)": latency_ms, "p(90)": latency_ms,
                                                                "p(99)": latency_ms}}}}
        return K6Run(dir=job.dir, exit_code=0, seconds=job.duration, files={}, summary=summary)

    def emit(self, event: str, **data) -> None:
        pass


def rig(tmp_path: Path, profile: str) -> tuple[dict, list[str]]:
    mock = PacedMock(profile)
    params = load_scenario("seed").params("local")
    record = measure_rig(mock, load_rig_sizes("local"), params, tmp_path, None, load_profile(profile))  # type: ignore[arg-type]
    return record, mock.log


def test_a_paced_run_measures_the_ceiling_unpaced_and_the_floor_paced(tmp_path):
    record, log = rig(tmp_path, "llm")
    assert log == ["profile instant", "rig ceiling @ instant", "profile llm", "rig floor @ llm"]
    assert record["ceiling_rps"] == 1000.0 and record["ceiling_profile"] == "instant"
    assert record["floor_ms"]["p50"] == 1600.0  # the floor is the run's own pacing


def test_an_unpaced_run_does_not_restart_the_mock(tmp_path):
    record, log = rig(tmp_path, "instant")
    assert log == ["rig ceiling @ instant", "rig floor @ instant"]
    assert record["ceiling_profile"] == "instant"
