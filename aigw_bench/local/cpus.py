"""Which CPUs the load generator, the mock and the gateway run on.

The gateway gets CPUs of its own, so the load generator and the mock do not steal its cycles and
its result does not depend on theirs. The split is the same for every target of a run (the
baseline included, whose gateway CPUs stay idle) and is written into the manifest.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class CpuPlan:
    loadgen: list[int] | None
    mock: list[int] | None
    gateway: list[int] | None
    note: str

    @property
    def gateway_cpus(self) -> int:
        return len(self.gateway) if self.gateway else (os.cpu_count() or 1)

    @property
    def mock_cpus(self) -> int:
        return len(self.mock) if self.mock else (os.cpu_count() or 1)

    def to_dict(self) -> dict:
        return asdict(self)


def available_cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def plan_cpus(cpus: list[int] | None = None, pin: bool = True) -> CpuPlan:
    """Split the CPUs this process may use into load generator, mock and gateway sets."""
    cpus = sorted(cpus if cpus is not None else available_cpus())
    n = len(cpus)
    if not pin:
        return CpuPlan(None, None, None, f"not pinned (--no-pin); {n} CPUs shared by all processes")
    if n < 2:
        return CpuPlan(None, None, None, f"not pinned: only {n} CPU available; all processes share it")
    if n < 4:
        # Too few to separate all three: load generator and mock share, the gateway is alone.
        shared, gateway = cpus[:1], cpus[1:]
        return CpuPlan(
            shared, shared, gateway,
            f"{n} CPUs: load generator and mock share CPU {shared[0]}; gateway on {_fmt(gateway)}",
        )
    quarter = max(1, n // 4)
    loadgen, mock, gateway = cpus[:quarter], cpus[quarter : 2 * quarter], cpus[2 * quarter :]
    return CpuPlan(
        loadgen, mock, gateway,
        f"{n} CPUs: load generator on {_fmt(loadgen)}, mock on {_fmt(mock)}, gateway on {_fmt(gateway)}",
    )


def _fmt(cpus: list[int]) -> str:
    return "CPU " + ",".join(str(c) for c in cpus)
