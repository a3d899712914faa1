"""The rig under its own faults (issue 20), each on real processes: a disk too small for the run, a disk
that fills or is read-only, the runner killed with SIGKILL, two runs at once, Ctrl-C twice, a corrupt
outcome.json, selections with nothing to run, terminal escapes in a gateway's log, the report's footer.

The disk cases mount a tmpfs of the size they need (root, or passwordless sudo, as `make test` has)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest

from aigw_bench.measure.events import TargetStarted, Tick
from aigw_bench.run import space
from aigw_bench.run.interrupts import DiskFault
from analysis.report import ReportIncomplete, build_report, write_report
from schema.base import REPO_DIR
from schema.mock import load_mock
from schema.results import read_manifest, read_outcomes
from tests.helpers import SHORT_RIG_ENV, SUDO, command_line, failing_ext4, fill, make_runner, tmpfs, tool_processes

pytestmark = pytest.mark.slow

CLI = Path(sys.executable).parent / "aigw-bench"
MOCK_PORT = load_mock().local.port


# ----------------------------------------------------------------------------------------- helpers
def cli(*args: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(CLI), *args], capture_output=True, text=True, timeout=timeout, env=SHORT_RIG_ENV,
                          **kw)


def start_cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen([str(CLI), *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=SHORT_RIG_ENV)


def read_until(proc: subprocess.Popen, marker: str, timeout: float = 90) -> list[str]:
    """The CLI's output lines up to the one that ends with ``marker`` (its progress is plain text here)."""
    lines, deadline = [], time.monotonic() + timeout
    for line in proc.stdout:
        lines.append(line)
        if line.rstrip().endswith(marker) or time.monotonic() > deadline:
            break
    assert lines and lines[-1].rstrip().endswith(marker), "".join(lines)
    return lines


def descendants(pid: int) -> set[int]:
    """Every live process under ``pid``, from the parent ids in /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                rest = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
                if rest[0] != "Z":
                    children.setdefault(int(rest[1]), []).append(int(entry))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def one_error_line(text: str) -> str:
    assert "Traceback" not in text, text
    errors = [line for line in text.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, text
    return errors[0]


@pytest.fixture(scope="module")
def short_run(tmp_path_factory, tools_ready):
    """A real, short run of direct and nginx (seed), with its report."""
    run_dir = make_runner(None, ["direct", "nginx"], tmp_path_factory.mktemp("results")).run()
    write_report(run_dir)
    return run_dir


# --------------------------------------------------------------------------------- 1. disk full
def test_a_run_that_cannot_fit_on_its_disk_is_refused_before_anything_starts(tmp_path, tools_ready, no_leftovers):
    with tmpfs(tmp_path / "small", "2m") as small:
        started = time.monotonic()
        done = cli("run", "-s", "seed", "-t", "direct,nginx", "-d", "5s", "--results", str(small))
        took = time.monotonic() - started
        assert done.returncode == 2, done.stderr
        line = one_error_line(done.stderr)
        assert f"not enough free space for this run in {small}: 2.0 MiB free, about" in line
        assert "x1.5 margin" in line and "--no-raw" in line
        assert list(small.iterdir()) == []  # no run directory, no lock left
        assert took < 30  # refused at the start: no rig was measured


def test_a_disk_that_fills_mid_run_stops_the_load_keeps_what_was_measured_and_reports_it(tmp_path, tools_ready,
                                                                                           no_leftovers):
    with tmpfs(tmp_path / "disk", "64m") as disk:
        proc = start_cli("run", "-s", "seed", "-t", "direct,nginx", "-d", "20s", "--warmup", "1s", "--vus", "5",
                         "--results", str(disk / "results"))
        out = read_until(proc, "direct: seed")
        time.sleep(1)
        fill(disk)  # something else takes every byte left
        rest, _ = proc.communicate(timeout=120)
        text = "".join(out) + rest
        assert proc.returncode == 1, text
        run_dir = next((disk / "results").iterdir())
        line = one_error_line(text)
        assert line == (f"error: the run stopped: no space left on the device (0 B free): {run_dir}; what was "
                        f"measured is in {run_dir / 'report.html'}")
        # What was measured before the disk filled is there, with the report, which says why.
        outcomes = {o.target: o for o in read_outcomes(run_dir)}
        assert outcomes["direct"].status == "interrupted"
        assert "no space left on the device" in outcomes["direct"].reason
        summary = json.loads((run_dir / "targets/direct/r1/seed/summary.json").read_text())
        assert summary["metrics"]["http_reqs"]["values"]["count"] > 0
        assert outcomes["direct"].measure_seconds < 15  # the load stopped: it did not run its 20 s
        assert read_manifest(run_dir).stopped.startswith("no space left on the device")
        for name in ("report.html", "report.md", "comparison.csv", "timeseries.parquet"):
            assert (run_dir / name).stat().st_size > 0, name
        report = (run_dir / "report.md").read_text()
        assert "**direct** (repeat 1): interrupted. stopped: no space left on the device" in report
        assert "**nginx** (repeat 1): not run. the run was stopped before this target: no space left" in report
        assert not (run_dir / ".reserve").exists()


def test_a_write_refused_for_want_of_space_stops_the_run_the_same_way(tmp_path, tools_ready, no_leftovers,
                                                                        monkeypatch):
    """The watch looks twice a second; a write between two looks can still meet a full disk (here the watch
    is blinded, so that every write after the filler meets it): the run stops in the same order."""
    monkeypatch.setattr(space, "LOW_WATER", -1)
    with tmpfs(tmp_path / "disk", "64m") as disk:
        filled, session = {}, {}

        def on_event(event):
            # The rig's own ticks also name "direct" (its endpoint): wait for the baseline target's session.
            if isinstance(event, TargetStarted):
                session["target"] = event.target if event.index else None
            if isinstance(event, Tick) and session.get("target") == "direct" and not event.warmup and not filled:
                filled["at"] = event.elapsed
                fill(disk)

        runner = make_runner(None, ["direct", "nginx"], disk / "results", on_event=on_event, duration="6s")
        with pytest.raises(DiskFault) as stopped:
            runner.run()
        run_dir = runner.run_dir
        assert filled, "the disk was never filled"
        assert "cannot write: no space left on device" in str(stopped.value)
        outcomes = {o.target: o for o in read_outcomes(run_dir)}
        assert outcomes["direct"].status == "interrupted"
        assert "cannot write: no space left on device" in outcomes["direct"].reason
        assert "nginx" not in outcomes
        assert write_report(run_dir)["html"].exists()  # in the space the run held for it


def test_a_disk_that_turns_read_only_mid_run_stops_the_load_and_names_the_path(tmp_path, tools_ready,
                                                                                no_leftovers):
    """A real disk error: ext4 with errors=remount-ro refuses every write from then on, while its mount
    options still read rw (statvfs says writable): the watch's one-byte write into the reserve sees it."""
    with failing_ext4(tmp_path / "disk", 160) as fail:  # room for the run (the estimate: ~110 MiB)
        results = tmp_path / "disk" / "results"
        proc = start_cli("run", "-s", "seed", "-t", "direct,nginx", "-d", "30s", "--warmup", "1s", "--vus", "5",
                         "--results", str(results))
        out = read_until(proc, "direct: seed")
        time.sleep(1)
        fail()
        failed_at = time.monotonic()
        rest, _ = proc.communicate(timeout=120)
        took = time.monotonic() - failed_at
        text = "".join(out) + rest
        assert proc.returncode == 1, text
        run_dir = next(p for p in results.iterdir() if p.is_dir())
        line = one_error_line(text)
        assert line == (f"error: the run stopped: the file system went read-only: {run_dir}; what was measured is "
                        f"kept in {run_dir}; not written: targets/direct/r1/outcome.json (Read-only file system), "
                        "manifest.json (Read-only file system)")
        assert f"report not complete in {run_dir}: not written: " in text and "(Read-only file system)" in text
        assert took < 15, f"the load went on after the disk failed ({took:.0f} s)"  # k6 had 29 s to go
        assert port_free(MOCK_PORT)
        # What k6 wrote before the error stays on the disk.
        assert (run_dir / "targets/direct/r1/seed/raw.csv.gz").stat().st_size > 0


# ----------------------------------------------------------------------------- 2. read-only results
def test_a_read_only_results_directory_is_one_line(tmp_path, tools_ready, no_leftovers, short_run):
    with tmpfs(tmp_path / "ro", "2m", read_only=True) as ro:
        done = cli("run", "-s", "seed", "-t", "direct", "--results", str(ro))
        assert done.returncode == 2
        assert one_error_line(done.stderr) == (f"error: cannot write in the results directory {ro}: read-only file "
                                               "system; choose another with --results")
        done = cli("run", "-s", "seed", "-t", "direct", "--results", str(ro / "new"))
        assert done.returncode == 2
        assert one_error_line(done.stderr) == (f"error: cannot create the results directory {ro / 'new'}: "
                                               "Read-only file system; choose another with --results")
    # A report rebuilt where nothing can be written names what it could not write; so does one whose
    # per-second files must be derived again first (here: removed).
    with tmpfs(tmp_path / "copy", "64m") as copy:
        shutil.copytree(short_run, copy / "run")
        shutil.copytree(short_run, copy / "stale")
        (copy / "stale/targets/direct/r1/seed/timeseries.csv").unlink()
        subprocess.run([*SUDO, "mount", "-o", "remount,ro", str(copy)], check=True)
        done = cli("report", str(copy / "run"))
        assert done.returncode == 1
        line = one_error_line(done.stderr)
        assert line.startswith(f"error: report not complete in {copy / 'run'}: not written: comparison.csv "
                               "(Read-only file system), report.md (Read-only file system)")
        assert line.endswith(f"rebuild it with `aigw-bench report {copy / 'run'}`")
        done = cli("report", str(copy / "stale"))
        assert done.returncode == 1
        line = one_error_line(done.stderr)
        assert line.startswith(f"error: report not complete in {copy / 'stale'}: not written: ")
        assert "(per-second files: Read-only file system), comparison.csv (Read-only file system)" in line


# ----------------------------------------------------------------------------- 3. runner killed
def test_a_runner_killed_with_sigkill_leaves_no_process_and_no_port(tmp_path, tools_ready, no_leftovers):
    results = tmp_path / "results"
    proc = start_cli("run", "-s", "seed", "-t", "direct,nginx", "-d", "30s", "--warmup", "1s", "--vus", "5",
                     "--results", str(results))
    read_until(proc, "direct: seed")
    time.sleep(1)
    started = descendants(proc.pid)
    assert len(started) >= 4  # the mock (nginx master + worker) and k6, each under its guard
    assert not port_free(MOCK_PORT)
    proc.kill()  # SIGKILL: the runner runs no code of its own any more
    proc.wait()
    killed_at = time.monotonic()
    while (any(alive(p) for p in started) or not port_free(MOCK_PORT)) and time.monotonic() - killed_at < 5:
        time.sleep(0.05)
    assert not [p for p in started if alive(p)], "processes of the killed runner still alive"
    assert port_free(MOCK_PORT)
    # The report of the killed run says what happened to each target.
    run_dir = next(p for p in results.iterdir() if p.is_dir())
    done = cli("report", str(run_dir))
    assert done.returncode == 0, done.stderr
    report = (run_dir / "report.md").read_text()
    assert ("**direct** (repeat 1): no end recorded. the runner stopped during this session without recording "
            "how it ended (killed, or the machine stopped)") in report
    assert "**nginx** (repeat 1): not run. the runner ended before this target without recording why" in report
    # The next run takes the dead run's locks over, and says whose they were.
    done = cli("run", "-s", "seed", "-t", "direct", "-d", "1s", "--warmup", "0", "--results", str(results))
    assert done.returncode == 0, done.stderr
    assert f"took over the run lock of the results directory {results}: the run that held it ended without " \
           f"letting go of it (killed?): pid {proc.pid}, started" in done.stderr
    assert f"results in {run_dir}" in done.stderr
    assert not (run_dir / ".reserve").exists()  # the space it held is given back


# ----------------------------------------------------------------------------- 4. two runs at once
def test_a_second_run_at_once_is_refused_naming_the_first(tmp_path, tools_ready, no_leftovers):
    results = tmp_path / "results"
    first = start_cli("run", "-s", "seed", "-t", "direct", "-d", "30s", "--warmup", "0", "--vus", "5",
                      "--results", str(results))
    try:
        read_until(first, "direct: seed")
        run_dir = next(p for p in results.iterdir() if p.is_dir())
        for where in (results, tmp_path / "elsewhere"):  # the same results directory, or another one
            before = tool_processes()
            done = cli("run", "-s", "seed", "-t", "direct", "--results", str(where))
            assert done.returncode == 2
            line = one_error_line(done.stderr)
            assert line.startswith(f"error: another run is using this machine's local rig (ports {MOCK_PORT} ")
            assert f"(pid {first.pid}, started " in line and f"results in {run_dir}" in line
            assert f"stop it with `kill -INT {first.pid}`" in line
            assert tool_processes() - before - descendants(first.pid) == set()  # the refused run started nothing
        assert [p.name for p in results.iterdir() if p.is_dir()] == [run_dir.name]
        # A report of the run that is going says so.
        done = cli("report", str(run_dir))
        assert f"this run is still going (pid {first.pid}): the report shows what is on disk so far" in done.stderr
        assert not (tmp_path / "elsewhere").exists() or not any((tmp_path / "elsewhere").iterdir())
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=120)


# ----------------------------------------------------------------------------- 5. Ctrl-C twice
def test_ctrl_c_twice_still_writes_every_report_file(tmp_path, tools_ready, no_leftovers):
    results = tmp_path / "results"
    proc = start_cli("run", "-s", "seed", "-t", "direct,nginx", "-d", "30s", "--warmup", "0", "--vus", "5",
                     "--results", str(results))
    out = read_until(proc, "direct: seed")
    time.sleep(2)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.5)  # while k6 writes its summary, or the report is being written
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=120)
    text = "".join(out) + rest
    assert proc.returncode == 130, text
    assert "already stopping: writing what was measured and its report" in text
    run_dir = next(results.iterdir())
    for name in ("report.html", "report.md", "comparison.csv", "timeseries.parquet", "resources.parquet",
                 "metrics.parquet"):
        assert (run_dir / name).exists(), f"{name} missing after the second Ctrl-C:\n{text}"
    assert f"interrupted; what was measured is in {run_dir / 'report.html'}" in text
    outcome = {o.target: o for o in read_outcomes(run_dir)}["direct"]
    assert outcome.status == "interrupted" and "summary" in outcome.files


def test_a_stop_while_the_report_is_written_names_what_is_not_written(short_run, tmp_path, monkeypatch):
    """The third Ctrl-C (fault injected at the file-writing boundary: the HTML's write is interrupted)."""
    import analysis.report as report

    run_dir = tmp_path / "run"
    shutil.copytree(short_run, run_dir)
    for name in ("report.html", "timeseries.parquet"):
        (run_dir / name).unlink()

    def interrupted(text, path):
        if path.name.endswith("report.html.tmp"):
            path.write_text(text[:100])  # half written when the signal lands
            raise KeyboardInterrupt
        path.write_text(text)

    monkeypatch.setattr(report, "_text", interrupted)
    with pytest.raises(ReportIncomplete) as stopped:
        build_report(run_dir)
    assert stopped.value.interrupted
    assert set(stopped.value.written) == {"comparison", "markdown"}
    assert {p.name for p, _ in stopped.value.missing.values()} >= {"report.html", "timeseries.parquet"}
    assert "not written: report.html (interrupted), timeseries.parquet (interrupted)" in str(stopped.value)
    assert not (run_dir / "report.html").exists() and not list(run_dir.glob(".*.tmp"))  # no half file


# ----------------------------------------------------------------------------- 6. corrupt outcome
def test_one_corrupt_outcome_marks_that_session_and_the_rest_is_reported(short_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(short_run, run_dir)
    outcome = run_dir / "targets/direct/r1/outcome.json"
    outcome.write_bytes(outcome.read_bytes()[: outcome.stat().st_size // 2])
    done = cli("report", str(run_dir))
    assert done.returncode == 0, done.stderr
    report = (run_dir / "report.md").read_text()
    assert ("**direct** (repeat 1): record unreadable. targets/direct/r1/outcome.json is cut short (its "
            in report)
    assert "nothing of this session is reported (its other files are kept)" in report
    table = pd.read_csv(run_dir / "comparison.csv").set_index("target")
    assert table.loc["direct", "status"] == "unreadable" and not table.loc["direct", "valid"]
    assert table.loc["nginx", "rps"] > 0  # the other target keeps its numbers
    # Valid JSON that is not an outcome is named with its field.
    outcome.write_text('{"target": "direct", "repeat": "first"}')
    write_report(run_dir)
    assert "targets/direct/r1/outcome.json is not an outcome: repeat: Input should be a valid integer" in \
        (run_dir / "report.md").read_text()


# ----------------------------------------------------------------------------- 7. target selection
@pytest.mark.parametrize("value", [",", "", " , "])
def test_a_selection_that_names_nothing_is_an_error(tmp_path, value):
    done = cli("run", "-s", "seed", "-t", value, "--results", str(tmp_path / "results"), timeout=60)
    assert done.returncode == 2
    assert f"--targets {value!r} names nothing: give one or more names, comma-separated, or leave it out for all" \
        in done.stderr
    assert not (tmp_path / "results").exists()


def test_a_selection_with_nothing_runnable_here_is_refused_before_anything_starts(tmp_path, no_leftovers):
    started = time.monotonic()
    done = cli("run", "-s", "seed", "-t", "kong,kong-konnect", "--results", str(tmp_path / "results"), timeout=60)
    assert done.returncode == 2
    line = one_error_line(done.stderr)
    assert line.startswith("error: nothing to run: no selected target can run with the local engine. kong: Kong "
                           "Gateway ships as container images")
    assert "; kong-konnect: " in line
    assert line.endswith("`aigw-bench list` shows what runs here; a cloud-only target runs on AWS with "
                         "`aigw-bench cloud run --stack NAME` after `pulumi up` (docs/cloud.md).")
    assert time.monotonic() - started < 20 and not (tmp_path / "results").exists()


def test_render_of_a_cloud_only_target_asks_for_an_address():
    done = cli("render", "-t", "kong", timeout=60)
    assert done.returncode == 2 and "None" not in done.stdout
    assert "kong does not run on this machine, so it has no local address to render for: give its address with " \
           "--url" in done.stderr and "--profile cloud" in done.stderr
    done = cli("render", "-t", "kong", "--profile", "cloud", "--url", "http://10.0.1.5:8000", timeout=60)
    assert done.returncode == 0, done.stderr
    assert '"http://10.0.1.5:8000/v1/chat/completions"' in done.stdout


# ------------------------------------------------------------------ 8. gateway logs and the footer
SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


def test_a_gateways_last_log_lines_are_plain_text(tmp_path, tools_ready, no_leftovers):
    """Portkey (real, npm 1.15.2) clears the screen, spins ten frames with carriage returns and colours
    its banner; killed under load, its log's last lines in the report are what a terminal showed."""
    killed = {}

    def on_event(event):
        if isinstance(event, Tick) and event.target == "portkey" and not event.warmup and not killed:
            gateway = next(pid for pid in tool_processes() if "start-server.js" in command_line(pid)
                           and "guard.py" not in command_line(pid))
            os.killpg(os.getpgid(gateway), signal.SIGKILL)
            killed["pid"] = gateway

    run_dir = make_runner(None, ["portkey"], tmp_path / "results", on_event=on_event, duration="10s").run()
    assert killed, "portkey was never killed"
    raw = (run_dir / "targets/portkey/r1/gateway.log").read_bytes()
    assert b"\x1b[" in raw and "⠋".encode() in raw and b"\r" in raw  # what Portkey really wrote
    report = write_report(run_dir)["markdown"].read_text()
    log = report.split("last log lines:", 1)[1].split("```")[1]
    assert "🚀 Your AI Gateway is running at:" in log and "✨ Ready for connections!" in log
    assert "\x1b" not in log and "\r" not in log and not any(glyph in log for glyph in SPINNER), log
    html = (run_dir / "report.html").read_text()
    assert "\x1b" not in html and "Starting AI Gateway" not in html


def test_the_footer_command_works_from_the_repository_root(short_run):
    inside = REPO_DIR / "results" / f"test-footer-{uuid.uuid4().hex[:8]}"
    shutil.copytree(short_run, inside)
    try:
        write_report(inside)
        footer = (inside / "report.html").read_text().split("<footer>", 1)[1]
        command = footer.split("<code>", 1)[1].split("</code>", 1)[0]
        assert command == f"aigw-bench report results/{inside.name}"
        done = subprocess.run([str(CLI), *command.split()[1:]], cwd=REPO_DIR, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        assert f"`aigw-bench report results/{inside.name}`" in (inside / "report.md").read_text()
    finally:
        shutil.rmtree(inside)
    # Outside the repository, the command names the run by its absolute path.
    footer = (short_run / "report.html").read_text().split("<footer>", 1)[1]
    assert f"<code>aigw-bench report {short_run.resolve()}</code>" in footer
