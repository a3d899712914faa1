"""The EC2 engine's Driver for one stack on AWS: what the local session does with processes, done
with the stack's k6 runner(s) (SSM + S3), its Prometheus and its Kubernetes API.

- ``run_k6``: one SSM command per runner and job; the load split with k6 execution segments when
  there are several runners (not at concurrency 1), their results merged from the per-request
  samples (:mod:`aigw_bench.cloud.merge`). Files land in the job's directory as a local run's do.
- ``idle_resources``: the runner sleeps through the window, then asks Prometheus (reachable from
  inside the VPC only) for the pods' CPU and memory.
- ``use_profile``: the fast mock's settings rewritten and its pod restarted through the Kubernetes
  API (:mod:`aigw_bench.cloud.mock_control`), waiting until it is ready again, bounded.
- ``run_stream_probe``: ``stream_probe.py`` and the body copied through the bucket and run on the
  runner with the Python and httpx installed there at boot.

Steps decide what to send and what it means (:mod:`aigw_bench.measure.steps`); this only runs it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aigw_bench.cloud.endpoints import without_headers
from aigw_bench.cloud.merge import merge_generators
from aigw_bench.cloud.remote import (
    ENDPOINT_UNREACHABLE,
    RESOURCES_UNAVAILABLE,
    RUNNERS_APART,
    Generator,
    Remote,
    render_script,
    segment_args,
)
from aigw_bench.cloud.resources import (
    Usage,
    loadgen_usage,
    namespace_selectors,
    pod_usage,
    prometheus_queries,
    window,
    write_rows,
)
from aigw_bench.cloud.stack_driver import PROMETHEUS_LAG_SECONDS, PROMETHEUS_STEP_SECONDS, StackDriver, tail
from aigw_bench.measure import stream_probe
from aigw_bench.measure.driver import Endpoint, K6Job, K6Run, ResourcesUnavailable, SessionLost, StreamJob
from schema.errors import CloudError
from schema.k6 import COMPLETE_EXIT_CODES, read_summary_file
from schema.results import Status
from schema.scenarios import format_duration

# SSM time beyond what a job should take: k6 start and graceful stop, uploads, Prometheus queries.
COMMAND_GRACE_SECONDS = 300
# How long the runner waits for an endpoint (a fresh NLB, a restarted mock) before giving up.
ENDPOINT_WAIT_SECONDS = 600
# Several runners of one job meet before the measurement (templates/k6.sh.j2): each waits for the
# others at most their endpoint wait plus this (their commands' start, S3), then they all start
# BARRIER_MARGIN_SECONDS after the last one arrived (time for every runner to see it: polls every second).
BARRIER_GRACE_SECONDS = 120
BARRIER_MARGIN_SECONDS = 3


@dataclass(kw_only=True)
class Ec2Driver(StackDriver):
    """The Driver for one target session (or the rig) on one stack's EC2 runner(s)."""

    remote: Remote
    run_id: str
    run_dir: Path
    headers_key: str | None = None  # S3 key of the secret headers, for this session's commands
    endpoint_wait_s: int = ENDPOINT_WAIT_SECONDS
    barrier_grace_s: int = BARRIER_GRACE_SECONDS
    prometheus_lag_s: int = PROMETHEUS_LAG_SECONDS
    _idle_count: int = 0

    # ------------------------------------------------------------------------------ helpers
    def _prefix(self, directory: Path) -> str:
        return f"runs/{self.run_id}/{directory.relative_to(self.run_dir).as_posix()}"

    def _generators(self, directory: Path, count: int, scripts: Callable[[int, str], str]) -> list[Generator]:
        runners = self.outputs.k6_runner_instance_ids[:count]
        gens = []
        for i, instance in enumerate(runners):
            prefix = f"{self._prefix(directory)}/g{i + 1}"
            gens.append(Generator(instance, prefix, directory if count == 1 else directory / f"gen{i + 1}",
                                  scripts(i, prefix)))
        return gens

    def _common(self, prefix: str, label: str, generator: int, generators: int) -> dict[str, Any]:
        return {"run_id": self.run_id, "label": label, "bucket": self.outputs.results_bucket, "prefix": prefix,
                "generator": generator + 1, "generators": generators, "headers_key": self.headers_key,
                "wait_seconds": self.endpoint_wait_s, "prometheus_lag": self.prometheus_lag_s,
                "prometheus_step": PROMETHEUS_STEP_SECONDS,
                "queries": prometheus_queries(namespace_selectors({"gateway": self.outputs.gateway_namespace,
                                                                   "mock": self.outputs.mock_namespace}))}

    def _wait_urls(self, *endpoints: Endpoint) -> list[str]:
        return list(dict.fromkeys(e.url for e in endpoints))

    def _check_commands(self, what: str, gens: list[Generator]) -> None:
        """SessionLost if a command did not run to its end, or an endpoint never answered."""
        evidence = {"ssm": [g.evidence() for g in gens]}
        for g in gens:
            r = g.result
            if r is not None and not r.ok:
                raise SessionLost(Status.K6_FAILED, f"{what}: the runner's SSM command {r.command_id} ended {r.status} "
                                               f"({r.status_details}); whatever it uploaded is kept", **evidence)
        # An endpoint that never answered one runner says more than the others' giving up on it.
        for g in sorted(gens, key=lambda g: g.code != ENDPOINT_UNREACHABLE):
            if g.code == RUNNERS_APART:
                why = (g.dir / "barrier.txt").read_text().strip() if (g.dir / "barrier.txt").exists() else ""
                raise SessionLost(Status.K6_FAILED, f"{what}: the runners never all got to the measurement's common "
                                               f"start (runner {g.instance}: {why or 'no barrier record'}); each "
                                               "runner's own files say why", **evidence)
            if g.code == ENDPOINT_UNREACHABLE:
                waited = (g.dir / "endpoint-wait.txt").read_text().split() if (g.dir / "endpoint-wait.txt").exists() \
                    else ["?", "?"]
                url = waited[1] if len(waited) > 1 else "an endpoint"
                raise SessionLost(Status.NOT_READY, f"{url} did not answer the runner within {self.endpoint_wait_s} s "
                                               f"({what}): its NLB's DNS name or targets are not ready (a fresh "
                                               "`pulumi up` needs a few minutes; run again), or its pods are not "
                                               "running (kubectl -n <namespace> get pods)",
                                  endpoint_wait_s=float(waited[0]) if waited[0] != "?" else None, **evidence)

    # ---------------------------------------------------------------------------------- k6
    def run_k6(self, job: K6Job) -> K6Run:
        count = len(self.outputs.k6_runner_instance_ids) if job.split else 1
        raw = job.raw or count > 1  # percentiles of several generators come from their samples
        wait_urls = self._wait_urls(self.target, self.direct) if self.target is not self.direct \
            else self._wait_urls(self.target)

        barrier_s = self.endpoint_wait_s + self.barrier_grace_s

        def script(i: int, prefix: str) -> str:
            return render_script(
                "k6", **self._common(prefix, job.label, i, count), inputs=["script.js"], wait_urls=wait_urls,
                warmup=job.warmup, warmup_duration=format_duration(job.warmup), steady=job.steady,
                duration=format_duration(job.duration), segment_args=segment_args(i, count), raw=raw,
                prometheus_url=self.outputs.prometheus_url if i == 0 else None, exact=job.exact_resources,
                job_prefix=self._prefix(job.dir), barrier_seconds=barrier_s, barrier_margin=BARRIER_MARGIN_SECONDS)

        job.dir.mkdir(parents=True, exist_ok=True)
        (job.dir / "script.js").write_text(job.source)
        gens = self._generators(job.dir, count, script)
        expected = job.warmup + job.duration
        limit = self.endpoint_wait_s + expected + job.request_timeout + COMMAND_GRACE_SECONDS
        if count > 1:
            limit += barrier_s + BARRIER_MARGIN_SECONDS
        self.phase(f"{job.label} (on {count} runner{'s' if count > 1 else ''})")
        try:
            self.remote.run(job.label, gens, {"script.js": job.source.encode()}, limit,
                            lambda elapsed: self.tick(job.label, elapsed, expected))
        except CloudError as exc:
            raise SessionLost(Status.K6_FAILED, f"{job.label}: {exc}") from None
        run = self._collect(job, gens)
        warmup_log = gens[0].dir / "warmup-k6.log"
        run.warmup_log = warmup_log.read_text(errors="replace") if warmup_log.exists() else ""
        self.k6_runs.append(run)
        self._check_commands(job.label, gens)
        if run.exit_code is not None and run.exit_code not in COMPLETE_EXIT_CODES:
            raise SessionLost(Status.K6_FAILED, f"k6 exited with code {run.exit_code} on the runner ({job.label})",
                              k6_log_tail=tail(gens[0].dir / "k6.log"), ssm=[g.evidence() for g in gens])
        return run

    def _collect(self, job: K6Job, gens: list[Generator]) -> K6Run:
        codes = [g.code for g in gens]
        missing = [f"generator {i + 1}: exit-code missing (got {sorted(g.files) or 'nothing'})"
                   for i, g in enumerate(gens) if g.code is None]
        files = {"script": "script.js"}
        log = gens[0].dir / "k6.log"
        if log.exists():
            files["k6_log"] = log.relative_to(job.dir).as_posix()
        summary, problem = None, None
        if missing:
            problem = "partial upload from the runner: " + "; ".join(missing)
        elif len(gens) == 1:
            summary, problem = read_summary_file(job.dir / "summary.json")
            if (job.dir / "raw.csv.gz").exists():
                files["raw"] = "raw.csv.gz"
        else:
            try:
                files.update(merge_generators([g.dir for g in gens], job.dir))
                summary, problem = read_summary_file(job.dir / "summary.json")
            except (OSError, ValueError, KeyError) as exc:
                problem = f"merging the generators' results failed: {exc}"
        if summary is not None:
            files["summary"] = "summary.json"
        failing = [c for c in codes if c is not None and c not in COMPLETE_EXIT_CODES]
        exit_code = failing[0] if failing else (None if None in codes else max(codes))
        usage = pod_usage(gens[0].dir)
        load = loadgen_usage([g.dir for g in gens])
        rows = usage.rows + load.rows
        if rows:
            write_rows(rows, job.dir / "resources.csv")
            files["resources"] = "resources.csv"
        span = window(gens[0].dir)
        seconds = span[1] - span[0] if span else max((g.result.seconds for g in gens if g.result), default=0.0)
        return K6Run(dir=job.dir, exit_code=exit_code, seconds=seconds, files=files, summary=summary,
                     summary_problem=problem, resources=rows, cpu_seconds={**usage.cpu_seconds, **load.cpu_seconds})

    # ------------------------------------------------------------------------------ the rest
    def idle_resources(self, seconds: float) -> list[dict[str, Any]]:
        if not self.outputs.prometheus_url:
            raise ResourcesUnavailable(f"stack {self.outputs.stack} exports no prometheus_url")
        self._idle_count += 1
        directory = self.work / "idle" / f"{self._idle_count:02d}"
        seconds = max(1, math.ceil(seconds))

        def script(i: int, prefix: str) -> str:
            return render_script("idle", **self._common(prefix, f"idle {seconds} s", i, 1), inputs=[], wait_urls=[],
                                 seconds=seconds, prometheus_url=self.outputs.prometheus_url)

        gens = self._generators(directory, 1, script)
        self.phase(f"CPU and memory at rest ({seconds} s, from Prometheus)")
        limit = seconds + self.prometheus_lag_s + COMMAND_GRACE_SECONDS
        try:
            self.remote.run(f"idle {seconds} s", gens, {}, limit,
                            lambda elapsed: self.tick("at rest", elapsed, seconds + self.prometheus_lag_s))
        except CloudError as exc:
            raise ResourcesUnavailable(str(exc)) from None
        g = gens[0]
        usage: Usage = pod_usage(g.dir)
        if g.result is None or not g.result.ok or g.code != 0 or not usage.rows:
            why = "; ".join(usage.problems) or (f"the runner's command ended {g.result.status}" if g.result
                                                else "no answer")
            raise ResourcesUnavailable(
                f"Prometheus at {self.outputs.prometheus_url} gave nothing for the window ({why}); check its NLB "
                f"and pods: kubectl -n monitoring get pods,svc", ssm=[g.evidence()],
                code=g.code if g.code != RESOURCES_UNAVAILABLE else "no Prometheus answer")
        return usage.rows

    def run_stream_probe(self, job: StreamJob) -> Path:
        headers = without_headers(self.target.headers, self.outputs.gateway_secret_headers)

        def script(i: int, prefix: str) -> str:
            return render_script("probe", **self._common(prefix, job.label, i, 1),
                                 inputs=["stream_probe.py", "body.json"],
                                 wait_urls=self._wait_urls(self.direct, self.target), direct_url=self.direct.url,
                                 target_url=self.target.url, target_headers=headers, concurrency=job.concurrency,
                                 duration=f"{job.duration:g}", request_timeout=f"{job.request_timeout:g}")

        job.dir.mkdir(parents=True, exist_ok=True)
        gens = self._generators(job.dir, 1, script)
        inputs = {"stream_probe.py": Path(stream_probe.__file__).read_bytes(), "body.json": job.body.encode()}
        limit = self.endpoint_wait_s + job.duration + job.request_timeout + COMMAND_GRACE_SECONDS
        self.phase(job.label)
        try:
            self.remote.run(job.label, gens, inputs, limit,
                            lambda elapsed: self.tick(job.label, elapsed, job.duration))
        except CloudError as exc:
            raise SessionLost(Status.K6_FAILED, f"{job.label}: {exc}") from None
        self._check_commands(job.label, gens)
        g = gens[0]
        out = job.dir / "streams.csv"
        if g.code != 0 or not out.exists():
            raise SessionLost(Status.K6_FAILED, f"the streaming probe exited with code {g.code} on the runner "
                                                f"(streams.csv {'written' if out.exists() else 'missing'})",
                              probe_log_tail=tail(job.dir / "probe.log"), ssm=[g.evidence()])
        return out

    def describe(self) -> dict[str, Any]:
        """What the session ran on (for the outcome's evidence)."""
        return {"runners": self.outputs.k6_runner_instance_ids, "bucket": self.outputs.results_bucket,
                "prefix": self._prefix(self.work), "target_url": self.target.url, "direct_url": self.direct.url}
