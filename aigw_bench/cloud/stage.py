"""The post-deploy stage: the same measurement as a local run, on deployed stacks.

The rig first: for each stack, k6 on its runner straight to its mock's NLB (ceiling, floor and, for
a suite, the rig's own frontier). Then one session per target and repeat, targets interleaved: the
suite's steps (:func:`aigw_bench.measure.steps.suite_session`) or a scenario, run by a
:class:`aigw_bench.cloud.driver.CloudDriver` (k6 through SSM on the runner, results through S3,
CPU and memory from Prometheus, the mock's pacing through the Kubernetes API). The same code as
local runs decides the steps and their verdicts; only the way k6 is started differs.

One run directory in the local format (format 2: targets/<t>/r<N>/<step>/..., step records in each
outcome) holds every stack's results, so ``aigw-bench report`` and ``compare`` work unchanged. The
S3 prefix carries the run id (never reused) and the local directory is new for every run: nothing
already measured is overwritten; each outcome is written as soon as a step ends.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from aigw_bench.catalog import Gateway
from aigw_bench.cloud import ssm as ssm_cmd
from aigw_bench.cloud.driver import ENDPOINT_WAIT_SECONDS, PROFILE_SWITCH_SECONDS, CloudDriver, endpoint
from aigw_bench.cloud.mock_control import MockProfiles, api_client
from aigw_bench.cloud.outputs import StackOutputs
from aigw_bench.cloud.remote import Remote
from aigw_bench.errors import CloudError, ConfigError
from aigw_bench.local.processes import Interrupted, signals_as_exceptions
from aigw_bench.measure.driver import SessionLost
from aigw_bench.measure.outcome import adopt_partial, main_step_series, recorder
from aigw_bench.measure.plan import PlanNames, measurement
from aigw_bench.measure.steps import RIG_BOUND_FRACTION, measure_rig, session_steps
from aigw_bench.mock import MockDefinition, PacingProfile, load_mock, load_profiles
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
from k6_scripts.scenarios import Scenario, ScenarioParams, interleaved_order, scenario_record
from k6_scripts.suites import RigSizes, Suite, SuiteSizes, load_rig_sizes

EventSink = Callable[..., None]
# Builds the Kubernetes API client of a stack (tests pass one for a fake API server).
KubeClients = Callable[[StackOutputs], Any]


@dataclass(frozen=True)
class CloudTarget:
    outputs: StackOutputs
    gateway: Gateway


@dataclass
class CloudPlan(PlanNames):
    """What to run: a scenario (``scenario`` + ``params``) or a suite (``suite`` + ``sizes``), cloud sizes."""

    targets: list[CloudTarget]
    scenario: Scenario  # the scenario, or the suite's published shape (seed)
    params: ScenarioParams  # the scenario's, or the suite's request body and timeouts
    repeats: int
    results_root: Path
    rig: RigSizes
    profile: PacingProfile  # the mock's pacing profile at the start of every session
    suite: Suite | None = None
    sizes: SuiteSizes | None = None
    streaming_profile: PacingProfile | None = None
    keep_raw: bool = True
    command_line: list[str] = field(default_factory=list)
    engine: str = "ec2"  # or "operator": aigw_bench/cloud/operator_stage.py

    def order(self) -> list[tuple[int, CloudTarget]]:
        return interleaved_order(self.targets, self.repeats)

    def stacks(self) -> dict[str, StackOutputs]:
        """Each stack once (a stack = one mock and one set of runners), in the targets' order."""
        return {t.outputs.stack: t.outputs for t in self.targets}

    def profiles(self) -> list[PacingProfile]:
        return [p for p in (self.profile, self.streaming_profile) if p is not None]


def plan_cloud_run(*, targets: list[CloudTarget], scenario: str | None, suite: str | None, mock_profile: str | None,
                   knobs: dict[str, Any], repeats: int | None, results_root: Path, keep_raw: bool = True,
                   command_line: list[str] | None = None) -> CloudPlan:
    """A validated plan with the cloud sizes; every problem fails here, before anything is sent."""
    m = measurement("cloud", scenario=scenario, suite=suite, mock_profile=mock_profile, knobs=knobs, repeats=repeats)
    plan = CloudPlan(targets=targets, results_root=results_root, rig=load_rig_sizes("cloud"), keep_raw=keep_raw,
                     command_line=command_line or [], profile=m.profile, repeats=m.repeats, params=m.params,
                     scenario=m.scenario, suite=m.suite, sizes=m.sizes, streaming_profile=m.streaming_profile)
    for stack, out in plan.stacks().items():
        missing = [p.name for p in plan.profiles() if p.name not in out.mock_profiles]
        if missing:
            raise ConfigError(
                f"stack '{stack}' deploys the {out.mock_name} mock, which serves the pacing profile(s) "
                f"{', '.join(out.mock_profiles)}, not {', '.join(missing)} (needed by "
                f"{'the suite' if plan.suite else 'the scenario'}): deploy the fast mock (`pulumi config set -s "
                f"{stack} mock fast && pulumi up -s {stack}`) or choose a scenario and profile it can serve")
    return plan


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


def conservative_rig(rigs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The run's rig when several stacks (each with its own mock and runners) are compared: the one with
    the lowest ceiling, so that no target is credited with more than the weakest rig could deliver."""
    measured = {s: r for s, r in rigs.items() if r.get("ceiling_rps")}
    if not measured:
        first = next(iter(rigs.values()), {"error": "no stack"})
        return {**first, "stacks": sorted(rigs)}
    stack = min(measured, key=lambda s: measured[s]["ceiling_rps"])
    return {**measured[stack], "stack": stack, "stacks": sorted(rigs)}


class CloudRunner:
    """Runs a plan; ``clients(region)`` returns ``(ssm, s3)`` boto3 clients (or test doubles)."""

    def __init__(self, plan: CloudPlan, clients: Callable[[str], tuple[Any, Any]],
                 on_event: EventSink | None = None, poll_interval: float = 5.0,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
                 endpoint_wait_s: int = ENDPOINT_WAIT_SECONDS, kube_client: KubeClients | None = None,
                 profile_switch_s: float = PROFILE_SWITCH_SECONDS, prometheus_lag_s: int | None = None,
                 operator: Any = None):
        self.plan = plan
        self.operator = operator  # an OperatorEngine, for plan.engine == "operator"
        self.clients = clients
        self.emit: EventSink = on_event or (lambda *a, **k: None)
        self.poll_interval, self.sleep, self.clock = poll_interval, sleep, clock
        self.endpoint_wait_s = endpoint_wait_s
        self.kube_client = kube_client or (lambda out: api_client(_kubeconfig(out)))
        self.profile_switch_s = profile_switch_s
        self.prometheus_lag_s = prometheus_lag_s
        self.run_dir: Path | None = None
        self.run_id: str | None = None
        self._remotes: dict[str, Remote] = {}
        self._profiles: dict[str, MockProfiles | None] = {}

    # ----------------------------------------------------------------- before anything starts
    def preflight(self) -> None:
        """Every runner online and idle, every fast mock's settings readable: fails before anything runs."""
        # --- k6-operator engine: its own checks instead of the SSM runner's (aigw_bench/cloud/operator_stage.py) ---
        if self.plan.engine == "operator":
            self.operator.preflight([t.outputs for t in self.plan.targets])
        # --- end k6-operator engine ---
        for stack, out in self.plan.stacks().items():
            ssm, _ = self.clients(out.region)
            for instance in ([] if self.plan.engine == "operator" else out.k6_runner_instance_ids):
                ssm_cmd.ensure_registered(ssm, instance)
                ssm_cmd.ensure_idle(ssm, instance)
            if out.mock_control is not None:
                profiles = MockProfiles(self.kube_client(out), out.mock_control, out.cluster_name,
                                        sleep=self.sleep, clock=self.clock, interval=max(self.poll_interval, 0.2))
                profiles.current()  # access to the cluster, and the settings where the stack says they are
                self._profiles[stack] = profiles
            else:
                self._profiles[stack] = None

    def _remote(self, out: StackOutputs) -> Remote:
        if out.stack not in self._remotes:
            ssm, s3 = self.clients(out.region)
            self._remotes[out.stack] = Remote(ssm, s3, out.results_bucket, poll_interval=self.poll_interval,
                                              sleep=self.sleep, clock=self.clock)
        return self._remotes[out.stack]

    def _driver(self, out: StackOutputs, work: Path, direct: Any, target: Any) -> CloudDriver:
        assert self.run_dir is not None and self.run_id is not None
        extra = {"prometheus_lag_s": self.prometheus_lag_s} if self.prometheus_lag_s is not None else {}
        return CloudDriver(out, self._remote(out), self.run_id, self.run_dir, work, direct, target, self.emit,
                           mock_profiles=self._profiles.get(out.stack), endpoint_wait_s=self.endpoint_wait_s,
                           profile_switch_s=self.profile_switch_s, **extra)

    # ----------------------------------------------------------------------------- the run
    def run(self) -> Path:
        self.preflight()
        plan = self.plan
        self.run_dir = new_run_dir(plan.results_root, plan.name)
        # The S3 prefix must be unique even across machines that pick the same timestamp.
        self.run_id = f"{self.run_dir.name}-{uuid.uuid4().hex[:8]}"
        manifest = self._manifest()
        write_json(self.run_dir / MANIFEST, manifest)
        order = plan.order()
        self.emit("cloud_run_start", run_dir=self.run_dir, total=len(order), plan=plan)
        started = time.monotonic()
        interrupted = False
        with signals_as_exceptions():
            try:
                rigs: dict[str, dict[str, Any]] = {}
                for stack, out in plan.stacks().items():
                    rigs[stack] = self._measure_rig(out) if plan.engine != "operator" else self._operator_rig(out)
                    manifest["cloud"][stack]["rig"] = rigs[stack]
                    self.emit("rig_done", rig=rigs[stack])
                    if rigs[stack].get("error") == "interrupted":
                        interrupted = True
                        break
                manifest["rig"] = conservative_rig(rigs)
                write_json(self.run_dir / MANIFEST, manifest)
                for index, (repeat, target) in enumerate([] if interrupted else order, start=1):
                    name = target.gateway.name
                    self.emit("target_start", target=name, repeat=repeat, index=index, total=len(order))
                    outcome = self._run_target(target, repeat, rigs.get(target.outputs.stack, {}))
                    write_outcome(self.run_dir, outcome)
                    self.emit("target_done", outcome=outcome, index=index, total=len(order))
                    if outcome.status == "interrupted":
                        interrupted = True
                        break
            finally:
                manifest["mock_restored"] = self._restore_profiles()
        hours = (time.monotonic() - started) / 3600
        manifest["finished_at"] = now_iso()
        manifest["interrupted"] = interrupted
        if manifest.get("cost"):
            manifest["cost"]["run_usd"] = round(sum(
                (o.hourly_cost_usd or 0) for o in plan.stacks().values()) * hours, 4)
            manifest["cost"]["run_hours"] = round(hours, 4)
        write_json(self.run_dir / MANIFEST, manifest)
        if interrupted:
            raise KeyboardInterrupt
        return self.run_dir

    def _restore_profiles(self) -> dict[str, str]:
        """Leave each fast mock with the profile it was deployed with (no drift from the Pulumi state)."""
        done: dict[str, str] = {}
        for stack, out in self.plan.stacks().items():
            profiles = self._profiles.get(stack)
            if profiles is None:
                continue
            deployed = load_profiles().get(out.mock_profile)
            try:
                if deployed is None or profiles.serves(deployed):
                    continue
                self.emit("phase", target=stack, phase=f"restoring the mock's '{deployed.name}' pacing profile")
                profiles.switch(deployed, self.profile_switch_s)
                done[stack] = f"restored '{deployed.name}'"
            except (KeyboardInterrupt, Interrupted):  # asked to stop: the measured run matters more
                done[stack] = "not restored (interrupted); the next `cloud run` sets the profile it needs"
                break
            except Exception as exc:  # nothing measured depends on it: say so, do not lose the run
                done[stack] = (f"not restored ({exc}); the mock keeps its last profile until the next `cloud run` "
                               "or `pulumi up`")
        return done

    # ---------------------------------------------------------------------------- manifest
    def _mock_record(self, out: StackOutputs) -> dict[str, Any]:
        plan = self.plan
        definition: MockDefinition = load_mock(out.mock_name)
        return {"name": out.mock_name, "title": definition.title, "version": out.mock_version or definition.version,
                "image": out.mock_image, "source": f"{definition.source}; on EKS: mock_llm/{out.mock_name}/mock.yaml",
                "deployed_profile": out.mock_profile, "profile": plan.profile.model_dump(),
                "streaming_profile": plan.streaming_profile.model_dump() if plan.streaming_profile else None}

    def _manifest(self) -> dict[str, Any]:
        plan = self.plan
        stacks = plan.stacks()
        first = next(iter(stacks.values()))
        costs = {s: o.hourly_cost_usd for s, o in stacks.items() if o.hourly_cost_usd}
        mocks = {s: self._mock_record(o) for s, o in stacks.items()}
        manifest: dict[str, Any] = {
            "kind": "aigw-bench run",
            "format": 2,
            "environment": "cloud",
            "run_id": self.run_id,
            "created_at": now_iso(),
            "command_line": plan.command_line,
            "scenario": scenario_record(plan.scenario, plan.params),
            "suite": ({"name": plan.suite.name, "description": plan.suite.description, "profile": "cloud",
                       "sizes": plan.sizes.model_dump() if plan.sizes else None} if plan.suite else None),
            "main_step": plan.main_step,
            "repeats": plan.repeats,
            "order": [{"repeat": r, "target": t.gateway.name} for r, t in plan.order()],
            "targets": {
                t.gateway.name: {"title": t.gateway.title, "role": t.gateway.role, "version": t.outputs.gateway_version,
                                 "source": t.gateway.source, "route": t.gateway.request.path,
                                 "model": t.gateway.request.model, "stack": t.outputs.stack}
                for t in plan.targets
            },
            # The first stack's mock; each stack's own is under cloud.<stack>.mock (they may differ).
            "mock": {**mocks[first.stack], **({"differs_between_stacks": True}
                                             if len({m["name"] for m in mocks.values()}) > 1 else {})},
            # k6 has a machine of its own: only its CPUs are counted against it.
            "cpu_pinning": {"loadgen": None, "mock": None, "gateway": None,
                            "note": "separate machines: k6 on its EC2 runner(s), gateway and mock on their own nodes"},
            "machine": {"k6_runner_instance_type": first.instance_types.get("k6_runner"),
                        "k6_runner_ami": first.k6_runner_ami, "region": first.region},
            "cloud": {
                s: {"stack": o.stack, "gateway": o.gateway_name, "region": o.region, "cluster": o.cluster_name,
                    "instance_types": o.instance_types, "chart_versions": o.chart_versions,
                    "runners": o.k6_runner_instance_ids, "bucket": o.results_bucket, "mock": mocks[s],
                    # names only: the values are the stack's secrets
                    "secret_headers": sorted(o.gateway_secret_headers)}
                for s, o in stacks.items()
            },
            "rig": None,  # measured first (below)
            "tools": tool_versions(),
            "git": git_commit(),
        }
        if costs:
            manifest["cost"] = {"hourly_usd": round(sum(costs.values()), 4),
                                "per_target_hourly_usd": {t.gateway.name: t.outputs.hourly_cost_usd
                                                          for t in plan.targets if t.outputs.hourly_cost_usd},
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

    # ---------------------------------------------------------------------------- the rig
    def _operator_rig(self, out: StackOutputs) -> dict[str, Any]:
        """The k6-operator engine does not measure the rig (its runner pods would have to): the mock is set
        to the plan's pacing profile and the record says the ceiling is unknown, which the report shows."""
        profiles = self._profiles.get(out.stack)
        if profiles is not None and not profiles.serves(self.plan.profile):
            self.emit("phase", target=out.stack, phase=f"switching the mock to '{self.plan.profile.name}' pacing")
            profiles.switch(self.plan.profile, self.profile_switch_s)
        return {"mock": out.mock_name, "profile": self.plan.profile.name, "stack": out.stack,
                "error": "not measured with the k6-operator engine: no ceiling to compare throughput with "
                         "(run the same scenario with the EC2 runner engine for the rig's ceiling)"}

    def _measure_rig(self, out: StackOutputs) -> dict[str, Any]:
        """k6 on the stack's runner(s) straight to its mock's NLB: ceiling, floor (and frontier)."""
        assert self.run_dir is not None
        plan = self.plan
        rig_dir = self.run_dir / "rig" / out.stack
        rig_dir.mkdir(parents=True, exist_ok=True)
        model = next(t.gateway.request.model for t in plan.targets if t.outputs.stack == out.stack)
        mock = endpoint("rig", out.mock_url, "/v1/chat/completions", model)
        record: dict[str, Any] = {"mock": out.mock_name, "profile": plan.profile.name, "stack": out.stack,
                                  "cpu": (f"k6 on {len(out.k6_runner_instance_ids)} "
                                          f"{out.instance_types.get('k6_runner', 'EC2')} runner(s), the mock on its "
                                          f"{out.instance_types.get('mock', '')} node"),
                                  "dir": rig_dir.relative_to(self.run_dir).as_posix()}
        self.emit("target_start", target=f"rig ({out.stack})", repeat=1, index=0, total=len(plan.order()))
        driver = self._driver(out, rig_dir, mock, mock)
        try:
            driver.use_profile(plan.profile)
            record.update(measure_rig(driver, plan.rig, plan.params, rig_dir,
                                      plan.sizes.capacity if plan.sizes else None, plan.profile))
        except SessionLost as exc:
            record.update({"error": exc.reason, "status": exc.status, "evidence": exc.evidence})
        except CloudError as exc:
            record.update({"error": str(exc)})
        except (KeyboardInterrupt, Interrupted):
            record.update({"error": "interrupted"})
        if record.get("ceiling_rps"):
            record["reach_rps"] = RIG_BOUND_FRACTION * record["ceiling_rps"]
        return record

    # ------------------------------------------------------------------------ one target
    def _run_target(self, target: CloudTarget, repeat: int, rig: dict[str, Any]) -> Outcome:
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
        headers = render_map(gw.request.headers, {"mock_url": out.mock_cluster_url}, f"{gw.name}: request.headers")
        # Secret headers (the stack's gateway key) replace the catalog's local values and stay out of
        # every script: they reach k6 and the streaming probe through their environment on the runner.
        secret = {name: value.get_secret_value() for name, value in out.gateway_secret_headers.items()}
        headers = {k: v for k, v in headers.items() if k.lower() not in {n.lower() for n in secret}}
        gateway = endpoint(gw.name, out.gateway_url, gw.request.path, gw.request.model, headers)
        direct = endpoint("direct", out.mock_url, "/v1/chat/completions", gw.request.model)
        outcome.url = gateway.url
        outcome.evidence["endpoint"] = out.gateway_url
        driver = self._driver(out, work, direct, gateway)
        outcome.evidence["runner"] = driver.describe()

        on_step = recorder(outcome, plan.main_step, partial(write_outcome, self.run_dir))
        s3 = self._remote(out).s3
        try:
            with secret_object(s3, out.results_bucket, f"secrets/{self.run_id}/{gw.name}/r{repeat}/headers.json",
                               secret) as headers_key:
                driver.headers_key = headers_key
                driver.use_profile(plan.profile)
                session_steps(driver, plan, work, rig, on_step, baseline=gw.role == "baseline")
        except SessionLost as failed:
            adopt_partial(outcome, driver.k6_runs, work, plan.main_step)
            outcome.status, outcome.reason = failed.status, failed.reason  # type: ignore[assignment]
            outcome.evidence.update(failed.evidence)
        except (KeyboardInterrupt, Interrupted) as exc:
            adopt_partial(outcome, driver.k6_runs, work, plan.main_step)
            outcome.status = "interrupted"
            outcome.reason = (f"stopped by {type(exc).__name__ if isinstance(exc, KeyboardInterrupt) else exc}; "
                              "remote commands cancelled")
        except CloudError as exc:  # S3 refused the secret headers, say
            outcome.status, outcome.reason = "k6_failed", str(exc)
        self._finish(work, outcome)
        outcome.finished_at = now_iso()
        return outcome

    def _finish(self, work: Path, outcome: Outcome) -> None:
        if outcome.status == "ok" and "summary" not in outcome.files:
            outcome.status, outcome.reason = "invalid_output", outcome.reason or "k6 wrote no summary on the runner"
        main_step_series(work, outcome)


def _kubeconfig(out: StackOutputs) -> str:
    if out.kubeconfig is None:
        raise CloudError(f"stack '{out.stack}' exports no kubeconfig (needed to switch its mock's pacing profile): "
                         f"was `pulumi up` run to completion with this version of the program?")
    return out.kubeconfig.get_secret_value()
