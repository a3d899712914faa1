"""One target session on this machine: the mock and the target running, k6 and the streaming probe
started as supervised children on the load generator's CPUs (the :class:`Driver` of the steps)."""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from aigw_bench.local.cpus import CpuPlan
from aigw_bench.local.loadgen import K6Files, live_stats, start_k6
from aigw_bench.local.noise import Foreign, ForeignMeter
from aigw_bench.local.ports import free_port
from aigw_bench.local.probes import smoke_request
from aigw_bench.local.processes import ManagedProcess, Supervisor
from aigw_bench.local.resources import ResourceSampler
from aigw_bench.measure.driver import (
    Endpoint,
    K6Job,
    K6Run,
    ReportsProgress,
    SessionLost,
    StreamJob,
    ToolJob,
    ToolUnavailable,
)
from aigw_bench.measure.events import EventSink
from aigw_bench.run.interrupts import STOP
from k6_scripts.logs import EXIT_SCRIPT_ABORTED, steady_warmup
from schema.faults import FaultPlan
from schema.k6 import COMPLETE_EXIT_CODES, read_summary_file
from schema.mock import PacingProfile
from schema.results import Status
from schema.suites import NoiseSizes

# Time k6 gets beyond its duration (start-up, graceful stop, summary) before it is stopped.
K6_GRACE_SECONDS = 60.0
LOG_TAIL_LINES = 25
SAMPLE_INTERVAL = 1.0
IDLE_SAMPLE_INTERVAL = 0.5
WARM_TIMEOUT = 15.0  # the request through the target after the mock restarted (a slow fault may hold it)


def process_evidence(proc: ManagedProcess | None, code: int | None = None) -> dict[str, Any]:
    """Exit code, signal and the last log lines of a process that failed (for the report)."""
    if proc is None:
        return {}
    code = proc.poll() if code is None else code
    evidence: dict[str, Any] = {"exit_code": code, "log": proc.log_path.name, "log_tail": proc.log_tail(LOG_TAIL_LINES)}
    if code is not None and code < 0:
        evidence["signal"] = -code
    return evidence


def _busiest(foreign: Foreign) -> str:
    return ", ".join(f"{b['name']} ({b['pid']}) {b['cpu_seconds']:.1f} s" for b in foreign.busiest[:3]) or "no process"


def _set_aside(directory: Path, attempt: int, files: dict[str, str]) -> str:
    """A disturbed window's k6 files moved to ``disturbed-<attempt>/`` (kept as evidence, not analysed)."""
    aside = directory / f"disturbed-{attempt}"
    aside.mkdir(exist_ok=True)
    for name in set(files.values()) - {"script.js"}:
        if (directory / name).exists():
            (directory / name).rename(aside / name)
    return aside.name


def _stop_gracefully(proc: ManagedProcess) -> None:
    """SIGINT makes k6 stop its scenarios, run handleSummary and exit; stop() escalates if it hangs."""
    proc.signal(signal.SIGINT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=30)


@dataclass
class LocalSession(ReportsProgress):
    """The Driver for one target: processes already started and ready (aigw_bench/local/engine.py)."""

    sup: Supervisor
    cpu_plan: CpuPlan
    direct: Endpoint
    target: Endpoint
    processes: dict[str, ManagedProcess]  # role ("mock", "gateway") -> process
    restart_mock: Callable[..., ManagedProcess]  # (profile, fault plan or None) -> the new mock
    on_event: EventSink
    noise: NoiseSizes = field(default_factory=NoiseSizes)
    upstreams: dict[str, str] = field(default_factory=dict)  # role (mock, fallback) -> base URL
    environment: str = "local"
    k6_runs: list[K6Run] = field(default_factory=list)

    # ----------------------------------------------------------------------------- watching
    def _dead(self) -> tuple[str, ManagedProcess, int | None] | None:
        for role, proc in self.processes.items():
            if not proc.alive:
                return role, proc, proc.poll()
        return None

    def _lost(self, dead: tuple[str, ManagedProcess, int | None], what: str, elapsed: float) -> SessionLost:
        role, proc, code = dead
        who = {"mock": "the mock", "gateway": self.target.name}.get(role, f"{self.target.name}'s {role}")
        status = Status.MOCK_FAILED if role == "mock" else Status.DIED
        return SessionLost(status, f"{who} exited during the {what} after {elapsed:.1f} s (exit code {code}); "
                                   "data up to that point kept", **process_evidence(proc, code))

    def _sampler(self, extra: dict[str, ManagedProcess] | None = None) -> ResourceSampler:
        measured = {**(extra or {}), **self.processes}
        return ResourceSampler({role: p.pgid for role, p in measured.items()},
                               exclude={p.guard_pid for p in measured.values()})

    # ---------------------------------------------------------------------------------- k6
    def run_k6(self, job: K6Job) -> K6Run:
        job.dir.mkdir(parents=True, exist_ok=True)
        script = job.dir / "script.js"
        script.write_text(job.source)
        warmup_log = ""
        if job.warmup > 0:
            self.phase(f"{job.label}: warming up" + (" until steady" if job.steady else ""))
            files = K6Files(job.dir / "warmup-summary.json", job.dir / "warmup-k6.log", None)
            self._k6(job, files, job.warmup, warmup=True)
            warmup_log = files.log.read_text(errors="replace") if files.log.exists() else ""
        raw = job.dir / "raw.csv.gz" if job.raw else None
        files = K6Files(job.dir / "summary.json", job.dir / "k6.log", raw)
        meter = ForeignMeter(self.sup.pgids, self.noise.threshold_cores)
        earlier: list[dict[str, Any]] = []
        while True:
            self.phase(job.label + (f" (measured again: {len(earlier)})" if earlier else ""))
            window = meter.start()
            run = self._k6(job, files, job.duration, warmup=False)
            foreign = meter.stop(window)
            if not foreign.disturbed or not job.remeasure or len(earlier) >= self.noise.max_remeasure:
                break
            # Other work on the machine shared this window: its figures are set aside, the window measured again.
            earlier.append({**foreign.record(), "files": _set_aside(job.dir, len(earlier) + 1, run.files)})
            self.phase(f"{job.label}: disturbed by other work on this machine ({foreign.cores:.2f} cores; "
                       f"{_busiest(foreign)}): measuring again")
        run.noise = {**foreign.record(), "remeasured": len(earlier), "earlier": earlier}
        run.warmup_log = warmup_log
        self.k6_runs.append(run)
        return run

    def _k6(self, job: K6Job, files: K6Files, duration: float, *, warmup: bool) -> K6Run:
        script = job.dir / "script.js"
        api_port = free_port()
        k6 = start_k6(self.sup, "k6-warmup" if warmup else "k6", script, files, duration=duration, api_port=api_port,
                      cpus=self.cpu_plan.loadgen, warmup=warmup, steady=job.steady)
        sampler = self._sampler({"loadgen": k6})
        limit = duration + job.request_timeout + K6_GRACE_SECONDS
        start = time.monotonic()
        next_tick = start
        dead = None
        timed_out = False
        try:
            while k6.alive:
                now = time.monotonic()
                if now >= next_tick:
                    next_tick = now + SAMPLE_INTERVAL
                    sampler.sample()
                    stats = live_stats(api_port)
                    self.tick(job.label, now - start, duration, warmup, requests=stats.requests if stats else None,
                              rps=stats.rps if stats else None, ok_rate=stats.ok_rate if stats else None)
                dead = self._dead()
                if dead is not None:
                    _stop_gracefully(k6)  # keeps what was measured: k6 still writes its summary
                    break
                if now - start > limit:
                    timed_out = True
                    _stop_gracefully(k6)
                    break
                time.sleep(0.05)
        except STOP:
            _stop_gracefully(k6)  # keeps what was measured: k6 still writes its summary
            if not warmup:
                self.k6_runs.append(self._collect(job, files, k6.poll(), time.monotonic() - start, sampler))
            raise
        sampler.sample()  # the last stretch, up to k6's exit: CPU time per request needs all of it
        code = self.sup.stop(k6)
        run = self._collect(job, files, code, time.monotonic() - start, sampler, write_resources=not warmup)
        if dead is not None:
            if not warmup:
                self.k6_runs.append(run)
            raise self._lost(dead, "warm-up" if warmup else job.label, run.seconds)
        if timed_out:
            raise SessionLost(Status.K6_FAILED, f"k6 did not finish {job.label} within {limit:.0f} s and was stopped",
                              k6_log_tail=k6.log_tail(LOG_TAIL_LINES))
        if code not in COMPLETE_EXIT_CODES and not (warmup and code == EXIT_SCRIPT_ABORTED
                                                      and steady_warmup(files.log.read_text(errors="replace"))):
            what = f"{job.label}, warm-up" if warmup else job.label
            raise SessionLost(Status.K6_FAILED, f"k6 exited with code {code} ({what})",
                              k6_log_tail=k6.log_tail(LOG_TAIL_LINES))
        return run

    def _collect(self, job: K6Job, files: K6Files, code: int | None, seconds: float, sampler: ResourceSampler,
                 write_resources: bool = True) -> K6Run:
        names = {"script": "script.js", "k6_log": files.log.name}
        summary, problem = read_summary_file(files.summary)
        if files.summary.exists():
            names["summary"] = files.summary.name
        if files.raw is not None and files.raw.exists():
            names["raw"] = files.raw.name
        if write_resources and sampler.rows:
            sampler.write(job.dir / "resources.csv")
            names["resources"] = "resources.csv"
        return K6Run(dir=job.dir, exit_code=code, seconds=seconds, files=names, summary=summary,
                     summary_problem=problem, resources=list(sampler.rows), cpu_seconds=sampler.cpu_seconds())

    # ---------------------------------------------------------------------------- the rest
    def idle_resources(self, seconds: float) -> list[dict[str, Any]]:
        sampler = self._sampler()
        deadline = time.monotonic() + seconds
        sampler.sample()
        while time.monotonic() < deadline:
            time.sleep(IDLE_SAMPLE_INTERVAL)
            sampler.sample()
            if (dead := self._dead()) is not None:
                raise self._lost(dead, "idle memory sampling", seconds)
        return list(sampler.rows)

    def use_profile(self, profile: PacingProfile) -> None:
        self.phase(f"restarting the mock with the '{profile.name}' pacing profile")
        self.processes["mock"] = self.restart_mock(profile)

    def use_fault_plan(self, plan: FaultPlan, profile: PacingProfile, warm_body: str) -> None:
        self.phase(f"restarting the mock with the fault plan '{plan.name}'")
        self.processes["mock"] = self.restart_mock(profile, plan)
        # The target's kept-alive connections went with the old mock: one request replaces them, so that the
        # scenario's first requests do not meet a closed connection the plan did not put there.
        smoke_request(self.target.url, warm_body, self.target.headers, False, timeout=WARM_TIMEOUT)
        if (dead := self._dead()) is not None:
            raise self._lost(dead, f"first request after the mock's restart with plan '{plan.name}'", 0.0)

    def _upstream(self, role: str, method: str, path: str) -> dict[str, Any]:
        base = self.upstreams.get(role)
        if base is None:
            raise SessionLost(Status.MOCK_FAILED, f"no {role} mock runs in this session (the faults suite starts both)")
        try:
            resp = httpx.request(method, base + path, timeout=30.0, trust_env=False)
            resp.raise_for_status()
            return resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise SessionLost(Status.MOCK_FAILED, f"the {role} mock did not answer {method} {path}: "
                                                  f"{type(exc).__name__}: {exc}") from None

    def reset_upstream(self) -> None:
        for role in self.upstreams:
            self._upstream(role, "POST", "/__aigw/reset")

    def upstream_records(self) -> dict[str, dict[str, Any]]:
        out = {}
        for role in self.upstreams:
            doc = self._upstream(role, "GET", "/__aigw/requests")
            # cjson writes an empty list as {}: an empty record list, said as one
            out[role] = {**doc, "attempts": doc.get("attempts") or []}
        return out

    def run_tool(self, job: ToolJob) -> int | None:
        exe = shutil.which(job.tool)
        if exe is None:
            raise ToolUnavailable(f"{job.tool} is not installed: `aigw-bench setup` installs it (Debian's package "
                                  f"'{job.tool}': apt-get install {job.tool})")
        job.dir.mkdir(parents=True, exist_ok=True)
        self.phase(job.label)
        proc = self.sup.start(job.tool, [exe, *job.args], job.output, cwd=job.dir, cpus=self.cpu_plan.loadgen)
        if not self._await(proc, job.label, job.limit, job.limit):
            return None
        return self.sup.stop(proc)

    def _await(self, proc: ManagedProcess, label: str, limit: float, shown: float) -> bool:
        """Wait for a process of the load generator to end, showing progress over ``shown`` seconds; False (the
        process stopped) after ``limit`` seconds. Raises SessionLost (it stopped too) if the target or mock dies."""
        start = time.monotonic()
        while proc.alive:
            elapsed = time.monotonic() - start
            if (dead := self._dead()) is not None:
                self.sup.stop(proc)
                raise self._lost(dead, label, elapsed)
            if elapsed > limit:
                self.sup.stop(proc)
                return False
            self.tick(label, elapsed, shown)
            time.sleep(0.2)
        return True

    def run_stream_probe(self, job: StreamJob) -> Path:
        job.dir.mkdir(parents=True, exist_ok=True)
        self.phase(job.label)
        argv = [sys.executable, "-m", "aigw_bench.measure.stream_probe",
                "--direct-url", self.direct.url, "--target-url", self.target.url,
                "--target-headers", json.dumps(self.target.headers), "--body-file", str(job.dir / "body.json"),
                "--concurrency", str(job.concurrency), "--duration", f"{job.duration:g}",
                "--timeout", f"{job.request_timeout:g}", "--out", str(job.dir)]
        probe = self.sup.start("stream-probe", argv, job.dir / "probe.log", cwd=job.dir, cpus=self.cpu_plan.loadgen)
        limit = job.duration + job.request_timeout + K6_GRACE_SECONDS
        if not self._await(probe, job.label, limit, job.duration):
            raise SessionLost(Status.K6_FAILED, f"the streaming probe did not finish within {limit:.0f} s",
                              probe_log_tail=probe.log_tail(LOG_TAIL_LINES))
        code = self.sup.stop(probe)
        out = job.dir / "streams.csv"
        if code != 0 or not out.exists():
            raise SessionLost(Status.K6_FAILED, f"the streaming probe exited with code {code}",
                              probe_log_tail=probe.log_tail(LOG_TAIL_LINES))
        return out
