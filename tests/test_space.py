"""Disk space of a run (aigw_bench/run/space.py): the estimate before it, and the watch during it on a
real tmpfs (running low, turning read-only), which gives the report's reserve back as it stops the run."""

from __future__ import annotations

import subprocess

import pytest

from aigw_bench.measure.plan import Knobs, measurement
from aigw_bench.run.interrupts import DiskFault
from aigw_bench.run.space import MIB, REPORT_RESERVE, DiskWatch, Reserve, estimate, free_bytes
from tests.helpers import SUDO, failing_ext4, fill, tmpfs

pytestmark = pytest.mark.pure


def test_the_estimate_follows_the_plan():
    suite = measurement("local", scenario=None, suite="default", mock_profile=None, knobs=Knobs(), repeats=None)
    cloud = measurement("cloud", scenario=None, suite="default", mock_profile=None, knobs=Knobs(), repeats=None)
    hey = measurement("local", scenario="hey", suite=None, mock_profile=None, knobs=Knobs(), repeats=None)
    local = estimate(suite, sessions=8, keep_raw=True)
    # overhead 5 s + seed 4 s at <= 8,000 req/s, 8 sessions: 576,000 requests' samples
    assert local.requests == 576_000 and 40 * MIB < local.bytes < 140 * MIB
    assert estimate(suite, sessions=8, keep_raw=False).requests == 8 * 5 * 8_000  # the overhead step keeps its own
    assert estimate(cloud, sessions=12, keep_raw=True).bytes > 10 * 2**30  # a cloud suite: gigabytes
    assert estimate(hey, sessions=1, keep_raw=True).requests == 10_000  # iterations, not duration x rate
    assert "x1.5 margin" in local.text() and f"+ {REPORT_RESERVE // MIB}.0 MiB kept for the report" in local.text()


def test_the_watch_stops_a_run_low_on_space_and_gives_the_reserve_back(tmp_path):
    with tmpfs(tmp_path / "disk", "48m") as disk:
        reserve = Reserve(disk / ".reserve", 16 * MIB)
        assert free_bytes(disk)[0] <= 32 * MIB  # real blocks, not a sparse file
        watch = DiskWatch(disk, reserve, every=0)
        watch.check()  # plenty left: nothing happens
        fill(disk)
        with pytest.raises(DiskFault, match=rf"no space left on the device \(0 B free\): {disk}"):
            watch.check()
        assert not (disk / ".reserve").exists() and free_bytes(disk)[0] >= 16 * MIB


def test_the_watch_stops_a_run_whose_disk_turns_read_only(tmp_path):
    with tmpfs(tmp_path / "disk", "8m") as disk:
        watch = DiskWatch(disk, None, every=0)
        watch.check()
        subprocess.run([*SUDO, "mount", "-o", "remount,ro", str(disk)], check=True)
        with pytest.raises(DiskFault, match=rf"the file system went read-only: {disk}"):
            watch.check()


def test_the_watch_sees_a_disk_that_refuses_writes_while_its_mount_reads_rw(tmp_path):
    """ext4 with errors=remount-ro after an error: statvfs still says writable; the reserve's write does not."""
    with failing_ext4(tmp_path / "disk", 16) as fail:
        disk = tmp_path / "disk"
        watch = DiskWatch(disk, Reserve(disk / ".reserve", MIB), every=0)
        watch.check()
        fail()
        assert free_bytes(disk)[1] is False  # what the mount flags say
        with pytest.raises(DiskFault, match=rf"the file system went read-only: {disk}"):
            watch.check()
