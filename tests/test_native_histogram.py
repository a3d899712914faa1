"""Native histograms (analysis/native_histogram.py): bucket indices as client_golang computes them,
the wire form, and percentiles merged across generators against the exact ones of the same samples."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from analysis.native_histogram import (
    K6_SCHEMA,
    HistogramError,
    NativeHistogram,
    bucket_bounds,
    bucket_index,
    merge,
    relative_error_bound,
)

pytestmark = pytest.mark.pure

QUANTILES = (0.5, 0.9, 0.95, 0.99, 0.999)


def latencies(seed: int, n: int, median_s: float) -> list[float]:
    """Long-tailed latencies in seconds (log-normal body, a slow tail), like a gateway under load."""
    rng = random.Random(seed)
    body = [rng.lognormvariate(math.log(median_s), 0.35) for _ in range(n)]
    return [v * (8 if rng.random() < 0.01 else 1) for v in body]


def exact_quantile(samples: list[float], q: float) -> float:
    """The smallest sample with at least q of the samples at or below it (k6 and Prometheus rank this way)."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


@pytest.mark.parametrize("schema", [-1, 0, 1, 3, 8])
def test_bucket_index_puts_values_inside_their_bucket_and_boundaries_below(schema):
    rng = random.Random(schema)
    for v in [rng.uniform(1e-4, 50) for _ in range(2000)] + [0.5, 1.0, 2.0, 0.25, 1024.0]:
        lower, upper = bucket_bounds(schema, bucket_index(v, schema))
        assert lower < v <= upper * (1 + 1e-12), (v, lower, upper)
    # 1 and (for schema >= 0, where every power of two is a boundary) 2 are the upper bounds of their
    # buckets: buckets are (lower, upper].
    assert bucket_index(1.0, schema) == 0
    if schema >= 0:
        assert bucket_bounds(schema, bucket_index(2.0, schema))[1] == pytest.approx(2.0)


def test_k6_schema_is_the_largest_with_a_factor_at_most_1_1():
    # client_golang pickSchema: the largest n with 2^(2^-n) <= NativeHistogramBucketFactor (1.1 in k6).
    assert 2 ** (2 ** -K6_SCHEMA) <= 1.1 < 2 ** (2 ** -(K6_SCHEMA - 1))
    assert relative_error_bound(K6_SCHEMA) == pytest.approx(0.0905, abs=1e-4)


def test_spans_and_deltas_round_trip():
    h = NativeHistogram.of_samples([*latencies(1, 5000, 0.02), 0.0, 0.0])
    spans, deltas = h.to_spans()
    assert len(spans) > 1, "the sample should leave gaps between populated buckets"
    back = NativeHistogram.from_spans(schema=h.schema, zero_threshold=h.zero_threshold, zero_count=h.zero_count,
                                      count=h.count, sum=h.sum, positive_spans=spans, positive_deltas=deltas)
    assert back.buckets == h.buckets and back.zero_count == 2 and back.count == 5002


def test_spans_decoding_by_hand():
    # Buckets 3, 4 and 7 with counts 2, 5, 1: spans (3, 2), (2, 1); deltas 2, +3, -4.
    h = NativeHistogram.from_spans(schema=0, zero_threshold=0.001, zero_count=1, count=9, sum=0,
                                   positive_spans=[(3, 2), (2, 1)], positive_deltas=[2, 3, -4])
    assert h.buckets == {3: 2, 4: 5, 7: 1}


def test_inconsistent_wire_data_is_refused():
    with pytest.raises(HistogramError, match="cover 2 buckets but 1 deltas"):
        NativeHistogram.from_spans(schema=3, zero_threshold=0, zero_count=0, count=1, sum=1,
                                   positive_spans=[(0, 2)], positive_deltas=[1])
    with pytest.raises(HistogramError, match="hold 3 observations but the count says 5"):
        NativeHistogram.from_spans(schema=3, zero_threshold=0, zero_count=0, count=5, sum=1,
                                   positive_spans=[(0, 2)], positive_deltas=[1, 1])


def test_prometheus_json_form_gives_the_same_histogram():
    h = NativeHistogram.of_samples([*latencies(2, 3000, 0.005), 0.0], zero_threshold=1e-9)
    wire = {"count": str(h.count), "sum": str(h.sum),
            "buckets": [[3, str(-h.zero_threshold), str(h.zero_threshold), str(h.zero_count)]] + [
                [0, repr(lo), repr(up), str(h.buckets[i])]
                for i in sorted(h.buckets) for lo, up in [bucket_bounds(h.schema, i)]]}
    back = NativeHistogram.from_prometheus_json(wire)
    assert back.schema == K6_SCHEMA and back.buckets == h.buckets
    assert back.zero_count == 1 and back.zero_threshold == pytest.approx(1e-9)


def test_merged_generators_equal_the_histogram_of_all_samples():
    generators = [latencies(10 + g, 20_000, 0.012 * (1 + g / 4)) for g in range(3)]
    merged = merge(NativeHistogram.of_samples(s) for s in generators)
    union = NativeHistogram.of_samples([v for s in generators for v in s])
    assert merged.buckets == union.buckets and merged.count == union.count == 60_000
    assert merged.sum == pytest.approx(union.sum)


@pytest.mark.parametrize("q", QUANTILES)
def test_merged_percentiles_against_the_exact_ones_of_the_same_samples(q):
    # Three generators seeing different latencies (one slower): averaging their percentiles would be wrong.
    generators = [latencies(20 + g, 20_000, 0.010 * (1 + g)) for g in range(3)]
    wire = [(*NativeHistogram.of_samples(s).to_spans(), NativeHistogram.of_samples(s)) for s in generators]
    decoded = [NativeHistogram.from_spans(schema=h.schema, zero_threshold=h.zero_threshold, zero_count=h.zero_count,
                                          count=h.count, sum=h.sum, positive_spans=spans, positive_deltas=deltas)
               for spans, deltas, h in wire]
    merged = merge(decoded)
    everything = [v for s in generators for v in s]
    exact = exact_quantile(everything, q)
    lower, upper, _ = merged.quantile_bucket(q)
    assert lower < exact <= upper  # the exact percentile lies in the bucket the histogram names
    estimate = merged.quantile(q)
    assert abs(estimate / exact - 1) <= relative_error_bound(K6_SCHEMA)
    # Interpolated inside the bucket it is much closer than the bound (<= 0.73% here; taking a
    # bucket's edge instead would be off by up to 8%).
    assert abs(estimate / exact - 1) <= 0.01
    # And far from what averaging the generators' own percentiles would say.
    averaged = float(np.mean([exact_quantile(s, q) for s in generators]))
    assert abs(estimate - exact) < abs(averaged - exact)


def test_interval_histograms_from_cumulative_states():
    first, second = latencies(30, 1000, 0.01), latencies(31, 1500, 0.02)
    at_1s = NativeHistogram.of_samples(first)
    at_2s = NativeHistogram.of_samples(first + second)
    between = at_2s.minus(at_1s)
    assert between.buckets == NativeHistogram.of_samples(second).buckets and between.count == 1500
    # A restarted series (counts went down): the later state is taken whole.
    assert at_1s.minus(at_2s).count == at_1s.count


def test_differing_schemas_merge_at_the_coarser_one_exactly():
    samples = latencies(40, 4000, 0.03)
    fine, coarse = NativeHistogram.of_samples(samples, schema=3), NativeHistogram.of_samples(samples, schema=1)
    assert fine.reduced(1).buckets == coarse.buckets
    assert (fine + coarse).schema == 1 and (fine + coarse).count == 8000


def test_empty_and_bad_quantiles_are_refused():
    with pytest.raises(HistogramError, match="empty"):
        NativeHistogram(schema=3).quantile(0.5)
    with pytest.raises(HistogramError, match="outside"):
        NativeHistogram.of_samples([0.1]).quantile(1.5)
