"""k6's own conventions, as every engine and the analysis read them: its exit codes and its summary.

The summary is what the scripts' ``handleSummary`` writes (k6_scripts/templates/_common.js.j2): k6's
end-of-test metrics as JSON, ``metrics.<name>.values.<stat>``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# go.k6.io/k6/errext/exitcodes (v1.1.0): 0 fine, 99 thresholds crossed (the run itself is complete);
# anything else is a failure of the run.
EXIT_OK = 0
EXIT_THRESHOLDS_FAILED = 99
COMPLETE_EXIT_CODES = (EXIT_OK, EXIT_THRESHOLDS_FAILED)


def metric(summary: dict[str, Any] | None, name: str, stat: str) -> float | None:
    """One value of a k6 summary, or None."""
    if not summary:
        return None
    value = summary.get("metrics", {}).get(name, {}).get("values", {}).get(stat)
    return float(value) if value is not None else None


def read_summary_file(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """k6's summary.json parsed, or the reason it is not usable."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None, f"{path.name} is missing: k6 wrote no summary (see k6.log)"
    except json.JSONDecodeError as exc:
        return None, f"{path.name} is cut short or corrupt (JSON error at byte {exc.pos})"
    metrics = data.get("metrics") if isinstance(data, dict) else None
    if not isinstance(metrics, dict) or "http_reqs" not in metrics:
        return None, f"{path.name} has no k6 metrics (http_reqs missing)"
    return data, None
