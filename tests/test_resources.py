"""The CPU a process group used, as the efficiency step reads it: to the millisecond where its threads
live on, complete to the clock tick where threads came and went between two samples."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from contextlib import contextmanager

import pytest

from aigw_bench.local.resources import ResourceSampler

pytestmark = pytest.mark.pure

# Burns CPU in a second thread (a thread's time must count) and in its main thread, and says how much
# its whole process used. argv[1]: "stay" keeps the worker alive after its work, "exit" lets it end.
BURNER = textwrap.dedent("""
    import sys, threading, time
    def burn(seconds):
        end = time.thread_time() + seconds
        while time.thread_time() < end:
            pass
    done = threading.Event()
    def worker(seconds):
        burn(seconds)
        if sys.argv[1] == "stay":
            done.wait()
    print(time.process_time(), flush=True)
    sys.stdin.readline()
    thread = threading.Thread(target=worker, args=(float(sys.argv[2]),), daemon=True)
    thread.start()
    burn(0.012)
    while thread.is_alive() and time.thread_time() < 5 and sys.argv[1] == "exit":
        time.sleep(0.001)
    time.sleep(0.1)
    print(time.process_time(), flush=True)
    sys.stdin.readline()
""")


@contextmanager
def burner(mode: str, seconds: float):
    proc = subprocess.Popen([sys.executable, "-c", BURNER, mode, str(seconds)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        yield proc
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def measure(proc: subprocess.Popen) -> tuple[float, float]:
    """(what the sampler read, what the process used by its own clock) over the burn."""
    before = float(proc.stdout.readline())
    sampler = ResourceSampler({"gateway": proc.pid})
    sampler.sample()
    proc.stdin.write("go\n")
    proc.stdin.flush()
    after = float(proc.stdout.readline())
    sampler.sample()
    assert sampler.rows[-1]["cpu_cores"] > 0
    return sampler.cpu_seconds()["gateway"], after - before


def test_cpu_time_is_read_to_the_millisecond():
    """37 ms of CPU in two threads that live on: read within 2 ms (clock ticks would read 30 or 40)."""
    with burner("stay", 0.025) as proc:
        read, used = measure(proc)
    assert abs(read - used) < 0.002, (read, used)


def test_a_thread_that_ended_between_two_samples_still_counts():
    """Its own time is gone from the threads' statistics with it; the process's ticks still hold it."""
    with burner("exit", 0.080) as proc:
        read, used = measure(proc)
    assert abs(read - used) <= 0.025, (read, used)
