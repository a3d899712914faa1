"""Backing services (services/<name>/): Redis started by the rig beside a real LiteLLM with two workers, its
rate-limit counter read with redis-cli while the run goes on, stopped with nothing left behind; a service whose
port is taken, and one that fails to start, named with the target, the policy and the files."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from aigw_bench.local.ports import port_is_free
from aigw_bench.measure.events import Tick
from schema.catalog import SERVICES_DIR, SERVICES_ENV, load_catalog
from schema.errors import ConfigError, PortInUseError
from schema.results import read_manifest_data, read_outcomes
from schema.services import load_service
from tests.helpers import build_catalog, command_line, fake_gateway, make_runner, tool_processes

SHORT = Path(__file__).parent / "policies-short.yaml"
CLI = Path(sys.executable).with_name("aigw-bench")
REDIS = load_service("redis")
TARGET = "litellm+limits-workers"


def _redis_cli(*args: str) -> str:
    done = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(REDIS.port), *args], capture_output=True,
                          text=True, timeout=5)
    return done.stdout.strip()


# ------------------------------------------------------------ Redis used by LiteLLM's two workers
@pytest.fixture(scope="module")
def workers_run(tmp_path_factory, tools_ready):
    """LiteLLM with two workers sharing its rpm counters in Redis: the policies suite's short sizes and the
    limit check under load. While the check runs, the probe's counter is read from Redis itself."""
    counters: dict[str, int] = {}  # Redis key -> the highest value read while the session ran

    def read_redis(event: object) -> None:
        if isinstance(event, Tick) and event.target == TARGET and event.label.startswith("works"):
            for key in _redis_cli("--scan", "--pattern", "*aigw-probe-limit:rpm:*").split():
                value = _redis_cli("GET", key)
                if value.isdigit():
                    counters[key] = max(counters.get(key, 0), int(value))

    before = tool_processes()
    run_dir = make_runner(None, [TARGET], tmp_path_factory.mktemp("results"), suite=SHORT,
                          on_event=read_redis).run()
    left = tool_processes() - before
    (run_dir / "redis-counters.json").write_text(json.dumps(counters))  # what was read, for a person to see
    return run_dir, {o.target: o for o in read_outcomes(run_dir)}, counters, left


def test_the_limit_holds_across_two_workers_with_the_counter_in_redis(workers_run):
    run_dir, outcomes, _, _ = workers_run
    o = outcomes[TARGET]
    assert o.status == "ok", o.reason
    limit = next(v for v in o.steps["works"].data["verdicts"] if v["kind"] == "limit")
    assert limit["works"] is True, limit["why"]
    # Twice the limit offered, the limit admitted within 20% and the rest 429, across both workers.
    assert 24 <= limit["admitted"] <= 36 and limit["limited"] > 0
    log = (run_dir / "targets" / TARGET / "r1" / "gateway.log").read_text(errors="replace")
    assert log.count("Started server process") == 2, log[-2000:]


def test_the_counter_is_written_in_redis(workers_run):
    _, outcomes, counters, _ = workers_run
    limit = next(v for v in outcomes[TARGET].steps["works"].data["verdicts"] if v["kind"] == "limit")
    # LiteLLM increments first, so every request of the probe (admitted or refused) counted in Redis's key.
    assert counters and max(counters.values()) >= limit["admitted"] + 1, counters
    assert all(":openai/aigw-probe-limit:rpm:" in key for key in counters)


def test_redis_is_recorded_in_the_manifest_and_stopped_with_nothing_left_behind(workers_run):
    run_dir, outcomes, _, left = workers_run
    record = read_manifest_data(run_dir)["targets"][TARGET]["services"]["redis"]
    assert record["version_check"]["pinned"] == "7.0.15" and record["version_check"]["matches_pin"] is True
    assert (record["host"], record["port"]) == ("127.0.0.1", REDIS.port)
    assert not left, [(pid, command_line(pid)) for pid in sorted(left)]
    assert port_is_free(REDIS.port)
    work = run_dir / "targets" / TARGET / "r1"
    assert outcomes[TARGET].files["redis_log"] == "redis.log" and "Ready to accept connections" in (
        work / "redis.log").read_text()
    assert not list((work / "redis").iterdir())  # no snapshot, no append-only file: nothing persisted


# ------------------------------------------------------------ bad input: a taken port, a failed start
def test_a_taken_port_is_refused_before_anything_starts_naming_the_service_and_port(tmp_path, tools_ready):
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", REDIS.port))
        holder.listen()
        with pytest.raises(PortInUseError) as err:
            make_runner(None, ["litellm+cache"], tmp_path, suite=SHORT).run()
    text = str(err.value)
    assert f"{REDIS.port} (needed by service 'redis' of target litellm+cache, policy 'cache'" in text
    assert "stacks/litellm/gateway.yaml" in text and "services/redis/service.yaml" in text
    assert not any(tmp_path.rglob("*.log"))  # nothing was started


def test_the_rig_lock_names_the_services_ports(tmp_path):
    """A second run is told which ports the first holds: a service's among them."""
    from aigw_bench.local.cpus import plan_cpus
    from aigw_bench.local.engine import LocalEngine
    from aigw_bench.measure.plan import Knobs
    from aigw_bench.run.plan import plan_run
    from schema.mock import load_mock

    plan = plan_run("local", targets=load_catalog().select(["litellm+cache"]), scenario="seed", suite=None,
                    mock_profile=None, knobs=Knobs(), repeats=None, results_root=tmp_path)
    (_, what), = LocalEngine(load_mock("fast"), plan_cpus()).locks(plan)
    assert f"{REDIS.port}" in what, what


def test_an_unknown_service_is_refused_naming_the_file_and_field(tmp_path):
    entry = {**fake_gateway("fake", 18555, "pass"),
             "variants": {"x": {"suite": "policies", "summary": "s", "services": ["memcached"]}}}
    build_catalog(tmp_path, [], [entry])
    with pytest.raises(ConfigError) as err:
        load_catalog(tmp_path)
    assert "fake/gateway.yaml: variants.x.services: unknown service 'memcached'" in str(err.value)
    assert "known services: redis" in str(err.value)


ANSWERING = """
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
import urllib.request
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers()
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        req = urllib.request.Request(sys.argv[3] + "/v1/chat/completions", data=body,
                                     headers={"Content-Type": "application/json"})
        answer = urllib.request.urlopen(req).read()
        self.send_response(200); self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer))); self.end_headers(); self.wfile.write(answer)
    def log_message(self, *a):
        pass
HTTPServer(("127.0.0.1", int(sys.argv[2])), H).serve_forever()
"""


def test_a_service_that_fails_to_start_is_reported_and_nothing_measured_is_lost(tmp_path, monkeypatch, tools_ready):
    services = tmp_path / "services"
    shutil.copytree(SERVICES_DIR / "redis", services / "redis")
    definition = services / "redis" / "service.yaml"
    broken = yaml.safe_load(definition.read_text())
    broken["command"] += ["--no-such-directive", "yes"]  # redis-server refuses to start
    definition.write_text(yaml.safe_dump(broken))
    monkeypatch.setenv(SERVICES_ENV, str(services))
    entry = {**fake_gateway("fake", 18555, ANSWERING),
             "variants": {"plain": {"suite": "policies", "summary": "no service"},
                          "shared": {"suite": "policies", "summary": "with Redis", "services": ["redis"]}}}
    (tmp_path / "catalog").mkdir()
    catalog = build_catalog(tmp_path / "catalog", [], [entry])
    before = tool_processes()
    run_dir = make_runner(catalog, ["fake+plain", "fake+shared"], tmp_path / "results").run()
    left = tool_processes() - before
    outcomes = {o.target: o for o in read_outcomes(run_dir)}
    assert outcomes["fake+plain"].status == "ok" and "summary" in outcomes["fake+plain"].files  # measured, kept
    failed = outcomes["fake+shared"]
    assert failed.status == "failed_to_start"
    assert failed.reason.startswith("service 'redis' of target fake+shared, policy 'shared' (")
    assert "fake/gateway.yaml" in failed.reason and str(definition) in failed.reason
    assert "exited with code 1 before it became ready" in failed.reason
    assert any("no-such-directive" in line for line in failed.evidence["log_tail"])
    assert not left and port_is_free(REDIS.port) and port_is_free(18555)


def test_setup_installs_the_services_a_targets_variants_need(tmp_path):
    """`aigw-bench setup` adds the services any variant of a chosen target names (apt, only when missing)."""
    services = tmp_path / "services"
    shutil.copytree(SERVICES_DIR / "redis", services / "redis")
    entry = {**fake_gateway("fake", 18555, "pass"),
             "variants": {"shared": {"suite": "policies", "summary": "with Redis", "services": ["redis"]}}}
    (tmp_path / "catalog").mkdir()
    catalog = build_catalog(tmp_path / "catalog", [], [entry])
    out = subprocess.run([str(CLI), "setup", "fake", "--catalog", str(catalog)], capture_output=True, text=True,
                         timeout=120, env={**os.environ, SERVICES_ENV: str(services)})
    assert out.returncode == 0, out.stderr
    assert "redis: apt ..." in out.stderr and "redis: up to date" in out.stderr  # redis-server and redis-cli there
