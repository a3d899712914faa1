"""CPU seconds of the pods over exactly a window, from Prometheus' raw counter samples (what the
efficiency step divides by the requests), and the runner's files turned into resource rows."""

from __future__ import annotations

import json

import pytest

from aigw_bench.cloud.resources import cpu_seconds, pod_usage

pytestmark = pytest.mark.pure


def answer(series: list[list[tuple[float, float]]]) -> str:
    return json.dumps({"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": {"container": f"c{i}"}, "values": [[t, str(v)] for t, v in s]} for i, s in enumerate(series)]}})


def test_cpu_seconds_interpolate_at_the_window_edges_and_sum_containers(tmp_path):
    path = tmp_path / "promraw-gateway-cpu.json"
    # Two containers, 2 and 0.5 cores, sampled every 10 s; the window starts and ends between samples.
    path.write_text(answer([[(t, 2.0 * t) for t in range(0, 101, 10)], [(t, 0.5 * t) for t in range(5, 101, 10)]]))
    assert cpu_seconds(path, 13.0, 77.0) == pytest.approx(2.5 * 64)


def test_a_restarted_container_keeps_what_it_had_counted(tmp_path):
    path = tmp_path / "promraw-gateway-cpu.json"
    # 1 core; the container restarts at t=40 (the counter starts again from 0).
    path.write_text(answer([[(0, 0.0), (20, 20.0), (40, 40.0), (50, 5.0), (60, 15.0), (80, 35.0)]]))
    assert cpu_seconds(path, 10.0, 70.0) == pytest.approx(10.0 + 20.0 + 5.0 + 20.0)


def test_rows_are_relative_to_the_window_and_problems_are_reported(tmp_path):
    (tmp_path / "window.txt").write_text("1000 1060\n")
    series = {"status": "success", "data": {"result": [{"metric": {}, "values": [[1000, "1.5"], [1005, "1.5"]]}]}}
    memory = {"status": "success", "data": {"result": [{"metric": {}, "values": [[1000, str(300 * 2**20)],
                                                                                 [1005, str(300 * 2**20)]]}]}}
    (tmp_path / "prom-gateway-cpu.json").write_text(json.dumps(series))
    (tmp_path / "prom-gateway-mem.json").write_text(json.dumps(memory))
    (tmp_path / "prom-mock-cpu.json").write_text(json.dumps({"status": "error", "error": "bad query"}))
    (tmp_path / "prom-mock-mem.json").write_text(json.dumps(memory))
    (tmp_path / "prom-errors.txt").write_text("curl: (7) Failed to connect\n")
    usage = pod_usage(tmp_path)
    assert [(r["t_s"], r["role"], r["cpu_cores"], r["rss_mib"]) for r in usage.rows] == \
        [(0.0, "gateway", 1.5, 300.0), (5.0, "gateway", 1.5, 300.0)]
    assert any("Failed to connect" in p for p in usage.problems)
    assert any(p.startswith("mock: ") and "bad query" in p for p in usage.problems)
    assert usage.cpu_seconds == {}  # no raw samples came: no CPU seconds made up
