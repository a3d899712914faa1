"""What the drivers of both cloud engines share (the EC2 runner's, aigw_bench/cloud/ec2_driver.py, and
the k6-operator's, aigw_bench/cloud/operator_driver.py): one stack's mock and target, the progress
they report, and the mock's pacing switched through the Kubernetes API."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aigw_bench.cloud.mock_control import MockProfiles, ProfileNotReady
from aigw_bench.cloud.mock_faults import MockFaults
from aigw_bench.cloud.outputs import StackOutputs
from aigw_bench.measure.driver import Endpoint, K6Job, K6Run, ReportsProgress, SessionLost, ToolJob, ToolUnavailable
from aigw_bench.measure.events import EventSink
from k6_scripts.render import render_warm
from schema.errors import CloudError
from schema.faults import HEALTHY_PLAN, FaultPlan, load_plan
from schema.mock import PacingProfile
from schema.results import Status

# How long a profile switch may take (pod replaced, image cached on the node, NLB health checks).
PROFILE_SWITCH_SECONDS = 600
# Seconds after a window before its last samples are in Prometheus (kubelet stats every ~10 s,
# scraped every 5 s: components/observability.py).
PROMETHEUS_LAG_SECONDS = 20
PROMETHEUS_STEP_SECONDS = 5
LOG_TAIL_LINES = 25
WARM_TIMEOUT_S = 15.0  # the request through the target after the mock restarted (a slow fault may hold it)


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> list[str]:
    return path.read_text(errors="replace").splitlines()[-lines:] if path.exists() else []


@dataclass(kw_only=True)
class StackDriver(ReportsProgress):
    """The part of a Driver (:class:`aigw_bench.measure.driver.Driver`) that is the same on every engine of
    one stack: the endpoints, the events, the mock's pacing profile."""

    outputs: StackOutputs
    work: Path  # the session's directory (targets/<t>/r<N>, or rig/<stack>)
    direct: Endpoint
    target: Endpoint
    on_event: EventSink
    mock_profiles: MockProfiles | None = None  # None: the stack's mock has one profile only
    mock_faults: MockFaults | None = None  # both mocks' plans and records (a run with faults scenarios only)
    profile_switch_s: float = PROFILE_SWITCH_SECONDS
    environment: str = "cloud"
    k6_runs: list[K6Run] = field(default_factory=list)

    def use_profile(self, profile: PacingProfile) -> None:
        if self.mock_profiles is None:
            if profile.name == self.outputs.mock_profile:
                return  # a mock with one profile serves the one it was deployed with
            raise SessionLost(Status.MOCK_FAILED,
                              f"stack {self.outputs.stack} deploys the {self.outputs.mock_name} mock, which serves "
                              f"only the '{self.outputs.mock_profile}' pacing profile, not '{profile.name}': deploy "
                              "the fast mock (`pulumi config set mock fast`)")
        self._serve(self.mock_profiles, "mock", profile)

    def _serve(self, instance: MockProfiles, role: str, profile: PacingProfile, plan: FaultPlan | None = None) -> bool:
        """Have the ``role`` mock serve ``profile`` and ``plan`` (None: no faults), restarting it if it does not
        yet; True if it was restarted. A pod that never gets ready, or an API that refuses, ends the session."""
        serving = f"the '{profile.name}' profile" + (f" and the fault plan '{plan.name}'" if plan else "")
        try:
            if instance.serves(profile, plan):
                return False
            self.phase(f"restarting the {role} with {serving} (Kubernetes API, at most {self.profile_switch_s:.0f} s)")
            seconds = instance.switch(
                profile, self.profile_switch_s, plan=plan,
                on_wait=lambda waited: self.tick(f"{role} restart ({plan.name if plan else profile.name})", waited,
                                                 self.profile_switch_s))
        except ProfileNotReady as exc:
            raise SessionLost(Status.MOCK_FAILED, exc.reason, deployment=exc.status) from None
        except CloudError as exc:
            raise SessionLost(Status.MOCK_FAILED, f"switching the {role} to {serving}: {exc}") from None
        self.phase(f"the {role} serves {serving} (restarted in {seconds:.0f} s)")
        return True

    # ----------------------------------------------------------------------------- faults
    def _faults(self) -> MockFaults:
        if self.mock_faults is None:  # the engine's validate() refuses such a stack before anything runs
            raise SessionLost(Status.MOCK_FAILED, f"stack {self.outputs.stack}'s {self.outputs.mock_name} mock serves "
                                                  "no fault plans (docs/faults.md)")
        return self.mock_faults

    def use_fault_plan(self, plan: FaultPlan, profile: PacingProfile, warm_body: str) -> None:
        faults = self._faults()
        # The second mock keeps the healthy plan; it follows the run's pacing as the local one does.
        self._serve(faults.fallback, "second, healthy mock", profile, load_plan(HEALTHY_PLAN))
        if not self._serve(faults.profiles, "mock", profile, plan):
            return  # already serving it (the scenario before used the same plan): reset_upstream starts it anew
        # The target's kept-alive connections went with the old pod: one request through the target replaces
        # them, so that the scenario's first requests do not meet a closed connection the plan did not put
        # there. Sent from the load generator (the target's NLB is reachable from the VPC only).
        job = K6Job(label=f"first request after the mock's restart (plan '{plan.name}')",
                    dir=self.work / f"warm-{plan.name}", source=render_warm(self.target, warm_body, WARM_TIMEOUT_S),
                    duration=1.0, request_timeout=WARM_TIMEOUT_S, split=False, remeasure=False, max_vus=1)
        try:
            self.run_k6(job)
        finally:  # not a measurement: never adopted as a step's partial result
            self.k6_runs[:] = [r for r in self.k6_runs if r.dir != job.dir]

    def reset_upstream(self) -> None:
        try:
            self._faults().records.reset()
        except CloudError as exc:
            raise SessionLost(Status.MOCK_FAILED, f"clearing the mocks' records: {exc}") from None

    def upstream_records(self) -> dict[str, dict[str, Any]]:
        try:
            return self._faults().records.read()
        except CloudError as exc:
            raise SessionLost(Status.MOCK_FAILED, f"reading the mocks' records: {exc}") from None

    def run_k6(self, job: K6Job) -> K6Run:
        raise NotImplementedError  # each engine's driver runs k6 its own way

    def run_tool(self, job: ToolJob) -> int | None:
        """A harness's own load tool (hey) runs on the local engine only: the runners carry k6 alone."""
        raise ToolUnavailable(f"{job.tool} runs on the local engine only: the cloud's runners carry k6 alone")
