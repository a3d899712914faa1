"""The cloud post-deploy stage end to end with AWS faked at the API boundary (see tests/cloud_fakes.py):
outputs -> render -> upload -> SSM command -> poll -> download -> analysis -> report, and the failure
paths: runner not registered, a run already in progress, a command that fails or times out, uploads
that are partial or missing, Ctrl-C, missing stack outputs, no Pulumi CLI, no AWS credentials."""

from __future__ import annotations

import gzip
import io
import json
import time
import uuid

import boto3
import pandas as pd
import pytest
from moto.server import ThreadedMotoServer
from rich.console import Console

from aigw_bench.catalog import load_catalog
from aigw_bench.cloud import ssm as ssm_cmd
from aigw_bench.cloud.outputs import StackOutputs, check_aws_credentials, read_stack_outputs
from aigw_bench.cloud.stage import CloudPlan, CloudRunner, CloudTarget, segment_args
from aigw_bench.errors import CloudError
from aigw_bench.local.ports import free_port
from aigw_bench.local.processes import Supervisor
from aigw_bench.progress import ProgressPrinter
from aigw_bench.results import read_outcomes
from analysis.report import build_report
from k6_scripts.scenarios import load_scenario
from tests.cloud_fakes import (
    BUCKET,
    REGION,
    FakePrometheus,
    FakeSsm,
    KeyCheckingGateway,
    ModelViolation,
    busy_command,
    run_runner_script,
    stack_outputs,
    write_aws_shim,
)
from tests.helpers import start_mock

RUNNER = "i-0123456789abcdef0"
RUNNER_2 = "i-0fedcba9876543210"


@pytest.fixture(scope="module")
def aws(tmp_path_factory):
    """moto's S3 on loopback, credentials that only it accepts, and the `aws` stand-in."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    mp = pytest.MonkeyPatch()
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true"}.items():
        mp.setenv(key, value)
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name=REGION)
    s3.create_bucket(Bucket=BUCKET)
    shim_dir = tmp_path_factory.mktemp("shim")
    write_aws_shim(shim_dir)
    yield {"endpoint": endpoint, "s3": s3, "shim_dir": shim_dir}
    mp.undo()
    server.stop()


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


def plan_for(tmp_path, outputs: list[StackOutputs], repeats: int = 1, duration: str = "3s", warmup: str = "1s"):
    cat = load_catalog()
    scen = load_scenario("seed")
    params = scen.params("cloud", {"vus": 5, "duration": duration, "warmup": warmup})
    return CloudPlan(targets=[CloudTarget(o, cat.get(o.gateway_name)) for o in outputs], scenario=scen,
                     params=params, repeats=repeats, results_root=tmp_path / "results")


def make_runner(plan, fake: FakeSsm, aws, on_command=None, **kw) -> CloudRunner:
    def on_event(event, **data):
        if event == "command_sent" and on_command:
            on_command(data)

    return CloudRunner(plan, lambda region: (fake.client, aws["s3"]), on_event=on_event, poll_interval=0,
                       sleep=kw.pop("sleep", lambda s: None), **kw)


def execute(aws):
    """Run each sent script as the SSM agent would."""
    runs = []

    def on_command(data):
        done = run_runner_script(data["script"], aws["shim_dir"], aws["endpoint"])
        runs.append(done)
        assert done.returncode == 0, done.stdout + done.stderr

    return on_command, runs


def test_whole_stage_with_one_runner(tmp_path, aws, mock_llm, prometheus, no_leftovers):
    outputs = stack_outputs("wiremock", "wiremock", mock_llm, [RUNNER], prometheus.url)
    fake = FakeSsm()
    fake.one_command(RUNNER, "InProgress", "Success")
    on_command, _runs = execute(aws)
    with fake.stub:
        run_dir = make_runner(plan_for(tmp_path, [outputs]), fake, aws, on_command).run()
        fake.stub.assert_no_pending_responses()
    (outcome,) = read_outcomes(run_dir)
    assert outcome.status == "ok", outcome.reason
    assert outcome.evidence["ssm"][0]["status"] == "Success"
    assert outcome.evidence["endpoint_wait_s"] < 5  # the gateway answered at once
    for key in ("summary", "timeseries", "histogram", "statuses", "resources", "script"):
        assert key in outcome.files
    work = run_dir / "targets/wiremock/r1"
    summary = json.loads((work / "summary.json").read_text())
    assert summary["metrics"]["http_reqs"]["values"]["count"] > 50
    # Uploaded under the run's own prefix; the script the runner fetched is the one rendered locally.
    keys = [o["Key"] for o in aws["s3"].list_objects_v2(Bucket=BUCKET, Prefix="runs/")["Contents"]]
    prefix = f"runs/{json.loads((run_dir / 'manifest.json').read_text())['run_id']}/wiremock/r1/g1/"
    assert {prefix + n for n in ("script.js", "summary.json", "raw.csv.gz", "exit-code", "k6.log")} <= set(keys)
    assert aws["s3"].get_object(Bucket=BUCKET, Key=prefix + "script.js")["Body"].read().decode() == \
        (work / "script.js").read_text()
    # Resource usage: gateway and mock from Prometheus, the load generator from vmstat.
    resources = pd.read_csv(work / "resources.csv")
    assert set(resources["role"]) == {"gateway", "mock", "loadgen"}
    assert resources.loc[resources["role"] == "gateway", "cpu_cores"].eq(1.5).all()
    assert any('namespace="gateway"' in q for q in prometheus.queries)
    report = build_report(run_dir)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["environment"] == "cloud" and manifest["cloud"]["wiremock"]["stack"] == "wiremock"
    assert "## Cost" in report.paths["markdown"].read_text()
    row = report.table.set_index("target").loc["wiremock"]
    assert row["requests"] == summary["metrics"]["http_reqs"]["values"]["count"]


def test_two_runners_split_the_load_and_merge_from_raw_data(tmp_path, aws, mock_llm):
    outputs = stack_outputs("wiremock", "wiremock", mock_llm, [RUNNER, RUNNER_2], None)
    fake = FakeSsm()
    for r in (RUNNER, RUNNER_2):
        fake.registered(r)
        fake.idle(r)
    ids = [fake.send(RUNNER), fake.send(RUNNER_2)]
    fake.invocation(ids[0], RUNNER, "Success")
    fake.invocation(ids[1], RUNNER_2, "Success")
    on_command, _runs = execute(aws)
    with fake.stub:
        run_dir = make_runner(plan_for(tmp_path, [outputs], warmup="0s"), fake, aws, on_command).run()
    (outcome,) = read_outcomes(run_dir)
    assert outcome.status == "ok", outcome.reason
    assert outcome.evidence["generators"] == 2
    work = run_dir / "targets/wiremock/r1"
    gens = [json.loads((work / f"gen{i}/summary.json").read_text()) for i in (1, 2)]
    merged = json.loads((work / "summary.json").read_text())
    assert merged["metrics"]["http_reqs"]["values"]["count"] == sum(
        g["metrics"]["http_reqs"]["values"]["count"] for g in gens)
    assert merged["aigw_bench_merged"]["generators"] == 2
    # Each generator ran half the VUs (execution segments).
    assert "--execution-segment 0:1/2" in (work / "runner-g1.sh").read_text()
    assert "--execution-segment 1/2:1" in (work / "runner-g2.sh").read_text()


def test_segments_cover_the_whole_load():
    assert segment_args(0, 1) == ""
    assert segment_args(0, 3) == "--execution-segment 0:1/3 --execution-segment-sequence 0,1/3,2/3,1"
    assert segment_args(2, 3).startswith("--execution-segment 2/3:1 ")


def test_runner_not_registered_with_ssm(tmp_path, aws):
    fake = FakeSsm()
    fake.not_registered(RUNNER)
    plan = plan_for(tmp_path, [stack_outputs("kong", "kong", "http://10.0.1.5", [RUNNER], None)])
    with fake.stub, pytest.raises(CloudError, match=f"{RUNNER} is not registered with AWS SSM"):
        make_runner(plan, fake, aws).run()
    assert not (tmp_path / "results").exists()


def test_runner_registered_but_offline(tmp_path, aws):
    fake = FakeSsm()
    fake.registered(RUNNER, ping="ConnectionLost")
    plan = plan_for(tmp_path, [stack_outputs("kong", "kong", "http://10.0.1.5", [RUNNER], None)])
    with fake.stub, pytest.raises(CloudError, match="its agent is ConnectionLost"):
        make_runner(plan, fake, aws).run()


def test_a_second_run_while_one_is_in_progress_is_refused(tmp_path, aws):
    fake = FakeSsm()
    fake.registered(RUNNER)
    fake.idle(RUNNER, busy=busy_command())
    plan = plan_for(tmp_path, [stack_outputs("kong", "kong", "http://10.0.1.5", [RUNNER], None)])
    with fake.stub, pytest.raises(CloudError, match=r"already running on the k6 runner .* 11111111-2222"):
        make_runner(plan, fake, aws).run()
    assert not (tmp_path / "results").exists()


def test_failed_command_is_recorded_and_the_next_repeat_still_runs(tmp_path, aws, mock_llm):
    outputs = stack_outputs("wiremock", "wiremock", mock_llm, [RUNNER], None)
    fake = FakeSsm()
    fake.registered(RUNNER)
    fake.idle(RUNNER)
    first = fake.send(RUNNER)
    fake.invocation(first, RUNNER, "Failed", "Failed")
    second = fake.send(RUNNER)
    fake.invocation(second, RUNNER, "Success")
    calls = []

    def on_command(data):
        calls.append(data)
        if len(calls) == 2:  # the first command "failed" on the instance: it never ran
            execute(aws)[0](data)

    with fake.stub:
        run_dir = make_runner(plan_for(tmp_path, [outputs], repeats=2, warmup="0s"), fake, aws, on_command).run()
    outcomes = {o.repeat: o for o in read_outcomes(run_dir)}
    assert outcomes[1].status == "k6_failed" and "ended Failed" in outcomes[1].reason
    assert outcomes[2].status == "ok"


def test_command_timing_out_is_cancelled(tmp_path, aws):
    outputs = stack_outputs("kong", "kong", "http://10.0.1.5", [RUNNER], None)
    fake = FakeSsm()
    cid = fake.one_command(RUNNER, "InProgress", "InProgress")
    fake.cancel(cid, RUNNER)
    now = [0.0]
    with fake.stub:
        run_dir = make_runner(plan_for(tmp_path, [outputs]), fake, aws,
                              sleep=lambda s: now.__setitem__(0, now[0] + 10_000), clock=lambda: now[0]).run()
        fake.stub.assert_no_pending_responses()
    (outcome,) = read_outcomes(run_dir)
    assert outcome.status == "k6_failed" and "ended TimedOut" in outcome.reason


def test_partial_upload_is_reported_and_kept(tmp_path, aws):
    outputs = stack_outputs("kong", "kong", "http://10.0.1.5", [RUNNER], None)
    fake = FakeSsm()
    fake.one_command(RUNNER, "Success")

    def upload_only_a_log(data):
        aws["s3"].put_object(Bucket=BUCKET, Key=f"{data['prefix']}/k6.log", Body=b"k6 was killed")

    with fake.stub:
        run_dir = make_runner(plan_for(tmp_path, [outputs]), fake, aws, upload_only_a_log).run()
    (outcome,) = read_outcomes(run_dir)
    assert outcome.status == "invalid_output"
    assert "partial upload" in outcome.reason and "exit-code missing (got ['k6.log'])" in outcome.reason
    assert (run_dir / "targets/kong/r1/k6.log").read_text() == "k6 was killed"


def test_nothing_uploaded_gives_no_numbers(tmp_path, aws):
    outputs = stack_outputs("kong", "kong", "http://10.0.1.5", [RUNNER], None)
    fake = FakeSsm()
    fake.one_command(RUNNER, "Success")
    with fake.stub:
        run_dir = make_runner(plan_for(tmp_path, [outputs]), fake, aws).run()
    report = build_report(run_dir)
    assert report.table.set_index("target").loc["kong", "status"] == "invalid_output"
    assert pd.isna(report.table.set_index("target").loc["kong", "rps"])
    assert "exit-code missing (got nothing)" in report.paths["markdown"].read_text()


def test_ctrl_c_cancels_the_remote_command_and_keeps_the_run(tmp_path, aws):
    outputs = stack_outputs("kong", "kong", "http://10.0.1.5", [RUNNER], None)
    fake = FakeSsm()
    cid = fake.one_command(RUNNER, "InProgress")
    fake.cancel(cid, RUNNER)

    def interrupt(_seconds):
        raise KeyboardInterrupt

    runner = make_runner(plan_for(tmp_path, [outputs]), fake, aws, sleep=interrupt)
    with fake.stub, pytest.raises(KeyboardInterrupt):
        runner.run()
    fake.stub.assert_no_pending_responses()
    (outcome,) = read_outcomes(runner.run_dir)
    assert outcome.status == "interrupted"
    assert json.loads((runner.run_dir / "manifest.json").read_text())["interrupted"] is True


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


def test_the_cloud_stage_sends_the_stacks_key_and_writes_it_nowhere(tmp_path, aws):
    key = f"sk-stack-{uuid.uuid4().hex}"
    gateway = KeyCheckingGateway(key)
    outputs = stack_outputs("litellm", "litellm", gateway.url, [RUNNER], None,
                            gateway_secret_headers={"Authorization": f"Bearer {key}"})
    assert key not in repr(outputs) and key not in outputs.model_dump_json()
    fake = FakeSsm()
    fake.one_command(RUNNER, "Success")
    sent: list[str] = []  # every SSM request as the API would receive it
    fake.client.meta.events.register("before-parameter-build.ssm.*", lambda params, **_: sent.append(repr(params)))
    events: list[str] = []
    on_command, _runs = execute(aws)

    def on_event(event, **data):
        events.append(repr(data))
        if event == "command_sent":
            on_command(data)

    try:
        with fake.stub:
            run_dir = CloudRunner(plan_for(tmp_path, [outputs], warmup="0s"), lambda region: (fake.client, aws["s3"]),
                                  on_event=on_event, poll_interval=0, sleep=lambda s: None).run()
    finally:
        gateway.close()
    (outcome,) = read_outcomes(run_dir)
    assert outcome.status == "ok", outcome.reason
    summary = json.loads((run_dir / "targets/litellm/r1/summary.json").read_text())
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
    script = (run_dir / "targets/litellm/r1/script.js").read_text()
    assert "Authorization" not in script and "sk-aigw-bench-local" not in script
    for obj in aws["s3"].list_objects_v2(Bucket=BUCKET).get("Contents", []):
        assert not obj["Key"].startswith("secrets/"), obj["Key"]  # deleted after the run
        assert key.encode() not in aws["s3"].get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read(), obj["Key"]
    assert sent and not any(key in s for s in sent)
    assert not any(key in e for e in events)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["cloud"]["litellm"]["secret_headers"] == ["Authorization"]


def test_an_nlb_that_never_answers_is_not_ready_after_a_bounded_wait(tmp_path, aws):
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens: like an NLB whose DNS/targets are not ready
    outputs = stack_outputs("kong", "kong", closed, [RUNNER], None)
    fake = FakeSsm()
    fake.one_command(RUNNER, "Success")
    on_command, runs = execute(aws)
    console_out = io.StringIO()
    printer = ProgressPrinter(Console(file=console_out, width=200), plain=True)

    def on_event(event, **data):
        printer(event, **data)  # the CLI's own progress printer must take the cloud stage's events
        if event == "command_sent":
            on_command(data)

    started = time.monotonic()
    with fake.stub:
        run_dir = CloudRunner(plan_for(tmp_path, [outputs]), lambda region: (fake.client, aws["s3"]),
                              on_event=on_event, poll_interval=0, sleep=lambda s: None, endpoint_wait_s=2).run()
    assert time.monotonic() - started < 60  # bounded: 2 s of waiting plus one retry interval
    (outcome,) = read_outcomes(run_dir)
    assert outcome.status == "not_ready"
    assert f"{closed} did not answer the runner within 2 s" in outcome.reason
    assert outcome.evidence["endpoint_wait_s"] >= 2
    work = run_dir / "targets/kong/r1"
    assert not (work / "summary.json").exists() and not (work / "k6.log").exists()  # k6 never started
    assert "within 2 s" in runs[0].stdout
    text = console_out.getvalue()
    assert "on AWS" in text and f"waits for {closed} to answer (at most 2 s)" in text and "not_ready" in text
