"""The Grafana dashboard (components/dashboards/k6-load.json) against what k6 really sends.

Real k6 1.1.0 runs a capacity probe's script with the TestRun the operator engine makes for it (its
environment and ``spec.arguments``) and the argv grafana/k6-operator v1.6.0 gives a runner
(tests/k8s_fakes.runner_argv), writing every sample with its tags (``--out json``). The
remote-write output turns each tag into a label and names series ``k6_<metric>`` (``_total`` for
counters, ``_seconds`` for time trends as native histograms): every label a panel filters or
groups a k6 series by must be on every sample of that metric, or the panel shows one unlabelled line
and goes empty when a target is chosen.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from aigw_bench.cloud import operator as op
from aigw_bench.cloud.operator_driver import OperatorDriver
from aigw_bench.measure.driver import Endpoint, K6Job
from components.dashboards import dashboard_files
from components.k6_operator import TESTRUN_NAMESPACE
from k6_scripts.render import render_script
from schema.scenarios import load_scenario
from tests.cloud_fakes import LoopbackServer, stack_outputs
from tests.k8s_fakes import runner_argv, runner_env

pytestmark = pytest.mark.pure

COMPLETION = json.dumps({
    "id": "chatcmpl-test", "object": "chat.completion", "created": 1767225600, "model": "gpt-4o-mini",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11}}).encode()
K6_SERIES = re.compile(r"\b(k6_[a-z_]+)\s*\{([^}]*)\}")
MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
GROUPING = re.compile(r"\bby\s*\(([^)]*)\)")


class SlowEndpoint(LoopbackServer):
    """A chat route that answers after 100 ms: one VU then manages 10 requests a second, so an arrival
    rate of 40 per second makes k6 drop iterations."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                time.sleep(0.1)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(COMPLETION)))
                self.end_headers()
                self.wfile.write(COMPLETION)

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(Handler)


def k6_metric(series: str) -> str:
    """The k6 metric behind a remote-write series name (k6 v1.1.0 internal/output/prometheusrw/remotewrite:
    prefix k6_, counters _total, native-histogram trends in their base unit _seconds)."""
    name = series.removeprefix("k6_")
    for suffix in ("_total", "_seconds"):
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


def panel_labels() -> dict[str, dict[str, set[str]]]:
    """Per panel title, per k6 metric it queries, the labels its expressions filter or group that series by."""
    dashboard = json.loads(dashboard_files()["k6-load.json"])
    found: dict[str, dict[str, set[str]]] = {}
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            grouping = {label.strip() for labels in GROUPING.findall(expr) for label in labels.split(",") if label}
            for series, matchers in K6_SERIES.findall(expr):
                labels = set(MATCHER.findall(matchers)) | grouping
                found.setdefault(panel["title"], {}).setdefault(k6_metric(series), set()).update(labels)
    return found


def sample_tags(path: Path) -> dict[str, list[dict[str, str]]]:
    """Every sample's tags, per metric, from k6's JSON output."""
    tags: dict[str, list[dict[str, str]]] = {}
    for line in path.read_text().splitlines():
        point = json.loads(line)
        if point.get("type") == "Point":
            tags.setdefault(point["metric"], []).append(point["data"]["tags"] or {})
    return tags


@pytest.fixture(scope="module")
def operator_run(tmp_path_factory) -> dict[str, list[dict[str, str]]]:
    """A capacity probe's TestRun (rate 40/s, one VU at most) against the slow endpoint, run by real k6
    as the operator would run its runner; the samples' tags, per metric."""
    tmp = tmp_path_factory.mktemp("dashboard")
    server = SlowEndpoint()
    try:
        target = Endpoint("kong", f"{server.url}/v1/chat/completions", "gpt-4o-mini", {})
        scenario = load_scenario("rate")
        params = scenario.params("local", {"rate": 40, "vus": 1, "max_vus": 1, "duration": "3s", "warmup": "0s"})
        job = K6Job(label="capacity: 40 req/s", dir=tmp, source=render_script(scenario, params, target).source,
                    duration=params.duration, max_vus=scenario.max_vus(params))
        outputs = stack_outputs("kong-operator", "kong", server.url, ["i-0"], None, prometheus_service={
            "namespace": "monitoring", "name": "kps-prometheus", "port": 9090,
            "cluster_url": "http://kps-prometheus.monitoring.svc.cluster.local:9090"},
            k6_operator={"enabled": True, "namespace": TESTRUN_NAMESPACE})
        driver = OperatorDriver(outputs=outputs, work=tmp, direct=target, target=target, on_event=lambda e: None,
                                runner=None, probe_runner=None, prometheus=None, parallelism=2,  # type: ignore[arg-type]
                                session_label="kong-r1", secret={})
        testrun = op.testrun_manifest(driver.testrun_spec("aigw-dashboard-m", job, job.duration, 1, False))
        (tmp / "script.js").write_text(job.source)
        out = tmp / "samples.json"
        env = {"PATH": os.environ["PATH"], "HOME": str(tmp), **runner_env(testrun, {})}
        done = subprocess.run(runner_argv(testrun, 1, "script.js", [f"json={out}"]), cwd=tmp, env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode in (0, 99), done.stdout[-2000:] + done.stderr[-2000:]  # 99: thresholds crossed
        return sample_tags(out)
    finally:
        server.close()


def test_the_panels_query_k6_series(operator_run):
    queried = panel_labels()
    assert {"Requests per second", "Latency percentiles (native histograms)", "Virtual users",
            "Dropped iterations per second"} <= set(queried)
    assert {m for metrics in queried.values() for m in metrics} == \
        {"http_reqs", "http_req_duration", "vus", "dropped_iterations"}


@pytest.mark.parametrize("title", ["Requests per second", "Latency percentiles (native histograms)",
                                   "Virtual users", "Dropped iterations per second"])
def test_every_label_a_panel_uses_is_on_every_sample_k6_sends(operator_run, title):
    for metric, labels in panel_labels()[title].items():
        samples = operator_run.get(metric)
        assert samples, f"k6 sent no {metric} samples (the run must exercise what the panel shows)"
        for label in labels:
            missing = sum(1 for tags in samples if label not in tags)
            assert not missing, f"{title}: {missing} of {len(samples)} {metric} samples lack the label {label!r}"
        if "target" in labels:
            assert {tags["target"] for tags in samples} == {"kong"}
