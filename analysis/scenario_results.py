"""The figures a scenario's own report sections show (its ``report:`` list; empty for other runs).

- ``completion_metrics`` and ``latency_distribution`` read the comparison table (k6's summaries);
- ``stages``: per-stage throughput and latency, and where scaling stops (:mod:`analysis.stages`);
- ``drift``: first against last minute of latency and memory (:mod:`analysis.drift`);
- ``hey_tool``: the real hey's own output, per target (:mod:`analysis.hey`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from analysis.drift import DRIFT_COLUMNS, drift_table
from analysis.hey import COLUMNS as HEY_COLUMNS
from analysis.hey import hey_table
from analysis.load import RunData
from analysis.stages import SCALING_COLUMNS, STAGE_COLUMNS, scaling_table, stage_table


@dataclass(frozen=True)
class ScenarioResults:
    sections: list[str] = field(default_factory=list)
    stages: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=STAGE_COLUMNS))
    scaling: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=SCALING_COLUMNS))
    drift: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=DRIFT_COLUMNS))
    params: dict[str, Any] = field(default_factory=dict)
    mock_profile: dict[str, Any] = field(default_factory=dict)
    hey: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=HEY_COLUMNS))

    def has(self, section: str) -> bool:
        return section in self.sections

    @property
    def paced(self) -> bool:
        """The load waits on something besides the target: a think time, or a mock paced like a model.
        Throughput then follows latency (each VU's rate is 1 / (latency + think time)), not capacity."""
        ttft = float(self.mock_profile.get("ttft_ms") or 0)
        per_token = float(self.mock_profile.get("per_token_ms") or 0)
        return float(self.params.get("think_time") or 0) > 0 or ttft > 0 or per_token > 0


def scenario_results(run: RunData) -> ScenarioResults:
    scenario = run.manifest.scenario
    sections = [] if run.is_suite else list(scenario.report)
    params = scenario.params
    profile = run.manifest.mock.profile
    stages = stage_table(run) if "stages" in sections else pd.DataFrame(columns=STAGE_COLUMNS)
    scaling = (scaling_table(stages, float(params.get("think_time") or 0.0)) if not stages.empty
               else pd.DataFrame(columns=SCALING_COLUMNS))
    drift = drift_table(run) if "drift" in sections else pd.DataFrame(columns=DRIFT_COLUMNS)
    hey = hey_table(run) if "hey_tool" in sections else pd.DataFrame(columns=HEY_COLUMNS)
    return ScenarioResults(sections, stages, scaling, drift, params, profile, hey)
