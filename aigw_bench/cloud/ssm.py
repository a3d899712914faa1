"""AWS SSM Run Command on the k6 runner: registered?, busy?, send, poll, cancel."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from schema.errors import CloudError

COMMENT_PREFIX = "aigw-bench"
TERMINAL = {"Success", "Cancelled", "TimedOut", "Failed", "Undeliverable", "Terminated"}


@dataclass(frozen=True)
class CommandResult:
    command_id: str
    status: str
    status_details: str
    response_code: int | None
    stdout_tail: str
    stderr_tail: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.status == "Success"


def _refused(action: str, instance_id: str, exc: ClientError) -> CloudError:
    error = exc.response.get("Error", {})
    hint = (" (the caller lacks an SSM permission: ssm:DescribeInstanceInformation, ssm:ListCommandInvocations, "
            "ssm:SendCommand, ssm:GetCommandInvocation, ssm:CancelCommand)" if "AccessDenied" in error.get("Code", "")
            else "")
    return CloudError(f"AWS SSM refused {action} for the k6 runner {instance_id}: {error.get('Code', '?')}: "
                      f"{error.get('Message', exc)}{hint}")


def ensure_registered(ssm: Any, instance_id: str) -> None:
    """The runner's SSM agent must be online, or no command can reach it."""
    try:
        info = ssm.describe_instance_information(
            Filters=[{"Key": "InstanceIds", "Values": [instance_id]}]
        ).get("InstanceInformationList", [])
    except ClientError as exc:
        raise _refused("describing the instance", instance_id, exc) from None
    if not info:
        raise CloudError(
            f"the k6 runner {instance_id} is not registered with AWS SSM: its agent is not running or cannot reach "
            "the SSM endpoints (NAT or VPC endpoints), or its instance profile lacks AmazonSSMManagedInstanceCore. "
            "A fresh instance needs a few minutes after `pulumi up`."
        )
    status = info[0].get("PingStatus")
    if status != "Online":
        raise CloudError(f"the k6 runner {instance_id} is registered with SSM but its agent is {status}; "
                         "check the instance in the EC2 console (Session Manager) and retry")


# Statuses of an invocation that has not finished. Per instance, so list_command_invocations: its
# Status filter accepts Delayed, list_commands' does not (botocore ssm service model,
# CommandFilterValue documentation).
UNFINISHED = ("Pending", "InProgress", "Delayed")


def ensure_idle(ssm: Any, instance_id: str) -> None:
    """Refuse to start while another aigw-bench command runs on the same runner (two loads would mix)."""
    for status in UNFINISHED:
        try:
            invocations = ssm.list_command_invocations(
                InstanceId=instance_id, Filters=[{"key": "Status", "value": status}]).get("CommandInvocations", [])
        except ClientError as exc:
            raise _refused("listing its commands", instance_id, exc) from None
        for c in invocations:
            if str(c.get("Comment", "")).startswith(COMMENT_PREFIX):
                raise CloudError(
                    f"a benchmark is already running on the k6 runner {instance_id} (SSM command {c['CommandId']}, "
                    f"{c.get('Comment')}, requested {c.get('RequestedDateTime')}); wait for it or cancel it with "
                    f"`aws ssm cancel-command --command-id {c['CommandId']}`"
                )


def send(ssm: Any, instance_id: str, script: str, comment: str, timeout_s: int) -> str:
    """Start the script; returns the command id. ``timeout_s`` bounds the execution on the instance."""
    try:
        response = ssm.send_command(
            InstanceIds=[instance_id],
            DocumentName="AWS-RunShellScript",
            Comment=f"{COMMENT_PREFIX} {comment}"[:100],
            Parameters={"commands": [script], "executionTimeout": [str(timeout_s)]},
            TimeoutSeconds=max(30, min(timeout_s, 2592000)),
        )
    except ClientError as exc:
        raise CloudError(f"SSM refused the command for {instance_id}: {exc}") from None
    return response["Command"]["CommandId"]


def wait(ssm: Any, command_id: str, instance_id: str, limit_s: float,
         on_tick: Callable[[float], None] | None = None, interval: float = 3.0,
         sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> CommandResult:
    """Poll until the command ends or ``limit_s`` passes (then cancel it and report TimedOut)."""
    start = clock()
    while True:
        elapsed = clock() - start
        try:
            inv = ssm.get_command_invocation(CommandId=command_id, InstanceId=instance_id)
        except ClientError as exc:
            # Right after send_command the invocation may not exist yet.
            if exc.response.get("Error", {}).get("Code") != "InvocationDoesNotExist":
                raise CloudError(f"polling SSM command {command_id} failed: {exc}") from None
            inv = {"Status": "Pending"}
        status = inv.get("Status", "Pending")
        if status in TERMINAL:
            return CommandResult(command_id, status, inv.get("StatusDetails", status),
                                 inv.get("ResponseCode"), inv.get("StandardOutputContent", "")[-2000:],
                                 inv.get("StandardErrorContent", "")[-2000:], elapsed)
        if elapsed > limit_s:
            cancel(ssm, command_id, instance_id)
            return CommandResult(command_id, "TimedOut", f"no result within {limit_s:.0f} s; cancelled", None,
                                 "", "", elapsed)
        if on_tick:
            on_tick(elapsed)
        sleep(interval)


def cancel(ssm: Any, command_id: str, instance_id: str) -> None:
    with contextlib.suppress(ClientError):  # already finished: nothing to cancel
        ssm.cancel_command(CommandId=command_id, InstanceIds=[instance_id])
