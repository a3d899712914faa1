"""Child processes never outlive the runner: groups, PDEATHSIG, signal handling, stale-group reaping."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from aigw_bench.local.processes import Supervisor, group_members, reap_stale_groups, state_file_for
from aigw_bench.run.interrupts import Interrupted, signals_as_exceptions

# A parent that forks a grandchild which ignores SIGTERM: the worst case for cleanup.
FORKING = textwrap.dedent("""
    import os, signal, sys, time
    if os.fork() == 0:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        time.sleep(300)
        os._exit(0)
    print("parent up", flush=True)
    time.sleep(300)
""")


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_stop_takes_the_whole_group_including_stubborn_grandchildren(tmp_path):
    with Supervisor() as sup:
        proc = sup.start("forker", [sys.executable, "-c", FORKING], tmp_path / "f.log", stop_timeout=1)
        assert wait_for(lambda: len(group_members(proc.pgid)) == 2)
        pgid = proc.pgid
        assert os.getpgid(proc.pid) == pgid != os.getpgid(0)
    assert group_members(pgid) == []


def test_everything_stops_when_the_block_raises(tmp_path):
    pgids = []
    with pytest.raises(RuntimeError), Supervisor() as sup:
        for i in range(3):
            pgids.append(sup.start(f"p{i}", ["sleep", "300"], tmp_path / f"{i}.log").pgid)
        raise RuntimeError("boom")
    assert all(group_members(p) == [] for p in pgids)


def test_cpu_affinity_is_applied(tmp_path):
    cpus = sorted(os.sched_getaffinity(0))[:1]
    with Supervisor() as sup:
        proc = sup.start("sleeper", ["sleep", "30"], tmp_path / "s.log", cpus=cpus)
        assert sorted(os.sched_getaffinity(proc.pid)) == cpus


def test_log_tail_and_exit_code_are_kept(tmp_path):
    with Supervisor() as sup:
        proc = sup.start("fail", [sys.executable, "-c", "print('line 1'); print('bad config'); raise SystemExit(3)"],
                         tmp_path / "x.log")
        assert proc.wait(10) == 3
        assert proc.log_tail(1) == ["bad config"]


def test_sigterm_becomes_an_exception_and_cleanup_runs(tmp_path):
    with pytest.raises(Interrupted), signals_as_exceptions(), Supervisor() as sup:
        pgid = sup.start("sleeper", ["sleep", "300"], tmp_path / "s.log").pgid
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    assert group_members(pgid) == []


RUNNER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from aigw_bench.local.processes import Supervisor, state_file_for
    state = Path(sys.argv[1])
    sup = Supervisor(state_file_for(state))
    sup.start("orphan-maker", [sys.executable, "-c", {forking!r}], state / "child.log")
    print("started", flush=True)
    time.sleep(300)
""").replace("{forking!r}", repr(FORKING))


def test_a_runner_killed_with_sigkill_leaves_nothing_after_the_next_start(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    runner = subprocess.Popen([sys.executable, "-c", RUNNER, str(state)], stdout=subprocess.PIPE, text=True)
    assert runner.stdout.readline().strip() == "started"
    record = json.loads(state_file_for(state, runner.pid).read_text())
    pgid = record["groups"][0]["pgid"]
    assert wait_for(lambda: len(group_members(pgid)) == 2)
    runner.kill()  # no cleanup can run in the runner itself
    runner.wait()
    # PDEATHSIG took the direct child; its grandchild (which ignores SIGTERM) is still there.
    assert wait_for(lambda: len(group_members(pgid)) == 1)
    stopped = reap_stale_groups(state)
    assert stopped == [f"orphan-maker (process group {pgid})"]
    assert group_members(pgid) == []
    assert not list(state.glob("groups-*.json"))


def test_reaping_ignores_a_live_runners_groups(tmp_path):
    state = tmp_path / "state"
    with Supervisor(state_file_for(state)) as sup:
        pgid = sup.start("mine", ["sleep", "300"], tmp_path / "s.log").pgid
        assert reap_stale_groups(state) == []
        assert group_members(pgid)


SCRIPT_WITH_A_CHILD = """
import sys, time
from pathlib import Path
from aigw_bench.local.processes import Supervisor
from aigw_bench.run.interrupts import exit_with

def main():
    with Supervisor() as sup:
        child = sup.start("sleeper", ["sleep", "60"], Path(sys.argv[1]) / "sleeper.log")
        print(child.pid, flush=True)
        time.sleep(60)
    return 0

exit_with(main)
"""


def test_a_script_run_with_exit_with_stops_its_children_on_sigterm(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT_WITH_A_CHILD, str(tmp_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    child = int(proc.stdout.readline())
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1 and "interrupted (SIGTERM)" in err
    deadline = time.monotonic() + 5
    while os.path.exists(f"/proc/{child}") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not os.path.exists(f"/proc/{child}"), "the child outlived the script"
