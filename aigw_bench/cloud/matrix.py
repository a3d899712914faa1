"""Several gateway stacks, the same scenario, one combined report: up -> run -> destroy.

Stacks are independent environments (own VPC, cluster, runner), so they deploy, run and destroy in
parallel, one Automation API workspace per stack. The matrix directory keeps a state file: a stack
that finished is not deployed or measured again unless asked (``rerun``), and a failure in one
stack is recorded while the others go on. The combined run directory has the usual format, so
the report, ``compare`` and the validity rules apply unchanged.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from aigw_bench.cloud.engine import conservative_rig
from aigw_bench.cloud.outputs import StackOutputs, read_stack_outputs, require_tool
from schema.manifest import RigRecord
from schema.results import read_manifest, write_json, write_manifest

STATE = "matrix.json"


class Workspace(Protocol):
    """What the matrix needs from Pulumi, per stack."""

    def up(self, stack: str, log: Path) -> None: ...
    def destroy(self, stack: str, log: Path) -> None: ...
    def outputs(self, stack: str) -> StackOutputs: ...


class PulumiWorkspace:
    """The real one: Pulumi Automation API on this repository's program (needs the Pulumi CLI)."""

    def __init__(self, work_dir: Path):
        self.work_dir = work_dir

    @staticmethod
    def check_tools() -> None:
        """Before any stack is touched: `up` and `destroy` need the Pulumi CLI and, for the cluster's
        kubeconfig, the AWS CLI. Missing one half-way would leave a stack half built."""
        require_tool("pulumi")
        require_tool("aws")

    def _stack(self, stack: str) -> Any:
        self.check_tools()
        import pulumi.automation as auto

        # create_or_select: a fresh checkout has Pulumi.<stack>.yaml but no stack in the backend yet.
        return auto.create_or_select_stack(stack_name=stack, work_dir=str(self.work_dir))

    def up(self, stack: str, log: Path) -> None:
        with log.open("a") as fh:
            self._stack(stack).up(on_output=lambda line: fh.write(line + "\n"), color="never")

    def destroy(self, stack: str, log: Path) -> None:
        with log.open("a") as fh:
            self._stack(stack).destroy(on_output=lambda line: fh.write(line + "\n"), color="never")

    def outputs(self, stack: str) -> StackOutputs:
        return read_stack_outputs(stack, self.work_dir)


@dataclass
class StackState:
    deployed: bool = False  # resources may exist (set when `up` starts: a failed up leaves some behind)
    run_dir: str | None = None
    destroyed: bool = False
    errors: list[str] = field(default_factory=list)


class MatrixState:
    def __init__(self, path: Path, stacks: dict[str, StackState]):
        self.path = path
        self.stacks = stacks
        self._lock = threading.Lock()

    @classmethod
    def load(cls, directory: Path, names: list[str]) -> MatrixState:
        path = directory / STATE
        stacks = {}
        if path.exists():
            raw = json.loads(path.read_text())
            stacks = {n: StackState(**s) for n, s in raw.get("stacks", {}).items()}
        for n in names:
            stacks.setdefault(n, StackState())
        return cls(path, stacks)

    def update(self, name: str, **changes: Any) -> None:
        with self._lock:
            state = self.stacks[name]
            for key, value in changes.items():
                if key == "error":
                    state.errors.append(f"{datetime.now(UTC).isoformat(timespec='seconds')} {value}")
                else:
                    setattr(state, key, value)
            write_json(self.path, {"stacks": {n: s.__dict__ for n, s in self.stacks.items()}})


@dataclass
class MatrixResult:
    directory: Path
    combined: Path | None
    state: MatrixState

    @property
    def failed(self) -> dict[str, list[str]]:
        """Stacks that were not measured."""
        return {n: s.errors for n, s in self.state.stacks.items() if s.errors and not s.run_dir}

    @property
    def problems(self) -> dict[str, list[str]]:
        """Every stack with an error, measured or not (a failed destroy leaves resources that cost money)."""
        return {n: s.errors for n, s in self.state.stacks.items() if s.errors}


def run_matrix(
    stacks: list[str],
    directory: Path,
    workspace: Workspace,
    benchmark: Callable[[StackOutputs, Path], Path],
    *,
    keep: bool = False,
    rerun: bool = False,
    on_event: Callable[..., None] | None = None,
) -> MatrixResult:
    """Deploy, benchmark and destroy ``stacks`` in parallel; combine what was measured.

    ``benchmark(outputs, results_root)`` runs the post-deploy stage for one stack and returns its run
    directory (the CLI runs the stack's plan on its engine through :class:`aigw_bench.run.loop.Runner`).
    """
    emit = on_event or (lambda *a, **k: None)
    directory.mkdir(parents=True, exist_ok=True)
    state = MatrixState.load(directory, stacks)
    logs = directory / "logs"
    logs.mkdir(exist_ok=True)

    def one(name: str) -> None:
        s = state.stacks[name]
        if s.run_dir and not rerun:
            emit("matrix", stack=name, step="measured already; skipped (use --rerun to measure again)")
        else:
            try:
                emit("matrix", stack=name, step="pulumi up")
                state.update(name, deployed=True, destroyed=False)
                workspace.up(name, logs / f"{name}-up.log")  # idempotent: a no-op on an up-to-date stack
                emit("matrix", stack=name, step="benchmark")
                run_dir = benchmark(workspace.outputs(name), directory / "stacks" / name)
                state.update(name, run_dir=str(run_dir))
            except Exception as exc:  # one stack's failure must not stop the others
                state.update(name, error=f"{type(exc).__name__}: {exc}")
                emit("matrix", stack=name, step=f"failed: {exc}")
        if not keep and state.stacks[name].deployed and not state.stacks[name].destroyed:
            try:
                emit("matrix", stack=name, step="pulumi destroy")
                workspace.destroy(name, logs / f"{name}-destroy.log")
                state.update(name, destroyed=True)
            except Exception as exc:
                state.update(name, error=f"destroy failed, resources may remain: {type(exc).__name__}: {exc}")

    with ThreadPoolExecutor(max_workers=max(1, len(stacks))) as pool:
        list(pool.map(one, stacks))
    combined = combine_runs([Path(s.run_dir) for n, s in state.stacks.items() if n in stacks and s.run_dir],
                            directory / "combined")
    return MatrixResult(directory, combined, state)


def combine_runs(run_dirs: list[Path], out: Path) -> Path | None:
    """One run directory holding every stack's targets, with a merged manifest."""
    if not run_dirs:
        return None
    if out.exists():
        shutil.rmtree(out)  # derived entirely from the stack run directories, which are kept
    (out / "targets").mkdir(parents=True)
    manifests = [read_manifest(d) for d in run_dirs]
    merged = manifests[0].model_copy(deep=True, update={"run_id": out.parent.name, "targets": {}, "order": [],
                                                        "cloud": {}})
    per_target_cost: dict[str, float] = {}
    run_usd = 0.0
    for d, m in zip(run_dirs, manifests, strict=True):
        merged.targets.update(m.targets)
        merged.order += m.order
        merged.cloud.update(m.cloud or {})  # type: ignore[union-attr]
        cost = m.cost or {}
        per_target_cost.update(cost.get("per_target_hourly_usd", {}))
        run_usd += float(cost.get("run_usd") or 0)
        for target in (d / "targets").iterdir():
            shutil.copytree(target, out / "targets" / target.name)
    if per_target_cost:
        merged.cost = {"hourly_usd": round(sum(per_target_cost.values()), 4),
                       "per_target_hourly_usd": per_target_cost, "run_usd": round(run_usd, 4),
                       "price_table": (manifests[0].cost or {}).get("price_table", "pinned price table")}
    # Each stack measured its own rig (its mock, its runners): the combined run is judged against the
    # weakest of them, as a multi-stack `cloud run` is; each one stays under cloud.<stack>.rig.
    rigs = {stack: RigRecord.model_validate(info["rig"]) for stack, info in (merged.cloud or {}).items()
            if isinstance(info, dict) and info.get("rig")}
    if rigs:
        merged.rig = conservative_rig(rigs)
    merged.combined_from = [str(d) for d in run_dirs]  # type: ignore[attr-defined]
    write_manifest(out, merged)
    return out
