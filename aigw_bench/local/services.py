"""Backing services (schema/services.py) as processes of a target's session: checked before the run (installed,
version, port), started before the gateway on the gateway's CPUs, readiness-checked, stopped with the session by
their process group like every other child."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from aigw_bench.local import install
from aigw_bench.local.ports import require_free
from aigw_bench.local.processes import ManagedProcess, Supervisor
from aigw_bench.measure.driver import SessionLost
from schema.catalog import Gateway
from schema.errors import PortInUseError
from schema.results import Status
from schema.services import SERVICE_HOST, SERVICE_ROLE, ServiceDefinition, load_service
from schema.templating import render_list

READY_INTERVAL = 0.1
READY_COMMAND_TIMEOUT = 5.0
LOG_TAIL_LINES = 25


def services_of(target: Gateway) -> list[ServiceDefinition]:
    """The services the target (an entry or ENTRY+VARIANT) needs, in the order it lists them."""
    return [load_service(name, needed_by=str(target.path)) for name in target.local.services]


def needed_by(target: Gateway, service: ServiceDefinition) -> str:
    """Who needs a service, for a message: the target, its policy (variant) and the files to look at."""
    policy = f", policy '{target.variant}'" if target.variant else ""
    return f"service '{service.name}' of target {target.name}{policy} ({target.path}; {service.path})"


def service_context(service: ServiceDefinition, work_dir: Path) -> dict[str, Any]:
    """The variables of a service's templates: where it listens and the folder it may write in."""
    return {"name": service.name, "host": SERVICE_HOST, "port": service.port, "work_dir": str(work_dir)}


def template_vars(target: Gateway) -> dict[str, dict[str, Any]]:
    """``services`` in a gateway's templates: name -> host, port, url."""
    return {s.name: s.template_vars() for s in services_of(target)}


def check(target: Gateway) -> dict[str, dict[str, Any]]:
    """Before the run: each service installed, its program there, its templates valid; what the manifest
    records of it (pinned and installed version, port, source)."""
    records: dict[str, dict[str, Any]] = {}
    for s in services_of(target):
        who = needed_by(target, s)
        install.require_installed(install.InstallTarget(s.name, s.install, s.entry_dir))
        ctx = service_context(s, Path("/nonexistent-work-dir"))
        argv = render_list(s.command, ctx, f"{who}: command")
        install.require_executable(argv[0], who)
        if s.ready.command:
            render_list(s.ready.command, ctx, f"{who}: ready.command")
        found = install.probe_version(s.version_probe.command, s.version_probe.regex, ctx, who)
        records[s.name] = {"title": s.title, "source": s.source, "port": s.port, "host": SERVICE_HOST,
                           "definition": f"services/{s.name}/{s.path.name}",
                           "version_check": {"pinned": s.version, "installed": found,
                                             "matches_pin": install.versions_match(s.version, found)}}
    return records


def ports(target: Gateway) -> dict[str, int]:
    """The ports the target's services listen on, keyed by who needs them (for require_free's message)."""
    return {needed_by(target, s): s.port for s in services_of(target)}


def start(sup: Supervisor, target: Gateway, work: Path, cpus: list[int] | None) -> dict[str, ManagedProcess]:
    """Every service of the target started in ``work/<name>/`` on ``cpus`` and ready; role -> process. A port
    taken, a service that exits or never answers ends the session (SessionLost) naming the target, the policy
    and the files; what the supervisor started is stopped with it."""
    started: dict[str, ManagedProcess] = {}
    for s in services_of(target):
        who = needed_by(target, s)
        try:
            require_free({who: s.port}, wait=5.0)
        except PortInUseError as exc:
            raise SessionLost(Status.FAILED_TO_START, str(exc), service=s.name, port=s.port) from None
        folder = work / s.name
        folder.mkdir(parents=True, exist_ok=True)
        ctx = service_context(s, folder)
        proc = sup.start(f"{target.name} {s.name}", render_list(s.command, ctx, f"{who}: command"),
                         work / f"{s.name}.log", cwd=folder, cpus=cpus, stop_timeout=s.stop_timeout_s)
        wait_ready(s, proc, ctx, who)
        started[SERVICE_ROLE + s.name] = proc
    return started


def wait_ready(service: ServiceDefinition, proc: ManagedProcess, ctx: dict[str, Any], who: str) -> float:
    """Until the service's readiness check passes (its command, or a TCP connection); the seconds waited."""
    spec = service.ready
    argv = render_list(spec.command, ctx, f"{who}: ready.command") if spec.command else None
    begin = time.monotonic()
    last = "no answer yet"
    while True:
        if not proc.alive:
            code = proc.poll()
            raise SessionLost(Status.FAILED_TO_START, f"{who} exited with code {code} before it became ready",
                              service=service.name, exit_code=code, log=proc.log_path.name,
                              log_tail=proc.log_tail(LOG_TAIL_LINES))
        ok, last = _probe(argv, spec.expect, service.port)
        if ok:
            return time.monotonic() - begin
        if time.monotonic() - begin >= spec.timeout_s:
            raise SessionLost(Status.FAILED_TO_START, f"{who} did not become ready within {spec.timeout_s:.0f} s "
                                                      f"(last check: {last})", service=service.name,
                              log=proc.log_path.name, log_tail=proc.log_tail(LOG_TAIL_LINES))
        time.sleep(READY_INTERVAL)


def _probe(argv: list[str] | None, expect: str | None, port: int) -> tuple[bool, str]:
    """One readiness check: (passed, what it saw)."""
    if argv is None:
        try:
            with socket.create_connection((SERVICE_HOST, port), timeout=1.0):
                return True, "connected"
        except OSError as exc:
            return False, str(exc)
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=READY_COMMAND_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, str(exc)
    seen = (done.stdout + done.stderr).strip()[:200]
    return done.returncode == 0 and (expect is None or expect in done.stdout), f"exit {done.returncode}: {seen}"
