"""The pinned price table and the stack's estimated hourly cost.

Also the source of instance sizes (vCPUs, memory) the config validation needs: a CPU limit is
checked against what a node can actually allocate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict

PRICE_FILE = Path(__file__).resolve().parent / "data" / "prices-us-east-1.yaml"


class InstancePrice(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    vcpus: int
    memory_gib: float
    hourly: float


class PriceTable(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    region: str
    recorded: str
    currency: str
    eks_control_plane: dict[str, float]
    extended_support_versions: list[str]
    nat_gateway: float
    network_load_balancer: float
    ebs_gp3_gb_month: float
    hours_per_month: float
    instances: dict[str, InstancePrice]

    @property
    def label(self) -> str:
        return f"{self.region} on-demand, recorded {self.recorded} (components/data/{PRICE_FILE.name})"


@lru_cache(maxsize=1)
def price_table() -> PriceTable:
    return PriceTable.model_validate(yaml.safe_load(PRICE_FILE.read_text()))


def allocatable_cpu(vcpus: int) -> float:
    """CPUs a node offers to pods: EKS reserves 6% of the first core, 1% of the second, 0.5% of the
    next two and 0.25% of the rest for the kubelet; a further 0.25 CPU is kept for the DaemonSets
    every node runs here (aws-node, kube-proxy, node exporter)."""
    reserved = 0.06 * min(vcpus, 1) + 0.01 * min(max(vcpus - 1, 0), 1) + 0.005 * min(max(vcpus - 2, 0), 2)
    reserved += 0.0025 * max(vcpus - 4, 0)
    return math.floor((vcpus - reserved - 0.25) * 1000) / 1000


@dataclass(frozen=True)
class CostLine:
    item: str
    quantity: float
    unit_hourly: float

    @property
    def hourly(self) -> float:
        return self.quantity * self.unit_hourly


def estimate(*, kubernetes_version: str, node_groups: dict[str, tuple[str, int, int]], runners: tuple[str, int, int],
             nat_gateways: int, load_balancers: int) -> list[CostLine]:
    """Hourly cost lines. ``node_groups``: role -> (instance type, count, disk GiB); ``runners`` likewise."""
    table = price_table()
    rate = "extended" if kubernetes_version in table.extended_support_versions else "standard"
    disk_hourly = table.ebs_gp3_gb_month / table.hours_per_month
    lines = [CostLine(f"EKS control plane ({rate} support)", 1, table.eks_control_plane[rate])]
    for role, (itype, count, disk) in [*node_groups.items(), ("k6 runner", runners)]:
        lines.append(CostLine(f"{role} nodes ({itype})", count, table.instances[itype].hourly))
        lines.append(CostLine(f"{role} volumes (gp3 GiB)", count * disk, disk_hourly))
    lines.append(CostLine("NAT gateways", nat_gateways, table.nat_gateway))
    lines.append(CostLine("internal NLBs (hourly part)", load_balancers, table.network_load_balancer))
    return lines


def total(lines: list[CostLine]) -> float:
    return round(sum(line.hourly for line in lines), 4)
