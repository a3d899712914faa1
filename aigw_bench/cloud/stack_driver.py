"""What the drivers of both cloud engines share (the EC2 runner's, aigw_bench/cloud/ec2_driver.py, and
the k6-operator's, aigw_bench/cloud/operator_driver.py): one stack's mock and target, the progress
they report, and the mock's pacing switched through the Kubernetes API."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from aigw_bench.cloud.mock_control import MockProfiles, ProfileNotReady
from aigw_bench.cloud.outputs import StackOutputs
from aigw_bench.measure.driver import Endpoint, K6Run, ReportsProgress, SessionLost, ToolJob, ToolUnavailable
from aigw_bench.measure.events import EventSink
from schema.errors import CloudError
from schema.mock import PacingProfile
from schema.results import Status

# How long a profile switch may take (pod replaced, image cached on the node, NLB health checks).
PROFILE_SWITCH_SECONDS = 600
# Seconds after a window before its last samples are in Prometheus (kubelet stats every ~10 s,
# scraped every 5 s: components/observability.py).
PROMETHEUS_LAG_SECONDS = 20
PROMETHEUS_STEP_SECONDS = 5
LOG_TAIL_LINES = 25


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
        try:
            if self.mock_profiles.serves(profile):
                return
            self.phase(f"restarting the mock with the '{profile.name}' pacing profile (Kubernetes API, at most "
                       f"{self.profile_switch_s:.0f} s)")
            seconds = self.mock_profiles.switch(
                profile, self.profile_switch_s,
                on_wait=lambda waited: self.tick(f"mock restart ({profile.name})", waited, self.profile_switch_s))
        except ProfileNotReady as exc:
            raise SessionLost(Status.MOCK_FAILED, exc.reason, deployment=exc.status) from None
        except CloudError as exc:
            raise SessionLost(Status.MOCK_FAILED,
                              f"switching the mock to the '{profile.name}' profile: {exc}") from None
        self.phase(f"the mock serves the '{profile.name}' profile (restarted in {seconds:.0f} s)")


    def run_tool(self, job: ToolJob) -> int | None:
        """A harness's own load tool (hey) runs on the local engine only: the runners carry k6 alone."""
        raise ToolUnavailable(f"{job.tool} runs on the local engine only: the cloud's runners carry k6 alone")
