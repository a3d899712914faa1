"""Before the first command on a k6 runner: its user data has finished.

The SSM agent of a fresh (or replaced) runner is online before cloud-init has run the user data that
installs k6 and the streaming probe's Python (components/k6_runner.py): a run started then gets
`k6: command not found`. The stage asks the runner, with short SSM commands
(templates/user_data.sh.j2), what ``cloud-init status`` says and whether k6 and the probe's Python
answer, again every few seconds while cloud-init runs, and gives up after a bounded wait with a
message saying where to look. Short commands, not one ``cloud-init status --wait``: the user data
ends by restarting the SSM agent, and a check that fails meanwhile is simply asked again.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from aigw_bench.cloud import ssm as ssm_cmd
from aigw_bench.cloud.remote import render_script
from schema.errors import CloudError

# dnf installs, two virtualenvs and their hashed wheels: a few minutes on a fresh AL2023 instance.
USER_DATA_WAIT_SECONDS = 900
CHECK_TIMEOUT_SECONDS = 60
ANSWER = re.compile(r"^aigw-bench user-data: (ready|running|error|missing)\b(.*)$", re.M)
LOG = "/var/log/cloud-init-output.log"


def check(ssm: Any, instance_id: str, *, interval: float, sleep: Callable[[float], None],
          clock: Callable[[], float]) -> tuple[str, str]:
    """One question to the runner: (state, detail); state "unanswered" if the command did not run."""
    command_id = ssm_cmd.send(ssm, instance_id, render_script("user_data"), "user-data check", CHECK_TIMEOUT_SECONDS)
    result = ssm_cmd.wait(ssm, command_id, instance_id, CHECK_TIMEOUT_SECONDS, interval=interval, sleep=sleep,
                          clock=clock)
    answers = ANSWER.findall(result.stdout_tail)
    if not answers:
        return "unanswered", f"SSM command {command_id} ended {result.status} ({result.status_details})"
    state, detail = answers[-1]
    return state, detail.strip() or result.stdout_tail.strip()[-300:]


def wait_user_data(ssm: Any, instance_id: str, limit_s: float, *, interval: float = 5.0,
                   sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
                   on_wait: Callable[[float, str], None] | None = None) -> None:
    """Return once the runner's user data has finished and k6 and the probe's Python answer; raise
    CloudError if it failed, or has not finished within ``limit_s``."""
    started = clock()
    while True:
        state, detail = check(ssm, instance_id, interval=min(interval, 2.0), sleep=sleep, clock=clock)
        if state == "ready":
            return
        if state == "error":
            raise CloudError(
                f"the k6 runner {instance_id}'s user data failed {detail}: k6 or the streaming probe may be missing. "
                f"Its log is {LOG} on the instance (`aws ssm start-session --target {instance_id}`); replace the "
                "runner with `pulumi up --replace <its URN>` (`pulumi stack --show-urns | grep k6-runner`)")
        if state == "missing":
            raise CloudError(
                f"the k6 runner {instance_id} has finished its user data but is missing {detail}: see {LOG} on the "
                f"instance (`aws ssm start-session --target {instance_id}`), or replace the runner (`pulumi up "
                "--replace`)")
        waited = clock() - started
        if waited > limit_s:
            raise CloudError(
                f"the k6 runner {instance_id} has not finished its user data within {limit_s:.0f} s (last answer: "
                f"{state}, {detail}); a fresh runner needs a few minutes after `pulumi up`. Run again later, or see "
                f"{LOG} on the instance (`aws ssm start-session --target {instance_id}`)")
        if on_wait:
            on_wait(waited, detail)
        sleep(interval)
