"""The local target: every selected catalog entry as real processes on this machine.

The rig first: the mock alone, k6 straight to it, for the run's ceiling and floor. Then one session
per target and repeat, targets interleaved across repeats: start the mock and the target, wait until
both are ready, send the benchmark's request once (a target that cannot serve it is recorded as not
served, with the evidence), then measure: a scenario (warm-up, then k6), or the suite's steps
(:mod:`aigw_bench.measure.steps`). Everything stops at the end of the session. Whatever happens to
one target is recorded in its outcome, step by step as the steps end, and the run goes on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from aigw_bench.catalog import Catalog, Gateway, LocalSpec
from aigw_bench.errors import ConfigError, PortInUseError
from aigw_bench.local import install
from aigw_bench.local.cpus import CpuPlan
from aigw_bench.local.ports import require_free
from aigw_bench.local.probes import NotReady, ProcessExited, smoke_request, wait_ready
from aigw_bench.local.processes import (
    Interrupted,
    ManagedProcess,
    Supervisor,
    reap_stale_groups,
    signals_as_exceptions,
    state_file_for,
)
from aigw_bench.local.session import LocalSession, process_evidence
from aigw_bench.measure.driver import Endpoint, SessionLost
from aigw_bench.measure.outcome import adopt_partial, recorder
from aigw_bench.measure.plan import PlanNames
from aigw_bench.measure.steps import RIG_BOUND_FRACTION, measure_rig, session_steps
from aigw_bench.mock import MockDefinition, PacingProfile, load_contract, settings_json
from aigw_bench.results import (
    MANIFEST,
    Outcome,
    git_commit,
    machine_info,
    new_run_dir,
    now_iso,
    target_dir,
    tool_versions,
    write_json,
    write_outcome,
)
from aigw_bench.templating import render_file, render_list, render_map, render_str, render_vars
from analysis.derive import ensure_derived
from k6_scripts.render import build_body
from k6_scripts.scenarios import Scenario, ScenarioParams, interleaved_order, scenario_record
from k6_scripts.suites import RigSizes, Suite, SuiteSizes

EventSink = Callable[..., None]


@dataclass
class RunPlan(PlanNames):
    """What to run: a single scenario (``scenario`` + ``params``) or a suite (``suite`` + ``sizes``)."""

    catalog: Catalog
    mock: MockDefinition
    profile: PacingProfile  # the mock's pacing profile at the start of every session
    targets: list[Gateway]
    repeats: int
    results_root: Path
    cpu_plan: CpuPlan
    rig: RigSizes
    params: ScenarioParams  # the scenario's, or the suite's request body and timeouts
    scenario: Scenario  # the scenario, or the suite's published shape (seed)
    suite: Suite | None = None
    sizes: SuiteSizes | None = None
    streaming_profile: PacingProfile | None = None
    keep_raw: bool = True
    command_line: list[str] = field(default_factory=list)

    def order(self) -> list[tuple[int, Gateway]]:
        return interleaved_order(self.targets, self.repeats)


def plan_local_run(*, catalog: Catalog, targets: list[str] | None, scenario: str | None, suite: str | None,
                   mock: str, mock_profile: str | None, knobs: dict[str, Any], repeats: int | None,
                   results_root: Path, cpu_plan: CpuPlan, keep_raw: bool = True,
                   command_line: list[str] | None = None) -> RunPlan:
    """A validated plan from the command line's choices; every problem fails here, before anything starts."""
    from aigw_bench.measure.plan import measurement
    from aigw_bench.mock import load_mock
    from k6_scripts.suites import load_rig_sizes

    m = measurement("local", scenario=scenario, suite=suite, mock_profile=mock_profile, knobs=knobs, repeats=repeats)
    return RunPlan(catalog=catalog, mock=load_mock(mock), targets=catalog.select(targets), results_root=results_root,
                   cpu_plan=cpu_plan, rig=load_rig_sizes("local"), keep_raw=keep_raw, command_line=command_line or [],
                   profile=m.profile, repeats=m.repeats, params=m.params, scenario=m.scenario, suite=m.suite,
                   sizes=m.sizes, streaming_profile=m.streaming_profile)


class LocalRunner:
    def __init__(self, plan: RunPlan, on_event: EventSink | None = None):
        self.plan = plan
        self.emit: EventSink = on_event or (lambda *a, **k: None)
        self.state_dir = install.tools_dir() / "state"
        self.run_dir: Path | None = None

    # ----------------------------------------------------------------- before anything starts
    def _context(self, spec: LocalSpec, name: str, entry_dir: Path, work_dir: Path, cpus: list[int] | None,
                 cpu_count: int, model: str) -> dict[str, Any]:
        mock_port = self.plan.mock.local.port
        context = {
            "port": spec.port,
            "mock_url": f"http://127.0.0.1:{mock_port}",
            "mock_host": "127.0.0.1",
            "mock_port": mock_port,
            "install_dir": str(install.install_dir_for(name)),
            "entry_dir": str(entry_dir),
            "work_dir": str(work_dir),
            "cpus": cpu_count,
            "cpu_list": ",".join(str(c) for c in cpus) if cpus else "",
            "model": model,
        }
        return {**context, **render_vars(spec.vars, context, f"{name}: local.vars")}

    def _mock_context(self, work_dir: Path, profile: PacingProfile | None = None) -> dict[str, Any]:
        """The mock works in a folder of its own (its rendered config) next to the target's files."""
        m = self.plan.mock
        profile = profile or self.plan.profile
        context = self._context(m.local, m.name, m.entry_dir, work_dir / "mock", self.plan.cpu_plan.mock,
                                self.plan.cpu_plan.mock_cpus, "")
        return {**context, "contract": load_contract(), "profile": profile, "settings_json": settings_json(profile)}

    def _target_context(self, target: Gateway, work_dir: Path) -> dict[str, Any]:
        return self._context(target.local, target.name, target.entry_dir, work_dir, self.plan.cpu_plan.gateway,
                             self.plan.cpu_plan.gateway_cpus, target.request.model)

    def preflight(self) -> dict[str, dict[str, Any]]:
        """Check installs, programs, templates and ports; return the versions found. Raises on any problem."""
        mock = self.plan.mock
        for profile in (self.plan.profile, self.plan.streaming_profile):
            if profile is not None:
                mock.require_profile(profile)
        versions: dict[str, dict[str, Any]] = {}
        probe_dir = Path("/nonexistent-work-dir")
        checks: list[tuple[str, LocalSpec, Path, dict[str, Any]]] = [
            ("mock", mock.local, mock.entry_dir, self._mock_context(probe_dir))
        ]
        for t in self.plan.targets:
            if t.local.runnable:
                checks.append((t.name, t.local, t.entry_dir, self._target_context(t, probe_dir)))
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
            render_str(spec.base_url, ctx, f"{who}: local.base_url")
            if spec.version_probe:
                found = install.probe_version(spec.version_probe.command, spec.version_probe.regex, ctx, who)
                pinned = mock.version if who == "mock" else self.plan.catalog.get(who).version
                versions[who] = {"pinned": pinned, "installed": found,
                                 "matches_pin": install.versions_match(pinned, found)}
        for t in self.plan.targets:
            if t.name not in versions:
                versions[t.name] = {"pinned": t.version, "installed": None, "matches_pin": None}
        self._check_ports_distinct()
        ports = {"mock": mock.local.port}
        ports.update({t.name: t.local.port for t in self.plan.targets if t.local.runnable and t.local.port})
        require_free({k: v for k, v in ports.items() if v is not None})
        return versions

    def _check_ports_distinct(self) -> None:
        mock_port = self.plan.mock.local.port
        for t in self.plan.targets:
            if t.local.runnable and t.local.port is not None and t.local.port == mock_port:
                raise ConfigError(f"{t.name}: local.port {t.local.port} is the mock's port; choose another")

    # ----------------------------------------------------------------------------- the run
    def run(self) -> Path:
        reaped = reap_stale_groups(self.state_dir)
        if reaped:
            self.emit("reaped", groups=reaped)
        versions = self.preflight()
        plan = self.plan
        self.run_dir = new_run_dir(plan.results_root, plan.name)
        manifest = self._manifest(versions)
        write_json(self.run_dir / MANIFEST, manifest)
        order = plan.order()
        self.emit("run_start", run_dir=self.run_dir, total=len(order), plan=plan)
        interrupted = False
        with signals_as_exceptions():
            try:
                manifest["rig"] = self.measure_rig()
            except (KeyboardInterrupt, Interrupted):
                manifest["rig"] = {"error": "interrupted"}
                interrupted = True
            write_json(self.run_dir / MANIFEST, manifest)
            self.emit("rig_done", rig=manifest["rig"])
            for index, (repeat, target) in enumerate([] if interrupted else order, start=1):
                self.emit("target_start", target=target.name, repeat=repeat, index=index, total=len(order))
                outcome = self._run_target(target, repeat, manifest["rig"])
                write_outcome(self.run_dir, outcome)
                self.emit("target_done", outcome=outcome, index=index, total=len(order))
                if outcome.status == "interrupted":
                    interrupted = True
                    break
        manifest["finished_at"] = now_iso()
        manifest["interrupted"] = interrupted
        write_json(self.run_dir / MANIFEST, manifest)
        if interrupted:
            raise KeyboardInterrupt
        return self.run_dir

    def _manifest(self, versions: dict[str, dict[str, Any]]) -> dict[str, Any]:
        plan = self.plan
        return {
            "kind": "aigw-bench run",
            "format": 2,
            "environment": "local",
            "run_id": self.run_dir.name if self.run_dir else None,
            "created_at": now_iso(),
            "command_line": plan.command_line,
            "scenario": scenario_record(plan.scenario, plan.params),
            "suite": ({"name": plan.suite.name, "description": plan.suite.description, "profile": "local",
                       "sizes": plan.sizes.model_dump() if plan.sizes else None} if plan.suite else None),
            "main_step": plan.main_step,
            "repeats": plan.repeats,
            "order": [{"repeat": r, "target": t.name} for r, t in plan.order()],
            "targets": {
                t.name: {
                    "title": t.title, "role": t.role, "version": t.version, "source": t.source,
                    "runnable_locally": t.local.runnable, "reason": t.local.reason,
                    "route": t.request.path, "model": t.request.model,
                    "version_check": versions.get(t.name),
                }
                for t in plan.targets
            },
            "mock": {"name": plan.mock.name, "title": plan.mock.title, "version": plan.mock.version,
                     "source": plan.mock.source, "version_check": versions.get("mock"),
                     "profile": plan.profile.model_dump(),
                     "streaming_profile": plan.streaming_profile.model_dump() if plan.streaming_profile else None},
            "cpu_pinning": plan.cpu_plan.to_dict(),
            "machine": machine_info(),
            "tools": tool_versions(),
            "git": git_commit(),
        }

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

    def _wait_ready(self, name: str, spec: LocalSpec, ctx: dict[str, Any], proc: ManagedProcess,
                    role: str) -> float:
        base = render_str(spec.base_url, ctx, f"{name}: local.base_url").rstrip("/")
        try:
            return wait_ready(name, base + spec.ready.path, method=spec.ready.method, status=spec.ready.status,
                              timeout=spec.ready.timeout_s, proc=proc)
        except ProcessExited as exc:
            status = "mock_failed" if role == "mock" else "failed_to_start"
            raise SessionLost(status, str(exc), **process_evidence(proc, exc.code)) from None
        except NotReady as exc:
            status = "mock_failed" if role == "mock" else "not_ready"
            raise SessionLost(status, str(exc), last_probe=exc.last, **process_evidence(proc)) from None

    def start_mock(self, sup: Supervisor, work: Path, profile: PacingProfile | None = None) -> ManagedProcess:
        """The mock with its rendered config in work/mock, started on its CPUs and answering; stopped by ``sup``."""
        mock = self.plan.mock
        # Also for callers outside run() (the benchmarks): a port someone holds is named, not reported
        # as "the mock exited".
        require_free({"mock": mock.local.port})
        ctx = self._mock_context(work, profile)
        proc = self._start(sup, "mock", "mock", mock.local, ctx, mock.entry_dir, work, self.plan.cpu_plan.mock)
        self._wait_ready("mock", mock.local, ctx, proc, "mock")
        return proc

    def _mock_endpoint(self, model: str) -> Endpoint:
        return Endpoint("direct", f"http://127.0.0.1:{self.plan.mock.local.port}/v1/chat/completions", model)

    def _restarter(self, sup: Supervisor, work: Path, current: dict[str, ManagedProcess]):
        def restart(profile: PacingProfile) -> ManagedProcess:
            sup.stop(current["mock"])
            require_free({"mock": self.plan.mock.local.port}, wait=5.0)
            current["mock"] = self.start_mock(sup, work, profile)
            return current["mock"]
        return restart

    # ---------------------------------------------------------------------------- the rig
    def measure_rig(self) -> dict[str, Any]:
        """The mock alone and k6 straight to it: the run's ceiling and floor, before any target."""
        assert self.run_dir is not None
        plan = self.plan
        work = self.run_dir / "rig"
        work.mkdir(parents=True, exist_ok=True)
        record: dict[str, Any] = {"mock": plan.mock.name, "profile": plan.profile.name,
                                  "cpu": plan.cpu_plan.note, "dir": "rig"}
        model = plan.targets[0].request.model if plan.targets else "gpt-4o-mini"
        self.emit("target_start", target="rig", repeat=1, index=0, total=len(plan.order()))
        try:
            with Supervisor(state_file_for(self.state_dir)) as sup:
                processes = {"mock": self.start_mock(sup, work)}
                endpoint = self._mock_endpoint(model)
                smoke = smoke_request(endpoint.url, build_body(plan.params, model), {}, bool(plan.params.stream))
                if not smoke.ok:
                    raise SessionLost("mock_failed", f"the mock did not answer the benchmark's request "
                                                      f"(HTTP {smoke.status}, {smoke.error or smoke.snippet[:120]})")
                session = LocalSession(sup, plan.cpu_plan, endpoint, endpoint, processes,
                                       self._restarter(sup, work, processes), self.emit)
                record.update(measure_rig(session, plan.rig, plan.params, work,
                                          plan.sizes.capacity if plan.sizes else None, plan.profile))
        except SessionLost as exc:
            record.update({"error": exc.reason, "evidence": exc.evidence})
        except (FileNotFoundError, PortInUseError) as exc:
            record.update({"error": str(exc)})
        if record.get("ceiling_rps"):
            record["reach_rps"] = RIG_BOUND_FRACTION * record["ceiling_rps"]
        return record

    # ------------------------------------------------------------------------ one target
    def _run_target(self, target: Gateway, repeat: int, rig: dict[str, Any]) -> Outcome:
        assert self.run_dir is not None
        work = target_dir(self.run_dir, target.name, repeat)
        work.mkdir(parents=True, exist_ok=True)
        outcome = Outcome(target=target.name, repeat=repeat, status="ok", started_at=now_iso())
        if not target.local.runnable:
            outcome.status, outcome.reason = "not_runnable", target.local.reason
            outcome.finished_at = now_iso()
            return outcome
        try:
            with Supervisor(state_file_for(self.state_dir)) as sup:
                self._session(sup, target, work, outcome, rig)
        except SessionLost as failed:
            outcome.status, outcome.reason = failed.status, failed.reason  # type: ignore[assignment]
            outcome.evidence.update(failed.evidence)
        except (KeyboardInterrupt, Interrupted) as exc:
            outcome.status = "interrupted"
            outcome.reason = f"stopped by {type(exc).__name__ if isinstance(exc, KeyboardInterrupt) else exc}"
        except (FileNotFoundError, PortInUseError) as exc:  # the machine changed since the preflight
            outcome.status, outcome.reason = "failed_to_start", str(exc)
        self._finish_files(work, outcome)
        outcome.finished_at = now_iso()
        return outcome

    def _session(self, sup: Supervisor, target: Gateway, work: Path, outcome: Outcome, rig: dict[str, Any]) -> None:
        plan = self.plan
        require_free({"mock": plan.mock.local.port, **({target.name: target.local.port} if target.local.port else {})},
                     wait=5.0)
        self.emit("phase", target=target.name, phase="starting mock")
        processes = {"mock": self.start_mock(sup, work)}

        ctx = self._target_context(target, work)
        if target.local.command:
            self.emit("phase", target=target.name, phase="starting gateway")
            gateway = self._start(sup, target.name, "gateway", target.local, ctx, target.entry_dir, work,
                                  plan.cpu_plan.gateway)
            processes["gateway"] = gateway
            outcome.ready_seconds = round(self._wait_ready(target.name, target.local, ctx, gateway, "gateway"), 2)

        base = render_str(target.local.base_url, ctx, f"{target.name}: local.base_url").rstrip("/")
        endpoint = Endpoint(target.name, base + target.request.path, target.request.model,
                            render_map(target.request.headers, ctx, f"{target.name}: request.headers"))
        body = build_body(plan.params, target.request.model)
        outcome.url = endpoint.url
        self.emit("phase", target=target.name, phase="checking the route")
        smoke = smoke_request(endpoint.url, body, endpoint.headers, bool(plan.params.stream))
        outcome.evidence["smoke"] = {"ok": smoke.ok, "http_status": smoke.status, "seconds": round(smoke.seconds, 3),
                                     "body_snippet": smoke.snippet, "error": smoke.error}
        if not smoke.ok:
            gateway_proc = processes.get("gateway")
            if gateway_proc is not None and not gateway_proc.alive:
                raise SessionLost("died", f"{target.name} exited during its first request",
                                   **process_evidence(gateway_proc))
            what = f"HTTP {smoke.status}" if smoke.status is not None else smoke.error
            raise SessionLost("not_served", f"{target.name} did not answer the benchmark's request with a "
                                             f"well-formed OpenAI chat completion ({what})")

        session = LocalSession(sup, plan.cpu_plan, self._mock_endpoint(target.request.model), endpoint, processes,
                               self._restarter(sup, work, processes), self.emit)

        assert self.run_dir is not None
        on_step = recorder(outcome, plan.main_step, partial(write_outcome, self.run_dir))
        try:
            session_steps(session, plan, work, rig, on_step, baseline=target.role == "baseline")
        except SessionLost:
            adopt_partial(outcome, session.k6_runs, work, plan.main_step)
            raise
        except (KeyboardInterrupt, Interrupted):
            adopt_partial(outcome, session.k6_runs, work, plan.main_step)
            raise

    def _finish_files(self, work: Path, outcome: Outcome) -> None:
        """Validate the main step's k6 output and derive its per-second series."""
        for name, key in (("gateway.log", "gateway_log"), ("mock.log", "mock_log")):
            if (work / name).exists():
                outcome.files[key] = name
        if outcome.status not in ("ok", "died", "interrupted") or "summary" not in outcome.files:
            if outcome.status == "ok" and "summary" not in outcome.files:
                outcome.status, outcome.reason = "invalid_output", outcome.reason or "k6 wrote no summary; see k6.log"
            return
        assert self.run_dir is not None
        ensure_derived(self.run_dir, [outcome])  # per-second series, histograms, the check against k6's summary
