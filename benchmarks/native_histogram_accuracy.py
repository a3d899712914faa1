"""Accuracy of percentiles from merged Prometheus native histograms (what `cloud run --engine
operator` reports for several load generators) against the exact percentiles of the same samples.

Samples: latency distributions like the ones the rig sees (log-normal bodies, a slow tail, a
bimodal mix), split over N generators with different speeds. Each generator's samples go into a
native histogram of k6's schema (3) exactly as client_golang buckets them; the histograms are
merged; each percentile is compared with the exact one (the smallest sample with at least q of
the samples at or below it). Deterministic (fixed seeds): re-run it and get the same table.

    .venv/bin/python benchmarks/native_histogram_accuracy.py [--samples 200000] [--generators 4]
"""

from __future__ import annotations

import argparse
import math
import random

from analysis.native_histogram import K6_SCHEMA, NativeHistogram, merge, relative_error_bound

QUANTILES = (0.5, 0.9, 0.95, 0.99, 0.999)


def distributions(rng: random.Random, n: int, speed: float) -> dict[str, list[float]]:
    lognormal = [rng.lognormvariate(math.log(0.004 * speed), 0.3) for _ in range(n)]
    tail = [v * (10 if rng.random() < 0.02 else 1) for v in lognormal]
    bimodal = [rng.gauss(0.002, 0.0002) if rng.random() < 0.7 else rng.gauss(0.050, 0.005) for _ in range(n)]
    return {"log-normal 4 ms": lognormal, "log-normal + 2% x10 tail": tail,
            "bimodal 2 ms / 50 ms": [abs(v) * speed for v in bimodal]}


def exact(ordered: list[float], q: float) -> float:
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200_000, help="per generator")
    parser.add_argument("--generators", type=int, default=4)
    args = parser.parse_args()
    per_generator = [distributions(random.Random(g), args.samples, 1 + g / 4) for g in range(args.generators)]
    print(f"schema {K6_SCHEMA}: bucket width {relative_error_bound(K6_SCHEMA):.2%} (the bound); "
          f"{args.generators} generators x {args.samples} samples")
    print(f"{'distribution':28} " + " ".join(f"{'p' + format(q * 100, 'g'):>8}" for q in QUANTILES))
    for name in per_generator[0]:
        parts = [g[name] for g in per_generator]
        merged = merge(NativeHistogram.of_samples(p) for p in parts)
        ordered = sorted(v for p in parts for v in p)
        errors = [merged.quantile(q) / exact(ordered, q) - 1 for q in QUANTILES]
        print(f"{name:28} " + " ".join(f"{e:>+8.2%}" for e in errors))


if __name__ == "__main__":
    main()
