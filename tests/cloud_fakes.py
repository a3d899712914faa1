"""AWS faked at the API boundary for the cloud stage's tests.

- S3: moto's server on loopback (real HTTP, real boto3 client on both sides);
- SSM: botocore's Stubber, which checks every request and response against the service model;
- SSM, for whole runs: SsmAgent, which answers from what really happens: the stage's own rendered
  runner scripts executed with bash (in the role of the SSM agent), with real k6 and the real
  streaming probe against a real local mock, uploading through an `aws` stand-in that speaks to the
  moto server;
- Prometheus: a tiny HTTP server answering the queries the runner scripts send with curl;
- Kubernetes: FakeKubernetes, the few API endpoints the stage calls, whose "kubelet" restarts the
  real local fast mock with the ConfigMap's files (run_pod_files_locally);
- a gateway: KeyCheckingGateway / KeyCheckingProxy, which want the stack's key.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import boto3
from botocore.stub import ANY, Stubber

from aigw_bench.cloud.engine import Ec2Engine
from aigw_bench.cloud.outputs import StackOutputs
from aigw_bench.measure.plan import Knobs
from aigw_bench.run.environment import k6_binary
from aigw_bench.run.loop import Runner
from aigw_bench.run.plan import RunPlan, plan_run
from schema.catalog import load_catalog

REGION = "us-east-1"
BUCKET = "aigw-bench-results-test"

AWS_SHIM = '''#!{python}
"""Stand-in for the AWS CLI on the runner: only `aws s3 cp [--recursive]`, against AWS_ENDPOINT_URL.
Plain HTTP to moto's server, with the test credentials' key in a SigV4-shaped header (moto reads the key
and checks no signature): the stand-in starts in ~50 ms where importing boto3 takes ~300, and a runner
job calls it a dozen times (the cloud tests' wall time)."""
import os, sys, urllib.parse, urllib.request
args = [a for a in sys.argv[1:] if not a.startswith("--")]
assert args[:2] == ["s3", "cp"], args
src, dst = args[2], args[3]
base = os.environ["AWS_ENDPOINT_URL"].rstrip("/")
def url(s3_url):
    bucket, key = s3_url[5:].split("/", 1)
    return f"{{base}}/{{bucket}}/{{urllib.parse.quote(key)}}"
AUTH = {{"Authorization": "AWS4-HMAC-SHA256 Credential=" + os.environ["AWS_ACCESS_KEY_ID"]
        + "/20260101/{region}/s3/aws4_request, SignedHeaders=host, Signature=0"}}
# Not urllib's default form type for a body: moto's server would parse it as a form and store nothing.
BINARY = {{**AUTH, "Content-Type": "application/octet-stream"}}
def put(path, s3_url):
    with open(path, "rb") as f:
        body = f.read()
    request = urllib.request.Request(url(s3_url), data=body, method="PUT", headers=BINARY)
    urllib.request.urlopen(request, timeout=30).close()
try:
    if src.startswith("s3://"):
        with urllib.request.urlopen(urllib.request.Request(url(src), headers=AUTH), timeout=30) as answer:
            body = answer.read()
        with open(dst, "wb") as f:
            f.write(body)
    elif "--recursive" in sys.argv:  # a local directory's files under the destination prefix
        for name in sorted(os.listdir(src)):
            put(os.path.join(src, name), dst.rstrip("/") + "/" + name)
    else:
        put(src, dst)
except Exception as exc:
    print(f"upload/download failed: {{exc}}", file=sys.stderr)
    sys.exit(1)
'''


def write_aws_shim(directory: Path) -> Path:
    shim = directory / "aws"
    shim.write_text(AWS_SHIM.format(python=sys.executable, region=REGION))
    shim.chmod(0o755)
    return shim


CLOUD_INIT_SHIM = """#!/bin/sh
# Stand-in for `cloud-init status` on the runner: prints the first state of $AIGW_FAKE_CLOUD_INIT
# (one per line) and drops it, until only the last one is left.
first=$(head -n 1 "$AIGW_FAKE_CLOUD_INIT")
echo "status: $first"
[ "$(wc -l < "$AIGW_FAKE_CLOUD_INIT")" -gt 1 ] && sed -i 1d "$AIGW_FAKE_CLOUD_INIT"
exit 0
"""


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
    """Answers what the runner scripts ask: range queries (one summed series, 5 s steps) and instant
    queries of a range vector (the raw samples of each container's CPU counter, one every second:
    the tests wait 1 s after a window for its last samples, where a real run waits 20 s for kubelet
    stats ~10 s old scraped every 5 s).
    The gateway's containers use CPU_CORES["gateway"] cores in total (two containers), the mock's
    CPU_CORES["mock"]; memory is 300 MiB."""


    def __init__(self):
        self.CPU_CORES = {"gateway": (1.0, 0.5), "mock": (0.25,)}
        self.queries: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                url = urlparse(self.path)
                q = parse_qs(url.query)
                query = q["query"][0]
                owner.queries.append(query)
                role = "gateway" if 'namespace="gateway"' in query else "mock"
                cores = owner.CPU_CORES[role]
                if url.path.endswith("/query_range"):
                    start, end = float(q["start"][0]), float(q["end"][0])
                    value = str(sum(cores)) if "cpu" in query else str(300 * 2**20)
                    points = [[t, value] for t in range(int(start), int(end) + 1, 5)] or [[start, value]]
                    result = [{"metric": {}, "values": points}]
                else:  # selector[Ns] at `time`: raw counter samples of each container
                    at, span = float(q["time"][0]), float(re.search(r"\[(\d+)s\]$", query).group(1))
                    times = list(range(int(at - span), int(at) + 1))
                    result = [{"metric": {"container": f"c{i}"}, "values": [[t, str(rate * t)] for t in times]}
                              for i, rate in enumerate(cores)]
                body = json.dumps({"status": "success", "data": {"resultType": "matrix", "result": result}})
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


class KeyCheckingProxy(LoopbackServer):
    """A gateway stand-in for whole suites: 401 without its key (as LiteLLM's proxy), otherwise the
    request goes to ``upstream`` (the mock) and its answer comes back as it arrives, a streamed one
    chunk by chunk. Records the Authorization header of every request, and whether it streamed."""

    def __init__(self, key: str, upstream: str):
        import http.client

        self.seen: list[tuple[str | None, bool]] = []
        target = urlparse(upstream)
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                streamed = b'"stream": true' in body or b'"stream":true' in body
                owner.seen.append((self.headers.get("Authorization"), streamed))
                if self.headers.get("Authorization") != f"Bearer {key}":
                    denied = b'{"error": {"message": "Authentication Error"}}'
                    self.send_response(401)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(denied)))
                    self.end_headers()
                    self.wfile.write(denied)
                    return
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
                conn.request("POST", self.path, body=body, headers={"Content-Type": "application/json"})
                resp = conn.getresponse()
                self.send_response(resp.status)
                self.send_header("Content-Type", resp.getheader("Content-Type", "application/json"))
                if streamed:
                    self.send_header("Connection", "close")  # the body ends with the connection
                    self.end_headers()
                    while chunk := resp.read1(65536):
                        self.wfile.write(chunk)
                        self.wfile.flush()
                    self.close_connection = True
                else:
                    data = resp.read()
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                conn.close()

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
    from schema.mock import load_mock

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


class SsmAgent:
    """SSM Run Command as the stage meets it, answering from what really happens: every send_command
    starts its script with bash in the background (the agent), get_command_invocation reports
    InProgress until the script ends, then Success or Failed (non-zero exit), as the service does.

    Requests go through botocore's own parameter validation and validate_against_model; responses
    are validated against the operations' output shapes. ``behave(script)`` can replace running a
    script: "fail" (Failed, nothing ran), "hang" (InProgress until cancelled), "empty" (Success,
    nothing uploaded), "partial" (Success, only a k6.log uploaded), or a dict: run it with these extra
    environment variables (``_delay_s``: start it that late). ``cloud_init``: what the runner's
    ``cloud-init status`` answers, call after call (its user data running, done, failed)."""

    def __init__(self, shim_dir: Path, endpoint: str, behave=None, cloud_init: tuple[str, ...] = ("done",)):
        from botocore.awsrequest import AWSResponse
        from botocore.validate import validate_parameters

        self.shim_dir, self.endpoint = shim_dir, endpoint
        self.behave = behave or (lambda script: "run")
        # The runner's `cloud-init status`, one answer per call (the last one stays): its user data.
        (shim_dir / "cloud-init").write_text(CLOUD_INIT_SHIM)
        (shim_dir / "cloud-init").chmod(0o755)
        self.cloud_init = shim_dir / f"cloud-init-{uuid.uuid4().hex}"
        self.cloud_init.write_text("\n".join(cloud_init) + "\n")
        # TMPDIR stands for AL2023's /tmp, a tmpfs in the runner's memory: the scripts must not use it.
        self.tmpfs = shim_dir / "tmpfs"
        self.tmpfs.mkdir(exist_ok=True)
        self.client = boto3.client("ssm", region_name=REGION)
        validate_against_model(self.client)
        self.commands: dict[str, dict] = {}
        self.calls: list[str] = []
        self._lock = threading.Lock()
        service = self.client.meta.service_model

        def keep(params, context, **_):  # the call's own parameters, for the answer below
            context["aigw_params"] = params

        def answer(model, context, **_):
            parsed = getattr(self, "_" + model.name)(context["aigw_params"])
            validate_parameters(parsed, service.operation_model(model.name).output_shape)
            self.calls.append(model.name)
            return AWSResponse(None, 200, {}, None), {**parsed, "ResponseMetadata": {"HTTPStatusCode": 200}}

        self.client.meta.events.register("before-parameter-build.ssm.*", keep)
        self.client.meta.events.register_first("before-call.ssm.*", answer)

    # --------------------------------------------------------------------- operations
    def _DescribeInstanceInformation(self, params):
        wanted = params["Filters"][0]["Values"]  # the stage filters by InstanceIds
        return {"InstanceInformationList": [{"InstanceId": i, "PingStatus": "Online"} for i in wanted]}

    def _ListCommandInvocations(self, params):
        return {"CommandInvocations": []}

    def _SendCommand(self, params):
        with self._lock:
            command_id = f"{uuid.uuid4()}"
        script = params["Parameters"]["commands"][0]
        entry = {"script": script, "instance": params["InstanceIds"][0], "comment": params.get("Comment", ""),
                 "status": "InProgress", "stdout": "", "proc": None}
        self.commands[command_id] = entry
        mode = self.behave(script)
        if mode == "fail":
            entry["status"] = "Failed"
        elif mode in ("empty", "partial"):
            if mode == "partial":
                prefix = re.search(r"^PREFIX=(\S+)$", script, re.M).group(1).strip("'")
                boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION).put_object(
                    Bucket=BUCKET, Key=f"{prefix}/k6.log", Body=b"k6 was killed")
            entry["status"] = "Success"
        elif mode == "run" or isinstance(mode, dict):
            extra = mode if isinstance(mode, dict) else {}
            threading.Thread(target=self._run, args=(entry, extra), daemon=True).start()
        return {"Command": {"CommandId": command_id, "Status": "Pending"}}

    def _run(self, entry, extra):
        extra = dict(extra)
        delay = extra.pop("_delay_s", 0)  # the agent got to this command late (SSM delivers each on its own)
        env = {**os.environ, "AIGW_AWS_CLI": str(self.shim_dir / "aws"), "AIGW_K6": k6_binary(),
               "AIGW_PYTHON": sys.executable, "AWS_ENDPOINT_URL": self.endpoint,
               "AIGW_FAKE_CLOUD_INIT": str(self.cloud_init), "TMPDIR": str(self.tmpfs),
               "PATH": f"{self.shim_dir}:{os.environ['PATH']}", **extra}
        time.sleep(delay)
        with self._lock:  # a command cancelled before the agent started it never runs (as with SSM)
            if entry["status"] == "Cancelled":
                return
            proc = subprocess.Popen(["bash", "-c", entry["script"]], env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, start_new_session=True)
            entry["proc"] = proc
        out, _ = proc.communicate()
        entry["stdout"] = out
        if entry["status"] == "InProgress":
            entry["status"] = "Success" if proc.returncode == 0 else "Failed"

    def _GetCommandInvocation(self, params):
        entry = self.commands[params["CommandId"]]
        return {"CommandId": params["CommandId"], "InstanceId": entry["instance"], "Status": entry["status"],
                "StatusDetails": entry["status"], "ResponseCode": 0 if entry["status"] == "Success" else 1,
                "StandardOutputContent": entry["stdout"][-2000:], "StandardErrorContent": ""}

    def _CancelCommand(self, params):
        entry = self.commands[params["CommandId"]]
        with self._lock:
            entry["status"] = "Cancelled"
            proc = entry["proc"]
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # the agent's own child, by its process group
        return {}

    # ------------------------------------------------------------------------- queries
    def scripts(self, kind: str | None = None) -> list[str]:
        return [c["script"] for c in self.commands.values()
                if kind is None or f"runner job ({kind})" in c["script"]]

    def outputs(self) -> list[str]:
        """What every command printed (the runner scripts' trace)."""
        return [c["stdout"] for c in self.commands.values()]

    def busy(self) -> bool:
        return any(c["status"] == "InProgress" for c in self.commands.values())

    def wait_idle(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while self.busy() and time.monotonic() < deadline:
            time.sleep(0.05)


class FakeKubernetes(LoopbackServer):
    """The few endpoints of the Kubernetes API the stage calls (read/patch a ConfigMap, patch and read
    a Deployment, the service proxy), with a controller and a kubelet behind them: a patched pod template
    makes the Deployment roll out, i.e. ``restart(configmap data)`` is called (a real local mock restarted
    with those files) and the Deployment's status follows it. ``never_ready``: the new pod never becomes
    ready. ``add_mock`` adds another such pair (the fast mock's second instance); ``proxy_to`` makes a
    Service reachable through ``/api/v1/namespaces/<ns>/services/<name>:<port>/proxy/<path>``, forwarded to a
    real local server as the API server forwards to the Service's pod. Requests need the kubeconfig's bearer
    token; every request is recorded."""

    def __init__(self, namespace: str, name: str, files: dict[str, str], restart, never_ready: bool = False):
        self.token = f"token-{uuid.uuid4().hex}"
        self.requests: list[tuple[str, str, str | None]] = []
        self.namespace, self.name = namespace, name
        self.objects: dict[str, dict] = {}  # path -> object
        self.rollouts: dict[str, tuple] = {}  # Deployment name -> (its ConfigMap, restart)
        self.restarts_of: dict[str, int] = {}
        self.proxies: dict[str, str] = {}  # "<ns>/<service>:<port>" -> base URL
        self.never_ready = never_ready
        self.add_mock(name, files, restart)
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, status: int, doc: dict | bytes, ctype: str = "application/json") -> None:
                body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _authorized(self) -> bool:
                owner.requests.append((self.command, self.path, self.headers.get("Content-Type")))
                if self.headers.get("Authorization") != f"Bearer {owner.token}":
                    self._reply(401, {"kind": "Status", "status": "Failure", "reason": "Unauthorized", "code": 401})
                    return False
                return True

            def _object(self):
                if not self._authorized():
                    return None
                path = urlparse(self.path).path.removesuffix("/status")
                if path not in owner.objects:
                    self._reply(404, {"kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404})
                    return None
                return path

            def _proxy(self) -> bool:
                match = re.fullmatch(r"/api/v1/namespaces/([^/]+)/services/([^/]+)/proxy(/.*)", self.path)
                if not match:
                    return False
                if self._authorized():
                    base = owner.proxies.get(f"{match.group(1)}/{match.group(2)}")
                    if base is None:
                        self._reply(503, {"kind": "Status", "status": "Failure", "code": 503,
                                          "message": f"no endpoints available for service {match.group(2)!r}"})
                        return True
                    import urllib.request
                    length = int(self.headers.get("Content-Length") or 0)
                    request = urllib.request.Request(base + match.group(3), method=self.command,
                                                     data=self.rfile.read(length) if length else None)
                    with urllib.request.urlopen(request, timeout=30) as answer:
                        self._reply(answer.status, answer.read(), answer.headers.get("Content-Type"))
                return True

            def do_GET(self):
                if self._proxy():
                    return
                path = self._object()
                if path:
                    self._reply(200, owner.objects[path])

            def do_POST(self):
                if not self._proxy():
                    self._reply(405, {"kind": "Status", "status": "Failure", "code": 405})

            def do_PATCH(self):
                path = self._object()
                if not path:
                    return
                if self.headers.get("Content-Type") not in ("application/strategic-merge-patch+json",
                                                            "application/merge-patch+json"):
                    self._reply(415, {"kind": "Status", "status": "Failure", "code": 415})
                    return
                patch = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                self._reply(200, owner.patch(path, patch))

            def log_message(self, *args):
                pass

        super().__init__(Handler)

    def add_mock(self, name: str, files: dict[str, str], restart) -> None:
        """A ConfigMap and a Deployment named ``name`` whose roll-out calls ``restart(data)``."""
        ns = self.namespace
        configmap = {"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": {"name": name, "namespace": ns, "resourceVersion": "1"}, "data": dict(files)}
        labels = {"app.kubernetes.io/name": name}
        deployment = {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns, "generation": 1, "resourceVersion": "1"},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "strategy": {"type": "Recreate"},
                     "template": {"metadata": {"labels": labels, "annotations": {}},
                                  "spec": {"containers": [{"name": name, "image": "openresty/openresty:test"}]}}},
            "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "readyReplicas": 1,
                       "availableReplicas": 1},
        }
        self.objects[f"/api/v1/namespaces/{ns}/configmaps/{name}"] = configmap
        self.objects[f"/apis/apps/v1/namespaces/{ns}/deployments/{name}"] = deployment
        self.rollouts[name] = (configmap, restart)
        self.restarts_of[name] = 0

    def proxy_to(self, service: str, port: int, base: str) -> None:
        self.proxies[f"{self.namespace}/{service}:{port}"] = base

    def configmap_of(self, name: str) -> dict:
        return self.objects[f"/api/v1/namespaces/{self.namespace}/configmaps/{name}"]

    @property
    def configmap(self) -> dict:
        return self.configmap_of(self.name)

    @property
    def restarts(self) -> int:
        return self.restarts_of[self.name]

    def patch(self, path: str, patch: dict) -> dict:
        obj = self.objects[path]
        deployment = obj["kind"] == "Deployment"
        before = json.dumps(obj["spec"]["template"]) if deployment else None
        _merge(obj, patch)
        obj["metadata"]["resourceVersion"] = str(int(obj["metadata"]["resourceVersion"]) + 1)
        if deployment and json.dumps(obj["spec"]["template"]) != before:
            obj["metadata"]["generation"] += 1
            threading.Thread(target=self._roll_out, args=(obj, obj["metadata"]["generation"]), daemon=True).start()
        return obj

    def _roll_out(self, deployment: dict, generation: int) -> None:
        status = deployment["status"]
        # Recreate: the controller sees the change, the old pod goes, the new one starts.
        status.update(observedGeneration=generation, updatedReplicas=0, readyReplicas=0, availableReplicas=0)
        if self.never_ready:
            return
        name = deployment["metadata"]["name"]
        configmap, restart = self.rollouts[name]
        restart(dict(configmap["data"]))
        self.restarts_of[name] += 1
        status.update(updatedReplicas=1, readyReplicas=1, availableReplicas=1)

    def kubeconfig(self) -> str:
        return json.dumps({"apiVersion": "v1", "kind": "Config", "current-context": "fake",
                           "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
                           "users": [{"name": "fake", "user": {"token": self.token}}],
                           "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}]})


def _merge(target: dict, patch: dict) -> None:
    """JSON merge patch (RFC 7386); for the maps the stage patches, strategic merge is the same."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


@dataclass
class CloudCase:
    """A cloud run as the tests build it: the plan and the deployed stacks it runs on."""

    plan: RunPlan
    outputs: list[StackOutputs]


def cloud_case(tmp_path: Path, outputs: list[StackOutputs], *, scenario: str | None = "seed", suite: str | None = None,
               knobs: dict | None = None, repeats: int | None = 1, mock_profile: str | None = None) -> CloudCase:
    plan = plan_run("cloud", targets=[load_catalog().get(o.gateway_name) for o in outputs], scenario=scenario,
                    suite=suite, mock_profile=mock_profile, knobs=Knobs(**(knobs or {})), repeats=repeats,
                    results_root=tmp_path / "results")
    return CloudCase(plan, outputs)


ENGINE_OPTIONS = ("poll_interval", "sleep", "clock", "endpoint_wait_s", "kube", "profile_switch_s", "prometheus_lag_s")


def ec2_runner(case: CloudCase, ssm, s3, on_event=None, **options) -> Runner:
    """The EC2 engine on ``case`` with its clients faked; ``options`` go to the engine."""
    engine = Ec2Engine(case.outputs, lambda region: (ssm, s3), **options)
    return Runner(case.plan, engine, on_event=on_event)
