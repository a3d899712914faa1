"""The template variables of a local entry (its command, env, config files, base URL, headers), the
same for a run and for ``aigw-bench render``, so what render prints is what a run sends.

Every entry's templates see: ``port``, ``mock_url``, ``mock_host``, ``mock_port``, ``fallback_url``,
``fallback_port``, ``install_dir``
(npm and pip installs only), ``entry_dir``, ``work_dir``, ``cpus`` (CPUs given to the process),
``cpu_list``, ``model``, ``user``, ``services`` (targets: each backing service's ``host``, ``port`` and
``url`` by name) and the entry's own ``vars``; the mock's templates also see ``contract``,
``profile``, ``settings_json`` and ``fault_plan`` (true when a fault plan is served). docs/catalog.md
documents them with examples (tests/test_catalog_doc.py keeps the two in step).
"""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Any

from aigw_bench.local import install, services
from aigw_bench.local.cpus import CpuPlan
from aigw_bench.measure.driver import Endpoint
from schema.catalog import Gateway, LocalSpec
from schema.faults import FaultPlan
from schema.mock import MockDefinition, PacingProfile, load_contract, settings_json
from schema.templating import render_map, render_str, render_vars

MOCK_HOST = "127.0.0.1"
# A work directory that does not exist: templates rendered only to check them (preflight, render).
NO_WORK_DIR = Path("/nonexistent-work-dir")


def install_vars(spec: LocalSpec, name: str, entry_dir: Path) -> dict[str, str]:
    """``install_dir``, only for entries with an npm or pip install (shared by every entry with the same
    lock); a template that uses it in another entry fails with the variable named."""
    install_dir = install.install_dir_of(spec.install, name, entry_dir)
    return {"install_dir": str(install_dir)} if install_dir else {}


def entry_context(spec: LocalSpec, name: str, entry_dir: Path, work_dir: Path, cpus: list[int] | None,
                  cpu_count: int, model: str, mock: MockDefinition) -> dict[str, Any]:
    mock_port = mock.local.port
    fallback = mock.fallback_port
    context = {
        "port": spec.port,
        "mock_url": f"http://{MOCK_HOST}:{mock_port}",
        "mock_host": MOCK_HOST,
        "mock_port": mock_port,
        "fallback_url": f"http://{MOCK_HOST}:{fallback}" if fallback else "",
        "fallback_port": fallback or "",
        **install_vars(spec, name, entry_dir),
        "entry_dir": str(entry_dir),
        "work_dir": str(work_dir),
        "cpus": cpu_count,
        "cpu_list": ",".join(str(c) for c in cpus) if cpus else "",
        "model": model,
        # Who runs the processes: nginx started as root runs its workers as `nobody` unless its config names
        # a user, and those cannot write files (a cache) under a session folder only root can enter.
        "user": getpass.getuser(),
    }
    return {**context, **render_vars(spec.vars, context, f"{name}: local.vars")}


def mock_context(mock: MockDefinition, cpu_plan: CpuPlan, work_dir: Path, profile: PacingProfile,
                 fault_plan: FaultPlan | None = None, fallback: bool = False) -> dict[str, Any]:
    """The mock works in a folder of its own (its rendered config) next to the target's files; its second,
    healthy instance (``fallback``) in another, on the mock's ``fallback_port``."""
    spec = mock.local.model_copy(update={"port": mock.fallback_port}) if fallback else mock.local
    context = entry_context(spec, mock.name, mock.entry_dir, work_dir / ("fallback" if fallback else "mock"),
                            cpu_plan.mock, cpu_plan.mock_cpus, "", mock)
    return {**context, **mock_settings(mock, profile, fault_plan)}


def mock_settings(mock: MockDefinition, profile: PacingProfile, fault_plan: FaultPlan | None) -> dict[str, Any]:
    """The mock's own template variables: the contract, the pacing profile and the fault plan, if any (one
    the mock cannot serve is refused by name)."""
    if fault_plan is not None:
        mock.require_fault_plan(fault_plan)
    return {"contract": load_contract(), "profile": profile, "fault_plan": fault_plan is not None,
            "settings_json": settings_json(profile, plan=fault_plan)}


def target_context(target: Gateway, mock: MockDefinition, cpu_plan: CpuPlan, work_dir: Path) -> dict[str, Any]:
    context = entry_context(target.local, target.name, target.entry_dir, work_dir, cpu_plan.gateway,
                            cpu_plan.gateway_cpus, target.request.model, mock)
    return {**context, "services": services.template_vars(target)}


def base_url(spec: LocalSpec, name: str, context: dict[str, Any]) -> str:
    return render_str(spec.base_url, context, f"{name}: local.base_url").rstrip("/")


def target_endpoint(target: Gateway, context: dict[str, Any], base: str | None = None) -> Endpoint:
    """Where the load goes for ``target``: its chat route at ``base`` (default: its local base URL)."""
    base = (base or base_url(target.local, target.name, context)).rstrip("/")
    return Endpoint(target.name, base + target.request.path, target.request.model,
                    render_map(target.request.headers, context, f"{target.name}: request.headers"))


def mock_endpoint(mock: MockDefinition, model: str) -> Endpoint:
    """The mock itself (the direct side, and the rig's target)."""
    return Endpoint("direct", f"http://{MOCK_HOST}:{mock.local.port}/v1/chat/completions", model)
