"""The faults suite end to end on real processes (the fast mock and its healthy second instance, real nginx,
real k6): direct, nginx as shipped and nginx `resilient` through three short scenarios, every figure of
faults.csv that the plan's rule fixes checked exactly, the report's Resilience section and its verdicts; a
gateway killed during a scenario (recorded with its evidence, the next target still measured, nothing left
running). Also bad input refused before anything starts (no processes)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pandas as pd
import pytest
import yaml

from aigw_bench.local.cpus import plan_cpus
from aigw_bench.local.engine import LocalEngine
from aigw_bench.measure.events import Tick
from aigw_bench.measure.plan import Knobs
from aigw_bench.run.plan import plan_run
from analysis.report import write_report
from schema.catalog import load_catalog
from schema.errors import ConfigError
from schema.faults import HEALTHY, load_plan, request_id
from schema.mock import load_mock
from schema.results import read_outcomes
from schema.suites import load_suite
from tests.helpers import build_catalog, make_runner, tool_processes

SUITE = Path(__file__).parent / "faults-suite-short.yaml"
KILLED_IN = "faults: cancel"  # nginx as shipped is killed one second into this scenario


@pytest.fixture(scope="module")
def suite_run(tmp_path_factory, tools_ready):
    root = build_catalog(tmp_path_factory.mktemp("catalog"), copies=["direct", "nginx"], fakes=[])
    killed: dict[str, int] = {}

    def on_event(event):
        if (isinstance(event, Tick) and event.target == "nginx+defaults" and event.label == KILLED_IN
                and event.elapsed >= 0.5 and not killed):
            pid = int((runner.run_dir / "targets" / "nginx+defaults" / "r1" / "nginx.pid").read_text())
            os.killpg(os.getpgid(pid), signal.SIGKILL)
            killed["pid"] = pid

    before = tool_processes()
    runner = make_runner(root, ["direct", "nginx"], tmp_path_factory.mktemp("results"), suite=SUITE,
                         on_event=on_event)
    run_dir = runner.run()
    left = tool_processes() - before
    write_report(run_dir)
    faults = pd.read_csv(run_dir / "faults.csv", keep_default_na=True)
    return {"run_dir": run_dir, "left": left, "killed": killed, "faults": faults,
            "outcomes": {o.target: o for o in read_outcomes(run_dir)}}


pytestmark = pytest.mark.slow


def row(suite_run, config: str, scenario: str) -> dict:
    rows = suite_run["faults"].query("config == @config and scenario == @scenario").to_dict("records")
    assert len(rows) == 1, (config, scenario)
    return rows[0]


def planned(plan: str, r: dict) -> dict[str, str]:
    """What the mock was told to answer to each client request's first attempt, for the requests sent."""
    p = load_plan(plan)
    return {request_id(n): p.choose(request_id(n), 1) for n in range(int(r["requests"]))}


def test_every_target_runs_each_scenario_with_a_fixed_rate(suite_run):
    faults = suite_run["faults"]
    assert set(faults["config"]) == {"direct", "defaults", "resilient"}
    assert set(faults["scenario"]) == {"server-errors", "malformed", "cancel"}
    assert (faults.query("status == 'ok'")["requests"] >= 38).all()  # 20 req/s for 2 s, each one answered


@pytest.mark.parametrize("config", ["direct", "defaults"])
def test_5xx_pass_through_as_the_plan_says_without_a_retry(suite_run, config):
    r = row(suite_run, config, "server-errors")
    plan = planned("server-errors", r)
    healthy = sum(1 for a in plan.values() if a == HEALTHY)
    assert (r["amplification_mean"], r["amplification_max"], r["fallback_attempts"]) == (1.0, 1, 0)
    assert r["answers_ok"] == healthy and r["success_rate"] == healthy / len(plan)
    mix = dict(item.split(":") for item in r["status_mix"].split())
    assert mix == {k: str(v) for k, v in {"200": healthy, "500": list(plan.values()).count("http_500"),
                                          "503": list(plan.values()).count("http_503")}.items() if v}


def test_nginx_resilient_retries_each_5xx_once_on_the_backup_exactly(suite_run):
    r = row(suite_run, "resilient", "server-errors")
    plan = planned("server-errors", r)
    faulted = sum(1 for a in plan.values() if a != HEALTHY)
    assert faulted > 0
    assert (r["upstream_attempts"], r["fallback_attempts"]) == (len(plan), faulted)
    assert r["amplification_mean"] == pytest.approx((len(plan) + faulted) / len(plan)) and r["amplification_max"] == 2
    assert r["success_rate"] == 1.0 and r["status_mix"] == f"200:{len(plan)}"


@pytest.mark.parametrize("config", ["direct", "defaults", "resilient"])
def test_malformed_answers_are_counted_as_delivered_successes(suite_run, config):
    r = row(suite_run, config, "malformed")
    bad = list(planned("malformed", r).values()).count("malformed")
    assert bad > 0 and r["truncated_as_success"] == r["answers_invalid_json"] == bad
    assert r["status_mix"] == f"200:{int(r['requests'])}"  # every one of them HTTP 200
    # A 200 is not retried, and both mocks' counts started again with the scenario: one attempt per request.
    assert (r["upstream_attempts"], r["fallback_attempts"], r["amplification_max"]) == (r["requests"], 0, 1)


@pytest.mark.parametrize("config", ["direct", "resilient"])
def test_a_client_that_gives_up_is_seen_closing_the_upstream(suite_run, config):
    r = row(suite_run, config, "cancel")
    slow = list(planned("slow-answers", r).values()).count("slow_first_byte")
    assert slow > 0 and r["answers_timeout"] == slow
    assert r["cancel_propagated"] == 1.0 and 900 <= r["cancel_after_ms"] < 3000


def test_a_gateway_killed_during_a_scenario_is_recorded_and_the_suite_goes_on(suite_run):
    assert suite_run["killed"], "nginx+defaults was not killed: the scenario never ticked"
    outcome = suite_run["outcomes"]["nginx+defaults"]
    assert outcome.status == "died" and "exited during the faults: cancel" in outcome.reason
    assert outcome.steps["faults-server-errors"].status == "ok" and outcome.steps["faults-malformed"].status == "ok"
    cut = outcome.steps["faults-cancel"]
    assert cut.status == "failed" and "exited" in cut.reason and {"summary", "upstream"} <= set(cut.files)
    assert row(suite_run, "defaults", "cancel")["status"] == "failed"  # in faults.csv, with its reason
    assert suite_run["outcomes"]["nginx+resilient"].status == "ok"  # the target after it, measured
    assert suite_run["left"] == set()


def test_the_report_has_the_resilience_section_with_verdicts_and_evidence(suite_run):
    text = (suite_run["run_dir"] / "report.md").read_text()
    assert "## Resilience: what each gateway does when the LLM misbehaves" in text
    assert "## Resilience verdicts" in text
    # Each short scenario's p99 rests on far fewer than 1,000 requests: marked rough, as every quoted p99 is.
    table = text.split("## Resilience: what")[1].split("## Resilience verdicts")[0]
    assert "ms ‡" in table or "µs ‡" in table, table[:2000]
    for verdict in ("hides upstream failures under server-errors", "multiplies upstream load x",
                    "passes answers cut short or malformed as successes"):
        assert verdict in text, verdict
    assert "Resilience verdicts" in (suite_run["run_dir"] / "report.html").read_text()


# ------------------------------------------------------------------------------ bad input, no processes
def _suite_with(tmp_path: Path, **faults) -> Path:
    data = yaml.safe_load(SUITE.read_text())
    data["profiles"]["local"]["faults"].update(faults)
    path = tmp_path / SUITE.name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_an_unknown_plan_or_a_scenario_named_twice_is_refused_naming_the_file_and_field(tmp_path):
    path = _suite_with(tmp_path, scenarios=[{"name": "x", "plan": "nope"}])
    with pytest.raises(ConfigError, match=r"(?s)faults-suite-short\.yaml.*profiles\.local\.faults\.scenarios\.0\."
                                          r"plan.*unknown fault plan 'nope'"):
        load_suite(str(path))
    twice = _suite_with(tmp_path, scenarios=[{"name": "x", "plan": "healthy"}, {"name": "x", "plan": "malformed"}])
    with pytest.raises(ConfigError, match=r"profiles\.local\.faults\.scenarios.*x given twice"):
        load_suite(str(twice))


def test_a_mock_that_cannot_serve_the_plans_is_refused_before_anything_starts(tmp_path):
    plan = plan_run("local", targets=load_catalog().select(["direct"]), scenario=None, suite=str(SUITE),
                    mock_profile=None, knobs=Knobs(), repeats=None, results_root=tmp_path)
    with pytest.raises(ConfigError, match=r"the wiremock mock cannot serve the fault plan 'healthy' .*run with "
                                          r"--mock fast"):
        LocalEngine(load_mock("wiremock"), plan_cpus()).validate(plan)
