"""What k6 streamed into the stack's Prometheus, read back over its HTTP API (httpx).

k6 v1.1.0's ``experimental-prometheus-rw`` output (internal/output/prometheusrw/remotewrite) names
series ``k6_<metric>`` with ``_total`` for counters, ``_rate`` for rates and, with
``K6_PROMETHEUS_RW_TREND_AS_NATIVE_HISTOGRAM=true``, trends as native histograms in seconds
(``k6_http_req_duration_seconds``); every sample carries the run's tags, among them the operator's
``testrun_name`` and ``instance_id`` (one per runner). Counters and histograms are cumulative per
series, so the values over one second are the difference of consecutive states; the run's totals are
each series' last state. Histograms of all runners merge exactly (analysis/native_histogram.py).

Prometheus has no public address: the stage reaches it through the Kubernetes API server's service
proxy (``/api/v1/namespaces/<ns>/services/<name>:<port>/proxy``), with the kubeconfig's credentials,
or at a URL the user gives (e.g. a ``kubectl port-forward``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pandas as pd

from analysis.native_histogram import HistogramError, NativeHistogram, merge
from schema.errors import CloudError

DURATION = "k6_http_req_duration_seconds"
REQUESTS = "k6_http_reqs_total"
QUANTILES = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99, "p99.9": 0.999}


class PrometheusError(CloudError):
    """Prometheus could not be asked, or did not answer as its API documents."""


@dataclass(frozen=True)
class RunMetrics:
    per_second: pd.DataFrame  # second, requests, failed, rps, p50_ms ... p99.9_ms
    total: NativeHistogram | None  # all runners, the whole run
    per_runner: dict[str, NativeHistogram]  # instance_id -> its whole-run histogram
    requests: float
    failed: float
    requests_per_runner: dict[str, float]
    series_per_runner: dict[str, int] = field(default_factory=dict)  # instance_id -> its k6_http_reqs_total series

    def quantiles_ms(self, histogram: NativeHistogram | None = None) -> dict[str, float | None]:
        h = histogram or self.total
        if h is None or h.count <= 0:
            return {k: None for k in QUANTILES}
        return {k: h.quantile(q) * 1000 for k, q in QUANTILES.items()}


class Prometheus:
    """``client`` is an httpx.Client whose base URL is Prometheus (directly or through the API
    server's proxy); ``where`` says in errors what was asked and how to look at it."""

    def __init__(self, client: httpx.Client, where: str):
        self.client, self.where = client, where

    def _get(self, path: str, params: dict[str, Any]) -> Any:
        return self.document(path, params)["data"]

    def document(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        """Prometheus's whole answer to one API call (``{"status": "success", "data": ...}``)."""
        try:
            response = self.client.get(path, params=params)
        except httpx.HTTPError as exc:
            raise PrometheusError(
                f"Prometheus is unreachable ({self.where}): {exc.__class__.__name__}: {exc}") from None
        if response.status_code != 200:
            raise PrometheusError(f"Prometheus answered {response.status_code} ({self.where}): "
                                  f"{response.text.strip()[:300]}")
        try:
            body = response.json()
        except ValueError:
            raise PrometheusError(f"Prometheus answered something that is not JSON ({self.where}): "
                                  f"{response.text.strip()[:200]}") from None
        if body.get("status") != "success":
            raise PrometheusError(f"Prometheus refused the query ({self.where}): {body.get('error', body)}")
        return body

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        data = self._get("/api/v1/query_range", {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}",
                                                 "step": f"{step:g}"})
        return data.get("result") or []

    def ready(self) -> None:
        """A cheap query that fails like the real ones would: before a run starts."""
        self._get("/api/v1/query", {"query": "vector(1)"})


def _series_key(metric: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(metric.items()))


def histogram_steps(
        series: Iterable[dict[str, Any]]) -> tuple[dict[float, NativeHistogram], dict[str, NativeHistogram]]:
    """Per step (timestamp) the histogram of what all series observed since the previous step, and
    per runner (instance_id) its last cumulative state summed over its series."""
    per_step: dict[float, list[NativeHistogram]] = {}
    last_by_runner: dict[str, list[NativeHistogram]] = {}
    for s in series:
        previous: NativeHistogram | None = None
        points = s.get("histograms") or []
        for ts, raw in points:
            try:
                state = NativeHistogram.from_prometheus_json(raw)
            except HistogramError as exc:
                raise PrometheusError(f"{DURATION}: {exc}") from None
            interval = state if previous is None else state.minus(previous)
            if interval.count > 0:
                per_step.setdefault(float(ts), []).append(interval)
            previous = state
        if previous is not None:
            last_by_runner.setdefault(s["metric"].get("instance_id", "?"), []).append(previous)
    steps = {ts: h for ts, parts in per_step.items() if (h := merge(parts)) is not None}
    runners = {r: h for r, parts in last_by_runner.items() if (h := merge(parts)) is not None}
    return steps, runners


def series_per_runner(series: Iterable[dict[str, Any]]) -> dict[str, int]:
    """How many series each runner (instance_id) wrote (one per combination of its other labels)."""
    counts: dict[str, int] = {}
    for s in series:
        runner = s["metric"].get("instance_id", "?")
        counts[runner] = counts.get(runner, 0) + 1
    return counts


def counter_steps(series: Iterable[dict[str, Any]]) -> tuple[dict[float, float], float, dict[str, float]]:
    """Per step the increase of all series; the run's total; the total per runner."""
    per_step: dict[float, float] = {}
    total, per_runner = 0.0, {}
    for s in series:
        previous = 0.0
        for ts, raw in s.get("values") or []:
            value = float(raw)
            increase = value if value < previous else value - previous  # a reset starts from 0
            if increase:
                per_step[float(ts)] = per_step.get(float(ts), 0.0) + increase
            previous = value
        total += previous
        runner = s["metric"].get("instance_id", "?")
        per_runner[runner] = per_runner.get(runner, 0.0) + previous
    return per_step, total, per_runner


def read_run(prom: Prometheus, testrun: str, start: float, end: float, step: float = 1.0,
             origin: float | None = None) -> RunMetrics:
    """Throughput, per-second percentiles and totals of one TestRun (all its runners), asked over
    ``start``..``end``; each row's ``second`` counts from ``origin`` (k6's own start; default ``start``)."""
    selector = f'{{testrun_name="{testrun}"}}'
    origin = start if origin is None else origin
    start, end = math.floor(start), math.ceil(end)
    hist_series = prom.query_range(DURATION + selector, start, end, step)
    req_series = prom.query_range(REQUESTS + selector, start, end, step)
    failed_series = prom.query_range(f'{REQUESTS}{{testrun_name="{testrun}", expected_response="false"}}',
                                     start, end, step)
    if not hist_series or not req_series:
        raise PrometheusError(
            f"Prometheus has no k6 series for TestRun {testrun} between {start} and {end} ({prom.where}): did the "
            "runners reach its remote-write receiver? Look at a runner's log for 'prometheus' errors and at "
            "`kubectl -n monitoring get pods`")
    steps, runners = histogram_steps(hist_series)
    req_steps, requests, req_per_runner = counter_steps(req_series)
    failed_steps, failed, _ = counter_steps(failed_series)
    rows = []
    for ts in sorted(set(steps) | set(req_steps)):
        h = steps.get(ts)
        row: dict[str, Any] = {"second": round(ts - origin, 3), "requests": req_steps.get(ts, 0.0),
                               "failed": failed_steps.get(ts, 0.0), "rps": req_steps.get(ts, 0.0) / step,
                               "latency_samples": h.count if h else 0.0}
        for name, q in QUANTILES.items():
            row[f"{name}_ms"] = h.quantile(q) * 1000 if h and h.count else None
        rows.append(row)
    total = merge(runners.values())
    return RunMetrics(per_second=pd.DataFrame(rows), total=total, per_runner=runners, requests=requests,
                      failed=failed, requests_per_runner=req_per_runner,
                      series_per_runner=series_per_runner(req_series))
