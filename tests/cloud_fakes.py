"""AWS faked at the API boundary for the cloud stage's tests.

- S3: moto's server on loopback (real HTTP, real boto3 client on both sides);
- SSM: botocore's Stubber, which checks every request and response against the service model;
- the runner: the stage's own rendered runner script, executed here with bash by the test (in the
  role of the SSM agent), with real k6 against a real local WireMock, uploading through an `aws`
  stand-in that speaks to the moto server;
- Prometheus: a tiny HTTP server answering range queries the runner script sends with curl.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import boto3
from botocore.stub import ANY, Stubber

from aigw_bench.cloud.outputs import StackOutputs
from aigw_bench.results import k6_binary

REGION = "us-east-1"
BUCKET = "aigw-bench-results-test"

AWS_SHIM = '''#!{python}
"""Stand-in for the AWS CLI on the runner: only `aws s3 cp`, against AWS_ENDPOINT_URL."""
import os, sys
import boto3
args = [a for a in sys.argv[1:] if not a.startswith("--")]
assert args[:2] == ["s3", "cp"], args
src, dst = args[2], args[3]
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="{region}")
split = lambda url: url[5:].split("/", 1)
try:
    if src.startswith("s3://"):
        s3.download_file(*split(src), dst)
    else:
        s3.upload_file(src, *split(dst))
except Exception as exc:
    print(f"upload/download failed: {{exc}}", file=sys.stderr)
    sys.exit(1)
'''


def write_aws_shim(directory: Path) -> Path:
    shim = directory / "aws"
    shim.write_text(AWS_SHIM.format(python=sys.executable, region=REGION))
    shim.chmod(0o755)
    return shim


def stack_outputs(stack: str, gateway: str, gateway_url: str, runners: list[str], prometheus_url: str | None,
                  **extra) -> StackOutputs:
    return StackOutputs.from_outputs(stack, {
        "gateway_name": gateway, "gateway_version": "3.13.2", "gateway_url": gateway_url,
        "mock_url": gateway_url, "mock_cluster_url": "http://wiremock.mock.svc.cluster.local:9021",
        "k6_runner_instance_ids": runners, "results_bucket": BUCKET, "region": REGION,
        "cluster_name": f"aigw-{stack}", "prometheus_url": prometheus_url, "hourly_cost_usd": 3.6,
        "price_table": "us-east-1 on-demand (test)", "instance_types": {"k6_runner": "c6i.4xlarge"}, **extra,
    })


class ModelViolation(AssertionError):
    """A request the real API would refuse although botocore's own validation lets it through."""


def documented_filter_values(service_model, operation: str, filter_key: str) -> set[str] | None:
    """Values SSM documents for a CommandFilter key *for this operation*, from the service model.

    CommandFilter.value is a free string in the model, with the valid values per key and per
    operation in its documentation ("The status values you can specify for ListCommands are: ...").
    None when the documentation lists nothing operation-specific for that key."""
    doc = service_model.shape_for("CommandFilter").members["value"].documentation
    match = re.search(rf"values you can specify for <code>{operation}</code> are:</p>\s*<ul>(.*?)</ul>", doc, re.S)
    if filter_key != "Status" or not match:
        return None
    return set(re.findall(r"<code>([A-Za-z]+)</code>", match.group(1)))


def model_violations(service_model, operation: str, params: object, shape=None, path: str = "") -> list[str]:
    """What botocore does not check: enum values, and SSM's per-operation filter values."""
    shape = shape or service_model.operation_model(operation).input_shape
    problems: list[str] = []
    if shape.type_name == "structure" and isinstance(params, dict):
        for key, value in params.items():
            problems += model_violations(service_model, operation, value, shape.members[key], f"{path}.{key}")
        if shape.name == "CommandFilter":
            allowed = documented_filter_values(service_model, operation, params.get("key", ""))
            if allowed is not None and params.get("value") not in allowed:
                problems.append(f"{path}: {operation} does not accept {params.get('key')}={params.get('value')!r}; "
                                f"documented: {sorted(allowed)}")
    elif shape.type_name == "list" and isinstance(params, list):
        for i, item in enumerate(params):
            problems += model_violations(service_model, operation, item, shape.member, f"{path}[{i}]")
    elif shape.type_name == "string" and shape.enum and params not in shape.enum:
        problems.append(f"{path}: {params!r} is not one of {shape.enum}")
    return problems


def validate_against_model(client) -> None:
    """Make ``client`` refuse requests the service model says the API would refuse (Stubber only
    checks types, required members and the parameters it was told to expect)."""
    service_model = client.meta.service_model

    def check(params, model, **_):
        problems = model_violations(service_model, model.name, params)
        if problems:
            raise ModelViolation(f"{model.name}: " + "; ".join(problems))

    client.meta.events.register_first(f"before-parameter-build.{service_model.endpoint_prefix}.*", check)


class FakeSsm:
    """A Stubber-backed SSM client with helpers that queue the calls the stage makes, in order.
    Every request is also checked against the service model (validate_against_model)."""

    def __init__(self):
        self.client = boto3.client("ssm", region_name=REGION)
        validate_against_model(self.client)
        self.stub = Stubber(self.client)
        self._n = 0

    def registered(self, instance: str, ping: str = "Online") -> None:
        self.stub.add_response(
            "describe_instance_information",
            {"InstanceInformationList": [{"InstanceId": instance, "PingStatus": ping}]},
            {"Filters": [{"Key": "InstanceIds", "Values": [instance]}]},
        )

    def not_registered(self, instance: str) -> None:
        self.stub.add_response("describe_instance_information", {"InstanceInformationList": []},
                               {"Filters": [{"Key": "InstanceIds", "Values": [instance]}]})

    def idle(self, instance: str, busy: dict | None = None) -> None:
        for status in ("Pending", "InProgress", "Delayed"):
            invocations = [busy] if busy and status == "InProgress" else []
            self.stub.add_response("list_command_invocations", {"CommandInvocations": invocations},
                                   {"InstanceId": instance, "Filters": [{"key": "Status", "value": status}]})
            if invocations:
                return

    def send(self, instance: str) -> str:
        self._n += 1
        command_id = f"00000000-0000-0000-0000-{self._n:012d}"
        self.stub.add_response(
            "send_command", {"Command": {"CommandId": command_id, "Status": "Pending"}},
            {"InstanceIds": [instance], "DocumentName": "AWS-RunShellScript", "Comment": ANY,
             "Parameters": ANY, "TimeoutSeconds": ANY},
        )
        return command_id

    def invocation(self, command_id: str, instance: str, status: str, details: str | None = None) -> None:
        self.stub.add_response(
            "get_command_invocation",
            {"CommandId": command_id, "InstanceId": instance, "Status": status, "StatusDetails": details or status,
             "ResponseCode": 0 if status == "Success" else 1, "StandardOutputContent": "aigw-bench: k6 exited",
             "StandardErrorContent": ""},
            {"CommandId": command_id, "InstanceId": instance},
        )

    def one_command(self, instance: str, *statuses: str) -> str:
        """The usual sequence: runner online and idle, one command sent, polled through ``statuses``."""
        self.registered(instance)
        self.idle(instance)
        command_id = self.send(instance)
        for status in statuses:
            self.invocation(command_id, instance, status)
        return command_id

    def cancel(self, command_id: str, instance: str) -> None:
        self.stub.add_response("cancel_command", {}, {"CommandId": command_id, "InstanceIds": [instance]})


def run_runner_script(script: str, shim_dir: Path, endpoint: str, timeout: float = 180) -> subprocess.CompletedProcess:
    """What the SSM agent does with AWS-RunShellScript: run the commands with bash."""
    env = {**os.environ, "AIGW_AWS_CLI": str(shim_dir / "aws"), "AIGW_K6": k6_binary(),
           "AWS_ENDPOINT_URL": endpoint, "PATH": f"{shim_dir}:{os.environ['PATH']}"}
    return subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=timeout)


class LoopbackServer:
    """An HTTP server on a free loopback port, serving ``handler`` on a daemon thread."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class FakePrometheus(LoopbackServer):
    """Answers /api/v1/query_range with one series over the requested window (step 5 s)."""

    def __init__(self):
        self.queries: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                q = parse_qs(urlparse(self.path).query)
                owner.queries.append(q["query"][0])
                start, end = float(q["start"][0]), float(q["end"][0])
                value = "1.5" if "cpu" in q["query"][0] else str(300 * 2**20)
                points = [[t, value] for t in range(int(start), int(end) + 1, 5)] or [[start, value]]
                body = json.dumps({"status": "success", "data": {"resultType": "matrix",
                                                                "result": [{"metric": {}, "values": points}]}})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args):
                pass

        super().__init__(Handler)


class KeyCheckingGateway(LoopbackServer):
    """A gateway stand-in that, like LiteLLM's proxy, answers 401 unless the request carries its key,
    and a chat completion otherwise. Records every Authorization header it saw."""

    def __init__(self, key: str):
        self.seen: list[str | None] = []
        completion = {"id": "chatcmpl-test", "object": "chat.completion", "created": 1767225600, "model": "gpt-4o-mini",
                      "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                                   "finish_reason": "stop"}],
                      "usage": {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11}}
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                owner.seen.append(self.headers.get("Authorization"))
                ok = self.headers.get("Authorization") == f"Bearer {key}"
                body = json.dumps(completion if ok else {"error": {"message": "Authentication Error"}}).encode()
                self.send_response(200 if ok else 401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        super().__init__(Handler)


def busy_command(command_id: str = "11111111-2222-3333-4444-555555555555") -> dict:
    """A command invocation of another aigw-bench run, as list_command_invocations returns it."""
    return {"CommandId": command_id, "InstanceId": "i-0123456789abcdef0",
            "Comment": "aigw-bench 20261122-000000-seed kong r1 g1",
            "RequestedDateTime": datetime(2026, 11, 22, tzinfo=UTC), "Status": "InProgress"}


def run_pod_files_locally(sup, files: dict[str, str], work: Path, port: int):
    """What the kubelet does with the fast mock's pod, on this machine: the ConfigMap's files mounted
    (here: written to ``work`` instead of /etc/mock), /tmp an empty directory, and the container's
    nginx started on them. Only mount paths, the listen address and Debian's module lines (OpenResty
    has ngx_lua built in) differ from what runs on EKS. Returns (process, base URL) once ready."""
    from aigw_bench.local.probes import wait_ready
    from aigw_bench.mock import load_mock

    work.mkdir(parents=True, exist_ok=True)
    (work / "tmp").mkdir(exist_ok=True)
    mounts = {"/etc/mock": str(work), "/tmp": str(work / "tmp")}

    def mount(text: str) -> str:  # one pass: a replaced path may itself contain "/tmp"
        return re.sub(r"/etc/mock|/tmp", lambda m: mounts[m.group(0)], text)

    mounted = {name: mount(text) for name, text in files.items()}
    conf = mounted["nginx.conf"]
    conf = re.sub(r"^(\s*listen )8080 ", rf"\g<1>127.0.0.1:{port} ", conf, flags=re.M)
    modules = load_mock("fast").local.vars["lua_modules"]
    mounted["nginx.conf"] = "".join(f"load_module {m};\n" for m in modules) + conf
    for name, text in mounted.items():
        (work / name).write_text(text)
    proc = sup.start("mock", ["nginx", "-p", f"{work}/", "-c", str(work / "nginx.conf"), "-e", "stderr"],
                     work / "mock.log")
    base = f"http://127.0.0.1:{port}"
    wait_ready("mock", base + "/healthz", timeout=20, proc=proc)
    return proc, base
