"""The capacity search on targets whose limits are known: simulated ones (every branch of the search,
deterministically) and a real, deliberately slow process measured through the real runner."""

from __future__ import annotations

import pandas as pd
import pytest

from aigw_bench.measure.search import CapacitySearch, Probe
from analysis.report import build_report
from schema.mock import load_contract
from schema.results import read_outcomes
from schema.suites import CapacitySizes
from tests.helpers import build_catalog, fake_gateway, make_runner, write_suite

SIZES = CapacitySizes(bounds_ms=[10, 50, 250], default_bound_ms=50, step=2, warmup=1, max_steps=20, min_rate=10,
                      growth=1.6, resolution=0.05, max_vus=400)


def staircase(rate: float) -> float:
    """A target whose p99 is 5 ms up to 300 req/s, 30 ms up to 600, then 400 ms."""
    return 5.0 if rate <= 300 else 30.0 if rate <= 600 else 400.0


def run_search(p99, sizes=SIZES, reach=100_000, start=None, reach_by_bound=None) -> CapacitySearch:
    search = CapacitySearch(sizes, reach, start_rps=start, reach_by_bound=reach_by_bound or {})
    while (rate := search.next_rate()) is not None:
        latency = p99(rate)
        search.add(Probe(rate, latency, latency / 2, 0.0, 0, float(rate), int(rate * 2)))
    return search


def by_bound(search: CapacitySearch) -> dict[float, object]:
    return {r.bound_ms: r for r in search.results()}


def test_finds_each_bound_within_the_resolution():
    results = by_bound(run_search(staircase, start=100))
    for bound, limit in ((10, 300), (50, 600), (250, 600)):
        r = results[bound]
        assert r.resolved and not r.rig_bound
        assert limit / (1 + SIZES.resolution) <= r.capacity_rps <= limit, (bound, r)
        assert r.failing_rps > limit and r.failing_rps / r.capacity_rps <= 1 + SIZES.resolution


def test_steps_down_when_the_first_rate_is_already_too_much():
    results = by_bound(run_search(staircase, start=5000))
    assert 600 / 1.05 <= results[50].capacity_rps <= 600


def test_never_probes_above_the_rigs_reach_and_calls_it_rig_bound():
    search = run_search(staircase, reach=450, start=100)
    assert max(p.rate for p in search.probes) <= 450
    results = by_bound(search)
    assert results[50].rig_bound and results[50].capacity_rps == 450  # "at least 450"
    assert not results[10].rig_bound and results[10].capacity_rps <= 300


def test_a_bound_the_rig_itself_cannot_meet_is_rig_bound_below_the_global_reach():
    # The rig alone sustains p99 <= 10 ms only up to 250 req/s: a target passing at 80% of that is the rig's.
    results = by_bound(run_search(staircase, start=100, reach_by_bound={10.0: 200.0}))
    assert results[10].rig_bound and 200 <= results[10].capacity_rps <= 300
    assert not results[50].rig_bound


def test_nothing_passes_means_no_capacity():
    results = by_bound(run_search(lambda rate: 1000.0, start=100))
    assert all(r.capacity_rps is None and not r.rig_bound for r in results.values())
    assert "no probed rate met the bound" in results[50].note


def test_a_pass_above_a_failing_rate_is_marked_unstable_and_the_cautious_side_quoted():
    # A target whose p99 jumps over 50 ms at 150 req/s (one pause caught in that step) but not above.
    search = run_search(lambda rate: 80.0 if 140 <= rate <= 160 else staircase(rate), start=100)
    r = by_bound(search)[50]
    assert 140 <= r.failing_rps <= 160 and r.capacity_rps < r.failing_rps  # the lowest failing rate caps it
    assert r.passed_above_rps and min(r.passed_above_rps) > 160 and max(r.passed_above_rps) <= 600
    assert "noisy" in r.note
    assert not by_bound(run_search(staircase, start=100))[50].passed_above_rps
    # Nothing passed below the failing rate: the note must not say that nothing passed at all.
    lone = by_bound(run_search(lambda rate: 80.0 if rate <= 200 else 5.0 if rate <= 600 else 400.0, start=150))[50]
    assert lone.capacity_rps is None and lone.passed_above_rps
    assert "no rate below the lowest failing one" in lone.note and "no probed rate met" not in lone.note


def test_errors_drops_and_short_delivery_fail_a_probe_whatever_its_latency():
    assert not Probe(100, 5, 2, 0.002, 0, 100.0, 200).passes(50)  # 0.2% errors
    assert not Probe(100, 5, 2, 0.0, 3, 100.0, 200).passes(50)  # dropped iterations
    assert not Probe(100, 5, 2, 0.0, 0, 80.0, 160).passes(50)  # delivered 80 of 100 req/s
    assert not Probe(100, 5, 2, 0.0, 0, 100.0, 200, problem="k6 exited").passes(50)
    assert Probe(100, 5, 2, 0.0009, 0, 95.0, 190).passes(50)


def test_the_step_budget_is_respected_and_said():
    search = run_search(staircase, sizes=SIZES.model_copy(update={"max_steps": 3}), start=100)
    assert len(search.probes) == 3
    assert any(not r.resolved for r in search.results())


# -------------------------------------------------------------------- a real slow target
# One request at a time (a lock around the work), 10 ms each: at most ~100 req/s, and the queue (so
# the p99) explodes as the offered rate nears it. Connections are accepted concurrently.
SLOW = """
import sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
WORK = threading.Lock()
ANSWER = {answer!r}
class H(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    def do_GET(self):
        self.send_response(200); self.send_header('Content-Length', '2'); self.end_headers(); self.wfile.write(b'ok')
    def do_POST(self):
        self.rfile.read(int(self.headers['Content-Length']))
        with WORK:
            time.sleep(0.010)
        self.send_response(200); self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(ANSWER))); self.end_headers(); self.wfile.write(ANSWER)
    def log_message(self, *a): pass
ThreadingHTTPServer(('127.0.0.1', int(sys.argv[2])), H).serve_forever()
""".replace("{answer!r}", repr(load_contract().completion_body().encode()))


@pytest.mark.slow
def test_the_real_search_finds_a_known_limit(tmp_path, tools_ready, no_leftovers):
    entry = fake_gateway("slow", 18995, SLOW)
    root = build_catalog(tmp_path / "catalog", copies=["direct"], fakes=[entry])
    suite = write_suite(tmp_path, capacity={
        "bounds_ms": [50], "default_bound_ms": 50, "step": "2s", "warmup": "1s", "max_steps": 6, "min_rate": 20,
        "growth": 1.6, "resolution": 0.15, "max_vus": 200}, steps=["seed", "capacity"])
    runner = make_runner(root, ["slow"], tmp_path / "results", suite=suite)
    run_dir = runner.run()
    (outcome,) = read_outcomes(run_dir)
    capacity = outcome.steps["capacity"]
    (bound,) = capacity.data["bounds"]
    assert 50 <= bound["capacity_rps"] <= 100, capacity.data["probes"]
    assert bound["failing_rps"] is not None and bound["failing_rps"] <= 140
    assert not bound["rig_bound"]
    table = build_report(run_dir).table.set_index("target")
    assert table.loc["slow", "capacity_rps"] == bound["capacity_rps"]
    assert not table.loc["slow", "capacity_rig_bound"]
    front = pd.read_csv(run_dir / "frontier.csv")
    assert set(front["target"]) == {"slow", "direct"}  # the rig's own frontier rides as the direct row
