"""`cloud run` / `cloud matrix` plan their time and cost first and start only when confirmed."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from aigw_bench import cli as cli_module
from aigw_bench.cloud.plan_cost import StackCost, estimate_matrix, estimate_run
from tests.cloud_fakes import stack_outputs

pytestmark = pytest.mark.pure


def test_run_estimate_is_stack_hours_at_the_stacks_hourly_cost():
    stacks = [StackCost("kong", 3.6), StackCost("portkey", 4.0)]
    est = estimate_run(stacks, engine="ec2", warmup=30, duration=180, repeats=3)
    # 2 targets x 3 repeats x (30 + 180 + 60 s start) = 1620 s, all stacks billed all along.
    assert est.seconds == 1620
    assert est.usd == pytest.approx(7.6 * 1620 / 3600)
    assert "27 min" in est.text() and "$3.42" in est.text() and "assumed: 60 s to start" in est.text()


def test_operator_runs_start_twice_with_a_warm_up():
    est = estimate_run([StackCost("kong-operator", 4.33)], engine="operator", warmup=30, duration=180, repeats=1)
    assert est.seconds == 30 + 180 + 2 * 120
    assert estimate_run([StackCost("k", 1.0)], engine="operator", warmup=0, duration=180, repeats=1).seconds == 300


def test_matrix_estimate_counts_deploy_and_destroy_per_stack_in_parallel():
    est = estimate_matrix([StackCost("kong", 3.6), StackCost("direct", 2.9)], engine="ec2", warmup=30,
                          duration=180, repeats=2)
    per_stack = 30 * 60 + 2 * 270 + 15 * 60
    assert est.seconds == per_stack
    assert est.usd == pytest.approx(6.5 * per_stack / 3600)
    assert "30 min per `pulumi up`" in est.text()


def test_unknown_hourly_cost_is_said_not_guessed():
    est = estimate_run([StackCost("old", None)], engine="ec2", warmup=0, duration=60, repeats=1)
    assert est.usd is None and "unknown" in est.text()


@pytest.fixture
def deployed(monkeypatch):
    """`cloud run` up to the point where it would start: outputs read, the run itself recorded."""
    started = []
    monkeypatch.setattr("aigw_bench.cloud.outputs.read_stack_outputs",
                        lambda stack: stack_outputs(stack, "direct", "http://gw:9021", ["i-0"], None))

    def fake_run(plan, engine, standalone=True):
        started.append((plan, engine))
        raise SystemExit(7)  # stop before the report: the test is about the start

    monkeypatch.setattr(cli_module, "_run_and_report", fake_run)
    return started


def test_without_a_terminal_and_without_yes_nothing_starts(deployed):
    result = CliRunner().invoke(cli_module.main, ["cloud", "run", "--stack", "direct", "-s", "seed", "-d", "60s"])
    assert result.exit_code == 2
    assert "stdin is not a terminal: pass --yes" in result.output
    assert "plan: about" in result.output and "$3.6000/h" in result.output
    assert deployed == []


def test_declining_at_the_prompt_starts_nothing(deployed, monkeypatch):
    monkeypatch.setattr(cli_module, "_stdin_is_terminal", lambda: True)
    result = CliRunner().invoke(cli_module.main, ["cloud", "run", "--stack", "direct"], input="n\n")
    assert "Start it?" in result.output and result.exit_code == 1 and deployed == []


def test_yes_starts_the_plan_with_the_chosen_engine(deployed):
    result = CliRunner().invoke(cli_module.main, ["cloud", "run", "--stack", "direct", "--yes", "-s", "seed",
                                                  "--engine", "operator", "--parallelism", "2"])
    assert result.exit_code == 7, result.output
    [(plan, engine)] = deployed
    assert engine.name == "operator" and engine.options.parallelism == 2
    assert plan.measurement.scenario.name == "seed" and plan.measurement.suite is None
    assert "port-forward svc/kps-grafana" in result.output


def test_the_operator_engine_runs_suites_like_every_engine(deployed):
    result = CliRunner().invoke(cli_module.main, ["cloud", "run", "--stack", "direct", "--yes",
                                                  "--engine", "operator", "--suite", "default"])
    assert result.exit_code == 7, result.output
    [(plan, engine)] = deployed
    assert engine.name == "operator" and plan.measurement.suite.name == "default"
    assert plan.measurement.sizes == plan.measurement.suite.sizes("cloud")


def test_a_suite_is_planned_with_its_longest_session(deployed):
    from schema.suites import load_suite

    result = CliRunner().invoke(cli_module.main, ["cloud", "run", "--stack", "direct"])
    sizes = load_suite("default").sizes("cloud")
    expected = estimate_run([StackCost("direct", 3.6)], engine="ec2", warmup=0, duration=sizes.session_seconds(),
                            repeats=sizes.repeats).text().splitlines()
    assert sizes.session_seconds() > 600 and deployed == []
    assert expected[0] in result.output and expected[1] in result.output


def test_operator_options_without_the_operator_engine_are_refused(deployed):
    result = CliRunner().invoke(cli_module.main, ["cloud", "run", "--stack", "direct", "--yes",
                                                  "--parallelism", "2"])
    assert result.exit_code == 2 and "apply to --engine operator only" in result.output
    assert deployed == []
