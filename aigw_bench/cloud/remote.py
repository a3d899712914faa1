"""One job on the k6 runner(s): upload its inputs, start one SSM command per runner, poll, download.

A job is the unit the cloud driver runs (a k6 run, an idle sampling, the streaming probe). Each
runner has its own S3 prefix ``<job prefix>/g<N>``: the inputs go there, the runner uploads its files
there, and they come back into the job's directory (``gen<N>/`` when there are several runners).
Ctrl-C cancels the commands it started and still downloads what was uploaded; nothing already
measured is lost.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from aigw_bench.cloud import ssm as ssm_cmd
from aigw_bench.run.interrupts import STOP

TEMPLATES = Path(__file__).resolve().parent / "templates"
COMPLETION_MARKER = "exit-code"
# Exit codes the runner scripts write into their marker besides the tool's own.
ENDPOINT_UNREACHABLE = 92  # an endpoint did not answer within the wait
RESOURCES_UNAVAILABLE = 93  # the idle sampling got nothing from Prometheus
RUNNERS_APART = 94  # several runners of one job never all got to the measurement's common start
# The streaming probe's Python on the runner: a virtualenv the instance's user data makes
# (components/k6_runner.py: Python 3.11 and httpx from requirements.txt, hash-checked).
RUNNER_PYTHON = "/opt/aigw-probe/bin/python"

_ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), undefined=jinja2.StrictUndefined,
                          keep_trailing_newline=True, autoescape=False)
_ENV.filters["sh"] = lambda value: shlex.quote(str(value))


def render_script(kind: str, **context: Any) -> str:
    """A runner script from ``templates/<kind>.sh.j2`` (every value shell-quoted by the template)."""
    return _ENV.get_template(f"{kind}.sh.j2").render(
        kind=kind, ENDPOINT_UNREACHABLE=ENDPOINT_UNREACHABLE, RESOURCES_UNAVAILABLE=RESOURCES_UNAVAILABLE,
        RUNNERS_APART=RUNNERS_APART, RUNNER_PYTHON=RUNNER_PYTHON, **context)


def segment_args(index: int, count: int) -> str:
    """k6 execution-segment flags splitting the load evenly across ``count`` generators."""
    if count == 1:
        return ""
    sequence = ",".join(["0", *(f"{i}/{count}" for i in range(1, count)), "1"])
    start = "0" if index == 0 else f"{index}/{count}"
    end = "1" if index == count - 1 else f"{index + 1}/{count}"
    return f"--execution-segment {start}:{end} --execution-segment-sequence {sequence}"


@dataclass
class Generator:
    """One runner's part of a job: its command and what came back."""

    instance: str
    prefix: str
    dir: Path
    script: str
    command_id: str | None = None
    result: ssm_cmd.CommandResult | None = None
    files: list[str] = field(default_factory=list)

    @property
    def code(self) -> int | None:
        """The runner's exit-code marker (None: it never uploaded one)."""
        marker = self.dir / COMPLETION_MARKER
        if COMPLETION_MARKER not in self.files or not marker.exists():
            return None
        text = marker.read_text().strip()
        return int(text) if text.lstrip("-").isdigit() else None

    def evidence(self) -> dict[str, Any]:
        r = self.result
        return {"instance": self.instance, "command_id": self.command_id, "status": r.status if r else None,
                "details": r.status_details if r else None, "seconds": round(r.seconds, 1) if r else None,
                "stdout_tail": r.stdout_tail[-500:] if r else None, "files": sorted(self.files)}


class Remote:
    """Runs jobs on one stack's runners: ``ssm`` and ``s3`` are boto3 clients (or test doubles)."""

    def __init__(self, ssm: Any, s3: Any, bucket: str, *, poll_interval: float = 5.0,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic):
        self.ssm, self.s3, self.bucket = ssm, s3, bucket
        self.poll_interval, self.sleep, self.clock = poll_interval, sleep, clock

    def run(self, label: str, generators: list[Generator], inputs: dict[str, bytes], limit_s: float,
            on_tick: Callable[[float], None] | None = None) -> list[Generator]:
        """Upload ``inputs`` for every generator, start them, wait (at most ``limit_s``), download."""
        started: list[Generator] = []
        try:
            for g in generators:
                for name, data in inputs.items():
                    self.s3.put_object(Bucket=self.bucket, Key=f"{g.prefix}/{name}", Body=data)
                g.dir.mkdir(parents=True, exist_ok=True)
                (g.dir / f"runner-{Path(g.prefix).name}.sh").write_text(g.script)
                g.command_id = ssm_cmd.send(self.ssm, g.instance, g.script, f"{label} {Path(g.prefix).name}"[:80],
                                            int(limit_s))
                started.append(g)
            for g in started:
                assert g.command_id is not None
                g.result = ssm_cmd.wait(self.ssm, g.command_id, g.instance, limit_s,
                                        on_tick=on_tick,
                                        interval=self.poll_interval, sleep=self.sleep, clock=self.clock)
        except STOP:
            for g in started:
                if g.result is None and g.command_id is not None:
                    ssm_cmd.cancel(self.ssm, g.command_id, g.instance)
            self.download(started, skip=set(inputs))
            raise
        self.download(started, skip=set(inputs))
        return started

    def download(self, generators: list[Generator], skip: set[str]) -> None:
        """Every object a runner uploaded under its prefix, into its directory."""
        paginator = self.s3.get_paginator("list_objects_v2")
        for g in generators:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=g.prefix + "/"):
                for obj in page.get("Contents", []):
                    name = obj["Key"][len(g.prefix) + 1:]
                    if not name or "/" in name or name in skip:
                        continue
                    self.s3.download_file(self.bucket, obj["Key"], str(g.dir / name))
                    g.files.append(name)
