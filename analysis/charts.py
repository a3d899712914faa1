"""Charts as inline SVG (matplotlib), one colour per target, the same colour in every chart.

Colours follow neutral properties, never rank or brand: the role picks the palette (the baseline a
light grey; floors neutral tones; gateways the Okabe-Ito colours, readable for colour-blind people,
then Paul Tol's muted set) and a hash of the target's name its place in it, so a target keeps its
colour from run to run. Targets of one run that would share a colour are told apart: in name order,
a later one moves to the next colour not taken (:func:`target_colours`).
"""

from __future__ import annotations

import colorsys
import hashlib
import io
import re

import matplotlib

matplotlib.use("Agg")  # no display; must precede pyplot
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.patches import Patch

from analysis.buckets import histogram_quantile

_BASELINE_COLOUR = "#9E9E9E"
# Floors: neutral tones (greys, a warm grey, a slate), none of them the baseline's.
_FLOOR_COLOURS = ["#5F5F5F", "#8C7A66", "#3D3D3D", "#6E7F8D", "#A89F91", "#2F4F4F"]
# Gateways: Okabe-Ito (without black, kept for text), then Paul Tol's muted palette.
_GATEWAY_COLOURS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#F0E442",
                    "#332288", "#117733", "#44AA99", "#88CCEE", "#DDCC77", "#CC6677", "#AA4499", "#882255"]
_FIRST_CHOICE = {True: 4, False: 7}  # neutral palette: 4 distinct tones; gateways: the 7 Okabe-Ito colours

plt.rcParams.update({
    "svg.fonttype": "none",  # text stays text: smaller files, selectable labels
    "font.size": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
})


def _name_slot(name: str, size: int) -> int:
    """A place in a palette from the name alone (not Python's salted hash: the same in every process)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") % size


def _extra_colour(i: int) -> str:
    """Beyond every palette (a run with more targets than colours): evenly spread hues, darker."""
    r, g, b = colorsys.hls_to_rgb((i * 0.618034) % 1.0, 0.35, 0.6)
    return f"#{int(r * 255):02X}{int(g * 255):02X}{int(b * 255):02X}"


def target_colours(roles: dict[str, str]) -> dict[str, str]:
    """Target -> colour, from each target's role and name only: stable across runs (a target keeps the
    colour its name picks unless a target earlier in name order of the same run took it), and distinct
    within a run."""
    colours: dict[str, str] = {}
    taken: set[str] = set()
    for name in sorted(roles):
        role = roles[name]
        if role == "baseline" and _BASELINE_COLOUR not in taken:
            colour = _BASELINE_COLOUR
        else:
            # The name picks among the palette's first colours (the most distinct); the rest are overflow.
            neutral = role in ("baseline", "floor")
            palette = _FLOOR_COLOURS if neutral else _GATEWAY_COLOURS
            first = palette[:_FIRST_CHOICE[neutral]]
            start = _name_slot(name, len(first))
            ordered = first[start:] + first[:start] + palette[len(first):] + (
                _GATEWAY_COLOURS if neutral else _FLOOR_COLOURS)
            colour = next((c for c in ordered if c not in taken), None) or next(
                c for c in (_extra_colour(i) for i in range(len(taken) + 1)) if c not in taken)
        colours[name] = colour
        taken.add(colour)
    return colours


def _svg(fig: plt.Figure) -> str:
    buf = io.StringIO()
    # No metadata block: no creation date (same data, same file) and no RDF namespaces.
    fig.savefig(buf, format="svg", bbox_inches="tight",
                metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    plt.close(fig)
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]  # drop the XML prolog and doctype: it is embedded in HTML
    # Scale with the page instead of a fixed size in points.
    return re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r'<svg\1 class="chart"', svg, count=1)


def throughput_bars(table: pd.DataFrame, colours: dict[str, str]) -> str:
    data = table.dropna(subset=["rps"])
    fig, ax = plt.subplots(figsize=(7, 0.5 + 0.45 * max(len(data), 1)))
    y = np.arange(len(data))
    err = None
    if data["rps_ci_low"].notna().any():
        low = (data["rps"] - data["rps_ci_low"]).fillna(0).clip(lower=0)
        high = (data["rps_ci_high"] - data["rps"]).fillna(0).clip(lower=0)
        err = [low.to_numpy(), high.to_numpy()]
    ax.barh(y, data["rps"], color=[colours[t] for t in data["target"]], xerr=err, capsize=3)
    for yi, v in zip(y, data["rps"], strict=True):
        ax.text(v, yi, f" {v:,.0f}", va="center", fontsize=9)
    ax.set_yticks(y, data["target"])
    ax.invert_yaxis()
    ax.set_xlabel("requests per second (mean; bars: 95% CI when repeated)")
    ax.set_title("Throughput")
    return _svg(fig)


def latency_percentiles(table: pd.DataFrame, colours: dict[str, str]) -> str:
    data = table.dropna(subset=["latency_p50_ms"])
    quantiles = [("p50", "latency_p50_ms"), ("p90", "latency_p90_ms"), ("p95", "latency_p95_ms"),
                 ("p99", "latency_p99_ms")]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    width = 0.8 / max(len(data), 1)
    x = np.arange(len(quantiles))
    for i, r in enumerate(data.to_dict("records")):
        ax.bar(x + i * width - 0.4 + width / 2, [r[c] for _, c in quantiles], width, label=r["target"],
               color=colours[r["target"]])
    ax.set_xticks(x, [q for q, _ in quantiles])
    ax.set_ylabel("latency (ms)")
    ax.set_title("Latency percentiles (full response)")
    ax.legend(frameon=False, fontsize=8, ncol=min(len(data), 4))
    return _svg(fig)


def _first_repeats(series: pd.DataFrame) -> pd.DataFrame:
    """The per-second rows of each target's first repeat."""
    return series[series["repeat"] == series.groupby("target")["repeat"].transform("min")]


def _two_panels(fig, top, bottom, title: str, top_label: str, bottom_label: str, x_label: str) -> str:
    """Label a figure of two stacked panels sharing the x axis (legend on top) and render it."""
    top.set_ylabel(top_label)
    top.set_title(title)
    top.legend(frameon=False, fontsize=8, ncol=4)
    bottom.set_ylabel(bottom_label)
    bottom.set_xlabel(x_label)
    return _svg(fig)


def over_time(series: pd.DataFrame, colours: dict[str, str]) -> str:
    """RPS and p95 latency per second, first repeat of each target, time from its own start."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 5), sharex=True)
    for target, frame in _first_repeats(series).groupby("target", sort=True):
        # Drop the partial first and last second: k6 starts and stops mid-second.
        frame = frame.sort_values("t_s").iloc[1:-1]
        top.plot(frame["t_s"], frame["requests"], color=colours.get(str(target), "#333"), label=str(target))
        bottom.plot(frame["t_s"], frame["latency_p95_ms"], color=colours.get(str(target), "#333"))
    return _two_panels(fig, top, bottom, "Throughput and p95 latency over time (repeat 1)", "requests / s",
                       "p95 latency (ms)", "seconds into the measurement")


def latency_cdf(histograms: pd.DataFrame, colours: dict[str, str]) -> str:
    """Cumulative distribution of latency from the (merged) histograms of every repeat."""
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for target, frame in histograms.groupby("target", sort=True):
        merged = frame.groupby("bucket", as_index=False).agg(upper_ms=("upper_ms", "first"), count=("count", "sum"))
        merged = merged.sort_values("bucket")
        cumulative = merged["count"].cumsum() / merged["count"].sum()
        ax.step(merged["upper_ms"], cumulative, where="post", color=colours.get(str(target), "#333"),
                label=f"{target} (p99 {histogram_quantile(merged, 0.99):,.1f} ms)")
    ax.set_xscale("log")
    ax.set_xlabel("latency (ms, log scale)")
    ax.set_ylabel("fraction of requests")
    ax.set_title("Latency distribution")
    ax.legend(frameon=False, fontsize=8)
    return _svg(fig)


def resource_usage(resources: pd.DataFrame, colours: dict[str, str]) -> str:
    """Mean CPU (cores) and memory (MiB) of each role, per target."""
    per = resources.groupby(["target", "role"]).agg(cpu=("cpu_cores", "mean"), rss=("rss_mib", "mean")).reset_index()
    roles = [r for r in ("gateway", "mock", "loadgen") if r in set(per["role"])]
    targets = sorted(per["target"].unique())
    fig, axes = plt.subplots(1, 2, figsize=(8, 0.8 + 0.45 * len(targets) * len(roles) / 2 + 1))
    for ax, column, label in ((axes[0], "cpu", "CPU (cores, mean)"), (axes[1], "rss", "memory (MiB, mean)")):
        height = 0.8 / max(len(roles), 1)
        y = np.arange(len(targets))
        for j, role in enumerate(roles):
            vals = [per[(per["target"] == t) & (per["role"] == role)][column].mean() for t in targets]
            ax.barh(y + j * height - 0.4 + height / 2, vals, height,
                    color=[colours.get(t, "#333") for t in targets], alpha=1.0 - 0.3 * j,
                    hatch=["", "//", ".."][j], edgecolor="white")
        ax.set_yticks(y, targets)
        ax.invert_yaxis()
        ax.set_xlabel(label)
    hatches = {"gateway": "", "mock": "//", "loadgen": ".."}
    handles = [Patch(facecolor="#c8c8c8", edgecolor="white", hatch=hatches[r], label=r) for r in roles]
    fig.legend(handles=handles, loc="lower center", ncol=len(roles), frameon=False, fontsize=8,
               bbox_to_anchor=(0.5, -0.06))
    fig.suptitle("Resource usage during the measurement (colour: target, pattern: process)")
    return _svg(fig)


def overhead_bars(overhead: pd.DataFrame, colours: dict[str, str]) -> str:
    """Added latency (µs, symmetric log scale) at p50/p90/p99 per target, with 95% interval bars."""
    quantiles = ["p50", "p90", "p99"]
    data = overhead.sort_values("target")
    fig, ax = plt.subplots(figsize=(7, 3.6))
    width = 0.8 / max(len(data), 1)
    x = np.arange(len(quantiles))
    for i, r in enumerate(data.to_dict("records")):
        values = np.array([r[f"added_{q}_us"] for q in quantiles], dtype=float)
        low = np.array([r[f"added_{q}_us_ci_low"] for q in quantiles], dtype=float)
        high = np.array([r[f"added_{q}_us_ci_high"] for q in quantiles], dtype=float)
        err = np.nan_to_num(np.vstack([values - low, high - values]).clip(min=0))
        ax.bar(x + i * width - 0.4 + width / 2, values, width, yerr=err, capsize=3, label=r["target"],
               color=colours.get(r["target"], "#333"))
    ax.set_yscale("symlog", linthresh=10)
    ax.axhline(0, color="#333", linewidth=0.8)
    ax.set_xticks(x, quantiles)
    ax.set_ylabel("added latency (µs, symlog)")
    ax.set_title("Overhead at concurrency 1: target minus direct")
    ax.legend(frameon=False, fontsize=8, ncol=min(len(data), 4))
    return _svg(fig)


def frontier(probes: pd.DataFrame, front: pd.DataFrame, colours: dict[str, str]) -> str:
    """p99 against offered rate for every probe; the bounds as dashed lines."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for target, frame in probes.dropna(subset=["p99_ms"]).groupby("target", sort=True):
        colour = colours.get(str(target), "#333")
        for repeat, part in frame.groupby("repeat"):
            part = part.sort_values("rate")
            ax.plot(part["rate"], part["p99_ms"], color=colour, alpha=0.5, linewidth=1)
            clean = part["clean"].astype(bool)
            ax.scatter(part.loc[clean, "rate"], part.loc[clean, "p99_ms"], color=colour, s=18,
                       label=str(target) if repeat == frame["repeat"].min() else None)
            ax.scatter(part.loc[~clean, "rate"], part.loc[~clean, "p99_ms"], facecolors="none", edgecolors=colour, s=18)
    for bound in sorted(front["p99_bound_ms"].unique()):
        ax.axhline(bound, color="#777", linestyle="--", linewidth=0.8)
        ax.text(ax.get_xlim()[0], bound, f" p99 {bound:g} ms", va="bottom", fontsize=7, color="#555")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("offered rate (requests/s, log)")
    ax.set_ylabel("p99 latency (ms, log)")
    ax.set_title("Capacity frontier: p99 against arrival rate")
    ax.legend(frameon=False, fontsize=8)
    return _svg(fig)


def scaling(series: pd.DataFrame, stages: pd.DataFrame, scaling_frame: pd.DataFrame, colours: dict[str, str]) -> str:
    """A ramp: throughput and p95 latency against active VUs; faint dots per second, lines through the stages."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 5.6), sharex=True)
    up = stages[~stages["ramps_down"].astype(bool)]
    for target, frame in up.groupby("target", sort=True):
        colour = colours.get(str(target), "#333")
        frame = frame.sort_values("stage")
        seconds = series[series["target"] == target]
        if "vus" in seconds:
            seconds = seconds.sort_values("t_s").assign(vus=lambda f: f["vus"].ffill())
            top.scatter(seconds["vus"], seconds["requests"], s=4, color=colour, alpha=0.15, linewidths=0)
        top.plot(frame["vus_mean"], frame["rps"], marker="o", color=colour, label=str(target))
        bottom.plot(frame["vus_mean"], frame["p95_ms"], marker="o", color=colour)
        knee = scaling_frame[(scaling_frame["target"] == target)]["knee_stage"].dropna()
        if not knee.empty:
            at = frame[frame["stage"] == int(knee.iloc[0])]
            top.scatter(at["vus_mean"], at["rps"], s=120, facecolors="none", edgecolors=colour, linewidths=1.5)
            bottom.scatter(at["vus_mean"], at["p95_ms"], s=120, facecolors="none", edgecolors=colour, linewidths=1.5)
    return _two_panels(fig, top, bottom, "Throughput ramp: where each target stops scaling (circled)", "requests / s",
                       "p95 latency per stage (ms)", "active virtual users (stage mean; dots: each second)")


def drift(series: pd.DataFrame, resources: pd.DataFrame, colours: dict[str, str], window_s: float) -> str:
    """A sustained run: median latency (10 s rolling) and the gateway's memory over time, repeat 1 of each
    target; the first and last windows compared in the report shaded."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 5), sharex=True)
    end = 0.0
    for target, frame in _first_repeats(series).groupby("target", sort=True):
        frame = frame.sort_values("t_s").iloc[1:-1]
        rolling = frame["latency_p50_ms"].rolling(10, min_periods=3, center=True).median()
        top.plot(frame["t_s"], rolling, color=colours.get(str(target), "#333"), label=str(target))
        end = max(end, float(frame["t_s"].max()) if not frame.empty else 0.0)
    if not resources.empty and "role" in resources:
        gw = resources[(resources["role"] == "gateway") & (resources["repeat"] == 1)]
        for target, frame in gw.groupby("target", sort=True):
            frame = frame.sort_values("t_s")
            bottom.plot(frame["t_s"], frame["rss_mib"], color=colours.get(str(target), "#333"))
    for ax in (top, bottom):
        ax.axvspan(0, window_s, color="#999", alpha=0.12, linewidth=0)
        if end > 2 * window_s:
            ax.axvspan(end - window_s, end, color="#999", alpha=0.12, linewidth=0)
    title = "Sustained load: latency and gateway memory over time (shaded: the minutes compared)"
    return _two_panels(fig, top, bottom, title, "latency p50 (ms, 10 s rolling)", "gateway RSS (MiB)",
                       "seconds into the measurement")


def policy_deltas(policy: pd.DataFrame, colours: dict[str, str]) -> str:
    """Δp50 against `none` (µs) per target and policy, with 95% interval bars; one colour per target."""
    data = policy[(policy["policy"] != "none") & policy["delta_p50_us"].notna()]
    labels = [f"{r['entry']} {r['policy']}" for r in data.to_dict("records")]
    fig, ax = plt.subplots(figsize=(7, max(2.0, 0.32 * len(labels) + 1.0)))
    y = np.arange(len(labels))
    values = data["delta_p50_us"].to_numpy(dtype=float)
    err = np.nan_to_num(np.vstack([values - data["delta_p50_us_ci_low"].to_numpy(dtype=float),
                                   data["delta_p50_us_ci_high"].to_numpy(dtype=float) - values]).clip(min=0))
    ax.barh(y, values, xerr=err, capsize=3,
            color=[colours.get(f"{e}+none", colours.get(t, "#333")) for e, t in zip(data["entry"], data["target"],
                                                                                       strict=True)])
    ax.axvline(0, color="#333", linewidth=0.8)
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.set_xscale("symlog", linthresh=10)
    ax.set_xlabel("added p50 against the same target with no policy (µs, symlog)")
    ax.set_title("Policy cost at concurrency 1")
    return _svg(fig)
