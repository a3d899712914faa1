"""The local target: every selected catalog entry, in turn, as real processes on this machine.

For each target and repeat: start the mock, start the gateway, wait until both are ready, send the
benchmark's request once (a target that cannot serve it is recorded as not served, with the
evidence), warm up (excluded), measure with k6 while watching the gateway, collect, stop. Whatever
happens to one target is recorded in its outcome and the run goes on with the next.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aigw_bench.catalog import Catalog, Gateway, LocalSpec, MockDefinition
from aigw_bench.errors import ConfigError, PortInUseError
from aigw_bench.local import install
from aigw_bench.local.cpus import CpuPlan
from aigw_bench.local.loadgen import EXIT_THRESHOLDS_FAILED, K6Files, live_stats, start_k6
from aigw_bench.local.ports import free_port, require_free
from aigw_bench.local.probes import NotReady, ProcessExited, smoke_request, wait_ready
from aigw_bench.local.processes import (
    Interrupted,
    ManagedProcess,
    Supervisor,
    reap_stale_groups,
    signals_as_exceptions,
    state_file_for,
)
from aigw_bench.local.resources import ResourceSampler
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
from aigw_bench.templating import render_file, render_list, render_map, render_str
from analysis.timeseries import TimeseriesError, write_timeseries
from k6_scripts.render import RenderTarget, render_script
from k6_scripts.scenarios import Scenario, ScenarioParams, interleaved_order, scenario_record

EventSink = Callable[..., None]

# Time k6 gets beyond the scenario's duration (start-up, graceful stop, summary) before it is stopped.
K6_GRACE_SECONDS = 60.0
LOG_TAIL_LINES = 25


@dataclass
class RunPlan:
    catalog: Catalog
    mock: MockDefinition
    targets: list[Gateway]
    scenario: Scenario
    params: ScenarioParams
    repeats: int
    results_root: Path
    cpu_plan: CpuPlan
    keep_raw: bool = True
    command_line: list[str] = field(default_factory=list)

    def order(self) -> list[tuple[int, Gateway]]:
        return interleaved_order(self.targets, self.repeats)


def _stop_gracefully(k6: ManagedProcess) -> None:
    """SIGINT makes k6 stop its scenarios, run handleSummary and exit; stop() escalates if it hangs."""
    k6.signal(signal.SIGINT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        k6.wait(timeout=30)


class TargetFailed(Exception):
    def __init__(self, status: str, reason: str, **evidence: Any):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.evidence = evidence


def _process_evidence(proc: ManagedProcess | None, code: int | None = None) -> dict[str, Any]:
    if proc is None:
        return {}
    code = proc.poll() if code is None else code
    evidence: dict[str, Any] = {"exit_code": code, "log": proc.log_path.name, "log_tail": proc.log_tail(LOG_TAIL_LINES)}
    if code is not None and code < 0:
        evidence["signal"] = -code
    return evidence


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
        return {
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

    def _mock_context(self, work_dir: Path) -> dict[str, Any]:
        m = self.plan.mock
        return self._context(m.local, m.name, m.entry_dir, work_dir, self.plan.cpu_plan.mock,
                             self.plan.cpu_plan.mock_cpus, "")

    def _target_context(self, target: Gateway, work_dir: Path) -> dict[str, Any]:
        return self._context(target.local, target.name, target.entry_dir, work_dir, self.plan.cpu_plan.gateway,
                             self.plan.cpu_plan.gateway_cpus, target.request.model)

    def preflight(self) -> dict[str, dict[str, Any]]:
        """Check installs, programs, templates and ports; return the versions found. Raises on any problem."""
        mock = self.plan.mock
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
        self.run_dir = new_run_dir(plan.results_root, plan.scenario.name)
        manifest = self._manifest(versions)
        write_json(self.run_dir / MANIFEST, manifest)
        order = plan.order()
        self.emit("run_start", run_dir=self.run_dir, total=len(order), plan=plan)
        interrupted = False
        with signals_as_exceptions():
            for index, (repeat, target) in enumerate(order, start=1):
                self.emit("target_start", target=target.name, repeat=repeat, index=index, total=len(order))
                outcome = self._run_target(target, repeat)
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
            "format": 1,
            "environment": "local",
            "run_id": self.run_dir.name if self.run_dir else None,
            "created_at": now_iso(),
            "command_line": plan.command_line,
            "scenario": scenario_record(plan.scenario, plan.params),
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
            "mock": {"name": plan.mock.name, "version": plan.mock.version, "source": plan.mock.source,
                     "version_check": versions.get("mock"),
                     "mappings": sorted(p.name for p in plan.mock.mappings_dir.glob("*.json"))},
            "cpu_pinning": plan.cpu_plan.to_dict(),
            "machine": machine_info(),
            "tools": tool_versions(),
            "git": git_commit(),
        }

    # ------------------------------------------------------------------------ one target
    def _run_target(self, target: Gateway, repeat: int) -> Outcome:
        assert self.run_dir is not None
        work = target_dir(self.run_dir, target.name, repeat)
        work.mkdir(parents=True, exist_ok=True)
        outcome = Outcome(target=target.name, repeat=repeat, status="ok", started_at=now_iso())
        if not target.local.runnable:
            outcome.status, outcome.reason = "not_runnable", target.local.reason
            outcome.finished_at = now_iso()
            return outcome
        state_file = state_file_for(self.state_dir)
        try:
            with Supervisor(state_file) as sup:
                self._measure(sup, target, work, outcome)
        except TargetFailed as failed:
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

    def _start(self, sup: Supervisor, who: str, role: str, spec: LocalSpec, ctx: dict[str, Any],
               entry_dir: Path, work: Path, cpus: list[int] | None) -> ManagedProcess:
        for out_name, template in spec.config_files.items():
            (work / out_name).write_text(render_file(entry_dir / template, ctx))
        argv = render_list(spec.command or [], ctx, f"{who}: local.command")
        env = render_map(spec.env, ctx, f"{who}: local.env")
        return sup.start(who, argv, work / f"{role}.log", env=env, cwd=work, cpus=cpus,
                         stop_timeout=spec.stop_timeout_s)

    def _wait_ready(self, name: str, spec: LocalSpec, ctx: dict[str, Any], proc: ManagedProcess,
                    role: str) -> float:
        base = render_str(spec.base_url, ctx, f"{name}: local.base_url").rstrip("/")
        try:
            return wait_ready(name, base + spec.ready.path, method=spec.ready.method, status=spec.ready.status,
                              timeout=spec.ready.timeout_s, proc=proc)
        except ProcessExited as exc:
            status = "mock_failed" if role == "mock" else "failed_to_start"
            raise TargetFailed(status, str(exc), **_process_evidence(proc, exc.code)) from None
        except NotReady as exc:
            status = "mock_failed" if role == "mock" else "not_ready"
            raise TargetFailed(status, str(exc), last_probe=exc.last, **_process_evidence(proc)) from None

    def _measure(self, sup: Supervisor, target: Gateway, work: Path, outcome: Outcome) -> None:
        plan = self.plan
        mock = plan.mock
        require_free({"mock": mock.local.port, **({target.name: target.local.port} if target.local.port else {})},
                     wait=5.0)

        self.emit("phase", target=target.name, phase="starting mock")
        mock_ctx = self._mock_context(work)
        mock_proc = self._start(sup, "mock", "mock", mock.local, mock_ctx, mock.entry_dir, work, plan.cpu_plan.mock)
        self._wait_ready("mock", mock.local, mock_ctx, mock_proc, "mock")

        ctx = self._target_context(target, work)
        gateway: ManagedProcess | None = None
        if target.local.command:
            self.emit("phase", target=target.name, phase="starting gateway")
            gateway = self._start(sup, target.name, "gateway", target.local, ctx, target.entry_dir, work,
                                  plan.cpu_plan.gateway)
            outcome.ready_seconds = round(self._wait_ready(target.name, target.local, ctx, gateway, "gateway"), 2)

        base = render_str(target.local.base_url, ctx, f"{target.name}: local.base_url").rstrip("/")
        url = base + target.request.path
        headers = render_map(target.request.headers, ctx, f"{target.name}: request.headers")
        rendered = render_script(plan.scenario, plan.params,
                                 RenderTarget(target.name, url, target.request.model, headers))
        script = work / "script.js"
        script.write_text(rendered.source)
        outcome.url, outcome.body_sha256 = url, rendered.body_sha256
        outcome.evidence["prompt"] = {"tokens_estimated": rendered.prompt_tokens, "bytes": rendered.prompt_bytes,
                                      "body_bytes": len(rendered.body.encode())}

        self.emit("phase", target=target.name, phase="checking the route")
        smoke = smoke_request(url, rendered.body, headers, plan.params.stream)
        outcome.evidence["smoke"] = {"ok": smoke.ok, "http_status": smoke.status, "seconds": round(smoke.seconds, 3),
                                     "body_snippet": smoke.snippet, "error": smoke.error}
        if not smoke.ok:
            if gateway is not None and not gateway.alive:
                raise TargetFailed("died", f"{target.name} exited during its first request",
                                   **_process_evidence(gateway))
            what = f"HTTP {smoke.status}" if smoke.status is not None else smoke.error
            raise TargetFailed("not_served", f"{target.name} did not answer the benchmark's request with a "
                                             f"well-formed OpenAI chat completion ({what})")

        watch = {"mock": mock_proc, **({"gateway": gateway} if gateway else {})}
        if plan.params.warmup > 0:
            self.emit("phase", target=target.name, phase="warming up")
            files = K6Files(work / "warmup-summary.json", work / "warmup-k6.log", None)
            self._run_k6(sup, target, files, script, plan.params.warmup, watch, outcome, warmup=True)

        self.emit("phase", target=target.name, phase="measuring")
        raw = work / "raw.csv.gz" if plan.keep_raw else None
        files = K6Files(work / "summary.json", work / "k6.log", raw)
        self._run_k6(sup, target, files, script, plan.params.duration, watch, outcome, warmup=False)

    def _run_k6(self, sup: Supervisor, target: Gateway, files: K6Files, script: Path, duration: float,
                watch: dict[str, ManagedProcess], outcome: Outcome, *, warmup: bool) -> None:
        plan = self.plan
        api_port = free_port()
        k6 = start_k6(sup, "k6-warmup" if warmup else "k6", script, files, duration=duration, api_port=api_port,
                      cpus=plan.cpu_plan.loadgen)
        sampler = ResourceSampler({"loadgen": k6.pgid, **{role: p.pgid for role, p in watch.items()}})
        limit = duration + plan.params.request_timeout + K6_GRACE_SECONDS
        start = time.monotonic()
        died: tuple[str, ManagedProcess, int | None] | None = None
        timed_out = False
        next_tick = start
        try:
            while k6.alive:
                now = time.monotonic()
                if now >= next_tick:
                    next_tick = now + 1.0
                    if not warmup:
                        sampler.sample()
                    stats = live_stats(api_port)
                    self.emit("tick", target=target.name, warmup=warmup, elapsed=now - start, duration=duration,
                              requests=stats.requests if stats else None, rps=stats.rps if stats else None,
                              ok_rate=stats.ok_rate if stats else None)
                for role, proc in watch.items():
                    if not proc.alive and died is None:
                        died = (role, proc, proc.poll())
                if died is not None:
                    _stop_gracefully(k6)  # keeps what was measured: k6 still writes its summary
                    break
                if now - start > limit:
                    timed_out = True
                    _stop_gracefully(k6)  # keeps what was measured: k6 still writes its summary
                    break
                time.sleep(0.1)
        except (KeyboardInterrupt, Interrupted):
            _stop_gracefully(k6)  # keeps what was measured: k6 still writes its summary
            if not warmup:
                self._record_k6(files, outcome, k6, time.monotonic() - start)
                sampler.write(files.summary.parent / "resources.csv")
            raise
        code = sup.stop(k6)
        elapsed = time.monotonic() - start
        if not warmup:
            outcome.k6_exit_code = code
            self._record_k6(files, outcome, k6, elapsed)
            if sampler.rows:
                sampler.write(files.summary.parent / "resources.csv")
                outcome.files["resources"] = "resources.csv"
        if died is not None:
            role, proc, code_died = died
            who = "the mock" if role == "mock" else target.name
            phase = "warm-up" if warmup else "measurement"
            status = "mock_failed" if role == "mock" else "died"
            raise TargetFailed(status, f"{who} exited during the {phase} after {elapsed:.1f} s "
                                       f"(exit code {code_died}); data up to that point kept",
                               **_process_evidence(proc, code_died))
        if timed_out:
            raise TargetFailed("k6_failed", f"k6 did not finish within {limit:.0f} s and was stopped",
                               k6_log_tail=k6.log_tail(LOG_TAIL_LINES))
        if code not in (0, EXIT_THRESHOLDS_FAILED):
            raise TargetFailed("k6_failed", f"k6 exited with code {code}{' during warm-up' if warmup else ''}",
                               k6_log_tail=k6.log_tail(LOG_TAIL_LINES))
        if not warmup:
            outcome.thresholds_passed = code == 0

    def _record_k6(self, files: K6Files, outcome: Outcome, k6: ManagedProcess, elapsed: float) -> None:
        outcome.measure_seconds = round(elapsed, 2)
        outcome.files["k6_log"] = files.log.name
        if files.summary.exists():
            outcome.files["summary"] = files.summary.name
        if files.raw is not None and files.raw.exists():
            outcome.files["raw"] = files.raw.name

    def _finish_files(self, work: Path, outcome: Outcome) -> None:
        """Validate the k6 output of a measured target and derive its per-second series."""
        for name, key in (("gateway.log", "gateway_log"), ("mock.log", "mock_log"), ("script.js", "script")):
            if (work / name).exists():
                outcome.files[key] = name
        if outcome.status not in ("ok", "died", "interrupted"):
            return
        summary = work / "summary.json"
        if not summary.exists():
            if outcome.status == "ok":
                outcome.status = "invalid_output"
                outcome.reason = f"k6 wrote no summary ({summary.name}); see k6.log"
            return
        try:
            json.loads(summary.read_text())
        except json.JSONDecodeError as exc:
            outcome.files.pop("summary", None)
            outcome.status = "invalid_output"
            outcome.reason = f"k6 summary {summary.name} is cut short or corrupt ({exc})"
            return
        raw = work / "raw.csv.gz"
        if raw.exists():
            try:
                truncated = write_timeseries(raw, work / "timeseries.csv")
                outcome.files["timeseries"] = "timeseries.csv"
                outcome.files["histogram"] = "histogram.csv"
                outcome.files["statuses"] = "statuses.csv"
                if truncated:
                    outcome.evidence["raw_truncated"] = truncated
            except TimeseriesError as exc:
                outcome.evidence["timeseries_error"] = str(exc)

