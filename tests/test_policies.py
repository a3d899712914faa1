"""The policies suite: each policy's correctness check under load on real nginx, LiteLLM and Portkey (one
short run shared by the module), the verdicts' rules on crafted counts, and the templates' proxy role."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from aigw_bench.measure.works import answer_samples, verdicts
from analysis.report import write_report
from schema.catalog import load_catalog
from schema.results import read_manifest_data, read_outcomes
from schema.templating import render_file
from tests.helpers import command_line, make_runner, tool_processes

SHORT = Path(__file__).parent / "policies-short.yaml"
CATALOG = load_catalog()


# ------------------------------------------------------------------ the proxy role is unchanged
def test_without_a_policy_the_templates_render_the_proxy_role():
    """The default suite renders nginx.conf.j2 and config.yaml.j2 without `policy`: nothing of a policy in them."""
    entry = CATALOG.get("nginx")  # with the entry's own vars, as the runner renders it
    nginx = render_file(entry.entry_dir / "local/nginx.conf.j2",
                        {**entry.local.vars, "cpus": 1, "work_dir": "/w", "port": 1, "mock_host": "h", "mock_port": 2})
    for directive in ("load_module", "limit_req", "proxy_cache", "$http_authorization", "access_by_lua",
                      "stub_status", "aigw_json"):
        assert directive not in nginx
    assert "access_log off;" in nginx and "proxy_buffering off;" in nginx
    litellm = render_file(CATALOG.get("litellm").entry_dir / "config.yaml.j2", {"model": "m", "mock_url": "u"})
    for key in ("guardrails", "cache:", "router_settings", "rpm:", "callbacks", "aigw-probe"):
        assert key not in litellm
    assert "master_key: os.environ/LITELLM_MASTER_KEY" in litellm


def test_every_policy_set_is_declared_for_every_local_gateway():
    policies = ["none", "auth", "limits", "cache", "observe", "guard", "governed"]
    for name in ("nginx", "portkey"):
        assert CATALOG.get(name).variants_of("policies") == policies
    # LiteLLM also runs its limit with two workers sharing the counter in Redis.
    assert CATALOG.get("litellm").variants_of("policies") == [*policies[:3], "limits-workers", *policies[3:]]


# ------------------------------------------------------------------ verdicts on crafted counts
def _summary(counts: dict[str, float], trends: dict[str, float] | None = None) -> dict:
    metrics = {name: {"values": {"count": n}} for name, n in counts.items()}
    metrics.update({name: {"values": {"med": v}} for name, v in (trends or {}).items()})
    return {"metrics": metrics}


def test_auth_works_only_with_401_or_403_for_missing_and_wrong_keys_and_200_for_the_right_one():
    ok = _summary({"works_0_missing_401": 5, "works_0_wrong_403": 5, "works_0_right_200": 5})
    assert verdicts(ok, [{"kind": "auth"}])[0]["works"] is True
    wrong_400 = _summary({"works_0_missing_401": 5, "works_0_wrong_400": 5, "works_0_right_200": 5})
    v = verdicts(wrong_400, [{"kind": "auth"}])[0]
    assert v["works"] is False and "wrong: 400 x5" in v["why"]
    let_through = _summary({"works_0_missing_401": 5, "works_0_wrong_401": 4, "works_0_wrong_200": 1,
                            "works_0_right_200": 5})
    assert verdicts(let_through, [{"kind": "auth"}])[0]["works"] is False


LIMIT = {"kind": "limit", "limit": 20, "per_seconds": 1.0, "seconds": 5.0, "tolerance": 0.2}


@pytest.mark.parametrize(("admitted", "limited", "other", "works"), [
    (100, 100, 0, True), (81, 120, 0, True), (79, 120, 0, False), (121, 80, 0, False), (100, 0, 0, False),
    (100, 90, 10, False),
])
def test_limit_admits_the_limit_within_tolerance_and_answers_the_rest_429(admitted, limited, other, works):
    s = _summary({"works_0_offered_200": admitted, "works_0_offered_429": limited, "works_0_offered_500": other})
    assert verdicts(s, [LIMIT])[0]["works"] is works


def test_a_per_minute_limit_expects_one_window():
    s = _summary({"works_0_offered_200": 30, "works_0_offered_429": 30})
    check = {**LIMIT, "limit": 30, "per_seconds": 60.0, "seconds": 6.0}
    v = verdicts(s, [check])[0]
    assert v["works"] is True and v["expected_admitted"] == 30


@pytest.mark.parametrize(("repeat", "changed", "works"), [(1, 20, True), (20, 20, False), (1, 19, False),
                                                          (0, 20, False)])
def test_cache_serves_the_repeat_without_the_mock_and_sends_changes_through(repeat, changed, works):
    s = _summary({"works_0_repeat_200": 20, "works_0_changed_200": 20, "works_0_sent_repeat": 20,
                  "works_0_sent_changed": 20, "works_0_reached_repeat": repeat, "works_0_reached_changed": changed},
                 {"works_cache_hit_ms": 0.2, "works_cache_miss_ms": 0.4})
    v = verdicts(s, [{"kind": "cache"}])[0]
    assert v["works"] is works and v["hit_p50_ms"] == 0.2


def test_cache_without_the_mocks_count_cannot_tell():
    s = _summary({"works_0_repeat_200": 20, "works_0_changed_200": 20})
    assert verdicts(s, [{"kind": "cache"}])[0]["works"] is None


@pytest.mark.parametrize(("marked", "clean", "works"), [
    ({"400": 5}, {"200": 5}, True), ({"446": 5}, {"200": 5}, True), ({"400": 4, "200": 1}, {"200": 5}, False),
    ({"429": 5}, {"200": 5}, False), ({"400": 5}, {"200": 4, "400": 1}, False)])
def test_guard_refuses_marked_prompts_and_passes_clean_ones(marked, clean, works):
    counts = {f"works_0_marked_{s}": n for s, n in marked.items()} | {f"works_0_clean_{s}": n for s, n in clean.items()}
    assert verdicts(_summary(counts), [{"kind": "guard"}])[0]["works"] is works


@pytest.mark.parametrize(("reported", "works"), [(101, True), (100, True), (102, False), (None, False)])
def test_observe_counts_what_was_sent(reported, works):
    counts = {"works_sent_to_target": 100} | ({"works_0_reported": reported} if reported is not None else {})
    check = {"kind": "observe", "metrics_path": "/m", "counter": "(x)", "slack": 1}
    assert verdicts(_summary(counts), [check])[0]["works"] is works


def test_answer_samples_read_k6s_log_lines():
    message = json.dumps({"check": 0, "case": "wrong", "status": 400, "body": '{"error":"No connected db."}'})
    line = f'time="t" level=info msg="aigw-works: {json.dumps(message)[1:-1]}" source=console\n'
    assert answer_samples(line * 2 + "noise\n") == [json.loads(message)]


# ------------------------------------------------------------------ one short run on real processes
@pytest.fixture(scope="module")
def policies_run(tmp_path_factory, tools_ready):
    """nginx and LiteLLM with everything on, nginx's observe, and an unsupported Portkey policy: one run."""
    before = tool_processes()
    runner = make_runner(None, ["nginx+none", "nginx+governed", "litellm+governed", "nginx+observe", "portkey+auth"],
                         tmp_path_factory.mktemp("results"), suite=SHORT)
    run_dir = runner.run()
    left = tool_processes() - before
    write_report(run_dir)
    outcomes = {o.target: o for o in read_outcomes(run_dir)}
    return run_dir, outcomes, left


def _verdicts(outcomes, target):
    return {v["kind"]: v for v in outcomes[target].steps["works"].data["verdicts"]}


def test_nothing_is_left_running(policies_run):
    _, _, left = policies_run
    assert not left, [(pid, command_line(pid)) for pid in sorted(left)]


def test_nginx_auth_refuses_missing_and_wrong_keys_under_load(policies_run):
    v = _verdicts(policies_run[1], "nginx+governed")["auth"]
    assert v["works"] is True
    assert set(v["statuses"]["missing"]) == {"401"} and set(v["statuses"]["wrong"]) == {"401"}
    assert set(v["statuses"]["right"]) == {"200"}


def test_nginx_limit_binds_at_twice_the_limit(policies_run):
    v = _verdicts(policies_run[1], "nginx+governed")["limit"]
    assert v["works"] is True and v["limited"] > 0
    assert set(v["statuses"]["offered"]) == {"200", "429"}
    assert v["retry_after"] == 0  # nginx's limit_req sends no Retry-After


def test_nginx_cache_hit_does_not_reach_the_mock(policies_run):
    v = _verdicts(policies_run[1], "nginx+governed")["cache"]
    assert (v["reached_repeat"], v["reached_changed"], v["sent_changed"]) == (1, 20, 20)
    assert v["works"] is True


def test_nginx_guard_blocks_the_marker(policies_run):
    v = _verdicts(policies_run[1], "nginx+governed")["guard"]
    assert v["works"] is True and set(v["statuses"]["marked"]) == {"400"}


def test_nginx_observe_counts_what_k6_sent(policies_run):
    v = _verdicts(policies_run[1], "nginx+observe")["observe"]
    assert v["works"] is True and v["sent"] > 50


def test_litellm_checks_under_load(policies_run):
    v = _verdicts(policies_run[1], "litellm+governed")
    # The master key: a missing key is 401, but a wrong one is 400 "No connected db." (no key store here).
    assert set(v["auth"]["statuses"]["missing"]) == {"401"} and set(v["auth"]["statuses"]["wrong"]) == {"400"}
    assert v["auth"]["works"] is False
    assert any("No connected db" in a["body"] for a in v["auth"]["answers"] if a["case"] == "wrong")
    assert v["limit"]["works"] is True and v["limit"]["admitted"] == 30
    assert (v["cache"]["reached_repeat"], v["cache"]["reached_changed"]) == (1, 20) and v["cache"]["works"] is True
    assert v["guard"]["works"] is True and set(v["guard"]["statuses"]["marked"]) == {"403"}


def test_an_unsupported_policy_is_reported_with_its_evidence(policies_run):
    run_dir, outcomes, _ = policies_run
    o = outcomes["portkey+auth"]
    assert o.status == "not_runnable" and o.reason.startswith("not in this edition: the OSS server checks no key")
    assert (o.entry, o.variant) == ("portkey", "auth") and "works" not in o.steps
    record = read_manifest_data(run_dir)["targets"]["portkey+auth"]
    assert record["unsupported"].startswith("the OSS server checks no key") and record["variant_suite"] == "policies"


def test_policy_csv_and_the_report_section(policies_run):
    run_dir = policies_run[0]
    policy = pd.read_csv(run_dir / "policy.csv").set_index("target")
    assert set(policy.index) == {"nginx+none", "nginx+governed", "litellm+governed", "nginx+observe", "portkey+auth"}
    assert policy.loc["nginx+governed", "works"] == "yes" and policy.loc["litellm+governed", "works"] == "no"
    assert policy.loc["nginx+none", "works"] == "not checked" and policy.loc["nginx+none", "delta_p50_us"] == 0
    assert bool(policy.loc["portkey+auth", "supported"]) is False
    assert policy.loc["portkey+auth", "works"] == "not in this edition"
    assert "checks no key" in policy.loc["portkey+auth", "evidence"]
    # the difference to none is the two targets' added p50 apart, inside its own interval
    g, n = policy.loc["nginx+governed"], policy.loc["nginx+none"]
    assert g["delta_p50_us"] == pytest.approx(g["added_p50_us"] - n["added_p50_us"])
    assert g["delta_p50_us_ci_low"] <= g["delta_p50_us"] <= g["delta_p50_us_ci_high"]
    assert g["cache_hit_p50_us"] > 0 and pd.isna(policy.loc["nginx+observe", "cache_hit_p50_us"])
    report = (run_dir / "report.md").read_text()
    assert "## Policy cost" in report and "| portkey | auth | not in this edition |" in report
    assert 'id="chart-policy-cost"' in (run_dir / "report.html").read_text()


def test_runs_without_policies_write_no_policy_file(tmp_path):
    from analysis.policy import policy_table

    class Run:  # a run whose suite runs no variants
        manifest = type("M", (), {"suite": None})()
    assert policy_table(Run(), pd.DataFrame()).empty


# ------------------------------------------------------------------ bad checks, the minute window
@pytest.mark.parametrize(("check", "message"), [
    ({"kind": "limit"}, "a limit check needs 'limit'"),
    ({"kind": "limit", "limit": 30, "per_seconds": 60, "seconds": 90}, "at most one window"),
    ({"kind": "observe", "metrics_path": "/m"}, "needs 'metrics_path' and 'counter'"),
    ({"kind": "observe", "metrics_path": "/m", "counter": "no group"}, "one capturing group"),
    ({"kind": "quota"}, "works.0.kind"),
])
def test_bad_checks_name_the_file_and_the_field(tmp_path, check, message):
    from schema.errors import ConfigError
    from tests.test_catalog import GOOD, write_entry

    write_entry(tmp_path, "demo", {**GOOD, "variants": {"x": {"suite": "policies", "summary": "s", "works": [check]}}})
    with pytest.raises(ConfigError) as err:
        load_catalog(tmp_path)
    text = str(err.value)
    assert "demo/gateway.yaml" in text and "variants.x.works.0" in text and message in text


# 1_000_020 is a minute's start: 40 s in leaves 20 s (enough for 8 + 3), 55 s in leaves 5 s (wait 5 + 1)
@pytest.mark.parametrize(("now", "slept"), [(1_000_060.0, None), (1_000_075.0, 6.0)])
def test_a_per_minute_limit_probe_waits_for_a_whole_minute(monkeypatch, now, slept):
    from aigw_bench.measure import steps

    naps = []
    monkeypatch.setattr(steps.time, "time", lambda: now)
    monkeypatch.setattr(steps.time, "sleep", naps.append)
    check = {"kind": "limit", "window": "minute"}
    steps._clear_of_minute_end([check], 8.0, lambda text: None)
    assert naps == ([] if slept is None else [pytest.approx(slept)])


@pytest.mark.parametrize(("window", "remeasure"), [("minute", False), ("sliding", True)])
def test_a_per_minute_limit_probe_is_never_measured_again_in_the_same_minute(monkeypatch, tmp_path, window, remeasure):
    """The noise guard measures a disturbed window again at once; a limit counted per wall-clock minute would
    then find its counter spent by the first window (every probe request refused): that window is flagged
    instead. Other checks may be measured again."""
    from types import SimpleNamespace

    from aigw_bench.measure import steps

    monkeypatch.setattr(steps.time, "time", lambda: 1_000_060.0)  # a minute's start: no wait
    monkeypatch.setattr(steps, "render_works", lambda *args: SimpleNamespace(source="// probe"))
    jobs = []

    def run_k6(job):
        jobs.append(job)
        raise InterruptedError  # the job is what this test reads

    driver = SimpleNamespace(direct=SimpleNamespace(url="http://127.0.0.1:18080/v1/chat/completions"), target=None,
                             phase=lambda text: None, run_k6=run_k6)
    check = {"kind": "limit", "window": window, "seconds": 6.0}
    with pytest.raises(InterruptedError):
        steps.works_step(driver, [check], 50.0, SimpleNamespace(request_timeout=60.0), tmp_path)
    assert [j.remeasure for j in jobs] == [remeasure]
