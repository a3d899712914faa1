"""Intervals on differences, checked against computations on synthetic data with a known truth."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from analysis.overhead import Block, Pairs, added_latency, carry_over, leaks, outlasts_settle
from analysis.stats import cluster_bootstrap_diff, t95

pytestmark = pytest.mark.pure


def synthetic_pairs(rng: np.random.Generator, n: int, shift_ms: float, drift: bool = True) -> Pairs:
    """Direct latencies with slow drifts of the machine; the target side is the same moment plus a shift."""
    base = rng.lognormal(mean=np.log(0.2), sigma=0.3, size=n)
    if drift:
        base *= 1 + 0.3 * np.sin(np.linspace(0, 6 * np.pi, n))  # both sides see the same slow moments
    target = base * rng.lognormal(0, 0.05, n) + shift_ms
    return Pairs.from_iterations(base, target)


def test_t_quantiles_come_from_scipy():
    assert t95(2) == pytest.approx(4.302652729749464)
    assert t95(30) == pytest.approx(stats.t.ppf(0.975, 30))
    assert math.isnan(t95(0))


def test_added_latency_recovers_a_known_shift_with_an_interval_around_it():
    rng = np.random.default_rng(7)
    out = added_latency([synthetic_pairs(rng, 3000, 0.5), synthetic_pairs(rng, 3000, 0.5)])
    # The median of (base * noise + 0.5) minus the median of base: about 500 µs.
    assert out["added_p50_us"] == pytest.approx(500, abs=15)
    assert out["added_p50_us_ci_low"] < 500 < out["added_p50_us_ci_high"]
    assert out["added_p50_us_ci_high"] - out["added_p50_us_ci_low"] < 40
    assert out["pairs"] == 6000 and out["blocks"] >= 60


def test_the_interval_equals_an_independent_block_bootstrap():
    """The same resampling written out with numpy: blocks of pairs drawn with replacement."""
    rng = np.random.default_rng(11)
    blocks_a = [rng.lognormal(np.log(0.2), 0.3, 50) for _ in range(80)]
    blocks_b = [a * rng.lognormal(0, 0.05, 50) + 0.3 for a in blocks_a]
    est, low, high = cluster_bootstrap_diff(blocks_a, blocks_b, [0.5, 0.99], paired=True)
    own = np.random.default_rng(99)
    draws = []
    for _ in range(4000):
        pick = own.integers(0, len(blocks_a), len(blocks_a))
        a = np.concatenate([blocks_a[i] for i in pick])
        b = np.concatenate([blocks_b[i] for i in pick])
        draws.append(np.quantile(b, [0.5, 0.99]) - np.quantile(a, [0.5, 0.99]))
    draws = np.array(draws)
    mine_low, mine_high = np.percentile(draws, [2.5, 97.5], axis=0)
    # Two Monte Carlo estimates of the same interval: equal up to resampling noise.
    width = high - low
    assert np.all(np.abs(low - mine_low) < 0.1 * width) and np.all(np.abs(high - mine_high) < 0.1 * width)
    assert est[0] == pytest.approx(np.quantile(np.concatenate(blocks_b), 0.5)
                                   - np.quantile(np.concatenate(blocks_a), 0.5))


def test_the_interval_covers_the_truth_about_95_percent_of_the_time():
    rng = np.random.default_rng(2026)
    truth = 0.25  # ms added at every request: the p50 difference is ~250 µs
    covered = 0
    runs = 40
    for _ in range(runs):
        out = added_latency([synthetic_pairs(rng, 1200, truth, drift=False)])
        # Per dataset the population difference of medians is known exactly up to the noise factor's
        # effect; compute it from a very large sample of the same process instead.
        covered += out["added_p50_us_ci_low"] <= TRUE_P50_DIFF_US <= out["added_p50_us_ci_high"]
    assert covered / runs >= 0.85


def _true_p50_difference() -> float:
    big = synthetic_pairs(np.random.default_rng(0), 2_000_000, 0.25, drift=False)
    return float((np.quantile(big.target, 0.5) - np.quantile(big.direct, 0.5)) * 1000)


TRUE_P50_DIFF_US = _true_p50_difference()


def test_no_difference_gives_an_interval_around_zero():
    rng = np.random.default_rng(5)
    base = rng.lognormal(np.log(0.2), 0.3, 4000)
    other = rng.permutation(base)  # the same distribution, another order
    out = added_latency([Pairs.from_iterations(base, other)])
    assert out["added_p50_us_ci_low"] <= 0 <= out["added_p50_us_ci_high"]


def test_unpaired_sides_are_resampled_on_their_own():
    rng = np.random.default_rng(3)
    a = [np.array([v]) for v in rng.normal(100, 10, 300)]
    b = [np.array([v]) for v in rng.normal(130, 10, 200)]
    est, low, high = cluster_bootstrap_diff(a, b, [0.5])
    assert est[0] == pytest.approx(30, abs=3) and low[0] < est[0] < high[0]
    # The textbook large-sample interval for a difference of medians, as a cross-check of the width.
    se = math.sqrt(sum(1.2533 ** 2 * 10 ** 2 / n for n in (300, 200)))
    assert high[0] - low[0] == pytest.approx(2 * 1.96 * se, rel=0.35)


def test_fewer_than_two_clusters_have_no_interval():
    est, low, high = cluster_bootstrap_diff([np.array([1.0, 2.0])], [np.array([2.0, 3.0])], [0.5])
    assert est[0] == 1.0 and math.isnan(low[0]) and math.isnan(high[0])


def test_intervals_from_repeats_never_leave_what_was_measured():
    """Two repeats get their range, not Student's t (with one degree of freedom, 100 and 5,000 RPS gave
    a 95% CI of -31,000 to 36,000); from five on, a bootstrap interval of the mean, inside the range."""
    import pandas as pd

    from analysis.stats import summarize_repeats

    two = summarize_repeats(pd.DataFrame({"target": "t", "metric": "rps", "repeat": [1, 2], "value": [100.0, 5000.0]}))
    row = two.iloc[0]
    assert (row["ci_low"], row["ci_high"], row["interval"]) == (100.0, 5000.0, "range")
    values = [900.0, 1000.0, 1100.0, 950.0, 1050.0, 1020.0]
    six = summarize_repeats(pd.DataFrame({"target": "t", "metric": "rps", "repeat": range(6), "value": values}))
    row = six.iloc[0]
    assert row["interval"] == "95% CI"
    assert min(values) <= row["ci_low"] < np.mean(values) < row["ci_high"] <= max(values)


def test_blocks_are_found_where_the_side_changes():
    """Requests in the order they were sent: a block ends where the side changes; direct block j goes with
    the target block after it; a direct block cut off by the run's end has no partner and is dropped."""
    from analysis.overhead import OverheadDataError, blocks_in_order

    sent = [("direct", True, 9.0), ("direct", False, 1.0), ("direct", False, 1.2),
            ("target", True, 8.0), ("target", False, 2.0),
            ("direct", True, 7.0), ("direct", False, 1.1),
            ("target", False, 2.2), ("target", False, 2.4),
            ("direct", True, 6.0)]
    pairs = blocks_in_order(sent, "test")
    assert [list(b.direct) for b in pairs.blocks] == [[1.0, 1.2], [1.1]]
    assert [list(b.target) for b in pairs.blocks] == [[2.0], [2.2, 2.4]]
    assert [list(b.direct_settle) for b in pairs.blocks] == [[9.0], [7.0]]
    assert [b.after_target for b in pairs.blocks] == [False, True]
    with pytest.raises(OverheadDataError, match="test: no pair"):
        blocks_in_order([("direct", True, 1.0), ("target", True, 2.0)], "test")


def test_a_direct_side_above_the_control_s_by_more_than_the_tolerance_leaks():
    """max(10 µs, 15% of the control's direct p50): 95 µs in the control, so 14.25 µs."""
    assert leaks({"direct_leak_us": 20.0, "direct_p50_us": 115.0})
    assert not leaks({"direct_leak_us": 12.0, "direct_p50_us": 107.0})
    assert not leaks({"direct_leak_us": 8.0, "direct_p50_us": 58.0})  # the 10 µs floor
    assert leaks({"direct_leak_us": 11.0, "direct_p50_us": 61.0})
    assert not leaks({"direct_leak_us": float("nan"), "direct_p50_us": 95.0})


def _steady_blocks(rng, early_shift_ms: float, noise_ms: float, blocks: int = 8) -> Pairs:
    """Blocks of 300 steady direct requests at 0.1 ms, the first third ``early_shift_ms`` slower, each block
    moved as a whole by ``noise_ms`` (a shared machine: some blocks' starts slower, others' ends)."""
    out = []
    for i in range(blocks):
        d = 0.1 + rng.normal(0, 0.002, 300)
        d[:100] += early_shift_ms + (noise_ms if i % 2 else -noise_ms)
        out.append(Block(d, d + 0.1, direct_settle=np.full(50, 0.1), after_target=True))
    return Pairs(out)


def test_a_drift_is_judged_on_its_interval_not_its_point():
    """The steady requests' early-against-late drift flags a carry-over that outlasted the settle window only
    when its interval lies above the tolerance: blocks that drift both ways by 30 µs average +15 µs (what a
    no-spill proxy read on this machine) and are not flagged; a steady +30 µs in every block is."""
    rng = np.random.default_rng(5)
    noisy = carry_over([_steady_blocks(rng, 0.015, 0.03)])
    assert noisy["carryover_drift_us"] > 10 and noisy["carryover_drift_us_ci_low"] < 10, noisy
    assert not outlasts_settle({**noisy, "direct_p50_us": 100.0})
    steady = carry_over([_steady_blocks(rng, 0.030, 0.0)])
    assert steady["carryover_drift_us_ci_low"] > 25, steady
    assert outlasts_settle({**steady, "direct_p50_us": 100.0})
    # A run written before the interval existed is judged on the point.
    assert outlasts_settle({"carryover_drift_us": 30.0, "direct_p50_us": 100.0})
