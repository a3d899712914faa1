"""Headline statements in the published benchmark's style, each with the caveats that apply to it."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from analysis.compare import relative_statements
from analysis.validity import RULE_TITLES, Finding


@dataclass(frozen=True)
class Headline:
    text: str
    caveats: list[str] = field(default_factory=list)


def _significance(label: str, significant: bool | None) -> str | None:
    if significant is None:
        return f"one repeat: the {label} difference has no confidence interval (use --repeats 3 or more)"
    if not significant:
        return f"the {label} difference is within the 95% confidence intervals: not significant"
    return None


def _flags(findings: list[Finding], *targets: str) -> list[str]:
    seen = []
    for f in findings:
        note = f"{f.target}: {RULE_TITLES[f.rule].lower()}"
        if f.target in targets and note not in seen:
            seen.append(note)
    return seen


def headlines(table: pd.DataFrame, findings: list[Finding]) -> list[Headline]:
    out = []
    for st in relative_statements(table, roles=("gateway",)):
        if st.rps_significant is None and st.p95_significant is None:
            caveats = ["one repeat: no confidence intervals to judge the differences by (use --repeats 3 or more)"]
        else:
            caveats = [c for c in (_significance("RPS", st.rps_significant),
                                   _significance("p95", st.p95_significant)) if c]
        out.append(Headline(st.text, caveats + _flags(findings, st.faster, st.slower)))
    for r in table[table["valid"] & (table["role"] == "gateway")].to_dict("records"):
        if pd.isna(r.get("added_p95_ms")):
            continue
        text = (f"{r['target']} added {r['added_p50_ms']:+.2f} ms at p50 and {r['added_p95_ms']:+.2f} ms at p95 over "
                f"direct-to-mock, at {r['rps_pct_of_baseline']:.0f}% of its throughput")
        out.append(Headline(text, _flags(findings, r["target"])))
    return out
