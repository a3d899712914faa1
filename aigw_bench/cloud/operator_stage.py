"""``aigw-bench cloud run --engine operator``: one target of a cloud plan measured by a k6-operator
TestRun instead of the EC2 runner. The cloud stage (stage.py) calls :meth:`OperatorEngine.preflight`
before the run and :meth:`OperatorEngine.run_target` per target and repeat; everything else (the run
directory, manifest, order, report) is the stage's.

Per target: the warm-up as its own TestRun (kept apart in ``warmup/``, not analysed), then the
measurement TestRun with ``parallelism`` runners. What is kept, in the target's folder:
``gen<i>/k6.log`` and ``gen<i>/summary.json`` per runner (k6's own numbers, the cross-check), and
from Prometheus ``prometheus-timeseries.csv`` (per second: requests, failures, percentiles of the
merged native histograms) and ``prometheus.json`` (totals, per-runner agreement with k6's summary).
``summary.json`` is the single runner's own summary, or for several runners their counts summed and
the percentiles of the merged histograms (never averaged percentiles).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from aigw_bench.cloud import operator as op
from aigw_bench.cloud.kube import KubeAccess, kube_access, service_proxy_client
from aigw_bench.cloud.merge import merge_summaries
from aigw_bench.cloud.outputs import StackOutputs
from aigw_bench.cloud.prometheus import QUANTILES, Prometheus, PrometheusError, RunMetrics, read_run
from aigw_bench.errors import CloudError
from aigw_bench.local.processes import Interrupted
from aigw_bench.results import Outcome, now_iso, target_dir
from aigw_bench.templating import render_map
from analysis.native_histogram import K6_SCHEMA, relative_error_bound
from k6_scripts.render import RenderTarget, render_script
from k6_scripts.scenarios import format_duration

GRACE_S = 300.0  # beyond the k6 duration: image pulls, the initializer, the starter, graceful stop
PLACEMENT = op.Placement(node_selector={"aigw-bench/pool": "loadgen"},
                         tolerations=[{"key": "aigw-bench/pool", "operator": "Equal", "value": "loadgen",
                                       "effect": "NoSchedule"}])
EventSink = Callable[..., None]


@dataclass(frozen=True)
class OperatorOptions:
    parallelism: int | None = None  # default: one runner per load-generator node of the stack
    prometheus_url: str | None = None  # default: through the Kubernetes API server's service proxy
    pending_deadline_s: float = op.PENDING_DEADLINE_S
    poll_interval: float = 5.0


def grafana_hint(outputs: StackOutputs) -> str:
    """How to open the stack's dashboard: a port-forward from the user's machine, nothing public."""
    g = outputs.grafana_service or {}
    ns, name, port = g.get("namespace", "monitoring"), g.get("name", "kps-grafana"), g.get("port", 80)
    uid = g.get("dashboard_uid", "aigw-bench-k6")
    return (f"live dashboard ({outputs.stack}): kubectl -n {ns} port-forward svc/{name} 3000:{port}, then open "
            f"http://localhost:3000/d/{uid} (user admin; password: pulumi stack output grafana_admin_password "
            f"--show-secrets -s {outputs.stack})")


class OperatorEngine:
    """``access(outputs)`` gives the Kubernetes clients of a stack, ``prometheus(outputs, access)``
    its Prometheus reader; both are replaced by fakes in the tests."""

    def __init__(self, options: OperatorOptions | None = None,
                 access: Callable[[StackOutputs], KubeAccess] | None = None,
                 prometheus: Callable[[StackOutputs, KubeAccess], Prometheus] | None = None,
                 runner_factory: Callable[[KubeAccess], op.TestRunner] | None = None):
        self.options = options or OperatorOptions()
        self._access = access or (lambda out: kube_access(
            out.kubeconfig.get_secret_value() if out.kubeconfig else None, out.stack))
        self._prometheus = prometheus or self._default_prometheus
        self._runner_factory = runner_factory or (lambda a: op.TestRunner(
            a.core, a.custom, poll_interval=self.options.poll_interval,
            pending_deadline_s=self.options.pending_deadline_s))
        self._cache: dict[str, tuple[KubeAccess, Prometheus]] = {}

    def _default_prometheus(self, out: StackOutputs, access: KubeAccess) -> Prometheus:
        import httpx

        if self.options.prometheus_url:
            url = self.options.prometheus_url.rstrip("/")
            return Prometheus(httpx.Client(base_url=url, timeout=30.0), f"{url}, given with --prometheus-url")
        svc = out.prometheus_service
        client = service_proxy_client(access.configuration, svc["namespace"], svc["name"], int(svc["port"]))
        return Prometheus(client, f"service {svc['namespace']}/{svc['name']}:{svc['port']} through the Kubernetes "
                                  f"API server; check `kubectl -n {svc['namespace']} get pods` and "
                                  f"`kubectl -n {svc['namespace']} get svc {svc['name']}`")

    def _clients(self, out: StackOutputs) -> tuple[KubeAccess, Prometheus]:
        if out.stack not in self._cache:
            access = self._access(out)
            self._cache[out.stack] = (access, self._prometheus(out, access))
        return self._cache[out.stack]

    def parallelism(self, out: StackOutputs) -> int:
        return self.options.parallelism or int(out.k6_operator.get("load_generator_nodes") or 0)

    # ------------------------------------------------------------------ before anything starts
    def preflight(self, outputs: list[StackOutputs]) -> None:
        for out in outputs:
            info = out.k6_operator
            if not info.get("enabled"):
                raise CloudError(f"stack '{out.stack}' has no k6-operator: set `pulumi config set --path "
                                 f"k6Operator.enabled true -s {out.stack}` and `pulumi up`, or run with --engine ec2")
            nodes = int(info.get("load_generator_nodes") or 0)
            wanted = self.parallelism(out)
            if wanted < 1 or wanted > nodes:
                raise CloudError(
                    f"stack '{out.stack}': --parallelism {wanted} but its load-generator pool has {nodes} node(s) and "
                    "runners go one per node; set nodes.loadgen.count (`pulumi config set --path "
                    f"nodes.loadgen.count {max(wanted, 1)}`, `pulumi up`) or ask for at most {nodes}")
            if not out.prometheus_service:
                raise CloudError(f"stack '{out.stack}' has no prometheus_service output: run `pulumi up` with this "
                                 "version of the program")
            _, prometheus = self._clients(out)
            prometheus.ready()  # unreachable: said now, before any load is sent

    # ------------------------------------------------------------------ one target
    def run_target(self, *, run_dir: Path, run_id: str, scenario: Any, params: Any, outputs: StackOutputs,
                   gateway: Any, repeat: int, emit: EventSink) -> Outcome:
        name = gateway.name
        work = target_dir(run_dir, name, repeat)
        work.mkdir(parents=True, exist_ok=True)
        outcome = Outcome(target=name, repeat=repeat, status="ok", started_at=now_iso())
        url = outputs.gateway_url.rstrip("/") + gateway.request.path
        headers = render_map(gateway.request.headers, {"mock_url": outputs.mock_cluster_url},
                             f"{name}: request.headers")
        secret = {k: v.get_secret_value() for k, v in outputs.gateway_secret_headers.items()}
        headers = {k: v for k, v in headers.items() if k.lower() not in {n.lower() for n in secret}}
        rendered = render_script(scenario, params, RenderTarget(name, url, gateway.request.model, headers))
        (work / "script.js").write_text(rendered.source)
        outcome.url, outcome.body_sha256 = url, rendered.body_sha256
        outcome.files["script"] = "script.js"
        parallelism = self.parallelism(outputs)
        access, prometheus = self._clients(outputs)
        runner = self._runner_factory(access)
        base = f"aigw-{_dns(name)[:14]}-r{repeat}-{uuid.uuid4().hex[:6]}"
        env = {"AIGW_SUMMARY": op.SUMMARY_TO_STDOUT,
               "K6_PROMETHEUS_RW_SERVER_URL": outputs.prometheus_service["cluster_url"] + "/api/v1/write",
               "K6_PROMETHEUS_RW_TREND_AS_NATIVE_HISTOGRAM": "true",
               "K6_PROMETHEUS_RW_PUSH_INTERVAL": "1s",  # per-second series
               "K6_PROMETHEUS_RW_STALE_MARKERS": "true",
               "K6_NO_USAGE_REPORT": "true"}
        secret_env = {"AIGW_HEADERS": json.dumps(secret)} if secret else {}
        labels = {"app.kubernetes.io/part-of": "aigw-bench", "aigw-bench/target": _dns(name)[:63]}
        outcome.evidence.update(engine="k6-operator", parallelism=parallelism, runner_image=op.K6_IMAGE,
                                namespace=outputs.k6_operator.get("namespace"))
        emit("phase", target=name, phase=grafana_hint(outputs))

        def spec(suffix: str, duration: float) -> op.TestRunSpec:
            return op.TestRunSpec(name=f"{base}-{suffix}", namespace=outputs.k6_operator.get("namespace") or "loadgen",
                                  script=rendered.source, parallelism=parallelism, placement=PLACEMENT,
                                  env={**env, "AIGW_DURATION": format_duration(duration)}, secret_env=secret_env,
                                  arguments="--out experimental-prometheus-rw", labels=labels)

        try:
            if params.warmup > 0:
                warm = op.TestRunResult(name=f"{base}-w")
                try:
                    runner.run(spec("w", params.warmup), timeout_s=params.warmup + GRACE_S,
                               on_progress=self._progress(emit, name, True, params.warmup), result=warm)
                finally:
                    _save_runners(work / "warmup", warm)
            result = op.TestRunResult(name=f"{base}-m")
            outcome.evidence["testrun"] = result.name
            try:
                runner.run(spec("m", params.duration), timeout_s=params.duration + GRACE_S,
                           on_progress=self._progress(emit, name, False, params.duration), result=result)
            finally:
                _save_runners(work, result)
                _record(outcome, result)
        except (KeyboardInterrupt, Interrupted):
            outcome.status, outcome.reason = "interrupted", "stopped by Ctrl-C; the TestRun and its pods were deleted"
            outcome.finished_at = now_iso()
            return outcome
        except op.TestRunError as exc:
            outcome.status, outcome.reason = "k6_failed", str(exc)
            if exc.result.left_behind:
                outcome.reason += f"; left behind: {', '.join(exc.result.left_behind)}"
            outcome.finished_at = now_iso()
            return outcome
        outcome.measure_seconds = result.seconds
        codes = [r.exit_code for r in result.runners]
        outcome.k6_exit_code = next((c for c in codes if c != 0), 0)
        outcome.thresholds_passed = all(c == 0 for c in codes)
        outcome.files["k6_log"] = "gen1/k6.log"
        self._results(work, outcome, result, prometheus)
        outcome.finished_at = now_iso()
        return outcome

    def _progress(self, emit: EventSink, target: str, warmup: bool, duration: float) -> op.ProgressSink:
        last = {"stage": None}

        def progress(stage: str, elapsed: float, pods: dict[str, int]) -> None:
            if stage != last["stage"]:
                emit("phase", target=target, phase=f"TestRun stage {stage}; pods {pods or 'none yet'}")
                last["stage"] = stage
            emit("tick", target=target, warmup=warmup, elapsed=elapsed, duration=duration, requests=None,
                 rps=None, ok_rate=None)

        return progress

    def _results(self, work: Path, outcome: Outcome, result: op.TestRunResult, prometheus: Prometheus) -> None:
        summaries = [r.summary for r in result.runners]
        assert all(s is not None for s in summaries)  # TestRunner checked it
        metrics: RunMetrics | None = None
        try:
            assert result.started is not None and result.finished is not None
            metrics = read_run(prometheus, result.name, result.started, result.finished)
        except PrometheusError as exc:
            outcome.evidence["prometheus_error"] = str(exc)
        if metrics is not None:
            _write_metrics(work, outcome, metrics, result)
        if len(summaries) == 1:
            (work / "summary.json").write_text(json.dumps(summaries[0], indent=1))
            outcome.files["summary"] = "summary.json"
            return
        if metrics is None or metrics.total is None:
            # The runners' own summaries are kept (gen*/summary.json), but their percentiles cannot be
            # merged without the histograms: no merged figure rather than a wrong one.
            outcome.status = "invalid_output"
            outcome.reason = (f"{len(summaries)} runners' summaries are kept in gen*/summary.json, but their latency "
                              f"percentiles need the merged histograms from Prometheus: "
                              f"{outcome.evidence.get('prometheus_error', 'no latency samples')}. The series stay in "
                              f"Prometheus for its retention (TestRun {result.name}).")
            return
        merged = merge_summaries(summaries, pd.DataFrame(), pd.DataFrame())  # counts and rates
        values = merged["metrics"]["http_req_duration"]["values"]
        stats = metrics.quantiles_ms()
        values.update({"med": stats["p50"], "p(50)": stats["p50"], "p(90)": stats["p90"], "p(95)": stats["p95"],
                       "p(99)": stats["p99"], "p(99.9)": stats["p99.9"]})
        merged["aigw_bench_merged"]["method"] = (
            "counts and rates summed over the runners' k6 summaries; error rates weighted by requests; latency "
            f"percentiles from the runners' Prometheus native histograms merged (schema {metrics.total.schema}, "
            f"within {relative_error_bound(metrics.total.schema):.2%} of the exact value)")
        merged["aigw_bench_merged"]["source"] = f"TestRun {result.name}, Prometheus remote write"
        (work / "summary.json").write_text(json.dumps(merged, indent=1))
        outcome.files["summary"] = "summary.json"
        outcome.evidence["generators"] = len(summaries)


def _dns(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")


def _save_runners(folder: Path, result: op.TestRunResult) -> None:
    """Every runner's log and summary, as soon as they exist (also when the run failed)."""
    for r in result.runners:
        gen = folder / f"gen{r.index}"
        gen.mkdir(parents=True, exist_ok=True)
        (gen / "k6.log").write_text(r.log)
        if r.summary is not None:
            (gen / "summary.json").write_text(json.dumps(r.summary, indent=1))
        (gen / "pod.json").write_text(json.dumps({"pod": r.pod, "node": r.node, "phase": r.phase,
                                                  "exit_code": r.exit_code}, indent=1))


def _record(outcome: Outcome, result: op.TestRunResult) -> None:
    outcome.evidence["testrun_stage"] = result.stage
    outcome.evidence["runners"] = [{"pod": r.pod, "node": r.node, "exit_code": r.exit_code} for r in result.runners]
    if result.left_behind:
        outcome.evidence["left_behind"] = result.left_behind


def _write_metrics(work: Path, outcome: Outcome, metrics: RunMetrics, result: op.TestRunResult) -> None:
    metrics.per_second.to_csv(work / "prometheus-timeseries.csv", index=False)
    outcome.files["prometheus_timeseries"] = "prometheus-timeseries.csv"
    bound = relative_error_bound(metrics.total.schema if metrics.total else K6_SCHEMA)
    checks = []
    for r in result.runners:
        k6 = (r.summary or {}).get("metrics", {})
        mine = metrics.per_runner.get(str(r.index))
        prom_reqs = metrics.requests_per_runner.get(str(r.index))
        k6_reqs = k6.get("http_reqs", {}).get("values", {}).get("count")
        k6_p95 = k6.get("http_req_duration", {}).get("values", {}).get("p(95)")
        prom_p95 = mine.quantile(0.95) * 1000 if mine and mine.count else None
        agrees = (prom_reqs == k6_reqs and prom_p95 is not None and k6_p95 is not None
                  and abs(prom_p95 / k6_p95 - 1) <= bound) if k6_p95 else False
        checks.append({"runner": r.index, "requests_k6": k6_reqs, "requests_prometheus": prom_reqs,
                       "p95_ms_k6": k6_p95, "p95_ms_prometheus": prom_p95, "agrees": agrees})
    record = {"testrun": result.name, "requests": metrics.requests, "failed": metrics.failed,
              "latency_ms": metrics.quantiles_ms(), "quantiles": QUANTILES,
              "relative_error_bound": bound, "per_runner_check": checks,
              "agrees": all(c["agrees"] for c in checks)}
    (work / "prometheus.json").write_text(json.dumps(record, indent=1))
    outcome.files["prometheus"] = "prometheus.json"
    outcome.evidence["prometheus_check_agrees"] = record["agrees"]
