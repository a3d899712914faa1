"""Run locks (aigw_bench/run/lock.py) held by real processes: a holder named in the refusal, a lock
left by a killed holder taken over, a clean release; the results directory's lock in the run loop."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from aigw_bench.run.lock import Holder, RunLock, RunLocked, live_holder, results_lock_path
from tests.helpers import make_runner

HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from aigw_bench.run.lock import Holder, RunLock
    lock = RunLock(Path(sys.argv[1]), "the results directory X")
    lock.acquire(Holder(command="aigw-bench run -s seed"))
    lock.update(Path(sys.argv[2]))
    print("held", flush=True)
    time.sleep(300)
""")


def hold(path: Path, run_dir: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), str(run_dir)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_held_lock_is_refused_naming_its_holder_and_a_killed_holders_is_taken_over(tmp_path):
    path = tmp_path / ".aigw-bench.lock"
    holder = hold(path, tmp_path / "20261204-120000-seed")
    try:
        with pytest.raises(RunLocked) as refused:
            RunLock(path, "the results directory X").acquire(Holder())
        message = str(refused.value)
        assert message.startswith(f"another run is using the results directory X (pid {holder.pid}, started ")
        assert f"results in {tmp_path / '20261204-120000-seed'}, command: aigw-bench run -s seed" in message
        assert f"stop it with `kill -INT {holder.pid}`. Lock file: {path}" in message
        assert live_holder(path).pid == holder.pid
    finally:
        holder.kill()  # SIGKILL: it cannot remove its lock file
        holder.wait()
    assert path.exists() and live_holder(path) is None
    lock = RunLock(path, "the results directory X")
    stale = lock.acquire(Holder(command="next"))
    assert stale is not None and stale.pid == holder.pid and stale.run_dir == str(tmp_path / "20261204-120000-seed")
    assert Holder.parse(path.read_text()).pid == os.getpid()
    lock.release()
    assert not path.exists()
    with RunLock(path, "the results directory X") as again:
        assert again.acquire(Holder()) is None  # released cleanly: nothing to take over


def test_a_run_into_a_results_directory_in_use_is_refused_before_anything_starts(tmp_path, tools_ready,
                                                                                  no_leftovers):
    results = tmp_path / "results"
    results.mkdir()
    holder = hold(results_lock_path(results), results / "20261204-120000-seed")
    try:
        runner = make_runner(None, ["direct"], results)
        with pytest.raises(RunLocked, match=rf"another run is using the results directory {results} \(pid "
                                            rf"{holder.pid}, started .*results in {results}/20261204-120000-seed"):
            runner.run()
        assert runner.run_dir is None and os.listdir(results) == [".aigw-bench.lock"]
    finally:
        holder.kill()
        holder.wait()


def test_a_bad_argument_is_said_while_another_run_holds_the_rig(tmp_path):
    """What the plan asks of the mock is checked before the rig's lock: a wrong --mock-profile is said at once,
    not hidden behind "another run is using this machine's local rig"."""
    from aigw_bench.local.engine import RIG_LOCK

    if live_holder(RIG_LOCK) is not None:
        pytest.skip(f"a real run holds {RIG_LOCK}")
    holder = hold(RIG_LOCK, tmp_path / "20261205-120000-suite-default")
    try:
        out = subprocess.run([str(Path(sys.executable).parent / "aigw-bench"), "run", "-t", "direct", "--mock",
                              "wiremock", "--mock-profile", "llm", "--results", str(tmp_path / "results")],
                             capture_output=True, text=True, timeout=60)
    finally:
        holder.kill()
        holder.wait()
        RIG_LOCK.unlink(missing_ok=True)
    said = " ".join(out.stderr.split())
    assert out.returncode == 2 and "the wiremock mock cannot serve the 'llm' pacing profile" in said, out.stderr
    assert not (tmp_path / "results").exists()
