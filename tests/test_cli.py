"""The command line: --help everywhere, and bad input rejected with a clear message before anything starts.
Holds for any catalog (tests/test_fork.py runs it against one with throwaway entries added)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from schema.catalog import load_catalog

pytestmark = pytest.mark.pure

CLI = str(Path(sys.executable).parent / "aigw-bench")
COMMANDS = ["list", "setup", "check", "run", "report", "render"]
CATALOG = load_catalog()
FIRST = CATALOG.names[0]


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
        (["-t", f"{FIRST},nope"], "unknown target 'nope'"),
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
        (["--policy", "auth"], "variants (auth) are chosen for a suite that runs variants"),
        (["-t", "nginx+nope"], "target 'nginx' has no variant 'nope'"),
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
        (["--policy", "auth"], "variants (auth) are chosen for a suite that runs variants"),
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


def _list_rows(stdout: str) -> dict[str, list[str]]:
    """The targets table of `list`: name -> cells, cut at the header's column starts."""
    lines = stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["name", "role"])
    starts = [lines[header].index(word) for word in ("name", "role", "version", "runs", "installed", "title")]
    rows = {}
    for line in lines[header + 1:]:
        if not line.startswith("  ") or line.startswith("   ") or ":" in line.split()[0]:
            break
        cells = [line[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
        rows[cells[0]] = cells
    return rows


def test_list_says_where_each_target_runs_and_whether_it_is_installed():
    out = cli("list")
    assert out.returncode == 0
    rows = _list_rows(out.stdout)
    assert list(rows) == CATALOG.names
    for g in CATALOG:
        _name, role, version, runs, installed, title = rows[g.name]
        assert (role, version, title) == (g.role, g.version, g.title)
        expected = {(True, True): "local + cloud", (True, False): "local only", (False, True): "cloud only"}
        assert runs == expected[(g.local.runnable, g.cloud is not None)]
        if not g.local.runnable:
            assert installed == "-"
            assert f"{g.name}: not runnable here: " in out.stdout
        elif g.local.install is None:
            assert installed == "nothing to install"
        else:
            assert installed.startswith(("installed", "not installed"))
    assert "(default)" in out.stdout and "pacing profiles:" in out.stdout and "suites: " in out.stdout


def test_list_keeps_its_columns_for_long_names_and_entries_without_a_cloud_section(tmp_path):
    long_name = "a-gateway-with-a-name-far-longer-than-twelve-characters"
    for name, extra in ((long_name, {}), ("b", {"cloud": {"kind": "none"}})):
        (tmp_path / name).mkdir()
        (tmp_path / name / "gateway.yaml").write_text(yaml.safe_dump({
            "name": name, "title": f"title of {name}", "role": "gateway", "version": "1.0", "source": "tests",
            "local": {"port": 19999, "command": ["true"]}, **extra}))
    out = cli("list", "--catalog", str(tmp_path))
    assert out.returncode == 0, out.stderr
    rows = _list_rows(out.stdout)
    assert rows[long_name] == [long_name, "gateway", "1.0", "local only", "nothing to install", f"title of {long_name}"]
    assert rows["b"] == ["b", "gateway", "1.0", "local + cloud", "nothing to install", "title of b"]


@pytest.mark.parametrize("name", [g.name for g in CATALOG if g.local.runnable])
def test_render_prints_a_script_for_every_runnable_target(name):
    entry = CATALOG.get(name)
    out = cli("render", "-t", name, "-s", "stream")
    assert out.returncode == 0, out.stderr
    assert "const STREAM = true;" in out.stdout and entry.request.path in out.stdout
    for header in entry.request.headers:
        assert header in out.stdout


# ------------------------------------------------------------------ check: bad input
def _entry(root: Path, name: str, **changes) -> None:
    (root / name).mkdir(parents=True)
    entry = {"name": name, "title": name, "role": "gateway", "version": "1.0", "source": "tests",
             "local": {"port": 19999, "command": ["true"]}, **changes}
    (root / name / "gateway.yaml").write_text(yaml.safe_dump(entry))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"local": {"port": 80, "command": ["x"]}}, "local.port: Input should be greater than or equal to 1024"),
        ({"role": "router"}, "role: Input should be 'baseline', 'floor' or 'gateway'"),
        ({"local": {"port": 19999, "command": ["x"], "install": {"pip": "missing.lock"}}},
         "install source"),
        ({"local": {"runnable": False, "reason": "only on EKS"}, "cloud": {"kind": "none"}},
         "local.runnable is false: mine does not run on this machine (only on EKS)"),
    ],
)
def test_check_names_the_file_and_field_of_a_bad_entry_before_anything_starts(tmp_path, changes, message):
    _entry(tmp_path, "mine", **changes)
    _entry(tmp_path, "broken-sibling", role="nonsense")  # only the entry checked is loaded
    out = cli("check", "mine", "--catalog", str(tmp_path))
    assert out.returncode == 2, out.stdout + out.stderr
    text = " ".join(out.stderr.split())
    assert str(tmp_path / "mine" / "gateway.yaml") in text and message in text
    assert "broken-sibling" not in text


def test_check_an_unknown_target_lists_the_known_ones(tmp_path):
    _entry(tmp_path, "mine")
    out = cli("check", "nope", "--catalog", str(tmp_path))
    assert out.returncode == 2
    assert "unknown target 'nope'. Known targets: mine" in out.stderr
