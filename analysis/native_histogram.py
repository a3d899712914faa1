"""Prometheus native histograms: decode, merge across load generators, take percentiles.

k6's ``experimental-prometheus-rw`` output (``K6_PROMETHEUS_RW_TREND_AS_NATIVE_HISTOGRAM=true``)
sends each trend (``http_req_duration``...) as a Prometheus native histogram: exponential buckets
of a *schema* s, bucket i holding the values in (2^((i-1)/2^s), 2^(i/2^s)], a zero bucket for
|v| <= zero_threshold, and on the wire the populated buckets as *spans* (offset, length) with
*deltas* between neighbouring counts. k6 v1.1.0 creates the histogram with
``NativeHistogramBucketFactor: 1.1`` (internal/output/prometheusrw/remotewrite/trend.go), for which
client_golang picks the largest schema whose growth factor is <= 1.1: schema 3, factor 2^(1/8) ~
1.0905, and the default zero threshold 2^-128. Durations are in seconds.

Histograms with the same schema merge exactly: adding bucket counts gives the histogram of the
union of the samples, so percentiles across generators come from the merged buckets, never from
averaging each generator's percentiles. What is lost is inside a bucket: a percentile is only known
to lie in its bucket, so its relative error is at most the bucket width, 2^(2^-s) - 1 (9.05% at
schema 3); interpolating inside the bucket (log-linearly, as Prometheus does for exponential
buckets) is usually much closer (docs/cloud.md has the measured figures).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

K6_SCHEMA = 3  # NativeHistogramBucketFactor 1.1 (k6 v1.1.0) -> schema 3
DEFAULT_ZERO_THRESHOLD = 2.0**-128  # client_golang DefNativeHistogramZeroThreshold


class HistogramError(ValueError):
    """A histogram that cannot be decoded or combined as asked."""


def growth_factor(schema: int) -> float:
    return 2.0 ** (2.0**-schema)


def relative_error_bound(schema: int) -> float:
    """Largest relative distance between any two values of one bucket: the bound on a percentile's
    error once the samples are reduced to buckets of this schema."""
    return growth_factor(schema) - 1.0


def bucket_bounds(schema: int, index: int) -> tuple[float, float]:
    """(lower, upper] of positive bucket ``index``."""
    return 2.0 ** ((index - 1) * 2.0**-schema), 2.0 ** (index * 2.0**-schema)


def _frac_bounds(schema: int) -> list[float]:
    # The mantissa boundaries in [0.5, 1) of the 2^schema buckets per power of two.
    n = 1 << schema
    return [2.0 ** (j / n - 1) for j in range(n)]


def bucket_index(value: float, schema: int) -> int:
    """The positive bucket holding ``value`` (> 0), exactly as client_golang computes it: from the
    float's mantissa and exponent (math.frexp), so values on a boundary land where Prometheus puts them."""
    if value <= 0 or math.isinf(value) or math.isnan(value):
        raise HistogramError(f"bucket_index needs a finite positive value, got {value!r}")
    frac, exp = math.frexp(value)
    if schema > 0:
        bounds = _frac_bounds(schema)
        return bisect.bisect_left(bounds, frac) + (exp - 1) * len(bounds)
    key = exp - 1 if frac == 0.5 else exp
    offset = (1 << -schema) - 1
    return (key + offset) >> -schema


@dataclass
class NativeHistogram:
    """One native histogram (positive buckets only: k6's trends are never negative)."""

    schema: int
    zero_threshold: float = DEFAULT_ZERO_THRESHOLD
    zero_count: float = 0.0
    count: float = 0.0
    sum: float = 0.0
    buckets: dict[int, float] = field(default_factory=dict)  # bucket index -> count

    # ------------------------------------------------------------------ building and decoding
    @classmethod
    def of_samples(cls, values: Iterable[float], schema: int = K6_SCHEMA,
                   zero_threshold: float = DEFAULT_ZERO_THRESHOLD) -> NativeHistogram:
        h = cls(schema=schema, zero_threshold=zero_threshold)
        for v in values:
            h.observe(v)
        return h

    def observe(self, value: float) -> None:
        if value < 0:
            raise HistogramError(f"negative value {value!r}: only positive buckets are kept")
        self.count += 1
        self.sum += value
        if value <= self.zero_threshold:
            self.zero_count += 1
        else:
            i = bucket_index(value, self.schema)
            self.buckets[i] = self.buckets.get(i, 0) + 1

    @classmethod
    def from_spans(cls, *, schema: int, zero_threshold: float, zero_count: float, count: float, sum: float,
                   positive_spans: Sequence[tuple[int, int]], positive_deltas: Sequence[float]) -> NativeHistogram:
        """The remote-write (protobuf) form: spans of consecutive buckets, the first span's offset
        absolute, later offsets the gap after the previous span; deltas between neighbouring counts."""
        if sum_len := sum_lengths(positive_spans):
            if sum_len != len(positive_deltas):
                raise HistogramError(f"spans cover {sum_len} buckets but {len(positive_deltas)} deltas were given")
        elif positive_deltas:
            raise HistogramError("deltas without spans")
        buckets: dict[int, float] = {}
        index, running, k = 0, 0.0, 0
        for n, (offset, length) in enumerate(positive_spans):
            index = offset if n == 0 else index + offset
            for _ in range(length):
                running += positive_deltas[k]
                if running < 0:
                    raise HistogramError(f"negative bucket count at index {index}")
                if running:
                    buckets[index] = running
                index += 1
                k += 1
        h = cls(schema=schema, zero_threshold=zero_threshold, zero_count=zero_count, count=count, sum=sum,
                buckets=buckets)
        h._check_count()
        return h

    def to_spans(self) -> tuple[list[tuple[int, int]], list[float]]:
        """The inverse of :meth:`from_spans` (gaps of empty buckets become span offsets)."""
        spans: list[tuple[int, int]] = []
        deltas: list[float] = []
        previous_index: int | None = None
        previous_count = 0.0
        for i in sorted(self.buckets):
            if previous_index is not None and i == previous_index + 1:
                offset, length = spans[-1]
                spans[-1] = (offset, length + 1)
            else:
                spans.append((i if previous_index is None else i - previous_index - 1, 1))
            deltas.append(self.buckets[i] - previous_count)
            previous_index, previous_count = i, self.buckets[i]
        return spans, deltas

    @classmethod
    def from_prometheus_json(cls, data: Mapping[str, object]) -> NativeHistogram:
        """The HTTP API form (``/api/v1/query[_range]`` "histogram(s)"): count, sum and buckets as
        [boundary_rule, lower, upper, count] strings. The schema is not sent: it follows from the
        ratio of a bucket's bounds; the zero bucket is the one that spans 0."""
        try:
            count, total = float(data["count"]), float(data["sum"])  # type: ignore[arg-type]
            raw = [(int(b[0]), float(b[1]), float(b[2]), float(b[3])) for b in data.get("buckets") or []]  # type: ignore[union-attr, index]
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise HistogramError(f"not a Prometheus native histogram: {exc!r} in {str(data)[:200]}") from None
        zero_count, zero_threshold, schema = 0.0, DEFAULT_ZERO_THRESHOLD, None
        regular = []
        for _rule, lower, upper, n in raw:
            if lower <= 0 <= upper:
                zero_count, zero_threshold = n, upper
            elif lower < 0:
                raise HistogramError("negative buckets are not expected in k6's histograms")
            else:
                s = round(-math.log2(math.log2(upper / lower)))
                if schema is not None and s != schema:
                    raise HistogramError(f"buckets of schemas {schema} and {s} in one histogram")
                schema = s
                regular.append((upper, n))
        schema = K6_SCHEMA if schema is None else schema
        buckets = {round(math.log2(upper) * 2.0**schema): n for upper, n in regular}
        h = cls(schema=schema, zero_threshold=zero_threshold, zero_count=zero_count, count=count, sum=total,
                buckets=buckets)
        h._check_count()
        return h

    def _check_count(self) -> None:
        inside = self.zero_count + sum(self.buckets.values())
        if abs(inside - self.count) > 1e-6 * max(1.0, self.count):
            raise HistogramError(f"buckets hold {inside:g} observations but the count says {self.count:g}")

    # ------------------------------------------------------------------ combining
    def reduced(self, schema: int) -> NativeHistogram:
        """The same observations in the coarser buckets of ``schema`` (<= this one's): exact,
        every bucket of the finer schema lies inside one bucket of the coarser."""
        if schema > self.schema:
            raise HistogramError(f"cannot refine schema {self.schema} into {schema}")
        d = self.schema - schema
        buckets: dict[int, float] = {}
        for i, n in self.buckets.items():
            j = ((i - 1) >> d) + 1
            buckets[j] = buckets.get(j, 0) + n
        return NativeHistogram(schema=schema, zero_threshold=self.zero_threshold, zero_count=self.zero_count,
                               count=self.count, sum=self.sum, buckets=buckets)

    def __add__(self, other: NativeHistogram) -> NativeHistogram:
        schema = min(self.schema, other.schema)
        a, b = self.reduced(schema), other.reduced(schema)
        if a.zero_threshold != b.zero_threshold:
            raise HistogramError(f"zero thresholds differ ({a.zero_threshold:g} vs {b.zero_threshold:g}): "
                                 "the generators' histograms were not made alike")
        buckets = dict(a.buckets)
        for i, n in b.buckets.items():
            buckets[i] = buckets.get(i, 0) + n
        return NativeHistogram(schema=schema, zero_threshold=a.zero_threshold, zero_count=a.zero_count + b.zero_count,
                               count=a.count + b.count, sum=a.sum + b.sum, buckets=buckets)

    def minus(self, earlier: NativeHistogram) -> NativeHistogram:
        """What was observed between ``earlier`` and this later state of the same cumulative
        histogram; if a count went down the series restarted, and this state is all there is."""
        if earlier.schema != self.schema or earlier.count > self.count:
            return self.copy()
        buckets = {}
        for i in set(self.buckets) | set(earlier.buckets):
            n = self.buckets.get(i, 0) - earlier.buckets.get(i, 0)
            if n < 0:
                return self.copy()
            if n:
                buckets[i] = n
        return NativeHistogram(schema=self.schema, zero_threshold=self.zero_threshold,
                               zero_count=self.zero_count - earlier.zero_count, count=self.count - earlier.count,
                               sum=self.sum - earlier.sum, buckets=buckets)

    def copy(self) -> NativeHistogram:
        return NativeHistogram(schema=self.schema, zero_threshold=self.zero_threshold, zero_count=self.zero_count,
                               count=self.count, sum=self.sum, buckets=dict(self.buckets))

    # ------------------------------------------------------------------ reading
    def quantile_bucket(self, q: float) -> tuple[float, float, float]:
        """(lower, upper, fraction): the bucket holding the q-quantile (the smallest observation
        with at least q of the observations at or below it) and how far into the bucket its rank is."""
        if not 0 <= q <= 1:
            raise HistogramError(f"quantile {q} outside [0, 1]")
        if self.count <= 0:
            raise HistogramError("empty histogram: no quantile")
        rank = max(q * self.count, 1e-12)
        seen = self.zero_count
        if rank <= seen:
            return 0.0, self.zero_threshold, rank / seen
        for i in sorted(self.buckets):
            n = self.buckets[i]
            if rank <= seen + n:
                lower, upper = bucket_bounds(self.schema, i)
                return lower, upper, (rank - seen) / n
            seen += n
        lower, upper = bucket_bounds(self.schema, max(self.buckets))
        return lower, upper, 1.0

    def quantile(self, q: float) -> float:
        """The q-quantile, interpolated log-linearly inside its bucket (as Prometheus does for
        exponential buckets); linearly in the zero bucket."""
        lower, upper, fraction = self.quantile_bucket(q)
        if lower == 0.0:
            return upper * fraction
        return lower * (upper / lower) ** fraction

    @property
    def mean(self) -> float | None:
        return self.sum / self.count if self.count else None


def sum_lengths(spans: Sequence[tuple[int, int]]) -> int:
    return sum(length for _, length in spans)


def merge(histograms: Iterable[NativeHistogram]) -> NativeHistogram | None:
    """The histogram of all generators' observations (None if there is none)."""
    merged: NativeHistogram | None = None
    for h in histograms:
        merged = h.copy() if merged is None else merged + h
    return merged
