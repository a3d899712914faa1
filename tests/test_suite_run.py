"""The suite for real, shortened: the rig first, then every step for the direct baseline, nginx,
Portkey and LiteLLM with the real fast mock and k6; the report gets every figure the issue asks for."""

from __future__ import annotations

import pandas as pd
import pytest

from analysis.report import build_report
from schema.results import read_manifest_data, read_outcomes
from tests.helpers import make_runner, tool_processes, write_suite

pytestmark = pytest.mark.slow

TARGETS = ["wiremock", "nginx", "portkey", "litellm"]
GATEWAYS = ["nginx", "portkey", "litellm"]
STEPS = ["overhead", "seed", "capacity", "efficiency", "streaming"]


@pytest.fixture(scope="module")
def suite_run(tmp_path_factory, tools_ready):
    before = tool_processes()
    tmp = tmp_path_factory.mktemp("suite")
    runner = make_runner(None, TARGETS, tmp / "results", suite=write_suite(tmp))
    run_dir = runner.run()
    left = tool_processes() - before
    return {"run_dir": run_dir, "left": left, "report": build_report(run_dir),
            "outcomes": {o.target: o for o in read_outcomes(run_dir)}}


def test_nothing_left_running(suite_run):
    assert suite_run["left"] == set()


def test_the_rig_measured_ceiling_floor_and_its_own_frontier_first(suite_run):
    rig = read_manifest_data(suite_run["run_dir"])["rig"]
    assert rig["ceiling_rps"] > 0 and rig["floor_ms"]["p50"] > 0
    bounds = rig["frontier"]["bounds"]
    assert [b["bound_ms"] for b in bounds] == [10, 50, 250]


@pytest.mark.parametrize("name", TARGETS)
def test_every_step_ran(suite_run, name):
    o = suite_run["outcomes"][name]
    assert o.status == "ok", (o.reason, o.evidence)
    expected = STEPS if name in GATEWAYS else ["overhead", "seed", "streaming"]
    for step in expected:
        assert o.steps[step].status == "ok", (step, o.steps[step].reason)
    if name not in GATEWAYS:
        assert o.steps["capacity"].status == "skipped" and o.steps["efficiency"].status == "skipped"
    # The seed step (the published shape) feeds the comparison table as before.
    assert o.files["summary"] == "seed/summary.json"


def test_every_gateway_has_the_promised_figures(suite_run):
    table = pd.read_csv(suite_run["report"].paths["comparison"]).set_index("target")
    for name in GATEWAYS:
        row = table.loc[name]
        for column in ("added_p50_us", "added_p50_us_ci_low", "added_p50_us_ci_high", "added_p99_us",
                       "cpu_ms_per_request", "rss_mib", "added_ttft_p50_ms"):
            assert pd.notna(row[column]), (name, column)
        assert pd.notna(row["capacity_rps"]) or bool(row["capacity_rig_bound"]), name
        # Each gateway adds something: the interval on the difference excludes zero.
        assert row["added_p50_us_ci_low"] > 0, (name, row["added_p50_us_ci_low"])
        assert row["cpu_ms_per_request"] > 0 and row["rss_mib"] > 1


def test_streams_arrive_whole_through_nginx_and_portkey(suite_run):
    table = suite_run["report"].table.set_index("target")
    for name in ("nginx", "portkey"):
        assert table.loc[name, "stream_complete_share"] == 1.0, name


def test_frontier_file_and_headline(suite_run):
    report = suite_run["report"]
    front = pd.read_csv(report.paths["frontier"])
    assert set(front["target"]) == set(TARGETS)
    assert all(any(h.text.startswith(f"{name} ") for h in report.headlines) for name in GATEWAYS)
