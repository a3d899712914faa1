"""The post-deploy stage: render -> upload -> SSM command -> poll -> download -> same analysis as local.

One run directory in the local format holds every stack's results, so ``aigw-bench report`` and
``compare`` work unchanged. The S3 prefix carries the run id (never reused) and the local directory
is new for every run: nothing already measured is overwritten.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aigw_bench.catalog import Gateway
from aigw_bench.cloud import ssm as ssm_cmd
from aigw_bench.cloud.merge import merge_generators
from aigw_bench.cloud.outputs import StackOutputs
from aigw_bench.cloud.resources import cloud_resources, prometheus_queries
from aigw_bench.errors import CloudError
from aigw_bench.local.processes import Interrupted, signals_as_exceptions
from aigw_bench.mock import load_mock
from aigw_bench.results import (
    MANIFEST,
    Outcome,
    git_commit,
    new_run_dir,
    now_iso,
    target_dir,
    tool_versions,
    write_json,
    write_outcome,
)
from aigw_bench.templating import render_map
from analysis.timeseries import TimeseriesError, write_timeseries
from k6_scripts.render import RenderTarget, render_script
from k6_scripts.scenarios import Scenario, ScenarioParams, format_duration, interleaved_order, scenario_record

RUNNER_TEMPLATE = Path(__file__).resolve().parent / "runner.sh.j2"
# SSM time beyond warm-up + duration: k6 start and graceful stop, uploads, Prometheus queries.
COMMAND_GRACE_SECONDS = 300
COMPLETION_MARKER = "exit-code"
# How long the runner waits for the gateway's NLB to answer before it gives up on the target.
ENDPOINT_WAIT_SECONDS = 600
ENDPOINT_UNREACHABLE = 92  # the runner's exit-code when it did
EventSink = Callable[..., None]


@dataclass(frozen=True)
class CloudTarget:
    outputs: StackOutputs
    gateway: Gateway


@dataclass
class CloudPlan:
    targets: list[CloudTarget]
    scenario: Scenario
    params: ScenarioParams
    repeats: int
    results_root: Path
    command_line: list[str] = field(default_factory=list)
    engine: str = "ec2"  # or "operator": aigw_bench/cloud/operator_stage.py

    def order(self) -> list[tuple[int, CloudTarget]]:
        return interleaved_order(self.targets, self.repeats)


def segment_args(index: int, count: int) -> str:
    """k6 execution-segment flags splitting the load evenly across ``count`` generators."""
    if count == 1:
        return ""
    sequence = ",".join(["0", *(f"{i}/{count}" for i in range(1, count)), "1"])
    start = "0" if index == 0 else f"{index}/{count}"
    end = "1" if index == count - 1 else f"{index + 1}/{count}"
    return f"--execution-segment {start}:{end} --execution-segment-sequence {sequence}"


@contextmanager
def secret_object(s3: Any, bucket: str, key: str, content: dict[str, str]) -> Iterator[str | None]:
    """``content`` as a JSON object in the bucket (TLS only, encrypted) while the block runs, deleted
    afterwards, whatever happens; yields its key, or None when there is nothing secret to pass."""
    if not content:
        yield None
        return
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(content).encode(), ServerSideEncryption="AES256")
    try:
        yield key
    finally:
        s3.delete_object(Bucket=bucket, Key=key)


def render_runner(*, run_id: str, target: str, repeat: int, generator: int, generators: int, bucket: str,
                  prefix: str, params: ScenarioParams, prometheus_url: str | None,
                  queries: dict[str, str], wait_url: str, wait_seconds: int = ENDPOINT_WAIT_SECONDS,
                  headers_key: str | None = None) -> str:
    import jinja2

    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)
    return env.from_string(RUNNER_TEMPLATE.read_text()).render(
        run_id=run_id, target=target, repeat=repeat, generator=generator + 1, generators=generators,
        bucket=bucket, prefix=prefix, warmup=params.warmup, warmup_duration=format_duration(params.warmup),
        duration=format_duration(params.duration), segment_args=segment_args(generator, generators),
        prometheus_url=prometheus_url, prometheus_queries=queries, headers_key=headers_key,
        wait_url=wait_url, wait_seconds=wait_seconds, ENDPOINT_UNREACHABLE=ENDPOINT_UNREACHABLE,
    )


class CloudRunner:
    """Runs a plan; ``clients(region)`` returns ``(ssm, s3)`` boto3 clients (or test doubles)."""

    def __init__(self, plan: CloudPlan, clients: Callable[[str], tuple[Any, Any]],
                 on_event: EventSink | None = None, poll_interval: float = 5.0,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
                 endpoint_wait_s: int = ENDPOINT_WAIT_SECONDS, operator: Any = None):
        self.plan = plan
        self.operator = operator  # an OperatorEngine, for plan.engine == "operator"
        self.endpoint_wait_s = endpoint_wait_s
        self.clients = clients
        self.emit: EventSink = on_event or (lambda *a, **k: None)
        self.poll_interval = poll_interval
        self.sleep = sleep
        self.clock = clock
        self.run_dir: Path | None = None
        self.run_id: str | None = None

    def preflight(self) -> None:
        # --- k6-operator engine: no SSM runner involved (aigw_bench/cloud/operator_stage.py) ---
        if self.plan.engine == "operator":
            self.operator.preflight([t.outputs for t in self.plan.targets])
            return
        # --- end k6-operator engine ---
        for t in self.plan.targets:
            ssm, _ = self.clients(t.outputs.region)
            for instance in t.outputs.k6_runner_instance_ids:
                ssm_cmd.ensure_registered(ssm, instance)
                ssm_cmd.ensure_idle(ssm, instance)

    def run(self) -> Path:
        self.preflight()
        plan = self.plan
        self.run_dir = new_run_dir(plan.results_root, plan.scenario.name)
        # The S3 prefix must be unique even across machines that pick the same timestamp.
        self.run_id = f"{self.run_dir.name}-{uuid.uuid4().hex[:8]}"
        manifest = self._manifest()
        write_json(self.run_dir / MANIFEST, manifest)
        order = plan.order()
        self.emit("cloud_run_start", run_dir=self.run_dir, total=len(order), plan=plan)
        started = time.monotonic()
        interrupted = False
        with signals_as_exceptions():
            for index, (repeat, target) in enumerate(order, start=1):
                name = target.gateway.name
                self.emit("target_start", target=name, repeat=repeat, index=index, total=len(order))
                outcome = self._run_target(target, repeat)
                write_outcome(self.run_dir, outcome)
                self.emit("target_done", outcome=outcome, index=index, total=len(order))
                if outcome.status == "interrupted":
                    interrupted = True
                    break
        hours = (time.monotonic() - started) / 3600
        manifest["finished_at"] = now_iso()
        manifest["interrupted"] = interrupted
        if manifest.get("cost"):
            manifest["cost"]["run_usd"] = round(sum(
                (t.outputs.hourly_cost_usd or 0) for t in plan.targets) * hours, 4)
            manifest["cost"]["run_hours"] = round(hours, 4)
        write_json(self.run_dir / MANIFEST, manifest)
        if interrupted:
            raise KeyboardInterrupt
        return self.run_dir

    def _manifest(self) -> dict[str, Any]:
        plan = self.plan
        mock = load_mock("wiremock")  # the stacks deploy WireMock (components/mock_llm.py)
        first = plan.targets[0].outputs
        costs = {t.gateway.name: t.outputs.hourly_cost_usd for t in plan.targets if t.outputs.hourly_cost_usd}
        manifest: dict[str, Any] = {
            "kind": "aigw-bench run",
            "format": 1,
            "environment": "cloud",
            "run_id": self.run_id,
            "created_at": now_iso(),
            "command_line": plan.command_line,
            "scenario": scenario_record(plan.scenario, plan.params),
            "repeats": plan.repeats,
            "order": [{"repeat": r, "target": t.gateway.name} for r, t in plan.order()],
            "targets": {
                t.gateway.name: {"title": t.gateway.title, "role": t.gateway.role, "version": t.outputs.gateway_version,
                                 "source": t.gateway.source, "route": t.gateway.request.path,
                                 "model": t.gateway.request.model}
                for t in plan.targets
            },
            "mock": {"name": mock.name, "version": mock.version,
                     "source": f"{mock.source}; on EKS: mock_llm/{mock.name}/mock.yaml"},
            # k6 has a machine of its own: only its CPUs are counted against it.
            "cpu_pinning": {"loadgen": None, "mock": None, "gateway": None,
                            "note": "separate machines: k6 on its EC2 runner, gateway and mock on their own nodes"},
            "machine": {"k6_runner_instance_type": first.instance_types.get("k6_runner"),
                        "k6_runner_ami": first.k6_runner_ami, "region": first.region},
            "cloud": {
                t.gateway.name: {"stack": t.outputs.stack, "region": t.outputs.region,
                                 "cluster": t.outputs.cluster_name, "instance_types": t.outputs.instance_types,
                                 "chart_versions": t.outputs.chart_versions,
                                 "runners": t.outputs.k6_runner_instance_ids, "bucket": t.outputs.results_bucket,
                                 # names only: the values are the stack's secrets
                                 "secret_headers": sorted(t.outputs.gateway_secret_headers)}
                for t in plan.targets
            },
            "tools": tool_versions(),
            "git": git_commit(),
        }
        if costs:
            manifest["cost"] = {"hourly_usd": round(sum(costs.values()), 4), "per_target_hourly_usd": costs,
                                "price_table": first.price_table or "pinned price table"}
        # --- k6-operator engine: k6 runs in pods on the load-generator pool, not on the EC2 runner ---
        manifest["engine"] = plan.engine
        if plan.engine == "operator":
            from aigw_bench.cloud.operator import K6_IMAGE

            manifest["machine"] = {"load_generator_instance_type":
                                   first.k6_operator.get("load_generator_instance_type"),
                                   "load_generators": {t.gateway.name: self.operator.parallelism(t.outputs)
                                                       for t in plan.targets},
                                   "k6_image": K6_IMAGE, "region": first.region}
            manifest["cpu_pinning"]["note"] = ("separate machines: k6 runner pods one per load-generator node, "
                                               "gateway and mock on their own nodes")
        # --- end k6-operator engine ---
        return manifest

    # ------------------------------------------------------------------------ one target
    def _run_target(self, target: CloudTarget, repeat: int) -> Outcome:
        assert self.run_dir is not None and self.run_id is not None
        # --- k6-operator engine (aigw_bench/cloud/operator_stage.py) ---
        if self.plan.engine == "operator":
            return self.operator.run_target(
                run_dir=self.run_dir, run_id=self.run_id, scenario=self.plan.scenario, params=self.plan.params,
                outputs=target.outputs, gateway=target.gateway, repeat=repeat, emit=self.emit)
        # --- end k6-operator engine ---
        out, gw, plan = target.outputs, target.gateway, self.plan
        work = target_dir(self.run_dir, gw.name, repeat)
        work.mkdir(parents=True, exist_ok=True)
        outcome = Outcome(target=gw.name, repeat=repeat, status="ok", started_at=now_iso())
        ssm, s3 = self.clients(out.region)
        url = out.gateway_url.rstrip("/") + gw.request.path
        headers = render_map(gw.request.headers, {"mock_url": out.mock_cluster_url}, f"{gw.name}: request.headers")
        # Secret headers (the stack's gateway key) replace the catalog's local values and stay out of
        # script.js: they reach k6 through its environment on the runner (see secret_object).
        secret = {name: value.get_secret_value() for name, value in out.gateway_secret_headers.items()}
        headers = {k: v for k, v in headers.items() if k.lower() not in {n.lower() for n in secret}}
        rendered = render_script(plan.scenario, plan.params, RenderTarget(gw.name, url, gw.request.model, headers))
        (work / "script.js").write_text(rendered.source)
        outcome.url, outcome.body_sha256 = url, rendered.body_sha256
        outcome.files["script"] = "script.js"
        limit = self.endpoint_wait_s + plan.params.warmup + plan.params.duration + COMMAND_GRACE_SECONDS
        outcome.evidence["endpoint"] = out.gateway_url
        self.emit("phase", target=gw.name, phase=f"the runner waits for {out.gateway_url} to answer "
                                                 f"(at most {self.endpoint_wait_s} s), then runs k6")
        commands: list[tuple[str, str, str]] = []  # (instance, command id, generator prefix)
        try:
            secret_key = f"secrets/{self.run_id}/{gw.name}/r{repeat}/headers.json"
            with secret_object(s3, out.results_bucket, secret_key, secret) as headers_key:
                self._send(ssm, s3, target, repeat, rendered.source, work, limit, headers_key, commands)
                results = [ssm_cmd.wait(ssm, cid, inst, limit, on_tick=self._ticker(gw.name),
                                        interval=self.poll_interval, sleep=self.sleep, clock=self.clock)
                           for inst, cid, _ in commands]
        except (KeyboardInterrupt, Interrupted):
            for inst, cid, _ in commands:
                ssm_cmd.cancel(ssm, cid, inst)
            outcome.status, outcome.reason = "interrupted", "stopped by Ctrl-C; remote commands cancelled"
            self._download(s3, out.results_bucket, commands, work, outcome)
            outcome.finished_at = now_iso()
            return outcome
        except CloudError as exc:
            outcome.status, outcome.reason = "k6_failed", str(exc)
            outcome.finished_at = now_iso()
            return outcome
        outcome.evidence["ssm"] = [{"instance": inst, "command_id": r.command_id, "status": r.status,
                                    "details": r.status_details, "seconds": round(r.seconds, 1),
                                    "stdout_tail": r.stdout_tail[-500:]}
                                   for (inst, _, _), r in zip(commands, results, strict=True)]
        outcome.measure_seconds = max(r.seconds for r in results)
        self._download(s3, out.results_bucket, commands, work, outcome)
        failed = [r for r in results if not r.ok]
        if failed:
            r = failed[0]
            outcome.status = "k6_failed"
            outcome.reason = (f"the runner's SSM command {r.command_id} ended {r.status} ({r.status_details}); "
                              "whatever it uploaded is kept")
        self._finish(work, outcome, len(commands))
        outcome.finished_at = now_iso()
        return outcome

    def _send(self, ssm: Any, s3: Any, target: CloudTarget, repeat: int, script_js: str, work: Path, limit: float,
              headers_key: str | None, commands: list[tuple[str, str, str]]) -> None:
        """Upload the k6 script and start the runner job on every runner (appending to ``commands``
        as they start, so that an interruption cancels exactly those)."""
        assert self.run_id is not None
        out, gw = target.outputs, target.gateway
        prefix = f"runs/{self.run_id}/{gw.name}/r{repeat}"
        runners = out.k6_runner_instance_ids
        queries = prometheus_queries(out.gateway_namespace, out.mock_namespace)
        for i, instance in enumerate(runners):
            gen_prefix = f"{prefix}/g{i + 1}"
            s3.put_object(Bucket=out.results_bucket, Key=f"{gen_prefix}/script.js", Body=script_js.encode())
            script = render_runner(run_id=self.run_id, target=gw.name, repeat=repeat, generator=i,
                                   generators=len(runners), bucket=out.results_bucket, prefix=gen_prefix,
                                   params=self.plan.params, prometheus_url=out.prometheus_url if i == 0 else None,
                                   queries=queries, headers_key=headers_key, wait_url=out.gateway_url,
                                   wait_seconds=self.endpoint_wait_s)
            (work / f"runner-g{i + 1}.sh").write_text(script)
            command_id = ssm_cmd.send(ssm, instance, script, f"{self.run_id} {gw.name} r{repeat} g{i + 1}", int(limit))
            commands.append((instance, command_id, gen_prefix))
            self.emit("command_sent", target=gw.name, instance=instance, command_id=command_id,
                      bucket=out.results_bucket, prefix=gen_prefix, script=script)

    def _ticker(self, target: str) -> Callable[[float], None]:
        duration = self.plan.params.warmup + self.plan.params.duration

        def tick(elapsed: float) -> None:
            self.emit("tick", target=target, warmup=False, elapsed=elapsed, duration=duration, requests=None,
                      rps=None, ok_rate=None)

        return tick

    def _download(self, s3: Any, bucket: str, commands: list[tuple[str, str, str]], work: Path,
                  outcome: Outcome) -> None:
        """Every object under each generator's prefix, into the target folder (gen<N>/ when several)."""
        missing = []
        for i, (_, _, gen_prefix) in enumerate(commands):
            dest = work if len(commands) == 1 else work / f"gen{i + 1}"
            dest.mkdir(parents=True, exist_ok=True)
            names = []
            paginator = s3.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=bucket, Prefix=gen_prefix + "/"):
                for obj in page.get("Contents", []):
                    name = obj["Key"][len(gen_prefix) + 1:]
                    if not name or "/" in name or name == "script.js":
                        continue
                    s3.download_file(bucket, obj["Key"], str(dest / name))
                    names.append(name)
            if COMPLETION_MARKER not in names:
                missing.append(f"generator {i + 1}: {COMPLETION_MARKER} missing (got {sorted(names) or 'nothing'})")
        if missing:
            outcome.evidence["partial_upload"] = missing

    def _finish(self, work: Path, outcome: Outcome, generators: int) -> None:
        gen_dirs = [work] if generators == 1 else [work / f"gen{i + 1}" for i in range(generators)]
        if outcome.evidence.get("partial_upload") and outcome.status == "ok":
            outcome.status = "invalid_output"
            outcome.reason = "partial upload from the runner: " + "; ".join(outcome.evidence["partial_upload"])
            return
        codes = []
        for d in gen_dirs:
            marker = d / COMPLETION_MARKER
            codes.append(int(marker.read_text().strip()) if marker.exists() else None)
        waited = [float(f.read_text().split()[0]) for d in gen_dirs if (f := d / "endpoint-wait.txt").exists()]
        if waited:
            outcome.evidence["endpoint_wait_s"] = max(waited)
        if ENDPOINT_UNREACHABLE in codes and outcome.status == "ok":
            outcome.status = "not_ready"
            outcome.reason = (f"{outcome.evidence.get('endpoint', outcome.url)} did not answer the runner within "
                              f"{self.endpoint_wait_s} s: its NLB's "
                              "DNS name or targets are not ready (a fresh `pulumi up` needs a few minutes; run again), "
                              "or the gateway's pods are not running (kubectl -n <namespace> get pods)")
            return
        outcome.k6_exit_code = next((c for c in codes if c not in (0, 99)), codes[0] if codes else None)
        if outcome.status == "ok" and any(c not in (0, 99) for c in codes):
            outcome.status = "k6_failed"
            outcome.reason = f"k6 exited with code(s) {codes} on the runner(s); see k6.log"
        outcome.thresholds_passed = all(c == 0 for c in codes)
        outcome.files["k6_log"] = "k6.log" if generators == 1 else "gen1/k6.log"
        summaries = [d / "summary.json" for d in gen_dirs]
        if not all(s.exists() for s in summaries):
            if outcome.status == "ok":
                outcome.status, outcome.reason = "invalid_output", "k6 wrote no summary.json on the runner"
            return
        try:
            for s in summaries:
                json.loads(s.read_text())
        except json.JSONDecodeError as exc:
            outcome.status, outcome.reason = "invalid_output", f"summary.json is cut short or corrupt ({exc})"
            return
        try:
            if generators > 1:
                outcome.files.update(merge_generators(gen_dirs, work))
                outcome.evidence["generators"] = generators
            else:
                outcome.files["summary"] = "summary.json"
                if (work / "raw.csv.gz").exists():
                    truncated = write_timeseries(work / "raw.csv.gz", work / "timeseries.csv")
                    outcome.files.update(raw="raw.csv.gz", timeseries="timeseries.csv", histogram="histogram.csv",
                                         statuses="statuses.csv")
                    if truncated:
                        outcome.evidence["raw_truncated"] = truncated
        except (TimeseriesError, OSError, ValueError, KeyError) as exc:
            if generators > 1:  # no merged summary: nothing honest to report for this target
                outcome.status, outcome.reason = "invalid_output", f"merging the generators' results failed: {exc}"
                return
            outcome.evidence["timeseries_error"] = str(exc)
        resources = cloud_resources(gen_dirs[0])
        if resources is not None:
            resources.to_csv(work / "resources.csv", index=False)
            outcome.files["resources"] = "resources.csv"
