"""Streaming: added time to first token, added gap between chunks, and whether every chunk arrived.

The streaming step paces the mock like a hosted model and reads streams directly from the mock and
through the target at the same time (:mod:`aigw_bench.measure.stream_probe`). Per target, pooled
over repeats:

- added TTFT (p50, p99): time to the first content chunk through the target minus directly; 95%
  interval from a bootstrap over streams, each side resampled on its own (scipy.stats.bootstrap);
- added gap (p50, p99): the same for gaps between consecutive content chunks, resampling whole
  streams (a stream's gaps stay together);
- fidelity: the share of streams through the target that arrived complete: HTTP 200, as many content
  chunks as the mock sent, the final chunk's usage and ``data: [DONE]``;
- re-buffering: a stream whose content chunks all arrived within a tenth of the time the mock took
  to send them was held back and sent at once; if most streams were, the target re-buffers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.load import RunData
from analysis.stats import cluster_bootstrap_diff

REBUFFERED_SPREAD = 0.1  # spread below this share of the mock's own spread: held back
REBUFFERING_SHARE = 0.5  # more than this share of streams held back: the target re-buffers
COLUMNS = ["target", "repeats", "streams_direct", "streams_target", "expected_chunks",
           "direct_ttft_p50_ms", "target_ttft_p50_ms",
           *(f"added_{m}_{q}_ms{s}" for m in ("ttft", "gap") for q in ("p50", "p99")
             for s in ("", "_ci_low", "_ci_high")),
           "complete_share", "chunks_ok_share", "usage_share", "done_share", "rebuffered_share", "rebuffers",
           "errors_target", "token_gap_ms"]


def _read(run: RunData) -> dict[str, list[tuple[pd.DataFrame, pd.DataFrame, dict]]]:
    by_target: dict[str, list] = {}
    for outcome, record in run.step_records("streaming"):
        if record.status != "ok" or "streams" not in record.files:
            continue
        try:
            streams = pd.read_csv(run.step_path(outcome, record, "streams"))
            gaps = pd.read_csv(run.step_path(outcome, record, "gaps"))
        except (OSError, ValueError, EOFError, pd.errors.ParserError, pd.errors.EmptyDataError):
            continue
        by_target.setdefault(outcome.target, []).append((streams, gaps, record.data))
    return by_target


def _clusters(gaps: pd.DataFrame, side: str) -> list[np.ndarray]:
    part = gaps[gaps["side"] == side]
    return [g["gap_ms"].to_numpy() for _, g in part.groupby("stream") if len(g)]


def streaming_table(run: RunData) -> pd.DataFrame:
    rows = []
    for target, items in _read(run).items():
        streams = pd.concat([s.assign(repeat=i) for i, (s, _, _) in enumerate(items)], ignore_index=True)
        gaps = pd.concat([g.assign(stream=g["stream"].astype(str) + f"-{i}") for i, (_, g, _) in enumerate(items)],
                         ignore_index=True)
        data = items[0][2]
        expected = data.get("expected_chunks")
        spread = data.get("expected_spread_ms")
        ok = streams[(streams["status"] == 200)]
        direct, via = ok[ok["side"] == "direct"], ok[ok["side"] == "target"]
        row: dict = {"target": target, "repeats": len(items), "expected_chunks": expected,
                     "token_gap_ms": spread / (expected - 1) if spread and expected and expected > 1 else np.nan,
                     "streams_direct": int((streams["side"] == "direct").sum()),
                     "streams_target": int((streams["side"] == "target").sum()),
                     "errors_target": int(((streams["side"] == "target") & (streams["status"] != 200)).sum())}
        d_ttft = [np.array([v]) for v in direct["ttft_ms"].dropna()]
        t_ttft = [np.array([v]) for v in via["ttft_ms"].dropna()]
        if d_ttft and t_ttft:
            row["direct_ttft_p50_ms"] = float(np.median(np.concatenate(d_ttft)))
            row["target_ttft_p50_ms"] = float(np.median(np.concatenate(t_ttft)))
            est, low, high = cluster_bootstrap_diff(d_ttft, t_ttft, [0.5, 0.99])
            for i, q in enumerate(("p50", "p99")):
                row[f"added_ttft_{q}_ms"], row[f"added_ttft_{q}_ms_ci_low"] = est[i], low[i]
                row[f"added_ttft_{q}_ms_ci_high"] = high[i]
        d_gaps, t_gaps = _clusters(gaps, "direct"), _clusters(gaps, "target")
        if d_gaps and t_gaps:
            est, low, high = cluster_bootstrap_diff(d_gaps, t_gaps, [0.5, 0.99])
            for i, q in enumerate(("p50", "p99")):
                row[f"added_gap_{q}_ms"], row[f"added_gap_{q}_ms_ci_low"] = est[i], low[i]
                row[f"added_gap_{q}_ms_ci_high"] = high[i]
        all_target = streams[streams["side"] == "target"]
        if len(all_target):
            chunks_ok = (all_target["content_chunks"] == expected) if expected else pd.Series(True, all_target.index)
            usage = all_target["usage"].astype(str).str.lower() == "true"
            done = all_target["done"].astype(str).str.lower() == "true"
            complete = (all_target["status"] == 200) & chunks_ok & usage & done
            row.update({"complete_share": float(complete.mean()), "chunks_ok_share": float(chunks_ok.mean()),
                        "usage_share": float(usage.mean()), "done_share": float(done.mean())})
            if spread and spread >= 20 and len(via) and "spread_ms" in via:
                held = via["spread_ms"].fillna(0) < REBUFFERED_SPREAD * spread
                row["rebuffered_share"] = float(held.mean())
                row["rebuffers"] = bool(held.mean() > REBUFFERING_SHARE)
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)


def first_token_wait(added_ttft_ms: float, added_ttft_low_ms: float, added_request_us: float,
                     token_gap_ms: float) -> tuple[float, bool]:
    """How much longer the first token waits inside the target than a whole non-streamed request does
    (added TTFT p50 minus added latency p50, ms), and whether it holds the first token back: the wait's
    lower 95% bound exceeds one token's time of the mock. A relay that passes chunks on as they come adds
    to the first token what it adds to any request; one that buffers small writes (or waits for more of
    the answer) adds at least a token's time more."""
    wait = added_ttft_ms - added_request_us / 1000
    return wait, bool(added_ttft_low_ms - added_request_us / 1000 > token_gap_ms)
