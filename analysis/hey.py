"""hey's own output (the ``hey`` scenario's ``hey_tool`` step): its summary parsed, per target, beside k6's.

hey (rakyll/hey 0.1.4, Debian's package) prints a text summary: ``Summary:`` (Total, Slowest, Fastest,
Average in seconds, Requests/sec, Total data, Size/request), ``Latency distribution:`` (``10% in 0.0012
secs`` ... ``99% in ...``), ``Status code distribution:`` (``[200]\t10000 responses``) and
``Error distribution:`` (``[20]\tPost ...: error``). The figures here are hey's as printed, converted to
milliseconds; a repeat's file is read as it is, a target's figure is the mean of its repeats (counts: the
total).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.load import RunData

PERCENTILES = (10, 25, 50, 75, 90, 95, 99)
COLUMNS = ["target", "repeats", "responses", "status_200", "other_statuses", "errors", "total_s", "rps",
           "average_ms", "fastest_ms", "slowest_ms", *(f"p{q}_ms" for q in PERCENTILES), "size_per_request_bytes",
           "command"]
_SUMMARY = {"Total": "total_s", "Slowest": "slowest_ms", "Fastest": "fastest_ms", "Average": "average_ms",
            "Requests/sec": "rps", "Size/request": "size_per_request_bytes"}
_LINE = re.compile(r"^\s*([A-Za-z/ ]+):\s+(\S+)")
_PERCENTILE = re.compile(r"^\s*(\d+)% in (\S+) secs")
_COUNT = re.compile(r"^\s*\[(\d+)\]\s+(\d+)")


class HeyOutputError(ValueError):
    """hey's output has no summary (it did not run, or its file is cut short)."""


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan  # hey prints "NaN" when no request succeeded


def parse_hey(text: str, source: str = "hey output") -> dict[str, float | dict[int, int]]:
    """hey's text summary as numbers: seconds become ms; ``statuses`` and ``errors`` count responses."""
    if "Summary:" not in text:
        raise HeyOutputError(f"{source}: no 'Summary:' (hey did not finish, or the file is cut short)")
    out: dict = {"statuses": {}, "errors": 0}
    section = ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.endswith(":") and not line.startswith(" "):
            section = stripped[:-1]
            continue
        if section == "Summary" and (m := _LINE.match(line)) and m[1].strip() in _SUMMARY:
            key = _SUMMARY[m[1].strip()]
            value = _number(m[2])
            out[key] = value * 1000 if key.endswith("_ms") else value
        elif section == "Latency distribution" and (m := _PERCENTILE.match(line)):
            out[f"p{m[1]}_ms"] = _number(m[2]) * 1000
        elif section == "Status code distribution" and (m := _COUNT.match(line)):
            out["statuses"][int(m[1])] = int(m[2])
        elif section == "Error distribution" and (m := _COUNT.match(line)):
            out["errors"] += int(m[1])
    if "rps" not in out:
        raise HeyOutputError(f"{source}: the summary has no Requests/sec")
    return out


def hey_table(run: RunData) -> pd.DataFrame:
    """One row per target whose hey step ran: hey's own figures (mean of repeats; counts summed)."""
    per_target: dict[str, list[dict]] = {}
    for outcome, record in run.step_records("hey"):
        if record.status != "ok" or "output" not in record.files:
            continue
        path: Path = run.step_path(outcome, record, "output")
        try:
            parsed = parse_hey(path.read_text(errors="replace"), str(path))
        except (OSError, HeyOutputError):
            continue
        parsed["command"] = record.data.get("command")
        per_target.setdefault(outcome.target, []).append(parsed)
    rows = []
    for target, items in per_target.items():
        statuses = [sum(i["statuses"].values()) for i in items]
        ok = [i["statuses"].get(200, 0) for i in items]
        row = {"target": target, "repeats": len(items), "responses": sum(statuses), "status_200": sum(ok),
               "other_statuses": sum(statuses) - sum(ok), "errors": sum(i["errors"] for i in items),
               "command": items[0]["command"]}
        for key in ("total_s", "rps", "average_ms", "fastest_ms", "slowest_ms", "size_per_request_bytes",
                    *(f"p{q}_ms" for q in PERCENTILES)):
            values = [i[key] for i in items if key in i]
            row[key] = float(np.mean(values)) if values else math.nan
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)
