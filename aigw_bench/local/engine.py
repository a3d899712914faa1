"""The local engine: every selected catalog entry as real processes on this machine.

The rig is the mock alone, k6 straight to it. A target's session starts the mock and the target,
waits until both are ready and sends the benchmark's request once (a target that cannot serve it is
recorded as not served, with the evidence); the steps then run k6 and the streaming probe as
supervised children on the load generator's CPUs (:class:`aigw_bench.local.session.LocalSession`).
Everything stops at the end of the session, whatever ends it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aigw_bench.local import install, services
from aigw_bench.local.context import (
    MOCK_HOST,
    NO_WORK_DIR,
    base_url,
    mock_context,
    mock_endpoint,
    target_context,
    target_endpoint,
)
from aigw_bench.local.cpus import CpuPlan
from aigw_bench.local.noise import Foreign, wait_for_quiet
from aigw_bench.local.ports import require_free
from aigw_bench.local.probes import NotReady, ProcessExited, smoke_request, wait_ready
from aigw_bench.local.processes import ManagedProcess, Supervisor, reap_stale_groups, state_file_for
from aigw_bench.local.session import LocalSession, process_evidence
from aigw_bench.measure.driver import Endpoint, SessionLost
from aigw_bench.measure.events import EventSink, Phase, Reaped
from aigw_bench.measure.faults import served_plans
from aigw_bench.run.engine import Description, Engine, RunContext
from aigw_bench.run.environment import machine_info
from aigw_bench.run.plan import RunPlan
from k6_scripts.render import build_body
from schema.catalog import Gateway, LocalSpec
from schema.errors import ConfigError, PortInUseError
from schema.faults import HEALTHY_PLAN, FaultPlan, load_plan
from schema.mock import MockDefinition, PacingProfile
from schema.results import Outcome, Status
from schema.services import list_services
from schema.suites import NoiseSizes
from schema.templating import render_file, render_list, render_map

PLACE = "local"


def _fault_plans(plan: RunPlan) -> list[FaultPlan]:
    """The fault plans the run's faults scenarios serve (none outside the faults suite)."""
    return served_plans(plan.measurement.sizes)


# One local run at a time per machine, whatever its clone or results directory: the ports are the
# machine's, and two runs would share the CPUs each pins its processes to (and measure each other).
RIG_LOCK = Path(tempfile.gettempdir()) / "aigw-bench-local-rig.lock"


def _started(targets: list[Gateway]) -> list[Gateway]:
    """The targets whose processes a run starts (a variant its edition cannot do starts nothing)."""
    return [t for t in targets if t.unsupported is None]


class LocalEngine(Engine):
    name = "local"
    environment = "local"
    where = "local"
    not_runnable_hint = ("`aigw-bench list` shows what runs here; a cloud-only target runs on AWS with "
                         "`aigw-bench cloud run --stack NAME` after `pulumi up` (docs/cloud.md).")

    def __init__(self, mock: MockDefinition, cpu_plan: CpuPlan, state_dir: Path | None = None):
        self.mock = mock
        self.cpu_plan = cpu_plan
        self.state_dir = state_dir or install.tools_dir() / "state"
        self.versions: dict[str, dict[str, Any]] = {}
        self.services: dict[str, dict[str, Any]] = {}  # per target: its backing services (manifest)
        self.mock_ready_seconds: float | None = None  # the last start of the mock, from start to ready
        self.quiet: dict[str, Any] | None = None  # what the wait for a quiet machine saw

    # ----------------------------------------------------------------- before anything starts
    def locks(self, plan: RunPlan) -> list[tuple[Path, str]]:
        fallback = [str(self.mock.fallback_port)] if _fault_plans(plan) and self.mock.fallback_port else []
        runnable = [t for t in plan.targets if t.local.runnable]
        ports = list(dict.fromkeys([str(self.mock.local.port), *fallback,
                                    *(str(t.local.port) for t in runnable if t.local.port),
                                    *(str(port) for t in runnable for port in services.ports(t).values())]))
        return [(RIG_LOCK, f"this machine's local rig (ports {', '.join(ports)} and the CPUs it pins)")]

    def prepare(self, emit: EventSink) -> None:
        reaped = reap_stale_groups(self.state_dir)
        if reaped:
            emit(Reaped(groups=reaped))

    def begin(self, ctx: RunContext) -> None:
        super().begin(ctx)
        # After the preflight, so that a plan with an error fails at once, however busy the machine is.
        self.quiet = self._wait_for_quiet(ctx.plan.rig.noise, ctx.emit)

    @staticmethod
    def _wait_for_quiet(sizes: NoiseSizes, emit: EventSink) -> dict[str, Any]:
        """Before anything is measured: wait (bounded) until other work on this machine is quiet, and say so."""
        def waiting(foreign: Foreign, waited: float) -> None:
            busiest = ", ".join(f"{b['name']} ({b['pid']})" for b in foreign.busiest[:3])
            emit(Phase(target="machine", phase=f"waiting for a quiet machine: other work uses {foreign.cores:.2f} "
                                               f"cores ({busiest}); {waited:.0f} of {sizes.quiet_wait:.0f} s"))
        quiet = wait_for_quiet(sizes, waiting)
        if not quiet["quiet"]:
            emit(Phase(target="machine", phase=f"the machine stayed busy for {quiet['waited_s']:.0f} s: starting "
                                               "anyway; disturbed windows are measured again or flagged"))
        return quiet

    def validate(self, plan: RunPlan) -> None:
        """The mock serves what the plan needs: said before the rig's lock, so a bad argument fails at once
        even while another run holds the rig."""
        mock = self.mock
        for profile in plan.measurement.profiles():
            mock.require_profile(profile)
        plans = _fault_plans(plan)
        for fault_plan in plans:
            mock.require_fault_plan(fault_plan)
        if plans and mock.fallback_port is None:
            raise ConfigError(f"the faults suite starts a second, healthy {mock.name} mock beside the first: "
                              f"{mock.entry_dir / 'mock.yaml'} has no fallback_port")

    def preflight(self, plan: RunPlan) -> None:
        """Check installs, programs, templates and ports; record the versions found. Raises on any problem."""
        mock = self.mock
        mock_ctx = mock_context(mock, self.cpu_plan, NO_WORK_DIR, plan.measurement.profile)
        checks: list[tuple[str, LocalSpec, Path, dict[str, Any]]] = [("mock", mock.local, mock.entry_dir, mock_ctx)]
        for t in _started(plan.targets):
            if t.local.runnable:
                checks.append((t.name, t.local, t.entry_dir, target_context(t, mock, self.cpu_plan, NO_WORK_DIR)))
        versions: dict[str, dict[str, Any]] = {}
        pinned = {t.name: t.version for t in plan.targets} | {"mock": mock.version}
        for who, spec, entry_dir, ctx in checks:
            name = mock.name if who == "mock" else who
            if spec.install:
                install.require_installed(install.InstallTarget(name, spec.install, entry_dir))
            if spec.command:
                argv = render_list(spec.command, ctx, f"{who}: local.command")
                install.require_executable(argv[0], who)
                render_map(spec.env, ctx, f"{who}: local.env")
            for template in spec.config_files.values():
                render_file(entry_dir / template, ctx)  # a template error fails now, not mid-run
            base_url(spec, who, ctx)
            if spec.version_probe:
                found = install.probe_version(spec.version_probe.command, spec.version_probe.regex, ctx, who)
                versions[who] = {"pinned": pinned[who], "installed": found,
                                 "matches_pin": install.versions_match(pinned[who], found)}
        for t in plan.targets:
            versions.setdefault(t.name, {"pinned": t.version, "installed": None, "matches_pin": None})
        started = [t for t in _started(plan.targets) if t.local.runnable]
        self.services = {t.name: services.check(t) for t in started if t.local.services}
        self._check_ports_distinct(plan.targets)
        ports = {"mock": mock.local.port, **({"fallback mock": mock.fallback_port} if _fault_plans(plan) else {})}
        ports.update({t.name: t.local.port for t in started if t.local.port})
        for t in started:
            ports.update(services.ports(t))
        require_free({k: v for k, v in ports.items() if v is not None})
        self.versions = versions

    def _check_ports_distinct(self, targets: list[Gateway]) -> None:
        mock_port = self.mock.local.port
        for t in targets:
            if t.local.runnable and t.local.port is not None and t.local.port == mock_port:
                raise ConfigError(f"{t.name}: local.port {t.local.port} is the mock's port; choose another")

    def describe(self, plan: RunPlan) -> Description:
        m, mock = plan.measurement, self.mock
        return Description(
            targets={t.name: {"runnable_locally": t.local.runnable, "reason": t.local.reason,
                              "version_check": self.versions.get(t.name),
                              **({"services": self.services[t.name]} if t.name in self.services else {})}
                     for t in plan.targets},
            mock={"name": mock.name, "title": mock.title, "version": mock.version, "source": mock.source,
                  "version_check": self.versions.get("mock"), "profile": m.profile.model_dump(),
                  "streaming_profile": m.streaming_profile.model_dump() if m.streaming_profile else None},
            cpu_pinning=self.cpu_plan.to_dict(),
            machine=machine_info(),
            noise={"guard": plan.rig.noise.model_dump(), "quiet_wait": self.quiet},
            setting=[("mock", f"{mock.name} ({m.profile.name} pacing)"), ("CPU pinning", self.cpu_plan.note)])

    # -------------------------------------------------------------------------- processes
    def _start(self, sup: Supervisor, who: str, role: str, spec: LocalSpec, ctx: dict[str, Any],
               entry_dir: Path, log_dir: Path, cpus: list[int] | None) -> ManagedProcess:
        for out_name, template in spec.config_files.items():
            out = Path(ctx["work_dir"]) / out_name
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(render_file(entry_dir / template, ctx))
        Path(ctx["work_dir"]).mkdir(parents=True, exist_ok=True)
        argv = render_list(spec.command or [], ctx, f"{who}: local.command")
        env = render_map(spec.env, ctx, f"{who}: local.env")
        return sup.start(who, argv, log_dir / f"{role}.log", env=env, cwd=Path(ctx["work_dir"]), cpus=cpus,
                         stop_timeout=spec.stop_timeout_s)

    def _wait_ready(self, name: str, spec: LocalSpec, ctx: dict[str, Any], proc: ManagedProcess, role: str) -> float:
        base = base_url(spec, name, ctx)
        try:
            return wait_ready(name, base + spec.ready.path, method=spec.ready.method, status=spec.ready.status,
                              timeout=spec.ready.timeout_s, proc=proc)
        except ProcessExited as exc:
            status = Status.MOCK_FAILED if role == "mock" else Status.FAILED_TO_START
            raise SessionLost(status, str(exc), **process_evidence(proc, exc.code)) from None
        except NotReady as exc:
            status = Status.MOCK_FAILED if role == "mock" else Status.NOT_READY
            raise SessionLost(status, str(exc), last_probe=exc.last, **process_evidence(proc)) from None

    def start_mock(self, sup: Supervisor, work: Path, profile: PacingProfile, plan: FaultPlan | None = None,
                   fallback: bool = False) -> ManagedProcess:
        """The mock with its rendered config in work/mock, started on its CPUs and answering; stopped by ``sup``.
        ``plan``: the fault plan it serves; ``fallback``: its second instance (work/fallback, ``fallback_port``)."""
        mock = self.mock
        role = "fallback" if fallback else "mock"
        ctx = mock_context(mock, self.cpu_plan, work, profile, plan, fallback=fallback)
        # Also for callers outside a run (the benchmarks): a port someone holds is named, not reported
        # as "the mock exited".
        require_free({"fallback mock" if fallback else "mock": ctx["port"]})
        proc = self._start(sup, role, role, mock.local, ctx, mock.entry_dir, work, self.cpu_plan.mock)
        ready = round(self._wait_ready(role, mock.local, ctx, proc, "mock"), 2)
        if not fallback:
            self.mock_ready_seconds = ready
        return proc

    def _restarter(self, sup: Supervisor, work: Path, current: dict[str, ManagedProcess]):
        def restart(profile: PacingProfile, plan: FaultPlan | None = None) -> ManagedProcess:
            sup.stop(current["mock"])
            require_free({"mock": self.mock.local.port}, wait=5.0)
            current["mock"] = self.start_mock(sup, work, profile, plan)
            return current["mock"]
        return restart

    def _upstreams(self, processes: dict[str, ManagedProcess]) -> dict[str, str]:
        """The base URL of each mock running (the faults step reads and clears their records)."""
        ports = {"mock": self.mock.local.port, "fallback": self.mock.fallback_port}
        return {role: f"http://{MOCK_HOST}:{ports[role]}" for role in ("mock", "fallback") if role in processes}

    @contextmanager
    def _supervised(self, lost_status: str) -> Iterator[Supervisor]:
        """A supervisor whose processes stop with the block; a program that disappeared or a port
        taken since the preflight (the machine changed) ends the session with ``lost_status``."""
        try:
            with Supervisor(state_file_for(self.state_dir)) as sup:
                yield sup
        except (FileNotFoundError, PortInUseError) as exc:
            raise SessionLost(lost_status, str(exc)) from None

    # ----------------------------------------------------------------------------- the rig
    def places(self) -> list[str]:
        return [PLACE]

    def place_of(self, target: Gateway) -> str:
        return PLACE

    def rig_base(self, place: str) -> dict[str, Any]:
        return {"mock": self.mock.name, "profile": self.ctx.plan.measurement.profile.name, "cpu": self.cpu_plan.note}

    @contextmanager
    def rig_session(self, place: str) -> Iterator[LocalSession]:
        plan = self.ctx.plan
        m = plan.measurement
        work = self.rig_dir(place)
        model = plan.targets[0].request.model if plan.targets else "gpt-4o-mini"
        with self._supervised(Status.MOCK_FAILED) as sup:
            processes = {"mock": self.start_mock(sup, work, m.profile)}
            endpoint = mock_endpoint(self.mock, model)
            smoke = smoke_request(endpoint.url, build_body(m.params, model), {}, bool(m.params.stream))
            if not smoke.ok:
                raise SessionLost(Status.MOCK_FAILED, f"the mock did not answer the benchmark's request "
                                                      f"(HTTP {smoke.status}, {smoke.error or smoke.snippet[:120]})")
            yield LocalSession(sup, self.cpu_plan, endpoint, endpoint, processes,
                               self._restarter(sup, work, processes), self.ctx.emit, noise=self.ctx.plan.rig.noise)

    # ------------------------------------------------------------------------ one target
    def not_runnable(self, target: Gateway) -> str | None:
        return None if target.local.runnable else target.local.reason

    @contextmanager
    def session(self, target: Gateway, repeat: int, work: Path, outcome: Outcome) -> Iterator[LocalSession]:
        m = self.ctx.plan.measurement
        emit = self.ctx.emit
        with self._supervised(Status.FAILED_TO_START) as sup:
            require_free({"mock": self.mock.local.port, **({target.name: target.local.port}
                                                            if target.local.port else {})}, wait=5.0)
            emit(Phase(target=target.name, phase="starting mock"))
            processes = {"mock": self.start_mock(sup, work, m.profile)}
            if _fault_plans(self.ctx.plan):  # the resilient configurations' fallback upstream, counted too
                emit(Phase(target=target.name, phase="starting the second, healthy mock"))
                processes["fallback"] = self.start_mock(sup, work, m.profile, load_plan(HEALTHY_PLAN), fallback=True)
            ctx = target_context(target, self.mock, self.cpu_plan, work)
            if target.local.services:
                # On the gateway's side of the CPU plan: what a policy's server costs is the target's cost.
                emit(Phase(target=target.name, phase=f"starting {', '.join(target.local.services)}"))
                processes.update(services.start(sup, target, work, self.cpu_plan.gateway))
            if target.local.command:
                emit(Phase(target=target.name, phase="starting gateway"))
                gateway = self._start(sup, target.name, "gateway", target.local, ctx, target.entry_dir, work,
                                      self.cpu_plan.gateway)
                processes["gateway"] = gateway
                outcome.ready_seconds = round(self._wait_ready(target.name, target.local, ctx, gateway, "gateway"), 2)
            endpoint = target_endpoint(target, ctx)
            outcome.url = endpoint.url
            emit(Phase(target=target.name, phase="checking the route"))
            self._smoke(target, endpoint, processes.get("gateway"), outcome)
            yield LocalSession(sup, self.cpu_plan, mock_endpoint(self.mock, target.request.model), endpoint, processes,
                               self._restarter(sup, work, processes), emit, noise=self.ctx.plan.rig.noise,
                               upstreams=self._upstreams(processes))

    def _smoke(self, target: Gateway, endpoint: Endpoint, gateway: ManagedProcess | None, outcome: Outcome) -> None:
        """The benchmark's request once: a target that cannot serve it is not measured."""
        m = self.ctx.plan.measurement
        smoke = smoke_request(endpoint.url, build_body(m.params, target.request.model), endpoint.headers,
                              bool(m.params.stream))
        outcome.evidence["smoke"] = {"ok": smoke.ok, "http_status": smoke.status, "seconds": round(smoke.seconds, 3),
                                     "body_snippet": smoke.snippet, "error": smoke.error}
        if smoke.ok:
            return
        if gateway is not None and not gateway.alive:
            raise SessionLost(Status.DIED, f"{target.name} exited during its first request",
                              **process_evidence(gateway))
        what = f"HTTP {smoke.status}" if smoke.status is not None else smoke.error
        raise SessionLost(Status.NOT_SERVED, f"{target.name} did not answer the benchmark's request with a "
                                             f"well-formed OpenAI chat completion ({what})")

    def session_files(self, work: Path, outcome: Outcome) -> None:
        for name, key in (("gateway.log", "gateway_log"), ("mock.log", "mock_log")):
            if (work / name).exists():
                outcome.files[key] = name
        for name in list_services():  # a backing service's log (services/<name>/)
            if (work / f"{name}.log").exists():
                outcome.files[f"{name}_log"] = f"{name}.log"
