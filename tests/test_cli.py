"""The command line: --help everywhere, and bad input rejected with a clear message before anything starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

CLI = str(Path(sys.executable).parent / "aigw-bench")
COMMANDS = ["list", "setup", "run", "report", "render"]


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_every_command_has_help(command):
    out = cli(*([command] if command else []), "--help")
    assert out.returncode == 0
    assert "Usage:" in out.stdout and "--help" in out.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-t", "wiremock,nope"], "unknown target 'nope'"),
        (["-s", "seed", "--vus", "-3"], "vus: Input should be greater than or equal to 1"),
        (["-s", "seed", "--duration", "0s"], "duration: Input should be greater than 0"),
        (["-s", "seed", "--duration", "ten seconds"], "duration: 'ten seconds' is not a duration"),
        (["--scenario", "soak"], "unknown scenario 'soak'"),
        (["--vus", "10"], "--vus: these size a scenario (--scenario)"),
        (["--suite", "nope"], "unknown suite 'nope'"),
        (["--suite", "default", "-s", "seed"], "choose a scenario (--scenario) or a suite (--suite), not both"),
        (["--mock", "nope"], "unknown mock 'nope'"),
        (["--mock-profile", "nope"], "unknown mock profile 'nope'"),
        (["--mock", "wiremock", "--mock-profile", "llm"], "the wiremock mock cannot serve the 'llm' pacing profile"),
        (["--repeats", "0"], "Invalid value for '--repeats' / '-r'"),
        (["--vus", "many"], "Invalid value for '--vus'"),
    ],
)
def test_bad_run_arguments_fail_before_anything_starts(tmp_path, args, message):
    results = tmp_path / "results"
    out = cli("run", *args, "--results", str(results))
    assert out.returncode == 2, out.stderr
    assert message in " ".join(out.stderr.split())
    assert not results.exists()


@pytest.mark.parametrize("command", ["run", "matrix"])
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--vus", "10"], "--vus: these size a scenario (--scenario)"),
        (["--suite", "nope"], "unknown suite 'nope'"),
        (["--suite", "default", "-s", "seed"], "choose a scenario (--scenario) or a suite (--suite), not both"),
        (["-s", "seed", "--mock-profile", "nope"], "unknown mock profile 'nope'"),
    ],
)
def test_bad_cloud_arguments_fail_before_any_stack_is_read_or_deployed(tmp_path, command, args, message):
    """Checked before the Pulumi CLI is needed: the message is about the option, whatever the machine has."""
    stack = ["--stack", "kong"] if command == "run" else ["--stacks", "kong", "--dir", str(tmp_path / "m")]
    out = cli("cloud", command, *stack, *args, "--results", str(tmp_path / "results"))
    assert out.returncode == 2, out.stderr
    assert message in " ".join(out.stderr.split()) and "Pulumi" not in out.stderr
    assert not (tmp_path / "results").exists() and not (tmp_path / "m").exists()


def test_report_on_a_directory_that_is_not_a_run(tmp_path):
    out = cli("report", str(tmp_path))
    assert out.returncode == 2
    assert "manifest.json: missing" in out.stderr


def test_list_shows_kong_as_cloud_only():
    out = cli("list")
    assert out.returncode == 0
    kong = next(line for line in out.stdout.splitlines() if line.strip().startswith("kong "))
    assert "cloud only" in kong
    assert "fast" in out.stdout and "(default)" in out.stdout and "llm" in out.stdout
    assert "suites: default, thorough" in out.stdout


def test_render_prints_a_script_for_a_target():
    out = cli("render", "-t", "portkey", "-s", "stream")
    assert out.returncode == 0
    assert "x-portkey-custom-host" in out.stdout and "const STREAM = true;" in out.stdout
