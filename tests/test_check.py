"""`aigw-bench check`: a real entry started against the real mock, one request and one stream, start-up
times printed, nothing left running; a target that cannot serve is shown with its evidence."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from schema.catalog import load_catalog
from tests.helpers import answering, build_catalog, fake_gateway

pytestmark = pytest.mark.slow

CLI = str(Path(sys.executable).parent / "aigw-bench")
EXITS = "import sys; print('fatal: invalid configuration', file=sys.stderr); sys.exit(3)"
GARBAGE = answering(200, b'<html>routing table empty</html>')


def check(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, "check", *args], capture_output=True, text=True, timeout=300)


def test_check_a_catalog_target_end_to_end(tmp_path, tools_ready, no_leftovers):
    # The first target of the catalog under test that has a process of its own (whatever it is called).
    entry = next(g for g in load_catalog() if g.local.runnable and g.local.command)
    out = check(entry.name, "--work", str(tmp_path / "work"))
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    assert text.startswith(f"{entry.name} ({entry.role}: {entry.title}, version {entry.version}")
    took = r"\d+(\.\d+)? (ms|s)"
    assert re.search(rf"started: mock \S+ ready in {took}, {re.escape(entry.name)} ready in {took}, first request "
                     rf"answered in {took}\n", text), text
    assert re.search(r"stream:  HTTP 200 in .*, ([1-9]\d*) content chunks, the first after ", text), text
    assert f"url: http://127.0.0.1:{entry.local.port}{entry.request.path}" in text
    assert "request: HTTP 200 in " in text and ", a chat completion" in text
    assert "stream:  HTTP 200 in " in text and "content chunks" in text and "usage, [DONE]" in text
    assert "answer: 'The mock model" in text  # the mock's contract, relayed
    assert text.rstrip().endswith(f"ok: {entry.name} answered the benchmark's request and streamed")
    # --work keeps the session's files: the rendered configs and the logs.
    session = tmp_path / "work" / "session"
    assert f"configs and logs: {session}" in text
    assert (session / "gateway.log").exists() and (session / "mock.log").exists()
    for out_name in entry.local.config_files:
        assert (session / out_name).is_file()


def test_check_shows_why_a_target_cannot_serve(tmp_path, tools_ready, no_leftovers):
    root = build_catalog(tmp_path, copies=[], fakes=[fake_gateway("garbage", 18994, GARBAGE)])
    out = check("garbage", "--catalog", str(root))
    assert out.returncode == 1, out.stdout + out.stderr
    assert "not_served: garbage did not answer the benchmark's request with a well-formed OpenAI chat " \
           "completion (HTTP 200)" in out.stdout
    assert "first answer: '<html>routing table empty</html>'" in out.stdout
    assert out.stdout.rstrip().endswith("not ok: garbage cannot be measured as it is")


def test_check_shows_the_exit_code_and_log_of_a_target_that_dies(tmp_path, tools_ready, no_leftovers):
    root = build_catalog(tmp_path, copies=[], fakes=[fake_gateway("exits", 18995, EXITS)])
    out = check("exits", "--catalog", str(root))
    assert out.returncode == 1, out.stdout + out.stderr
    assert re.search(r"started: mock \S+ ready in \d+ ms, exits not ready\n", out.stdout), out.stdout
    assert "failed_to_start: exits exited with code 3 before it became ready" in out.stdout
    assert "| fatal: invalid configuration" in out.stdout


def test_check_with_a_paced_mock_shows_when_the_first_token_arrives(tools_ready, no_leftovers):
    entry = next(g for g in load_catalog() if g.local.runnable and g.local.command)
    out = check(entry.name, "--mock-profile", "llm")
    assert out.returncode == 0, out.stdout + out.stderr
    first = re.search(r"content chunks, the first after (\d+) ms", out.stdout)
    assert first and int(first.group(1)) >= 390, out.stdout  # the llm profile's time to first token


def test_check_refuses_a_profile_the_mock_cannot_serve(tools_ready):
    out = check(load_catalog().names[0], "--mock", "wiremock", "--mock-profile", "llm")
    assert out.returncode == 2
    assert "the wiremock mock cannot serve the 'llm' pacing profile" in out.stderr
