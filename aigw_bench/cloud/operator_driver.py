"""The k6-operator engine's Driver for one stack: every k6 job a TestRun on the load-generator pool.

- ``run_k6``: the warm-up as a TestRun of its own (``AIGW_WARMUP=1``, kept apart in ``warmup/``), then
  the measured TestRun with one runner per load-generator node, never more runners than the script
  has VUs (the operator's initializer refuses that), one at concurrency 1. Each runner's k6 summary
  comes from its pod log (``gen<i>/``, the cross-check); with several runners the summary's
  percentiles come from their native histograms merged in Prometheus (never averaged percentiles).
  The window k6 measured is k6's own (a runner's end minus its ``testRunDurationMs``), not the
  TestRun's life. A step that needs every request's latency (the overhead's pairs) has the script log
  them (``AIGW_PAIRS_LOG=1``): runner pods cannot hand back k6's per-request CSV.
- ``idle_resources`` and every job's resources: the pods' CPU and memory (gateway, mock, the runners)
  from Prometheus, reached through the API server's service proxy.
- ``use_profile``: the fast mock's settings through the Kubernetes API (shared with the EC2 engine).
- ``run_stream_probe``: a probe pod on the load-generator pool (aigw_bench/cloud/probe_pod.py).
"""

from __future__ import annotations

import csv
import gzip
import json
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from aigw_bench.cloud import operator as op
from aigw_bench.cloud.merge import merge_summaries
from aigw_bench.cloud.probe_pod import FILES_BEGIN, ProbePodError, ProbePodRunner, ProbePodSpec, unpack
from aigw_bench.cloud.prometheus import QUANTILES, Prometheus, PrometheusError, RunMetrics, read_run
from aigw_bench.cloud.resources import Queries, Usage, pod_usage, prometheus_queries, write_rows
from aigw_bench.cloud.stack_driver import PROMETHEUS_LAG_SECONDS, PROMETHEUS_STEP_SECONDS, StackDriver
from aigw_bench.measure import stream_probe
from aigw_bench.measure.driver import K6Job, K6Run, ResourcesUnavailable, SessionLost, StreamJob
from analysis.native_histogram import K6_SCHEMA, relative_error_bound
from k6_scripts.logs import EXIT_SCRIPT_ABORTED, logged_requests
from schema.errors import CloudError
from schema.k6 import COMPLETE_EXIT_CODES, read_summary_file
from schema.pins import probe_requirements
from schema.results import Status
from schema.scenarios import format_duration

GRACE_S = 300.0  # beyond the k6 duration: image pulls, the initializer, the starter, graceful stop
PLACEMENT = op.Placement(node_selector={"aigw-bench/pool": "loadgen"},
                         tolerations=[{"key": "aigw-bench/pool", "operator": "Equal", "value": "loadgen",
                                       "effect": "NoSchedule"}])
PROBE_GRACE_S = 600.0  # the probe pod: image pull and pip install before the probe's own time
TAIL_MS = 5  # Prometheus may lack a runner's last millisecond of requests per series: missing_allowed()
ROLES = ("gateway", "mock", "loadgen")


def dns(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")


def save_runners(folder: Path, result: op.TestRunResult) -> None:
    """Every runner's log and summary, as soon as they exist (also when the run failed)."""
    for r in result.runners:
        gen = folder / f"gen{r.index}"
        gen.mkdir(parents=True, exist_ok=True)
        (gen / "k6.log").write_text(r.log)
        if r.summary is not None:
            (gen / "summary.json").write_text(json.dumps(r.summary, indent=1))
        (gen / "pod.json").write_text(json.dumps({"pod": r.pod, "node": r.node, "phase": r.phase,
                                                  "exit_code": r.exit_code, "finished_at": r.finished_at}, indent=1))


def pairs_from_logs(logs: list[str], out: Path) -> int:
    """The overhead script's logged requests (k6_scripts/logs.py) as ``side,settle,ms`` rows, in order."""
    count = 0
    with gzip.open(out, "wt", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["side", "settle", "ms"])
        for log in logs:
            for r in logged_requests(log):
                writer.writerow([r.side, int(r.settle), r.ms])
                count += 1
    return count


def target_tag(name: str) -> str:
    """k6's ``--tag target=<name>``: a run tag, carried by every sample of the run. The script's scenario
    tag ``target`` reaches only the samples of its requests; k6 v1.1.0 emits ``vus``/``vus_max`` with the
    run tags alone (internal/execution/scheduler.go:201) and ``dropped_iterations`` with the run tags
    plus system tags (lib/executor/base_executor.go:76-85), so without it the dashboard cannot tell
    targets apart there. A script's ``options.tags`` would not do: the operator's own ``--tag`` flags
    replace the script's run tags wholesale (lib/options.go:490-491)."""
    if not name or any(c.isspace() for c in name):
        # The operator splits spec.arguments on whitespace (api/v1alpha1/testrun_types.go:259).
        raise CloudError(f"target name {name!r} cannot be a k6 tag in a TestRun's arguments (no spaces): rename "
                         "its catalog folder")
    return f"--tag target={name}"


def k6_starts(result: op.TestRunResult) -> dict[int, float]:
    """Each runner's k6 start on the wall clock: its container's end (``finishedAt``) minus its test's own
    duration (``state.testRunDurationMs``: end - start - pauses after the start, so the paused wait for
    the starter is left out; k6 v1.1.0 lib/execution.go:374-396). ``finishedAt`` is whole seconds
    (metav1.Time), so each start is known to within a second."""
    starts = {}
    for r in result.runners:
        duration = ((r.summary or {}).get("state") or {}).get("testRunDurationMs")
        if r.finished_at is not None and duration is not None:
            starts[r.index] = r.finished_at - float(duration) / 1000.0
    return starts


def k6_window(result: op.TestRunResult) -> tuple[float, float] | None:
    """The seconds k6 itself measured, on the wall clock: from the first runner's start to the last one's
    end; the TestRun's own life (initializer, image pulls, the starter) is left out."""
    starts = k6_starts(result)
    ends = [r.finished_at for r in result.runners if r.finished_at is not None]
    if not starts or not ends:
        return None
    return min(starts.values()), max(ends)


@dataclass(kw_only=True)
class OperatorDriver(StackDriver):
    """The Driver for one session (or the rig) on a stack's k6-operator."""

    runner: op.TestRunner
    probe_runner: ProbePodRunner
    prometheus: Prometheus
    parallelism: int  # runners of a job that may be split: one per load-generator node
    session_label: str  # e.g. litellm-r2, rig-kong (labels and names)
    secret: dict[str, str]  # header -> value, to the runners through a Secret only
    prometheus_lag_s: int = PROMETHEUS_LAG_SECONDS
    sleep: Callable[[float], None] = time.sleep
    wall: Callable[[], float] = time.time

    @property
    def namespace(self) -> str:
        return self.outputs.k6_operator.get("namespace") or "loadgen"

    def generators(self, job: K6Job, warmup: bool = False) -> int:
        """Runners for ``job``: one per node when the load may be split, never more than its VUs."""
        wanted = self.parallelism if job.split else 1
        vus = (job.warmup_vus or job.max_vus) if warmup else job.max_vus
        return max(1, min(wanted, vus or wanted))

    def _labels(self, job: K6Job) -> dict[str, str]:
        return {"app.kubernetes.io/part-of": "aigw-bench", "aigw-bench/session": dns(self.session_label)[:63],
                "aigw-bench/target": dns(self.target.name)[:63]}

    def testrun_spec(self, name: str, job: K6Job, duration: float, parallelism: int, warmup: bool) -> op.TestRunSpec:
        env = {"AIGW_SUMMARY": op.SUMMARY_TO_STDOUT, "AIGW_DURATION": format_duration(duration),
               "K6_PROMETHEUS_RW_SERVER_URL": self.outputs.prometheus_service["cluster_url"] + "/api/v1/write",
               "K6_PROMETHEUS_RW_TREND_AS_NATIVE_HISTOGRAM": "true",
               "K6_PROMETHEUS_RW_PUSH_INTERVAL": "1s",  # per-second series
               "K6_PROMETHEUS_RW_STALE_MARKERS": "true",
               "K6_NO_USAGE_REPORT": "true"}
        if warmup:
            # Iteration and ramping scenarios warm up with a closed loop, not their own schedule.
            env["AIGW_WARMUP"] = "1"
            if job.steady:
                env["AIGW_STEADY"] = job.steady
        elif job.raw:
            env["AIGW_PAIRS_LOG"] = "1"
        secret_env = {"AIGW_HEADERS": json.dumps(self.secret)} if self.secret else {}
        return op.TestRunSpec(name=name, namespace=self.namespace, script=job.source, parallelism=parallelism,
                              placement=PLACEMENT, env=env, secret_env=secret_env,
                              arguments=f"--out experimental-prometheus-rw {target_tag(self.target.name)}",
                              labels=self._labels(job))

    def _progress(self, label: str, warmup: bool, duration: float) -> op.ProgressSink:
        last: dict[str, str | None] = {"stage": None}

        def progress(stage: str, elapsed: float, pods: dict[str, int]) -> None:
            if stage != last["stage"]:
                self.phase(f"{label}: TestRun stage {stage}; pods {pods or 'none yet'}")
                last["stage"] = stage
            self.tick(label, elapsed, duration, warmup=warmup)

        return progress

    # ---------------------------------------------------------------------------------- k6
    def run_k6(self, job: K6Job) -> K6Run:
        job.dir.mkdir(parents=True, exist_ok=True)
        (job.dir / "script.js").write_text(job.source)
        base = f"aigw-{uuid.uuid4().hex[:10]}"
        warmup_log = ""
        if job.warmup > 0:
            warm = op.TestRunResult(name=f"{base}-w")
            # A steady warm-up ends itself with exec.test.abort() once the target is steady.
            ok = (*COMPLETE_EXIT_CODES, EXIT_SCRIPT_ABORTED) if job.steady else COMPLETE_EXIT_CODES
            try:
                self.runner.run(self.testrun_spec(warm.name, job, job.warmup, self.generators(job, True), True),
                                timeout_s=job.warmup + job.request_timeout + GRACE_S, result=warm,
                                on_progress=self._progress(job.label, True, job.warmup), ok_exit_codes=ok)
            except op.TestRunError as exc:
                raise self._lost(job, "warm-up", exc) from None
            finally:
                save_runners(job.dir / "warmup", warm)
            warmup_log = warm.runners[0].log if warm.runners else ""
        result = op.TestRunResult(name=f"{base}-m")
        parallelism = self.generators(job)
        self.phase(f"{job.label} (TestRun {result.name}, {parallelism} runner{'s' if parallelism > 1 else ''})")
        try:
            self.runner.run(self.testrun_spec(result.name, job, job.duration, parallelism, False),
                            timeout_s=job.duration + job.request_timeout + GRACE_S, result=result,
                            on_progress=self._progress(job.label, False, job.duration))
        except op.TestRunError as exc:
            save_runners(job.dir, result)
            self.k6_runs.append(self._partial(job, result, str(exc)))
            raise self._lost(job, "measurement", exc) from None
        except BaseException:
            save_runners(job.dir, result)
            self.k6_runs.append(self._partial(job, result, "interrupted"))
            raise
        save_runners(job.dir, result)
        run = self._collect(job, result)
        run.warmup_log = warmup_log
        self.k6_runs.append(run)
        return run

    def _lost(self, job: K6Job, part: str, exc: op.TestRunError) -> SessionLost:
        reason = f"{job.label} ({part}): {exc}"
        if exc.result.left_behind:
            reason += f"; left behind: {', '.join(exc.result.left_behind)}"
        return SessionLost(Status.K6_FAILED, reason, testrun=exc.result.name, testrun_stage=exc.result.stage,
                           runners=[{"pod": r.pod, "node": r.node, "exit_code": r.exit_code}
                                    for r in exc.result.runners])

    def _partial(self, job: K6Job, result: op.TestRunResult, problem: str) -> K6Run:
        files = {"script": "script.js"}
        if (job.dir / "gen1" / "k6.log").exists():
            files["k6_log"] = "gen1/k6.log"
        return K6Run(dir=job.dir, exit_code=None, seconds=result.seconds or 0.0, files=files, summary=None,
                     summary_problem=problem)

    def _collect(self, job: K6Job, result: op.TestRunResult) -> K6Run:
        files = {"script": "script.js", "k6_log": "gen1/k6.log"}
        codes = [r.exit_code for r in result.runners]
        failing = [c for c in codes if c not in COMPLETE_EXIT_CODES]
        exit_code = failing[0] if failing else max(c for c in codes if c is not None)
        span = k6_window(result)
        starts = k6_starts(result)
        (job.dir / "testrun.json").write_text(json.dumps({
            "testrun": result.name, "stage": result.stage, "created": result.started, "ended": result.finished,
            "k6_window": span, "runners": [{"pod": r.pod, "node": r.node, "exit_code": r.exit_code,
                                            "k6_start": starts.get(r.index), "k6_end": r.finished_at}
                                           for r in result.runners]}, indent=1))
        metrics: RunMetrics | None = None
        problem: str | None = None
        try:
            assert result.started is not None and result.finished is not None
            # Asked over the TestRun's whole life; second 0 of the series is k6's own start.
            metrics = read_run(self.prometheus, result.name, result.started, result.finished,
                               origin=span[0] if span else None)
        except PrometheusError as exc:
            problem = str(exc)
        if metrics is not None:
            files.update(write_metrics(job.dir, metrics, result))
        summary, problem = self._summary(job, result, metrics, problem)
        if summary is not None:
            files["summary"] = "summary.json"
        if job.raw:
            count = pairs_from_logs([r.log for r in result.runners], job.dir / "pairs.csv.gz")
            if count:
                files["pairs"] = "pairs.csv.gz"
        usage = self._usage(job.dir, span or (result.started or 0.0, result.finished or 0.0), result.name,
                            exact=job.exact_resources, runners=len(result.runners))
        if usage.rows:
            write_rows(usage.rows, job.dir / "resources.csv")
            files["resources"] = "resources.csv"
        seconds = span[1] - span[0] if span else (result.seconds or 0.0)
        return K6Run(dir=job.dir, exit_code=exit_code, seconds=seconds, files=files, summary=summary,
                     summary_problem=problem, resources=usage.rows, cpu_seconds=usage.cpu_seconds)

    def _summary(self, job: K6Job, result: op.TestRunResult, metrics: RunMetrics | None,
                 problem: str | None) -> tuple[dict[str, Any] | None, str | None]:
        """One runner: its own summary. Several: counts summed, percentiles from the merged histograms."""
        summaries = [r.summary for r in result.runners]
        if len(summaries) == 1:
            (job.dir / "summary.json").write_text(json.dumps(summaries[0], indent=1))
            return read_summary_file(job.dir / "summary.json")
        if metrics is None or metrics.total is None:
            # The runners' own summaries are kept (gen*/summary.json), but their percentiles cannot be
            # merged without the histograms: no merged figure rather than a wrong one.
            return None, (f"{len(summaries)} runners' summaries are kept in gen*/summary.json, but their latency "
                          f"percentiles need the merged histograms from Prometheus: "
                          f"{problem or 'no latency samples'}. The series stay in Prometheus for its retention "
                          f"(TestRun {result.name}).")
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
        merged["aigw_bench_merged"]["generators"] = len(summaries)
        (job.dir / "summary.json").write_text(json.dumps(merged, indent=1))
        return read_summary_file(job.dir / "summary.json")

    # ---------------------------------------------------------------------------- resources
    def _queries(self, testrun: str | None) -> Queries:
        selectors = {"gateway": f'namespace="{self.outputs.gateway_namespace}"',
                     "mock": f'namespace="{self.outputs.mock_namespace}"'}
        if testrun:
            selectors["loadgen"] = f'namespace="{self.namespace}",pod=~"{testrun}-[0-9]+-.*"'
        return prometheus_queries(selectors)

    def _usage(self, directory: Path, span: tuple[float, float], testrun: str | None, exact: bool,
               runners: int = 0) -> Usage:
        """The pods' CPU and memory over ``span`` from Prometheus, as the EC2 runner's files would hold them."""
        start, end = math.floor(span[0]), math.ceil(span[1])
        (directory / "window.txt").write_text(f"{start} {end}\n")
        queries = self._queries(testrun)
        errors: list[str] = []
        if exact:  # the samples that cover the window's end are ~10 s old and scraped every 5 s
            self.sleep(self.prometheus_lag_s)
        for name, query in queries.series.items():
            self._fetch(directory / f"prom-{name}.json", errors, "/api/v1/query_range",
                        {"query": query, "start": start, "end": end, "step": PROMETHEUS_STEP_SECONDS})
        if exact:
            span_s = end - start + self.prometheus_lag_s + 60
            for name, selector in queries.counters.items():
                self._fetch(directory / f"promraw-{name}.json", errors, "/api/v1/query",
                            {"query": f"{selector}[{span_s}s]", "time": end + self.prometheus_lag_s})
        if errors:
            (directory / "prom-errors.txt").write_text("\n".join(errors) + "\n")
        usage = pod_usage(directory, roles=ROLES)
        cpus = self.outputs.k6_operator.get("load_generator_vcpus")
        for row in usage.rows:
            if row["role"] == "loadgen" and cpus:
                row["cpus"] = float(cpus) * runners  # this TestRun's runners, each on a node of its own
        return usage

    def _fetch(self, path: Path, errors: list[str], api: str, params: dict[str, Any]) -> None:
        try:
            path.write_text(json.dumps(self.prometheus.document(api, params)))
        except PrometheusError as exc:
            errors.append(f"{path.stem}: {exc}")

    def idle_resources(self, seconds: float) -> list[dict[str, Any]]:
        seconds = max(1, math.ceil(seconds))
        directory = self.work / "idle" / f"{int(self.wall() * 1000)}"
        directory.mkdir(parents=True, exist_ok=True)
        self.phase(f"CPU and memory at rest ({seconds} s, from Prometheus)")
        start = self.wall()
        waited = 0.0
        while waited < seconds:
            self.sleep(min(1.0, seconds - waited))
            waited = self.wall() - start
            self.tick("at rest", waited, seconds)
        usage = self._usage(directory, (start, start + seconds), None, exact=True)
        rows = [r for r in usage.rows if r["role"] in ("gateway", "mock")]
        if not rows:
            why = "; ".join(usage.problems) or "no series"
            raise ResourcesUnavailable(f"Prometheus gave nothing for the window ({why}); check it: "
                                       "kubectl -n monitoring get pods,svc")
        return rows

    # ---------------------------------------------------------------------------- streaming
    def run_stream_probe(self, job: StreamJob) -> Path:
        job.dir.mkdir(parents=True, exist_ok=True)
        name = f"aigw-probe-{uuid.uuid4().hex[:10]}"
        args = ["--direct-url", self.direct.url, "--target-url", self.target.url,
                "--target-headers", json.dumps(self.target.headers), "--body-file", "/probe/body.json",
                "--concurrency", str(job.concurrency), "--duration", f"{job.duration:g}",
                "--timeout", f"{job.request_timeout:g}"]
        spec = ProbePodSpec(name=name, namespace=self.namespace, placement=PLACEMENT, args=args,
                            files={"stream_probe.py": Path(stream_probe.__file__).read_text(), "body.json": job.body,
                                   "requirements.txt": "\n".join(probe_requirements()) + "\n"},
                            secret_env={"AIGW_HEADERS": json.dumps(self.secret)} if self.secret else {},
                            labels={"app.kubernetes.io/part-of": "aigw-bench",
                                    "aigw-bench/session": dns(self.session_label)[:63]})
        self.phase(f"{job.label} (probe pod {name})")
        try:
            result = self.probe_runner.run(spec, job.duration + job.request_timeout + PROBE_GRACE_S,
                                           on_wait=lambda waited, phase: self.tick(job.label, waited, job.duration))
        except ProbePodError as exc:
            raise SessionLost(Status.K6_FAILED, f"{job.label}: {exc}") from None
        log = result.log.split(FILES_BEGIN)[0]
        (job.dir / "probe.log").write_text(log)
        try:
            if result.phase != "Succeeded":
                raise ProbePodError(f"the probe pod {self.namespace}/{name} ended {result.phase}")
            unpack(result.log, job.dir)
        except ProbePodError as exc:
            raise SessionLost(Status.K6_FAILED, f"{job.label}: {exc}", probe_log_tail=log.splitlines()[-25:]) from None
        out = job.dir / "streams.csv"
        if not out.exists():
            raise SessionLost(Status.K6_FAILED, f"{job.label}: the probe pod returned no streams.csv")
        return out


def missing_allowed(rate: float, series: int) -> int:
    """Requests a runner's series in Prometheus may lack against its own k6 summary (never the other way).

    k6 v1.1.0's remote write sends a series again only for a later millisecond than it last sent
    (internal/output/prometheusrw/remotewrite/remotewrite.go:247-298): what a runner observes in the
    millisecond it already sent goes out only with the stale markers after its final flush, which
    re-send each native histogram at that timestamp (remotewrite.go:98-147), and Prometheus v3.14.0
    refuses such a request whole (ErrDuplicateSampleForTimestamp, HTTP 400: storage/remote/
    write_handler.go:115-118, tsdb/head_append.go:710-719). So each series may lack the requests of one
    millisecond at the run's end: taken as TAIL_MS of the runner's mean rate, at least 2, per series."""
    return max(1, series) * max(2, math.ceil(rate * TAIL_MS / 1000))


def write_metrics(work: Path, metrics: RunMetrics, result: op.TestRunResult) -> dict[str, str]:
    """Prometheus's view of the run: per-second series, totals and each runner against its own summary."""
    metrics.per_second.to_csv(work / "prometheus-timeseries.csv", index=False)
    bound = relative_error_bound(metrics.total.schema if metrics.total else K6_SCHEMA)
    checks = []
    for r in result.runners:
        k6 = (r.summary or {}).get("metrics", {})
        mine = metrics.per_runner.get(str(r.index))
        prom_reqs = metrics.requests_per_runner.get(str(r.index))
        k6_reqs = k6.get("http_reqs", {}).get("values", {}).get("count")
        k6_rate = k6.get("http_reqs", {}).get("values", {}).get("rate") or 0.0
        k6_p95 = k6.get("http_req_duration", {}).get("values", {}).get("p(95)")
        prom_p95 = mine.quantile(0.95) * 1000 if mine and mine.count else None
        missing = k6_reqs - prom_reqs if k6_reqs is not None and prom_reqs is not None else None
        allowed = missing_allowed(k6_rate, metrics.series_per_runner.get(str(r.index), 1))
        agrees = (missing is not None and 0 <= missing <= allowed and prom_p95 is not None and k6_p95 is not None
                  and abs(prom_p95 / k6_p95 - 1) <= bound) if k6_p95 else False
        checks.append({"runner": r.index, "requests_k6": k6_reqs, "requests_prometheus": prom_reqs,
                       "requests_missing": missing, "requests_missing_allowed": allowed,
                       "p95_ms_k6": k6_p95, "p95_ms_prometheus": prom_p95, "agrees": agrees})
    record = {"testrun": result.name, "requests": metrics.requests, "failed": metrics.failed,
              "requests_missing": sum(c["requests_missing"] or 0 for c in checks),
              "latency_ms": metrics.quantiles_ms(), "quantiles": QUANTILES,
              "relative_error_bound": bound, "per_runner_check": checks,
              "agrees": all(c["agrees"] for c in checks)}
    (work / "prometheus.json").write_text(json.dumps(record, indent=1))
    return {"prometheus_timeseries": "prometheus-timeseries.csv", "prometheus": "prometheus.json"}
