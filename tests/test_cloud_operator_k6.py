"""The runner pods' contract with the real k6 (1.1.0, the runner image's version): the script, env
and arguments the TestRun gives each runner make k6 write its JSON summary into the log the engine
reads, and stream its metrics with the experimental-prometheus-rw output to the URL it is given.

Real k6 on loopback against two tiny local servers (an OpenAI-style answer, a remote-write
receiver that records what arrives); the operator's own flags are added as it adds them
(pkg/resources/jobs/runner.go: --quiet, execution segments, --tag instance_id, --tag testrun_name).
"""

from __future__ import annotations

import json
import shlex
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from aigw_bench.cloud import operator as op
from aigw_bench.cloud.operator_driver import PLACEMENT
from aigw_bench.run.environment import k6_binary
from k6_scripts.render import RenderTarget, render_script
from schema.k6 import COMPLETE_EXIT_CODES
from schema.scenarios import load_scenario

pytestmark = pytest.mark.pure

ANSWER = json.dumps({"id": "x", "object": "chat.completion", "model": "m", "created": 0,
                     "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                                  "finish_reason": "stop"}],
                     "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}).encode()


class Recorder(BaseHTTPRequestHandler):
    writes: ClassVar[list[dict]] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path == "/api/v1/write":
            Recorder.writes.append({"encoding": self.headers.get("Content-Encoding"),
                                    "type": self.headers.get("Content-Type"),
                                    "version": self.headers.get("X-Prometheus-Remote-Write-Version"),
                                    "bytes": len(body)})
            self.send_response(204)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(ANSWER)))
        self.end_headers()
        self.wfile.write(ANSWER)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    Recorder.writes = []
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_a_runner_writes_its_summary_to_the_log_and_streams_to_prometheus(tmp_path, server):
    scen = load_scenario("seed")
    params = scen.params("cloud", {"vus": 2, "duration": "3s", "warmup": "0s"})
    script = render_script(scen, params, RenderTarget("t", f"{server}/v1/chat/completions", "m", {})).source
    (tmp_path / "script.js").write_text(script)
    spec = op.TestRunSpec(name="aigw-t-r1-abc-m", namespace="loadgen", script=script, parallelism=2,
                          placement=PLACEMENT, arguments="--out experimental-prometheus-rw",
                          env={"AIGW_SUMMARY": op.SUMMARY_TO_STDOUT, "AIGW_DURATION": "3s",
                               "K6_PROMETHEUS_RW_SERVER_URL": f"{server}/api/v1/write",
                               "K6_PROMETHEUS_RW_TREND_AS_NATIVE_HISTOGRAM": "true",
                               "K6_PROMETHEUS_RW_PUSH_INTERVAL": "1s", "K6_PROMETHEUS_RW_STALE_MARKERS": "true",
                               "K6_NO_USAGE_REPORT": "true"})
    runner = op.testrun_manifest(spec)["spec"]["runner"]
    env = {e["name"]: e["value"] for e in runner["env"]}
    # What the operator runs in runner 1 of 2 (segmentation.NewCommandFragments for index 1 of 2).
    command = [k6_binary(), "run", "--quiet", "--execution-segment=0:1/2", "--execution-segment-sequence=0,1/2,1",
               *shlex.split(op.testrun_manifest(spec)["spec"]["arguments"]), "script.js",
               "--tag", "instance_id=1", "--tag", f"testrun_name={spec.name}"]
    out = subprocess.run(command, cwd=tmp_path, env={**env, "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
                         capture_output=True, text=True, timeout=60)
    log = out.stdout + out.stderr  # a pod log carries both
    assert out.returncode in COMPLETE_EXIT_CODES, log[-2000:]
    summary = op.summary_from_log(log)
    assert summary is not None, log[-2000:]
    assert summary["metrics"]["http_reqs"]["values"]["count"] > 0
    assert "p(99)" in summary["metrics"]["http_req_duration"]["values"]
    # The remote-write output was active: protobuf, snappy, to the URL from the environment.
    assert Recorder.writes, "k6 sent nothing to the remote-write URL"
    assert {w["encoding"] for w in Recorder.writes} == {"snappy"}
    assert {w["type"] for w in Recorder.writes} == {"application/x-protobuf"}
