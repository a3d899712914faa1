"""The cloud post-deploy stage end to end with AWS faked at the API boundary (see tests/cloud_fakes.py):
outputs -> rig -> render -> upload -> SSM command -> poll -> download -> analysis -> report, for a
scenario, and the failure paths: runner not registered, a run already in progress, a command that
fails or times out, uploads that are partial or missing, Ctrl-C, missing stack outputs, no Pulumi
CLI, no AWS credentials. The whole suite through the stage: tests/test_cloud_suite.py."""

from __future__ import annotations

import gzip
import io
import json
import os
import time
import uuid

import boto3
import pandas as pd
import pytest
from rich.console import Console

from aigw_bench.cloud import ssm as ssm_cmd
from aigw_bench.cloud.outputs import StackOutputs, check_aws_credentials, read_stack_outputs
from aigw_bench.cloud.remote import segment_args
from aigw_bench.local.ports import free_port
from aigw_bench.local.processes import Supervisor
from aigw_bench.progress import ProgressPrinter
from aigw_bench.run.loop import Runner
from analysis.report import build_report
from schema.errors import CloudError
from schema.results import read_outcomes
from tests.cloud_fakes import (
    BUCKET,
    REGION,
    CloudCase,
    FakePrometheus,
    FakeSsm,
    KeyCheckingGateway,
    ModelViolation,
    SsmAgent,
    busy_command,
    cloud_case,
    ec2_runner,
    stack_outputs,
)
from tests.helpers import start_mock

RUNNER = "i-0123456789abcdef0"
RUNNER_2 = "i-0fedcba9876543210"


@pytest.fixture(scope="module")
def mock_llm(tmp_path_factory, tools_ready):
    with Supervisor() as sup:
        _, base = start_mock(sup, tmp_path_factory.mktemp("mock"))
        yield base


@pytest.fixture
def prometheus():
    prom = FakePrometheus()
    yield prom
    prom.close()


# The rig's own measurement, shortened like everything else in these tests.
SHORT_RIG = {"ceiling": {"vus": 5, "duration": 1.0, "warmup": 0.0}, "floor": {"duration": 1.0, "warmup": 0.0}}


def plan_for(tmp_path, outputs: list[StackOutputs], repeats: int = 1, duration: str = "1s",
             warmup: str = "1s") -> CloudCase:
    case = cloud_case(tmp_path, outputs, knobs={"vus": 5, "duration": duration, "warmup": warmup}, repeats=repeats)
    case.plan.rig = case.plan.rig.model_validate(SHORT_RIG)
    return case


def agent_for(aws, behave=None) -> SsmAgent:
    return SsmAgent(aws["shim_dir"], aws["endpoint"], behave)


def runner_for(case: CloudCase, ssm, aws, **kw) -> Runner:
    """The stage with fast polling against the fakes (real sleeps: the agent runs scripts for real)."""
    kw.setdefault("poll_interval", 0.1)
    return ec2_runner(case, ssm, aws["s3"], prometheus_lag_s=1, **kw)


def only(label: str, mode: str):
    """An agent behaviour: ``mode`` for the commands of the job ``label``, run the others."""
    return lambda script: mode if f": {label}, generator" in script else "run"


def test_whole_stage_with_one_runner(tmp_path, aws, mock_llm, prometheus, no_leftovers):
    outputs = stack_outputs("direct", "direct", mock_llm, [RUNNER], prometheus.url)
    agent = agent_for(aws)
    run_dir = runner_for(plan_for(tmp_path, [outputs]), agent.client, aws).run()
    (outcome,) = read_outcomes(run_dir)
    assert outcome.status == "ok", outcome.reason
    # Format 2, as a local run: the scenario is the session's step, its files under its directory.
    record = outcome.steps["seed"]
    assert record.status == "ok" and record.dir == "seed"
    for key in ("summary", "timeseries", "histogram", "statuses", "resources", "script"):
        assert outcome.files[key].startswith("seed/"), key
    work = run_dir / "targets/direct/r1/seed"
    summary = json.loads((work / "summary.json").read_text())
    assert summary["metrics"]["http_reqs"]["values"]["count"] > 50
    assert record.data["requests"] == summary["metrics"]["http_reqs"]["values"]["count"]
    # Uploaded under the run's own prefix; the script the runner fetched is the one rendered locally.
    manifest = json.loads((run_dir / "manifest.json").read_text())
    prefix = f"runs/{manifest['run_id']}/targets/direct/r1/seed/g1/"
    keys = [o["Key"] for o in aws["s3"].list_objects_v2(Bucket=BUCKET, Prefix=prefix)["Contents"]]
    assert {prefix + n for n in ("script.js", "summary.json", "raw.csv.gz", "exit-code", "k6.log")} <= set(keys)
    assert aws["s3"].get_object(Bucket=BUCKET, Key=prefix + "script.js")["Body"].read().decode() == \
        (work / "script.js").read_text()
    # Resource usage: gateway and mock from Prometheus, the load generator from vmstat.
    resources = pd.read_csv(work / "resources.csv")
    assert set(resources["role"]) == {"gateway", "mock", "loadgen"}
    assert resources.loc[resources["role"] == "gateway", "cpu_cores"].eq(1.5).all()
    assert any('namespace="gateway"' in q for q in prometheus.queries)
    # The rig was measured first, on the runner against the mock, and is recorded like a local run's.
    rig = manifest["rig"]
    assert rig["ceiling_rps"] > 0 and rig["floor_ms"]["p50"] > 0 and rig["mock"] == "wiremock"
    assert rig["reach_rps"] == pytest.approx(0.8 * rig["ceiling_rps"])
    assert manifest["cloud"]["direct"]["rig"]["ceiling_rps"] == rig["ceiling_rps"]
    assert (run_dir / "rig/direct/ceiling/summary.json").exists()
    rig_scripts = agent.scripts("k6")[:2]
    assert all(mock_llm + "/v1/chat/completions" in s for s in rig_scripts)
    # Every job worked on the root volume (/var/tmp), never in $TMPDIR or /tmp: on AL2023 /tmp is a tmpfs
    # in the runner's memory, and the raw samples would live there.
    traces = [o for o in agent.outputs() if "aigw-bench: working in" in o]
    assert len(traces) == len(agent.scripts()) - 1  # every runner job (not the user-data check)
    assert all("aigw-bench: working in /var/tmp/aigw-bench." in o for o in traces), traces[0][:300]
    assert manifest["mock"]["profile"]["name"] == "instant" and manifest["format"] == 2
    report = build_report(run_dir)
    assert manifest["environment"] == "cloud" and manifest["cloud"]["direct"]["stack"] == "direct"
    assert "## Cost" in report.paths["markdown"].read_text()
    row = report.table.set_index("target").loc["direct"]
    assert row["requests"] == summary["metrics"]["http_reqs"]["values"]["count"]
    assert row["rig_ceiling_rps"] == pytest.approx(rig["ceiling_rps"])


def test_two_runners_split_the_load_and_merge_from_raw_data(tmp_path, aws, mock_llm):
    outputs = stack_outputs("direct", "direct", mock_llm, [RUNNER, RUNNER_2], None)
    agent = agent_for(aws)
    run_dir = runner_for(plan_for(tmp_path, [outputs], warmup="0s"), agent.client, aws).run()
    (outcome,) = read_outcomes(run_dir)
    assert outcome.status == "ok", outcome.reason
    work = run_dir / "targets/direct/r1/seed"
    gens = [json.loads((work / f"gen{i}/summary.json").read_text()) for i in (1, 2)]
    merged = json.loads((work / "summary.json").read_text())
    assert merged["metrics"]["http_reqs"]["values"]["count"] == sum(
        g["metrics"]["http_reqs"]["values"]["count"] for g in gens)
    assert merged["aigw_bench_merged"]["generators"] == 2
    assert outcome.files["summary"] == "seed/summary.json" and outcome.files["timeseries"] == "seed/timeseries.csv"
    # Each generator ran half the VUs (execution segments), on its own runner.
    assert "--execution-segment 0:1/2" in (work / "gen1/runner-g1.sh").read_text()
    assert "--execution-segment 1/2:1" in (work / "gen2/runner-g2.sh").read_text()
    sent = {c["instance"] for c in agent.commands.values() if "targets/direct/r1/seed" in c["script"]}
    assert sent == {RUNNER, RUNNER_2}
    # Concurrency 1 is never split: the rig's floor ran on the first runner only; its ceiling on both.
    rig = run_dir / "rig/direct"
    assert (rig / "floor/summary.json").exists() and not (rig / "floor/gen2").exists()
    assert (rig / "ceiling/gen2/summary.json").exists()


def test_two_runners_meet_and_start_the_measurement_together(tmp_path, aws, mock_llm):
    """Each runner's command starts on its own (SSM delivers it, the runner waits for the endpoints, warms
    up): here the second starts 3 s late. They meet before the measurement and start k6 at one instant;
    the merged summary records how close (start_skew_s)."""
    outputs = stack_outputs("direct", "direct", mock_llm, [RUNNER, RUNNER_2], None)
    agent = agent_for(aws, lambda script: {"_delay_s": 3} if ": seed, generator 2/2" in script else "run")
    run_dir = runner_for(plan_for(tmp_path, [outputs], warmup="0s"), agent.client, aws).run()
    (outcome,) = read_outcomes(run_dir)
    assert outcome.status == "ok", outcome.reason
    work = run_dir / "targets/direct/r1/seed"
    starts = [float((work / f"gen{i}/start.txt").read_text()) for i in (1, 2)]
    assert abs(starts[0] - starts[1]) < 0.5, starts
    barriers = [(work / f"gen{i}/barrier.txt").read_text().split() for i in (1, 2)]
    assert barriers[0][0] == barriers[1][0] == "met" and barriers[0][1] == barriers[1][1]  # one common instant
    assert int(barriers[0][barriers[0].index("waited") + 1]) >= 2  # the first one waited for the other
    common = float(barriers[0][1])
    assert all(common - 0.05 <= start <= common + 0.5 for start in starts), (common, starts)  # k6 started then
    merged = json.loads((work / "summary.json").read_text())["aigw_bench_merged"]
    assert merged["start_skew_s"] < 0.5 and set(merged["generator_starts"]) == {"gen1", "gen2"}


def test_a_runner_that_never_gets_to_the_measurement_ends_the_session_clearly(tmp_path, aws, mock_llm):
    """The second runner's command never runs: the first waits at most its endpoint wait plus the grace,
    measures nothing alone, and the session says why; the next job runs again."""
    outputs = stack_outputs("direct", "direct", mock_llm, [RUNNER, RUNNER_2], None)
    agent = agent_for(aws, lambda script: "fail" if ": seed, generator 2/2" in script else "run")
    started = time.monotonic()
    run_dir = runner_for(plan_for(tmp_path, [outputs], warmup="0s"), agent.client, aws, endpoint_wait_s=2,
                         barrier_grace_s=2).run()
    assert time.monotonic() - started < 90
    (outcome,) = read_outcomes(run_dir)
    assert outcome.status == "k6_failed"
    first = run_dir / "targets/direct/r1/seed/gen1"
    assert not (first / "summary.json").exists() and not (first / "k6.log").exists()  # never measured alone
    assert (first / "exit-code").read_text().strip() == "94"
    assert "waited" in (first / "barrier.txt").read_text()


def test_a_runner_that_ended_early_stops_the_others_at_once(tmp_path, aws, mock_llm):
    """The second runner cannot reach the endpoints (its curl fails) and ends: the first one sees its exit
    code while waiting and gives up at once; the reason is the unreachable endpoint."""
    broken = tmp_path / "broken-bin"
    broken.mkdir()
    (broken / "curl").write_text("#!/bin/sh\nexit 7\n")
    (broken / "curl").chmod(0o755)
    outputs = stack_outputs("direct", "direct", mock_llm, [RUNNER, RUNNER_2], None)
    path = f"{broken}:{aws['shim_dir']}:{os.environ['PATH']}"
    agent = agent_for(aws, lambda script: {"PATH": path} if ": seed, generator 2/2" in script else "run")
    run_dir = runner_for(plan_for(tmp_path, [outputs], warmup="0s"), agent.client, aws, endpoint_wait_s=2).run()
    (outcome,) = read_outcomes(run_dir)
    assert outcome.status == "not_ready" and "did not answer the runner within 2 s" in outcome.reason
    barrier = (run_dir / "targets/direct/r1/seed/gen1/barrier.txt").read_text().split()
    assert barrier[:3] == ["apart", "generator", "2"] and int(barrier[-1]) < 30  # not the whole barrier wait


def test_runs_wait_for_the_runners_user_data_before_the_first_command(tmp_path, aws, mock_llm):
    """A runner just (re)placed: its SSM agent is online, cloud-init still installs k6. The stage asks
    until the user data is done, then starts; nothing ran before. A check lost to the agent's restart
    (the user data's last step) is asked again."""
    outputs = stack_outputs("direct", "direct", mock_llm, [RUNNER], None)
    lost = []

    def behave(script):
        if "user data finished" in script and not lost:
            lost.append(script)
            return "fail"  # the agent restarting: the command never ran
        return "run"

    agent = SsmAgent(aws["shim_dir"], aws["endpoint"], behave, cloud_init=("running", "running", "done"))
    events = []
    run_dir = runner_for(plan_for(tmp_path, [outputs], warmup="0s"), agent.client, aws, on_event=events.append).run()
    (outcome,) = read_outcomes(run_dir)
    assert outcome.status == "ok", outcome.reason
    scripts = agent.scripts()
    checks = [i for i, script in enumerate(scripts) if "has the k6 runner's user data finished" in script]
    assert checks == [0, 1, 2, 3]  # one unanswered, two while running, then done: all before any job
    assert "aigw-bench user-data: ready" in agent.outputs()[3]
    assert any("still running its user data" in getattr(e, "phase", "") for e in events)


@pytest.mark.parametrize(("cloud_init", "behave", "options", "message"), [
    (("error",), None, {}, r"user data failed \(cloud-init: error\).*cloud-init-output.log.*pulumi up --replace"),
    (("running",), None, {"user_data_wait_s": 0.5}, r"has not finished its user data within 0 s.*running"),
    (("done",), {"AIGW_K6": "/nonexistent/k6"}, {}, r"finished its user data but is missing k6"),
])
def test_user_data_that_failed_or_never_ends_stops_the_run_before_any_load(tmp_path, aws, cloud_init, behave,
                                                                           options, message):
    outputs = stack_outputs("kong", "kong", "http://10.0.1.5", [RUNNER], None)
    agent = SsmAgent(aws["shim_dir"], aws["endpoint"], (lambda script: behave) if behave else None, cloud_init)
    options = {"user_data_wait_s": 5, **options}
    with pytest.raises(CloudError, match=message):
        runner_for(plan_for(tmp_path, [outputs]), agent.client, aws, **options).run()
    assert not agent.scripts("k6") and not (tmp_path / "results").exists()


def test_the_user_data_wait_is_bounded_and_asks_again_after_an_unanswered_check(monkeypatch):
    """The user data ends by restarting the SSM agent: a check that goes unanswered is asked again; a
    runner that stays busy is given up on after the limit, in the engine's (here fake) time."""
    from aigw_bench.cloud import user_data

    now = [0.0]
    answers = iter([("unanswered", "SSM command ended Failed"), ("ready", "")])
    monkeypatch.setattr(user_data, "check", lambda *a, **k: next(answers))
    user_data.wait_user_data(None, RUNNER, 60, interval=10, sleep=lambda s: now.__setitem__(0, now[0] + s),
                             clock=lambda: now[0])
    assert now[0] == 10  # one retry

    calls = []

    def busy(*a, **k):
        calls.append(now[0])
        assert len(calls) < 100, "never gave up"
        return "running", "(cloud-init: running)"

    monkeypatch.setattr(user_data, "check", busy)
    with pytest.raises(CloudError, match=r"not finished its user data within 60 s \(last answer: running"):
        user_data.wait_user_data(None, RUNNER, 60, interval=10, sleep=lambda s: now.__setitem__(0, now[0] + s),
                                 clock=lambda: now[0])
    assert len(calls) == 8  # 0, 10, ... 70 s: the first answer past the limit ends it


def test_segments_cover_the_whole_load():
    assert segment_args(0, 1) == ""
    assert segment_args(0, 3) == "--execution-segment 0:1/3 --execution-segment-sequence 0,1/3,2/3,1"
    assert segment_args(2, 3).startswith("--execution-segment 2/3:1 ")


def test_runner_not_registered_with_ssm(tmp_path, aws):
    fake = FakeSsm()
    fake.not_registered(RUNNER)
    plan = plan_for(tmp_path, [stack_outputs("kong", "kong", "http://10.0.1.5", [RUNNER], None)])
    with fake.stub, pytest.raises(CloudError, match=f"{RUNNER} is not registered with AWS SSM"):
        runner_for(plan, fake.client, aws).run()
    assert not (tmp_path / "results").exists()


def test_runner_registered_but_offline(tmp_path, aws):
    fake = FakeSsm()
    fake.registered(RUNNER, ping="ConnectionLost")
    plan = plan_for(tmp_path, [stack_outputs("kong", "kong", "http://10.0.1.5", [RUNNER], None)])
    with fake.stub, pytest.raises(CloudError, match="its agent is ConnectionLost"):
        runner_for(plan, fake.client, aws).run()


def test_a_second_run_while_one_is_in_progress_is_refused(tmp_path, aws):
    fake = FakeSsm()
    fake.registered(RUNNER)
    fake.idle(RUNNER, busy=busy_command())
    plan = plan_for(tmp_path, [stack_outputs("kong", "kong", "http://10.0.1.5", [RUNNER], None)])
    with fake.stub, pytest.raises(CloudError, match=r"already running on the k6 runner .* 11111111-2222"):
        runner_for(plan, fake.client, aws).run()
    assert not (tmp_path / "results").exists()


def test_failed_command_is_recorded_and_the_next_repeat_still_runs(tmp_path, aws, mock_llm):
    outputs = stack_outputs("direct", "direct", mock_llm, [RUNNER], None)
    failed = []

    def behave(script):  # the first session's command "failed" on the instance: it never ran
        if ": seed, generator" in script and not failed:
            failed.append(script)
            return "fail"
        return "run"

    agent = agent_for(aws, behave)
    run_dir = runner_for(plan_for(tmp_path, [outputs], repeats=2, warmup="0s"), agent.client, aws).run()
    outcomes = {o.repeat: o for o in read_outcomes(run_dir)}
    assert outcomes[1].status == "k6_failed" and "ended Failed" in outcomes[1].reason
    assert outcomes[1].evidence["ssm"][0]["status"] == "Failed"
    assert outcomes[2].status == "ok"


def test_command_timing_out_is_cancelled(tmp_path, aws, mock_llm):
    outputs = stack_outputs("direct", "direct", mock_llm, [RUNNER], None)
    agent = agent_for(aws, only("seed", "hang"))
    offset = [0.0]

    def sleep(seconds):  # time flies only while the hanging command is polled
        if any(c["status"] == "InProgress" and ": seed, generator" in c["script"] for c in agent.commands.values()):
            offset[0] += 10_000
        else:
            time.sleep(seconds)

    run_dir = runner_for(plan_for(tmp_path, [outputs]), agent.client, aws, sleep=sleep,
                         clock=lambda: time.monotonic() + offset[0]).run()
    (outcome,) = read_outcomes(run_dir)
    assert outcome.status == "k6_failed" and "ended TimedOut" in outcome.reason
    assert "CancelCommand" in agent.calls
    assert [c["status"] for c in agent.commands.values() if ": seed, generator" in c["script"]] == ["Cancelled"]


def test_partial_upload_is_reported_and_kept(tmp_path, aws, mock_llm):
    outputs = stack_outputs("direct", "direct", mock_llm, [RUNNER], None)
    agent = agent_for(aws, only("seed", "partial"))
    run_dir = runner_for(plan_for(tmp_path, [outputs]), agent.client, aws).run()
    (outcome,) = read_outcomes(run_dir)
    assert outcome.status == "invalid_output"
    assert "partial upload" in outcome.reason and "exit-code missing (got ['k6.log'])" in outcome.reason
    assert (run_dir / "targets/direct/r1/seed/k6.log").read_text() == "k6 was killed"
    assert outcome.steps["seed"].status == "failed"


def test_nothing_uploaded_gives_no_numbers(tmp_path, aws, mock_llm):
    outputs = stack_outputs("direct", "direct", mock_llm, [RUNNER], None)
    agent = agent_for(aws, only("seed", "empty"))
    run_dir = runner_for(plan_for(tmp_path, [outputs]), agent.client, aws).run()
    report = build_report(run_dir)
    assert report.table.set_index("target").loc["direct", "status"] == "invalid_output"
    assert pd.isna(report.table.set_index("target").loc["direct", "rps"])
    assert "exit-code missing (got nothing)" in report.paths["markdown"].read_text()


def test_ctrl_c_cancels_the_remote_command_and_keeps_the_run(tmp_path, aws, mock_llm):
    outputs = stack_outputs("direct", "direct", mock_llm, [RUNNER], None)
    agent = agent_for(aws, only("seed", "hang"))

    def interrupt(seconds):
        if any(c["status"] == "InProgress" and ": seed, generator" in c["script"] for c in agent.commands.values()):
            raise KeyboardInterrupt
        time.sleep(seconds)

    runner = runner_for(plan_for(tmp_path, [outputs]), agent.client, aws, sleep=interrupt)
    with pytest.raises(KeyboardInterrupt):
        runner.run()
    (outcome,) = read_outcomes(runner.run_dir)
    assert outcome.status == "interrupted" and "remote commands cancelled" in outcome.reason
    assert [c["status"] for c in agent.commands.values() if ": seed, generator" in c["script"]] == ["Cancelled"]
    manifest = json.loads((runner.run_dir / "manifest.json").read_text())
    assert manifest["interrupted"] is True and manifest["rig"]["ceiling_rps"] > 0  # the rig's figures are kept


def test_missing_stack_outputs_are_named():
    with pytest.raises(CloudError, match=r"stack 'kong': missing outputs gateway_url, k6_runner_instance_ids"):
        StackOutputs.from_outputs("kong", {"gateway_name": "kong", "gateway_version": "3.10", "mock_url": "x",
                                           "mock_cluster_url": "y", "results_bucket": "b", "region": "r",
                                           "cluster_name": "c"})


def test_without_the_pulumi_cli_the_message_says_how_to_install_it(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(CloudError, match=r"the Pulumi CLI is not installed .*pulumi.com/docs"):
        read_stack_outputs("kong")


def test_without_aws_credentials_the_message_says_how_to_set_them(monkeypatch, tmp_path):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(CloudError, match="no AWS credentials: set AWS_PROFILE"):
        check_aws_credentials(boto3.Session(region_name=REGION))


def test_the_fake_refuses_what_the_ssm_api_refuses():
    """The old preflight called list_commands with Status=Delayed: valid for list_command_invocations
    only. Stubber accepts it (no enum or per-operation check); the model check must not."""
    delayed = {"InstanceId": RUNNER, "Filters": [{"key": "Status", "value": "Delayed"}]}
    calls = [("list_commands", {"Commands": []}, delayed, r"ListCommands does not accept Status='Delayed'"),
             ("list_command_invocations", {"CommandInvocations": []},
              {"InstanceId": RUNNER, "Filters": [{"key": "Statuz", "value": "Pending"}]}, r"'Statuz' is not one of"),
             ("list_command_invocations", {"CommandInvocations": []}, delayed, None)]  # documented: accepted
    for operation, response, params, refused in calls:
        fake = FakeSsm()
        fake.stub.add_response(operation, response, params)
        with fake.stub:
            if refused:
                with pytest.raises(ModelViolation, match=refused):
                    getattr(fake.client, operation)(**params)
            else:
                getattr(fake.client, operation)(**params)
                fake.stub.assert_no_pending_responses()


def test_preflight_asks_ssm_only_what_it_accepts():
    fake = FakeSsm()
    fake.registered(RUNNER)
    fake.idle(RUNNER)
    with fake.stub:
        ssm_cmd.ensure_registered(fake.client, RUNNER)
        ssm_cmd.ensure_idle(fake.client, RUNNER)
        fake.stub.assert_no_pending_responses()


def test_ssm_refusing_the_preflight_is_a_clear_error():
    fake = FakeSsm()
    fake.stub.add_client_error("list_command_invocations", service_error_code="AccessDeniedException",
                               service_message="not authorized to perform: ssm:ListCommandInvocations")
    with fake.stub, pytest.raises(CloudError) as err:
        ssm_cmd.ensure_idle(fake.client, RUNNER)
    text = str(err.value)
    assert f"AWS SSM refused listing its commands for the k6 runner {RUNNER}: AccessDeniedException" in text
    assert "ssm:ListCommandInvocations" in text


def test_the_cloud_stage_sends_the_stacks_key_and_writes_it_nowhere(tmp_path, aws, mock_llm):
    key = f"sk-stack-{uuid.uuid4().hex}"
    gateway = KeyCheckingGateway(key)
    outputs = stack_outputs("litellm", "litellm", gateway.url, [RUNNER], None, mock_url=mock_llm,
                            gateway_secret_headers={"Authorization": f"Bearer {key}"})
    assert key not in repr(outputs) and key not in outputs.model_dump_json()
    agent = agent_for(aws)
    sent: list[str] = []  # every SSM request as the API would receive it
    agent.client.meta.events.register("before-parameter-build.ssm.*", lambda params, **_: sent.append(repr(params)))
    events: list[str] = []
    try:
        run_dir = runner_for(plan_for(tmp_path, [outputs], warmup="0s"), agent.client, aws,
                             on_event=lambda event: events.append(repr(event))).run()
    finally:
        gateway.close()
    (outcome,) = read_outcomes(run_dir)
    assert outcome.status == "ok", outcome.reason
    summary = json.loads((run_dir / "targets/litellm/r1/seed/summary.json").read_text())
    assert summary["metrics"]["aigw_ok"]["values"]["rate"] == 1.0
    # Every request carried the stack's key, none the local one from the catalog.
    assert gateway.seen and set(gateway.seen) == {f"Bearer {key}"}
    assert summary["metrics"]["http_reqs"]["values"]["count"] == len(gateway.seen)
    # ...and the key is in no file of the run, no object left in the bucket, no SSM request, no event.
    for path in run_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            if path.suffix == ".gz":
                data = gzip.decompress(data)
            assert key.encode() not in data, path
    script = (run_dir / "targets/litellm/r1/seed/script.js").read_text()
    assert "Authorization" not in script and "sk-aigw-bench-local" not in script
    for obj in aws["s3"].list_objects_v2(Bucket=BUCKET).get("Contents", []):
        assert not obj["Key"].startswith("secrets/"), obj["Key"]  # deleted after the run
        assert key.encode() not in aws["s3"].get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read(), obj["Key"]
    assert sent and not any(key in s for s in sent)
    assert not any(key in e for e in events)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["cloud"]["litellm"]["secret_headers"] == ["Authorization"]


def test_an_nlb_that_never_answers_is_not_ready_after_a_bounded_wait(tmp_path, aws, mock_llm):
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens: like an NLB whose DNS/targets are not ready
    outputs = stack_outputs("kong", "kong", closed, [RUNNER], None, mock_url=mock_llm)
    agent = agent_for(aws)
    console_out = io.StringIO()
    printer = ProgressPrinter(Console(file=console_out, width=200), plain=True)
    started = time.monotonic()
    run_dir = runner_for(plan_for(tmp_path, [outputs]), agent.client, aws, on_event=printer, endpoint_wait_s=2).run()
    assert time.monotonic() - started < 60  # bounded: 2 s of waiting plus one retry interval
    (outcome,) = read_outcomes(run_dir)
    assert outcome.status == "not_ready"
    assert f"{closed}/v1/chat/completions did not answer the runner within 2 s" in outcome.reason
    assert outcome.evidence["endpoint_wait_s"] >= 2
    work = run_dir / "targets/kong/r1/seed"
    assert not (work / "summary.json").exists() and not (work / "k6.log").exists()  # k6 never started
    seed = next(c for c in agent.commands.values() if "targets/kong/r1/seed" in c["script"])
    assert "within 2 s" in seed["stdout"]
    text = console_out.getvalue()
    assert "on AWS" in text and "not_ready" in text and "rig (kong)" in text
