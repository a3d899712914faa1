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
        assert wait_for(lambda: len(group_members(proc.pgid)) == 3)  # the guard, the child, its grandchild
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


def _killed_runner(state):
    """A runner (a Python process with a Supervisor) whose child forks a grandchild that ignores SIGTERM;
    returns (runner, the child's process group, its guard's pid) once both are up."""
    runner = subprocess.Popen([sys.executable, "-c", RUNNER, str(state)], stdout=subprocess.PIPE, text=True)
    assert runner.stdout.readline().strip() == "started"
    record = json.loads(state_file_for(state, runner.pid).read_text())
    pgid = record["groups"][0]["pgid"]
    assert wait_for(lambda: len(group_members(pgid)) == 3)  # the guard, the child, its grandchild
    return runner, pgid


def test_a_runner_killed_with_sigkill_takes_every_process_it_started_with_it(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    runner, pgid = _killed_runner(state)
    members = group_members(pgid)
    runner.kill()  # no cleanup can run in the runner itself
    runner.wait()
    # The guard saw the runner go and killed its whole subtree: the grandchild that ignores SIGTERM (and
    # that PR_SET_PDEATHSIG never reached: it is not inherited) included, without waiting for a next run.
    assert wait_for(lambda: not any(os.path.exists(f"/proc/{pid}") and _state(pid) != "Z" for pid in members),
                    timeout=5), f"still alive: {[p for p in members if os.path.exists(f'/proc/{p}')]}"
    assert reap_stale_groups(state) == []  # nothing left for the next run to stop


def test_a_runner_killed_with_its_guard_is_cleaned_up_by_the_next_start(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    runner, pgid = _killed_runner(state)
    os.kill(pgid, signal.SIGKILL)  # the guard (the group's leader) first: it cannot clean up now
    runner.kill()
    runner.wait()
    # PR_SET_PDEATHSIG (set by the guard on its child) took the child; the grandchild is left.
    assert wait_for(lambda: len(group_members(pgid)) == 1)
    stopped = reap_stale_groups(state)
    assert stopped == [f"orphan-maker (process group {pgid})"]
    assert group_members(pgid) == []
    assert not list(state.glob("groups-*.json"))


def _state(pid: int) -> str:
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


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


# --- the guard (aigw_bench/local/guard.py) is transparent to the runner ------------------------------
def test_the_guard_exits_as_its_child_did(tmp_path):
    with Supervisor() as sup:
        code = sup.start("exits", [sys.executable, "-c", "raise SystemExit(7)"], tmp_path / "e.log")
        killed = sup.start("killed", ["sleep", "300"], tmp_path / "k.log")
        assert killed.pid != killed.guard_pid and os.getpgid(killed.pid) == killed.pgid == killed.guard_pid
        os.kill(killed.pid, signal.SIGKILL)  # the program alone, not its group: the guard reports how it died
        assert code.wait(10) == 7
        assert killed.wait(10) == -signal.SIGKILL


def test_a_program_that_cannot_start_is_named_as_before(tmp_path):
    with Supervisor() as sup, pytest.raises(FileNotFoundError, match=r"ghost: cannot start 'no-such-program'"):
        sup.start("ghost", ["no-such-program", "--flag"], tmp_path / "g.log")


def test_signals_to_the_group_reach_the_program_and_the_guard_waits_for_it(tmp_path):
    handles = ("import signal, sys, time\n"
               "signal.signal(signal.SIGINT, lambda *a: (print('stopping', flush=True), sys.exit(0)))\n"
               "print('up', flush=True)\ntime.sleep(60)")
    with Supervisor() as sup:
        proc = sup.start("graceful", [sys.executable, "-c", handles], tmp_path / "g.log")
        assert wait_for(lambda: "up" in proc.log_path.read_text())
        proc.signal(signal.SIGINT)  # as k6 is stopped: SIGINT to its group, then wait for its summary
        assert proc.wait(10) == 0
        assert proc.log_tail() == ["up", "stopping"]


MASTER_DIES = textwrap.dedent("""
    import os, signal, sys, time
    worker = os.fork()
    if worker == 0:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        time.sleep(300)
        os._exit(0)
    print(worker, flush=True)
    time.sleep(0.5)
    os._exit(3)  # the master crashes; its worker would hold the port on
""")


def test_what_a_dead_program_left_behind_goes_with_it(tmp_path):
    with Supervisor() as sup:
        proc = sup.start("master", [sys.executable, "-c", MASTER_DIES], tmp_path / "m.log")
        assert wait_for(lambda: proc.log_path.read_text().strip())
        worker = int(proc.log_path.read_text().split()[0])
        assert proc.wait(10) == 3
        assert _state(worker) in ("gone", "Z")


def test_the_guard_is_not_counted_in_the_resources(tmp_path):
    from aigw_bench.local.resources import ResourceSampler

    with Supervisor() as sup:
        proc = sup.start("sleeper", ["sleep", "30"], tmp_path / "s.log")
        sampler = ResourceSampler({"gateway": proc.pgid}, exclude={proc.guard_pid})
        sampler.sample()
        time.sleep(0.2)
        sampler.sample()
        assert sampler.rows[-1]["processes"] == 1
        assert sampler.rows[-1]["rss_mib"] < 5  # sleep's own, not Python's (the guard's ~9 MiB)
