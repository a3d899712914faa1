"""Verdicts of the policies' correctness probes (the suite's ``works`` step): from the counts the probe
script (k6_scripts/templates/works.js.j2) recorded per check, case and HTTP status, whether each
feature did its job under load, with the counts as evidence. Pure: no I/O."""

from __future__ import annotations

import json
import re
from typing import Any

from schema.k6 import metric

STATUSES = ("200", "400", "401", "403", "429", "446", "500", "other")  # 446: Portkey's guardrail denial
REFUSED = ("401", "403")
WORKS_LINE = re.compile(r'msg="aigw-works: ((?:[^"\\]|\\.)*)"')  # what an API-key check answers a missing or wrong key


def statuses(summary: dict[str, Any] | None, index: int, case: str) -> dict[str, int]:
    """Answers of check ``index``'s ``case`` per HTTP status (statuses never seen left out)."""
    found = {s: int(metric(summary, f"works_{index}_{case}_{s}", "count") or 0) for s in STATUSES}
    return {s: n for s, n in found.items() if n}


def _count(summary: dict[str, Any] | None, index: int, name: str) -> int | None:
    value = metric(summary, f"works_{index}_{name}", "count")
    return None if value is None else int(value)


def _mix(cases: dict[str, dict[str, int]]) -> str:
    """'missing: 401 x17; wrong: 400 x16': what each case was answered."""
    return "; ".join(f"{c}: " + ", ".join(f"{s} x{n}" for s, n in got.items()) for c, got in cases.items() if got)


def auth_verdict(summary: dict[str, Any] | None, index: int) -> dict[str, Any]:
    cases = {c: statuses(summary, index, c) for c in ("missing", "wrong", "right")}
    refused = all(cases[c] and set(cases[c]) <= set(REFUSED) for c in ("missing", "wrong"))
    admitted = bool(cases["right"]) and set(cases["right"]) == {"200"}
    verdict = ("missing and wrong keys refused with 401/403, the right key admitted" if refused and admitted
               else "expected 401/403 for a missing and a wrong key and 200 for the right one")
    return {"works": refused and admitted, "statuses": cases, "why": f"{verdict} ({_mix(cases)})"}


def answer_samples(log: str) -> list[dict[str, Any]]:
    """The probe's first answer per check, case and status (the k6 log's ``aigw-works:`` lines), as evidence."""
    unique: dict[tuple, dict[str, Any]] = {}
    for quoted in WORKS_LINE.findall(log):
        try:  # logfmt quotes the message as a Go string: JSON's escapes for what the script prints
            sample = json.loads(json.loads(f'"{quoted}"'))
        except ValueError:
            continue
        unique.setdefault((sample.get("check"), sample.get("case"), sample.get("status")), sample)
    return list(unique.values())


def guard_verdict(summary: dict[str, Any] | None, index: int) -> dict[str, Any]:
    cases = {c: statuses(summary, index, c) for c in ("marked", "clean")}
    blocked = bool(cases["marked"]) and "200" not in cases["marked"] and all(
        s.startswith("4") and s != "429" for s in cases["marked"])
    passed = bool(cases["clean"]) and set(cases["clean"]) == {"200"}
    verdict = ("every marked prompt refused (4xx), every clean one answered" if blocked and passed
               else "expected 4xx (not 429) for a marked prompt and 200 for a clean one")
    return {"works": blocked and passed, "statuses": cases, "why": f"{verdict} ({_mix(cases)})"}


def limit_verdict(summary: dict[str, Any] | None, index: int, check: dict[str, Any]) -> dict[str, Any]:
    offered = statuses(summary, index, "offered")
    admitted, limited = offered.get("200", 0), offered.get("429", 0)
    windows = max(1.0, check["seconds"] / check["per_seconds"])
    expected = check["limit"] * windows
    tolerance = check["tolerance"]
    within = abs(admitted - expected) <= tolerance * expected
    only = set(offered) <= {"200", "429"}
    works = within and only and limited > 0
    return {"works": works, "statuses": {"offered": offered}, "offered": sum(offered.values()), "admitted": admitted,
            "expected_admitted": expected, "tolerance": tolerance, "limited": limited,
            "retry_after": _count(summary, index, "retry_after") or 0,
            "why": (f"{admitted} admitted of {sum(offered.values())} offered (limit {expected:g} within "
                    f"{tolerance:.0%}), the rest 429") if works else
                   f"{admitted} admitted of {sum(offered.values())} offered (limit {expected:g}, tolerance "
                   f"{tolerance:.0%}); statuses {offered}"}


def cache_verdict(summary: dict[str, Any] | None, index: int) -> dict[str, Any]:
    cases = {c: statuses(summary, index, c) for c in ("repeat", "changed")}
    sent_repeat, sent_changed = _count(summary, index, "sent_repeat"), _count(summary, index, "sent_changed")
    reached_repeat = _count(summary, index, "reached_repeat")
    reached_changed = _count(summary, index, "reached_changed")
    evidence = {"statuses": cases, "sent_repeat": sent_repeat, "reached_repeat": reached_repeat,
                "sent_changed": sent_changed, "reached_changed": reached_changed,
                "hit_p50_ms": metric(summary, "works_cache_hit_ms", "med"),
                "miss_p50_ms": metric(summary, "works_cache_miss_ms", "med")}
    if reached_repeat is None or reached_changed is None:
        return {**evidence, "works": None, "why": "the mock did not say how many requests reached it "
                                                 "(GET /__aigw/count: the fast mock counts them)"}
    answered = all(set(c) == {"200"} for c in cases.values())
    works = answered and reached_repeat == 1 and reached_changed == sent_changed
    return {**evidence, "works": works,
            "why": f"the same request sent {sent_repeat} times reached the mock {reached_repeat} time(s); "
                   f"{sent_changed} changed ones reached it {reached_changed} times"}


def observe_verdict(summary: dict[str, Any] | None, index: int, check: dict[str, Any]) -> dict[str, Any]:
    sent = int(metric(summary, "works_sent_to_target", "count") or 0)
    counted = _count(summary, index, "reported")
    if counted is None:
        return {"works": False, "sent": sent, "reported": None,
                "why": f"the metrics page {check['metrics_path']} could not be read or had no line matching "
                       f"{check['counter']!r}"}
    works = abs(counted - sent) <= check["slack"]
    return {"works": works, "sent": sent, "reported": counted, "slack": check["slack"],
            "why": f"the gateway counted {counted} requests, k6 sent {sent}" + ("" if works else
                                                                                 f" (allowed: ±{check['slack']})")}


def verdicts(summary: dict[str, Any] | None, checks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One verdict per check, in order: ``works`` True / False (None: could not tell), ``why`` and the counts."""
    out = []
    for i, check in enumerate(checks):
        kind = check["kind"]
        if kind == "auth":
            v = auth_verdict(summary, i)
        elif kind == "guard":
            v = guard_verdict(summary, i)
        elif kind == "limit":
            v = limit_verdict(summary, i, check)
        elif kind == "observe":
            v = observe_verdict(summary, i, check)
        else:
            v = cache_verdict(summary, i)
        out.append({"kind": kind, **v})
    return out
