"""Node pools by role, and how a workload is pinned to one.

Each pool's nodes carry the label ``aigw-bench/pool=<role>`` and the taint
``aigw-bench/pool=<role>:NoSchedule``: nothing lands on a pool without tolerating its taint, and a
workload that selects the label lands nowhere else.
"""

from __future__ import annotations

from typing import Literal

# loadgen: the k6-operator's runner pods (only on stacks that enable the operator engine).
Role = Literal["gateway", "mock", "tools", "loadgen"]
ROLES: tuple[Role, ...] = ("gateway", "mock", "tools", "loadgen")
POOL_KEY = "aigw-bench/pool"


def labels(role: Role) -> dict[str, str]:
    return {POOL_KEY: role}


def taint(role: Role) -> dict[str, str]:
    """A managed node group taint (EKS API spelling of the effect)."""
    return {"key": POOL_KEY, "value": role, "effect": "NO_SCHEDULE"}


def node_selector(role: Role) -> dict[str, str]:
    return {POOL_KEY: role}


def tolerations(role: Role) -> list[dict[str, str]]:
    return [{"key": POOL_KEY, "operator": "Equal", "value": role, "effect": "NoSchedule"}]


def placement(role: Role) -> dict[str, object]:
    """nodeSelector + tolerations as most charts spell them."""
    return {"nodeSelector": node_selector(role), "tolerations": tolerations(role)}
