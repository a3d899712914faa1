"""What a second run finds: a figure's spread between earlier runs of the same suite on the same machine.

One run's ranges cover its own sessions (minutes apart). A second run an hour later finds more: on the
project's shared 2-core machine, eight `make bench` runs of the same code put Portkey's capacity at 188
to 843 req/s and LiteLLM's at 88 to 162 while each run's two sessions agreed within a few per cent
(docs/method.md, "Between runs"). So `compare` confirms a change in a figure that moves between runs
(capacity, CPU per request, memory, closed-loop throughput, time to first token) only against that
spread, measured from the runs that share the results directory: the same suite and sizes, the same
machine, the target at the same version. A run is read from the ``comparison.csv`` its report wrote
(``aigw-bench report``); a run without one is left out, and said.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from schema.errors import ResultsError
from schema.manifest import Manifest
from schema.results import MANIFEST, read_manifest

# Fewer runs than this give no spread worth judging by (the range of two is one difference).
MIN_RUNS = 3
TABLE = "comparison.csv"


@dataclass(frozen=True)
class Prediction:
    """Where one more run of a configuration would put a figure, from the runs made of it: a 95%
    prediction interval on the log scale (the figures move by factors, and stay positive), Student's t
    with n - 1 degrees of freedom. Three runs give a wide one (t = 4.3); that is what three runs know."""

    runs: int
    low: float
    high: float

    @classmethod
    def of(cls, values: list[float]) -> Prediction | None:
        logs = np.log([v for v in values if v > 0])
        if len(logs) < MIN_RUNS or len(logs) != len(values):
            return None
        n = len(logs)
        half = stats.t.ppf(0.975, n - 1) * np.std(logs, ddof=1) * np.sqrt(1 + 1 / n)
        return cls(n, float(np.exp(logs.mean() - half)), float(np.exp(logs.mean() + half)))

    def holds(self, value: float) -> bool:
        return self.low <= value <= self.high


@dataclass(frozen=True)
class History:
    """The earlier runs like the ``before`` run, each as its per-target table (index: target)."""

    tables: dict[str, pd.DataFrame]
    left_out: list[str]  # runs like it that could not be read, with why

    def values(self, target: str, metric: str, version: str | None) -> list[float]:
        """The figure in every run that measured ``target`` at ``version`` validly."""
        found = []
        for table in self.tables.values():
            if target not in table.index:
                continue
            row = table.loc[target]
            if str(row.get("version")) != str(version) or not _valid(row.get("valid")):
                continue
            value = pd.to_numeric(pd.Series([row.get(metric)]), errors="coerce").iloc[0]
            if pd.notna(value):
                found.append(float(value))
        return found


def _valid(value: object) -> bool:
    return str(value).strip().lower() in ("true", "1")


def alike(a: Manifest, b: Manifest) -> bool:
    """Two runs of one configuration of the rig: the same suite with the same sizes, on the same machine."""
    if not (a.suite and b.suite) or (a.suite.name, a.suite.sizes) != (b.suite.name, b.suite.sizes):
        return False
    keys = ("cpu_model", "cpus_usable")
    return [a.machine.get(k) for k in keys] == [b.machine.get(k) for k in keys] and a.environment == b.environment


def earlier_runs(before_dir: Path, before: Manifest, before_table: pd.DataFrame, *, exclude: Path,
                 folders: list[Path]) -> History:
    """``before`` (its table as computed) and every run in ``folders`` like it, except ``exclude``."""
    tables = {before_dir.name: before_table.set_index("target")}
    left_out = []
    seen = {before_dir.resolve(), exclude.resolve()}
    for folder in dict.fromkeys(f.resolve() for f in folders):
        for run_dir in sorted(p for p in folder.iterdir() if (p / MANIFEST).is_file()):
            if run_dir.resolve() in seen:
                continue
            seen.add(run_dir.resolve())
            try:
                manifest = read_manifest(run_dir)
            except ResultsError as exc:
                left_out.append(f"{run_dir.name}: {exc}")
                continue
            if not alike(before, manifest):
                continue
            if not (run_dir / TABLE).is_file():
                left_out.append(f"{run_dir.name}: no {TABLE} (`aigw-bench report {run_dir}` writes it)")
                continue
            try:
                tables[run_dir.name] = pd.read_csv(run_dir / TABLE).set_index("target")
            except (ValueError, KeyError, pd.errors.ParserError) as exc:
                left_out.append(f"{run_dir.name}: {TABLE} unreadable ({exc})")
    return History(tables, left_out)
