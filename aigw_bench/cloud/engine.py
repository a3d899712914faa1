"""The post-deploy stage: the same run as a local one, on deployed stacks.

Each stack is a place: its own mock and load generators, so the rig is measured per stack (k6
straight to its mock's NLB) and the run's rig is the weakest of them. One session per target and
repeat, targets interleaved, with the same steps and verdicts as a local run; only the driver
differs: :class:`Ec2Engine` starts k6 on the stack's EC2 runner(s) through SSM with results through
S3, :class:`aigw_bench.cloud.operator_engine.OperatorEngine` as k6-operator TestRuns with metrics
through Prometheus. Both switch the fast mock's pacing through the Kubernetes API.

One run directory in the local format (format 2: targets/<t>/r<N>/<step>/..., step records in each
outcome) holds every stack's results, so ``aigw-bench report`` and ``compare`` work unchanged. The
run id carries a random suffix (S3 prefixes and TestRun names are never reused) and the local
directory is new for every run: nothing already measured is overwritten.
"""

from __future__ import annotations

import json
import time
import uuid
from abc import abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from aigw_bench.cloud import ssm as ssm_cmd
from aigw_bench.cloud.ec2_driver import BARRIER_GRACE_SECONDS, ENDPOINT_WAIT_SECONDS, Ec2Driver
from aigw_bench.cloud.endpoints import rig_endpoint, stack_endpoints
from aigw_bench.cloud.kube import KubeAccess, kube_access
from aigw_bench.cloud.mock_control import MockProfiles
from aigw_bench.cloud.mock_faults import MockFaults, mock_faults, require_fault_plans
from aigw_bench.cloud.outputs import StackOutputs
from aigw_bench.cloud.remote import Remote
from aigw_bench.cloud.stack_driver import PROFILE_SWITCH_SECONDS, StackDriver
from aigw_bench.cloud.user_data import USER_DATA_WAIT_SECONDS, wait_user_data
from aigw_bench.cloud.variants import refuse_missing_variants
from aigw_bench.measure.driver import Endpoint, SessionLost
from aigw_bench.measure.events import EventSink, Phase, ignore
from aigw_bench.measure.faults import served_plans
from aigw_bench.run.engine import Description, Engine
from aigw_bench.run.interrupts import STOP
from aigw_bench.run.plan import RunPlan
from components.cloud_variants import undeployable
from schema.catalog import Gateway
from schema.errors import CloudError, ConfigError
from schema.faults import HEALTHY_PLAN, load_plan
from schema.manifest import Manifest, RigRecord
from schema.mock import MockDefinition, load_mock, load_profiles
from schema.results import Outcome, Status


def conservative_rig(rigs: dict[str, RigRecord]) -> RigRecord:
    """The run's rig when several stacks (each with its own mock and runners) are compared: the one with
    the lowest ceiling, so that no target is credited with more than the weakest rig could deliver."""
    measured = {s: r for s, r in rigs.items() if r.ceiling_rps}
    if not measured:
        first = next(iter(rigs.values()), RigRecord(error="no stack"))
        return first.model_copy(update={"stacks": sorted(rigs)})
    stack = min(measured, key=lambda s: measured[s].ceiling_rps or 0.0)
    return measured[stack].model_copy(update={"stack": stack, "stacks": sorted(rigs)})


class CloudEngine(Engine):
    """What both cloud engines share: stacks as places, the mocks' pacing through the Kubernetes API,
    the manifest's cloud section and the run's cost."""

    environment = "cloud"
    where = "cloud"
    interrupt_note = ""

    def __init__(self, stacks: list[StackOutputs], *, kube: Callable[[StackOutputs], KubeAccess] | None = None,
                 poll_interval: float = 5.0, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic, profile_switch_s: float = PROFILE_SWITCH_SECONDS):
        self.stacks = {o.stack: o for o in stacks}
        self.by_target = {o.gateway_name: o for o in stacks}
        self._kube_factory = kube or kube_access
        self._kube: dict[str, KubeAccess] = {}
        self.poll_interval, self.sleep, self.clock = poll_interval, sleep, clock
        self.profile_switch_s = profile_switch_s
        self._profiles: dict[str, MockProfiles | None] = {}
        self._faults: dict[str, MockFaults] = {}  # a run with faults scenarios: both mocks of each stack

    def kube(self, out: StackOutputs) -> KubeAccess:
        """The stack's Kubernetes clients, made once."""
        if out.stack not in self._kube:
            self._kube[out.stack] = self._kube_factory(out)
        return self._kube[out.stack]

    def outputs(self, target: Gateway) -> StackOutputs:
        """The stack that deploys the target's entry (a variant ENTRY+VARIANT: its entry's stack)."""
        return self.by_target[target.entry]

    def not_runnable(self, target: Gateway) -> str | None:
        """A variant the cloud cannot deploy (its catalog entry says why) is a cell with that reason."""
        if target.variant is None or target.unsupported is not None:
            return None
        why = undeployable(target.variant_spec, target.variant, target)
        return f"{target.variant} {why}" if why else None

    # ----------------------------------------------------------------- before anything starts
    def validate(self, plan: RunPlan) -> None:
        """Every target has a stack, every variant target a gateway of its own on it, and every stack's mock
        serves the pacing profiles the plan needs."""
        for t in plan.targets:
            if t.entry not in self.by_target:
                raise ConfigError(f"no deployed stack serves target '{t.name}'")
        refuse_missing_variants(plan.targets, self.by_target, self.not_runnable)
        faults = served_plans(plan.measurement.sizes)
        for stack, out in self.stacks.items():
            if faults:  # a plan the deployed mock cannot serve: refused before anything runs
                require_fault_plans(out, f"suite '{plan.measurement.suite.name if plan.measurement.suite else ''}' "
                                         f"(fault plans {', '.join(p.name for p in faults)})")
            missing = [p.name for p in plan.measurement.profiles() if p.name not in out.mock_profiles]
            if missing:
                raise ConfigError(
                    f"stack '{stack}' deploys the {out.mock_name} mock, which serves the pacing profile(s) "
                    f"{', '.join(out.mock_profiles)}, not {', '.join(missing)} (needed by "
                    f"{'the suite' if plan.measurement.suite else 'the scenario'}): deploy the fast mock (`pulumi "
                    f"config set -s {stack} mock fast && pulumi up -s {stack}`) or choose a scenario and profile "
                    "it can serve")

    def preflight(self, plan: RunPlan) -> None:
        """The engine's load generators ready, every fast mock's settings readable: before anything runs."""
        self._preflight_load_generators(plan)
        for stack, out in self.stacks.items():
            if out.mock_control is None:
                self._profiles[stack] = None
                continue
            profiles = MockProfiles(self.kube(out), out.mock_control, out.cluster_name, sleep=self.sleep,
                                    clock=self.clock, interval=max(self.poll_interval, 0.2))
            profiles.current()  # access to the cluster, and the settings where the stack says they are
            self._profiles[stack] = profiles
            if served_plans(plan.measurement.sizes):
                faults = mock_faults(self.kube(out), require_fault_plans(out, "the faults suite"), out.cluster_name,
                                     sleep=self.sleep, clock=self.clock, interval=max(self.poll_interval, 0.2))
                faults.fallback.current()  # the second mock's settings where the stack says they are
                self._faults[stack] = faults

    @abstractmethod
    def _preflight_load_generators(self, plan: RunPlan) -> None: ...

    def run_id(self, run_dir: Path) -> str:
        # Unique even across machines that pick the same timestamp (S3 prefixes, TestRun names).
        return f"{run_dir.name}-{uuid.uuid4().hex[:8]}"

    # ---------------------------------------------------------------------------- manifest
    def _mock_record(self, out: StackOutputs) -> dict[str, Any]:
        m = self.ctx.plan.measurement
        definition: MockDefinition = load_mock(out.mock_name)
        return {"name": out.mock_name, "title": definition.title, "version": out.mock_version or definition.version,
                "image": out.mock_image, "source": f"{definition.source}; on EKS: mock_llm/{out.mock_name}/mock.yaml",
                "deployed_profile": out.mock_profile, "profile": m.profile.model_dump(),
                "streaming_profile": m.streaming_profile.model_dump() if m.streaming_profile else None}

    @abstractmethod
    def _machine(self, plan: RunPlan, first: StackOutputs) -> tuple[dict[str, Any], str]:
        """The manifest's ``machine`` and the CPU note: where k6 runs."""

    def describe(self, plan: RunPlan) -> Description:
        stacks = self.stacks
        first = next(iter(stacks.values()))
        mocks = {s: self._mock_record(o) for s, o in stacks.items()}
        machine, note = self._machine(plan, first)
        costs = {s: o.hourly_cost_usd for s, o in stacks.items() if o.hourly_cost_usd}
        cost = None
        if costs:
            cost = {"hourly_usd": round(sum(costs.values()), 4),
                    "per_target_hourly_usd": {t.name: self.outputs(t).hourly_cost_usd
                                              for t in plan.targets if self.outputs(t).hourly_cost_usd},
                    "price_table": first.price_table or "pinned price table"}
        return Description(
            targets={t.name: {"version": self.outputs(t).gateway_version, "stack": self.outputs(t).stack}
                     for t in plan.targets},
            # The first stack's mock; each stack's own is under cloud.<stack>.mock (they may differ).
            mock={**mocks[first.stack], **({"differs_between_stacks": True}
                                          if len({m["name"] for m in mocks.values()}) > 1 else {})},
            # k6 has a machine of its own: only its CPUs are counted against it.
            cpu_pinning={"loadgen": None, "mock": None, "gateway": None, "note": note},
            machine=machine,
            cloud={s: {"stack": o.stack, "gateway": o.gateway_name, "region": o.region, "cluster": o.cluster_name,
                       "instance_types": o.instance_types, "chart_versions": o.chart_versions,
                       "runners": o.k6_runner_instance_ids, "bucket": o.results_bucket, "mock": mocks[s],
                       # names only: the values are the stack's secrets
                       "secret_headers": sorted(o.gateway_secret_headers)}
                   for s, o in stacks.items()},
            cost=cost,
            where=" on AWS, cloud sizes",
            setting=[("stacks", ", ".join(f"{t.name} (stack {self.outputs(t).stack}, {self.outputs(t).mock_name} mock)"
                                          for t in plan.targets)),
                     ("mock pacing", plan.measurement.profile.name)])

    # ----------------------------------------------------------------------------- the rig
    def places(self) -> list[str]:
        """Each stack once, in the targets' order."""
        return list(dict.fromkeys(self.outputs(t).stack for t in self.ctx.plan.targets))

    def place_of(self, target: Gateway) -> str:
        return self.outputs(target).stack

    def rig_dir(self, place: str) -> Path:
        return self.ctx.run_dir / "rig" / place

    def rig_label(self, place: str) -> str:
        return f"rig ({place})"

    @abstractmethod
    def _rig_cpu(self, out: StackOutputs) -> str: ...

    def rig_base(self, place: str) -> dict[str, Any]:
        out = self.stacks[place]
        return {"mock": out.mock_name, "profile": self.ctx.plan.measurement.profile.name, "stack": place,
                "cpu": self._rig_cpu(out)}

    @contextmanager
    def rig_session(self, place: str) -> Iterator[StackDriver]:
        out = self.stacks[place]
        model = next(t.request.model for t in self.ctx.plan.targets if self.outputs(t).stack == place)
        mock = rig_endpoint(out, model)
        with self._cloud_faults(Status.MOCK_FAILED), self._driver(out, self.rig_dir(place), mock, mock, {}) as driver:
            driver.use_profile(self.ctx.plan.measurement.profile)
            yield driver

    def combine_rigs(self, manifest: Manifest, rigs: dict[str, RigRecord]) -> RigRecord:
        for stack, rig in rigs.items():
            (manifest.cloud or {}).setdefault(stack, {})["rig"] = rig.model_dump(mode="json")
        return conservative_rig(rigs)

    # ------------------------------------------------------------------------ one target
    @contextmanager
    def _cloud_faults(self, status: str) -> Iterator[None]:
        """A fault of the cloud's own (S3 refused the secret headers, the API went away) ends the session."""
        try:
            yield
        except CloudError as exc:
            raise SessionLost(status, str(exc)) from None

    @abstractmethod
    def _driver(self, out: StackOutputs, work: Path, direct: Endpoint, target: Endpoint,
                secret: dict[str, str], label: str = "") -> AbstractContextManager[StackDriver]:
        """The engine's driver for one session on ``out``; ``secret``: header -> value, passed to the load
        generators without ever being written down."""

    @contextmanager
    def session(self, target: Gateway, repeat: int, work: Path, outcome: Outcome) -> Iterator[StackDriver]:
        out = self.outputs(target).for_variant(target.variant)
        ends = stack_endpoints(out, target)
        outcome.url = ends.target.url
        outcome.evidence["endpoint"] = out.gateway_url
        with self._cloud_faults(Status.K6_FAILED), self._driver(out, work, ends.direct, ends.target, ends.secret,
                                                                f"{target.name}/r{repeat}") as driver:
            outcome.evidence.update(self._session_evidence(driver))
            driver.mock_faults = self._faults.get(out.stack)
            driver.use_profile(self.ctx.plan.measurement.profile)
            yield driver

    def _session_evidence(self, driver: StackDriver) -> dict[str, Any]:
        return {}

    def finish(self, manifest: Manifest, seconds: float) -> None:
        manifest.mock_restored = self._restore_profiles()
        if manifest.cost:
            hours = seconds / 3600
            manifest.cost["run_usd"] = round(sum((o.hourly_cost_usd or 0) for o in self.stacks.values()) * hours, 4)
            manifest.cost["run_hours"] = round(hours, 4)

    def _restore_profiles(self) -> dict[str, str]:
        """Leave each fast mock with the profile it was deployed with (no drift from the Pulumi state)."""
        done: dict[str, str] = {}
        for stack, out in self.stacks.items():
            profiles = self._profiles.get(stack)
            if profiles is None:
                continue
            deployed = load_profiles().get(out.mock_profile)
            try:
                fallback = self._faults[stack].fallback if stack in self._faults else None
                healthy = load_plan(HEALTHY_PLAN)
                if fallback is not None and deployed is not None and not fallback.serves(deployed, healthy):
                    fallback.switch(deployed, self.profile_switch_s, plan=healthy)  # the second mock's, likewise
                if deployed is None or profiles.serves(deployed):
                    continue
                self.ctx.emit(Phase(target=stack, phase=f"restoring the mock's '{deployed.name}' pacing profile"))
                profiles.switch(deployed, self.profile_switch_s)
                done[stack] = f"restored '{deployed.name}'"
            except STOP:  # asked to stop: the measured run matters more
                done[stack] = "not restored (interrupted); the next `cloud run` sets the profile it needs"
                break
            except Exception as exc:  # nothing measured depends on it: say so, do not lose the run
                done[stack] = (f"not restored ({exc}); the mock keeps its last profile until the next `cloud run` "
                               "or `pulumi up`")
        return done


class Ec2Engine(CloudEngine):
    """k6 on each stack's EC2 runner(s), one SSM Run Command per job, results through the bucket;
    ``clients(region)`` returns ``(ssm, s3)`` boto3 clients (or test doubles)."""

    name = "ec2"
    interrupt_note = "; remote commands cancelled"

    def __init__(self, stacks: list[StackOutputs], clients: Callable[[str], tuple[Any, Any]], *,
                 endpoint_wait_s: int = ENDPOINT_WAIT_SECONDS, prometheus_lag_s: int | None = None,
                 barrier_grace_s: int = BARRIER_GRACE_SECONDS, user_data_wait_s: float = USER_DATA_WAIT_SECONDS,
                 **common: Any):
        super().__init__(stacks, **common)
        self.clients = clients
        self.endpoint_wait_s = endpoint_wait_s
        self.barrier_grace_s = barrier_grace_s
        self.user_data_wait_s = user_data_wait_s
        self.prometheus_lag_s = prometheus_lag_s
        self._remotes: dict[str, Remote] = {}
        self._emit: EventSink = ignore

    def prepare(self, emit: EventSink) -> None:
        self._emit = emit

    def _preflight_load_generators(self, plan: RunPlan) -> None:
        """Every runner online, idle, and done with its user data (k6 installed)."""
        for out in self.stacks.values():
            ssm, _ = self.clients(out.region)
            for instance in out.k6_runner_instance_ids:
                ssm_cmd.ensure_registered(ssm, instance)
                ssm_cmd.ensure_idle(ssm, instance)
                wait_user_data(ssm, instance, self.user_data_wait_s, interval=self.poll_interval, sleep=self.sleep,
                               clock=self.clock, on_wait=lambda waited, detail, i=instance, s=out.stack: self._emit(
                                   Phase(target=s, phase=f"runner {i} is still running its user data ({detail}; "
                                                         f"{waited:.0f} s of at most {self.user_data_wait_s:.0f} s)")))

    def _machine(self, plan: RunPlan, first: StackOutputs) -> tuple[dict[str, Any], str]:
        return ({"k6_runner_instance_type": first.instance_types.get("k6_runner"),
                 "k6_runner_ami": first.k6_runner_ami, "region": first.region},
                "separate machines: k6 on its EC2 runner(s), gateway and mock on their own nodes")

    def _rig_cpu(self, out: StackOutputs) -> str:
        return (f"k6 on {len(out.k6_runner_instance_ids)} {out.instance_types.get('k6_runner', 'EC2')} runner(s), the "
                f"mock on its {out.instance_types.get('mock', '')} node")

    def _remote(self, out: StackOutputs) -> Remote:
        if out.stack not in self._remotes:
            ssm, s3 = self.clients(out.region)
            self._remotes[out.stack] = Remote(ssm, s3, out.results_bucket, poll_interval=self.poll_interval,
                                              sleep=self.sleep, clock=self.clock)
        return self._remotes[out.stack]

    @contextmanager
    def _driver(self, out: StackOutputs, work: Path, direct: Endpoint, target: Endpoint,
                secret: dict[str, str], label: str = "") -> Iterator[Ec2Driver]:
        extra = {"prometheus_lag_s": self.prometheus_lag_s} if self.prometheus_lag_s is not None else {}
        remote = self._remote(out)
        key = f"secrets/{self.ctx.run_id}/{label}/headers.json"
        with secret_object(remote.s3, out.results_bucket, key, secret) as headers_key:
            yield Ec2Driver(outputs=out, remote=remote, run_id=self.ctx.run_id, run_dir=self.ctx.run_dir, work=work,
                            direct=direct, target=target, on_event=self.ctx.emit, mock_profiles=self._profiles.get(
                                out.stack), endpoint_wait_s=self.endpoint_wait_s,
                            profile_switch_s=self.profile_switch_s, headers_key=headers_key,
                            barrier_grace_s=self.barrier_grace_s, **extra)

    def _session_evidence(self, driver: StackDriver) -> dict[str, Any]:
        assert isinstance(driver, Ec2Driver)
        return {"runner": driver.describe()}


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
