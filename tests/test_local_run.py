"""A real local run of every catalog target: real WireMock, nginx, Portkey, LiteLLM and k6.

One short run (module-scoped) feeds all assertions: statuses, files, the comparison table against
k6's own summary, the report, and that no process is left behind.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from aigw_bench.measure.events import TargetStarted, Tick
from analysis.load import SUMMARY_FIELDS
from analysis.report import write_report
from schema.results import read_manifest_data, read_outcomes
from tests.helpers import SHORT, make_runner, tool_processes

pytestmark = pytest.mark.slow

ALL = ["direct", "nginx", "kong", "litellm", "portkey"]


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, tools_ready):
    before = tool_processes()
    events = []
    runner = make_runner(None, ALL, tmp_path_factory.mktemp("results"),
                         on_event=events.append)
    run_dir = runner.run()
    left = tool_processes() - before
    paths = write_report(run_dir)
    return {"run_dir": run_dir, "events": events, "left": left, "paths": paths}


def outcome(run, name):
    return next(o for o in read_outcomes(run["run_dir"]) if o.target == name)


def test_no_process_is_left_behind(full_run):
    assert full_run["left"] == set()


@pytest.mark.parametrize("name", ["direct", "nginx", "litellm", "portkey"])
def test_each_runnable_target_is_measured_with_all_its_files(full_run, name):
    o = outcome(full_run, name)
    assert o.status == "ok", (o.reason, o.evidence)
    assert o.evidence["smoke"]["ok"] and o.evidence["smoke"]["http_status"] == 200
    for key in ("summary", "raw", "timeseries", "histogram", "k6_log", "script", "mock_log", "resources"):
        assert key in o.files, key
    assert o.k6_exit_code in (0, 99)


def test_kong_is_reported_as_not_runnable_with_its_reason(full_run):
    o = outcome(full_run, "kong")
    assert o.status == "not_runnable" and "registries" in o.reason


def test_every_target_received_the_same_body(full_run):
    bodies = {o.body_sha256 for o in read_outcomes(full_run["run_dir"]) if o.status == "ok"}
    assert len(bodies) == 1


def test_comparison_table_matches_k6s_own_summary(full_run):
    table = pd.read_csv(full_run["paths"]["comparison"]).set_index("target")
    for name in ("direct", "nginx", "litellm", "portkey"):
        summary = json.loads((full_run["run_dir"] / "targets" / name / "r1" / "seed" / "summary.json").read_text())
        metrics = summary["metrics"]
        for column in ("requests", "rps", "latency_p50_ms", "latency_p90_ms", "latency_p95_ms", "latency_p99_ms",
                       "latency_max_ms"):
            metric, stat = SUMMARY_FIELDS[column]
            assert table.loc[name, column] == pytest.approx(metrics[metric]["values"][stat], rel=1e-6), column
        assert table.loc[name, "error_rate"] == pytest.approx(1 - metrics["aigw_ok"]["values"]["rate"], abs=1e-9)
        assert table.loc[name, "requests"] > 100


def test_relative_throughput_is_against_the_baseline_and_no_latency_is_added_from_a_closed_loop(full_run):
    table = pd.read_csv(full_run["paths"]["comparison"]).set_index("target")
    base = table.loc["direct"]
    for name in ("nginx", "litellm", "portkey"):
        row = table.loc[name]
        assert row["rps_pct_of_baseline"] == pytest.approx(row["rps"] / base["rps"] * 100, rel=1e-6)
    # The seed scenario is a closed loop: its latency is queueing, nothing is subtracted from it.
    assert table[["rate_added_p50_ms", "rate_added_p95_ms", "rate_added_p99_ms"]].isna().all().all()


def test_per_second_series_adds_up_to_the_request_count(full_run):
    for name in ("direct", "portkey"):
        work = full_run["run_dir"] / "targets" / name / "r1" / "seed"
        series = pd.read_csv(work / "timeseries.csv")
        summary = json.loads((work / "summary.json").read_text())
        assert series["requests"].sum() == summary["metrics"]["http_reqs"]["values"]["count"]
        hist = pd.read_csv(work / "histogram.csv")
        assert hist["count"].sum() == summary["metrics"]["http_req_duration"]["values"]["count"]


def test_manifest_records_versions_pinning_scenario_and_commit(full_run):
    m = read_manifest_data(full_run["run_dir"])
    assert m["scenario"]["name"] == "seed" and m["scenario"]["params"]["vus"] == 10
    assert m["tools"]["k6"].startswith("k6 v1.1.0")
    assert m["mock"]["name"] == "fast" and m["mock"]["version_check"]["installed"] == "1.22.1"
    assert m["mock"]["profile"]["name"] == "instant"
    # The baseline is the mock that ran: its name and version, never the catalog's placeholder.
    direct = m["targets"]["direct"]
    assert direct["version"] == m["mock"]["version"] == "1.22.1" and "nginx + Lua" in direct["title"]
    versions = full_run["paths"]["markdown"].read_text()
    assert "| direct (k6 straight to the nginx + Lua (ngx_lua) mock) | 1.22.1 | 1.22.1 | the mock above (fast) |" \
        in versions
    for name in ("nginx", "litellm", "portkey"):
        check = m["targets"][name]["version_check"]
        assert check["matches_pin"] is True, (name, check)
    assert m["cpu_pinning"]["note"]
    assert "commit" in m["git"] and m["machine"]["cpus_usable"] >= 1


def test_the_rig_measured_itself_first(full_run):
    rig = read_manifest_data(full_run["run_dir"])["rig"]
    assert rig["mock"] == "fast" and rig["profile"] == "instant"
    assert rig["ceiling_rps"] > 500 and 0 < rig["floor_ms"]["p50"] <= rig["floor_ms"]["p99"]
    assert rig["reach_rps"] == pytest.approx(0.8 * rig["ceiling_rps"])
    for kind in ("ceiling", "floor"):
        assert (full_run["run_dir"] / "rig" / kind / "summary.json").is_file()
    # Before any target: its k6 runs came first.
    starts = [e.target for e in full_run["events"] if isinstance(e, TargetStarted)]
    assert starts[0] == "rig"


def test_report_shows_every_target(full_run):
    text = full_run["paths"]["markdown"].read_text()
    for name in ALL:
        assert f"| {name} |" in text
    assert "not runnable here" in text
    assert "## Headline" in text
    assert "portkey delivered" in text or "litellm delivered" in text


def test_progress_events_tell_target_and_time(full_run):
    ticks = [e for e in full_run["events"] if isinstance(e, Tick) and not e.warmup and e.label == "seed"]
    assert ticks and all(t.duration == 3 for t in ticks)
    assert {e.target for e in full_run["events"] if isinstance(e, TargetStarted)} == {"rig", *ALL}


def test_html_report_renders_in_a_real_browser(full_run, tmp_path):
    from tests.browser import dump_dom, screenshot

    html = full_run["paths"]["html"]
    dom = dump_dom(html, tmp_path / "profile")
    assert f"<title>aigw-bench report: {full_run['run_dir'].name}</title>" in dom
    assert 'id="results-table"' in dom
    for name in ("direct", "nginx", "kong", "litellm", "portkey"):
        assert f"</span>{name}</td>" in dom
    for chart in ("throughput", "latency", "over-time", "distribution", "resources"):
        assert f'id="chart-{chart}"><svg' in dom, chart
    png = screenshot(html, full_run["run_dir"] / "report.png", tmp_path / "profile")
    assert png.stat().st_size > 50_000  # a rendered page, not a blank one


@pytest.mark.parametrize("name", ["direct", "nginx", "litellm", "portkey"])
def test_render_prints_byte_for_byte_the_script_the_run_sent(full_run, name):
    """`aigw-bench render` builds the run's own template context: what it prints is what k6 got."""
    cli = Path(sys.executable).parent / "aigw-bench"
    knobs = [f"--{k.replace('_', '-')}={v}" for k, v in SHORT.items()]
    out = subprocess.run([str(cli), "render", "-t", name, "-s", "seed", *knobs], capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    sent = (full_run["run_dir"] / "targets" / name / "r1" / "seed" / "script.js").read_bytes()
    assert out.stdout == sent
