"""Every figure of the pipeline (matplotlib, Agg backend; no display, no network).

Every function takes aggregated numbers (never patient-level rows). The report's
figures are written as PNG files (a path in, the path out); the profile's
availability chart is returned as PNG bytes for Dagster metadata, with
:func:`png_markdown` to inline it.

pyplot is imported on first use: the code location imports this module, and
importing pyplot costs a few tenths of a second that only drawing should pay.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fusion_assets.disclosure import (  # noqa: E402
    SMALL_CELL_LIMIT,
    count_text,
    partition_suppression,
)

DPI = 90


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # headless: the pipeline runs on servers without a display
    import matplotlib.pyplot as plt

    return plt


def _colours(strategies: list[str]) -> dict[str, tuple]:
    cmap = _pyplot().get_cmap("tab10")
    return {s: cmap(i % 10) for i, s in enumerate(strategies)}


def _save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    _pyplot().close(fig)
    return path


def forest_plot(table: pd.DataFrame, strategies: list[str], path: Path) -> Path:
    """AUROC with CI per subgroup (rows) × strategy (colour); suppressed rows omitted."""
    plt = _pyplot()
    t = table[table["strategy"].isin(strategies) & ~table["suppressed"] & table["auroc"].notna()]
    groups = list(dict.fromkeys(zip(t["subgroup_type"], t["subgroup"], strict=True)))
    colours = _colours(strategies)
    height = max(2.5, 0.22 * len(groups) * max(1, len(strategies)) ** 0.5 + 1.2)
    fig, ax = plt.subplots(figsize=(8, height))
    step = 0.8 / max(1, len(strategies))
    for j, s in enumerate(strategies):
        rows = t[t["strategy"] == s].set_index(["subgroup_type", "subgroup"])
        ys, xs, lo, hi = [], [], [], []
        for i, key in enumerate(groups):
            if key in rows.index:
                r = rows.loc[key]
                ys.append(i + (j - (len(strategies) - 1) / 2) * step)
                xs.append(r["auroc"])
                lo.append(r["auroc"] - r["auroc_ci_low"])
                hi.append(r["auroc_ci_high"] - r["auroc"])
        ax.errorbar(xs, ys, xerr=[lo, hi], fmt="o", ms=3, lw=1, color=colours[s], label=s)
    if "oracle_auroc" in t.columns and t["oracle_auroc"].notna().any():
        # synthetic cohorts: the Bayes-optimal AUROC of each subgroup, the ceiling to read against
        oracle = t.groupby(["subgroup_type", "subgroup"], sort=False)["oracle_auroc"].first()
        points = [(oracle.get(key), i) for i, key in enumerate(groups)]
        points = [(x, i) for x, i in points if x is not None and np.isfinite(x)]
        if points:
            xs, ys = zip(*points, strict=True)
            ax.scatter(xs, ys, marker="|", s=160, color="black", zorder=3, label="oracle")
    ax.set_yticks(range(len(groups)))
    ax.set_yticklabels([f"{k}: {n}" if k != "all" else "all patients" for k, n in groups])
    ax.invert_yaxis()
    ax.axvline(0.5, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("AUROC (95% paired bootstrap CI)")
    # outside the axes: inside, the legend hid the lowest subgroups' intervals
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title("AUROC by subgroup")
    return _save(fig, path)


def degradation_plot(curves: pd.DataFrame, strategies: list[str], path: Path) -> Path:
    """Mean AUROC (± seed SD band) against the missingness rate, one panel per scenario."""
    plt = _pyplot()
    scenarios = sorted(curves["scenario"].unique(), key=lambda s: (s != "global", s))
    n = max(1, len(scenarios))
    cols = min(3, n)
    rows = int(np.ceil(n / cols))
    # one y-axis for every panel, so the scenarios' drops compare at a glance
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False, sharey=True)
    colours = _colours(strategies)
    for ax, sc in zip(axes.ravel(), scenarios, strict=False):
        for s in strategies:
            g = curves[(curves["scenario"] == sc) & (curves["strategy"] == s)].sort_values("rate")
            if g.empty:
                continue
            sd = g["auroc_sd"].fillna(0.0)
            ax.plot(g["rate"], g["auroc_mean"], marker="o", ms=3, color=colours[s], label=s)
            ax.fill_between(
                g["rate"], g["auroc_mean"] - sd, g["auroc_mean"] + sd, color=colours[s], alpha=0.15
            )
        ax.set_title(sc, fontsize=9)
        ax.set_xlabel("rate of modalities removed")
        ax.set_ylabel("AUROC")
    for ax in axes.ravel()[len(scenarios) :]:
        ax.axis("off")
    axes.ravel()[0].legend(fontsize=7)
    fig.suptitle("Degradation as modalities go missing (mean over mask seeds ± SD)")
    fig.tight_layout()
    return _save(fig, path)


def calibration_plot(reliability: pd.DataFrame, strategies: list[str], path: Path) -> Path:
    """Reliability diagram: observed event rate against mean predicted probability."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    colours = _colours(strategies)
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":", label="ideal")
    for s in strategies:
        g = reliability[reliability["strategy"] == s]
        if not g.empty:
            ax.plot(g["mean_predicted"], g["observed"], marker="o", ms=3, color=colours[s], label=s)
    ax.set_xlabel("mean predicted probability (equal-mass bins)")
    ax.set_ylabel("observed event rate")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    ax.set_title("Calibration on the test split")
    return _save(fig, path)


def pattern_counts_plot(
    counts: pd.DataFrame,
    path: Path,
    suppress_below: int = SMALL_CELL_LIMIT,
    hidden: Sequence[bool] | None = None,
) -> Path:
    """Test patients per availability pattern; small cells and ``hidden`` ones (secondary
    suppression) drawn as empty bars labelled '<limit' / 'suppressed'."""
    plt = _pyplot()
    labels, shown, texts = pattern_bars(counts["pattern"], counts["n"], suppress_below, hidden)
    fig, ax = plt.subplots(figsize=(7, max(2.0, 0.28 * len(labels) + 1)))
    ax.barh(labels[::-1], shown[::-1], color="#4c72b0")
    for i, (v, text) in enumerate(zip(shown[::-1], texts[::-1], strict=True)):
        ax.text(v, i, f" {text}", va="center", fontsize=7)
    ax.set_xlabel("test patients")
    ax.set_title("Modality availability patterns")
    return _save(fig, path)


def pattern_bars(
    patterns: Sequence[str],
    counts: Sequence[float],
    limit: int = SMALL_CELL_LIMIT,
    hidden: Sequence[bool] | None = None,
    total: float | None = None,
) -> tuple[list[str], list[float], list[str]]:
    """What a pattern chart draws, largest first: labels, bar lengths (0 for a suppressed
    cell: its length would be its count) and the annotation of each bar. ``hidden``
    defaults to the small-cell rule with secondary suppression against ``total``."""
    values = [float(v) for v in counts]
    if hidden is None:
        hidden = partition_suppression(values, total, limit=limit)
    order = sorted(range(len(values)), key=lambda i: -values[i])
    labels = [str(patterns[i]) for i in order]
    shown = [0.0 if hidden[i] else values[i] for i in order]
    texts = [count_text(values[i], hidden[i], limit) for i in order]
    return labels, shown, texts


def pattern_chart_png(summary: dict[str, Any], top: int = 20) -> bytes:
    """Patients per availability pattern of a profile summary (horizontal bars), as PNG bytes.

    ``summary``: ``summarize_profile``'s dict (``patterns`` most common first, ``n_patients``).
    """
    plt = _pyplot()
    everything = summary["patterns"]
    labels, shown, texts = pattern_bars(
        [p["pattern"] for p in everything],
        [p["n"] for p in everything],
        total=summary["n_patients"],
    )
    labels, shown, texts = labels[:top][::-1], shown[:top][::-1], texts[:top][::-1]
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(labels) + 1.2))
    ax.barh(labels, shown, color="#4c72b0")
    for i, (v, text) in enumerate(zip(shown, texts, strict=True)):
        ax.text(v, i, f" {text}", va="center", fontsize=7)
    ax.set_xlabel("patients")
    ax.set_title(f"Availability patterns (n = {summary['n_patients']})")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    plt.close(fig)
    return buf.getvalue()


def png_markdown(png: bytes, alt: str = "availability patterns") -> str:
    """Inline markdown image (base64 data URI) for Dagster markdown metadata."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"


def decision_curve_plot(
    curves: pd.DataFrame, strategies: list[str], path: Path, max_panels: int = 6
) -> Path:
    """Net benefit against the risk threshold: all patients, then the largest availability
    patterns (one panel each, shared y-axis), with treat all and treat none."""
    plt = _pyplot()
    groups = list(dict.fromkeys(curves["subgroup"]))[:max_panels]
    cols = min(3, len(groups))
    rows = int(np.ceil(len(groups) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False, sharey=True)
    colours = _colours(strategies)
    for ax, group in zip(axes.ravel(), groups, strict=False):
        g = curves[curves["subgroup"] == group]
        for s in strategies:
            c = g[g["strategy"] == s]
            if len(c):
                ax.plot(c["threshold"], c["net_benefit"], lw=1.2, color=colours[s], label=s)
        for s, style in (("treat all", "--"), ("treat none", ":")):
            c = g[g["strategy"] == s]
            ax.plot(c["threshold"], c["net_benefit"], lw=1, ls=style, color="grey", label=s)
        top = g.loc[g["strategy"] != "treat all", "net_benefit"].max()
        ax.set_ylim(-0.05, max(0.05, float(top) * 1.15) if np.isfinite(top) else 0.5)
        ax.set_title("all patients" if group == "all" else group, fontsize=9)
        ax.set_xlabel("risk threshold")
    for ax in axes.ravel()[len(groups) :]:
        ax.axis("off")
    axes[0, 0].set_ylabel("net benefit")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle("Decision curves (net benefit; above treat all and treat none = useful)")
    fig.tight_layout()
    return _save(fig, path)


def winner_map(cells: pd.DataFrame, path: Path) -> Path:
    """The study's cells (design cell x seed) coloured by the measured winner; the text is
    the recommendation, bold and boxed where it disagrees with the measurement
    (``cells``: ``study/analysis.py``'s frame: block, name, seed, winner, recommended, agrees)."""
    from matplotlib.patches import Patch, Rectangle

    plt = _pyplot()
    strategies = ["early", "intermediate", "late", "attention"]
    colours = _colours(strategies)
    design = list(dict.fromkeys(cells["block"] + "/" + cells["name"]))
    seeds = sorted(cells["seed"].unique())
    fig, ax = plt.subplots(figsize=(4.5 + 0.9 * len(seeds), 1.2 + 0.42 * len(design)))
    for _, row in cells.iterrows():
        y = design.index(f"{row['block']}/{row['name']}")
        x = seeds.index(row["seed"])
        ax.add_patch(Rectangle((x, y), 1, 1, color=colours.get(row["winner"], "grey"), alpha=0.8))
        ax.text(
            x + 0.5,
            y + 0.5,
            row["recommended"][:5],
            ha="center",
            va="center",
            fontsize=8,
            fontweight="normal" if row["agrees"] else "bold",
            bbox=None if row["agrees"] else {"facecolor": "white", "edgecolor": "black", "pad": 1},
        )
    ax.set_xlim(0, len(seeds))
    ax.set_ylim(0, len(design))
    ax.invert_yaxis()
    ax.set_xticks([i + 0.5 for i in range(len(seeds))], [f"seed {s}" for s in seeds])
    ax.set_yticks([i + 0.5 for i in range(len(design))], design, fontsize=8)
    ax.set_title("Measured winner (colour), recommendation (text; boxed: disagrees)", fontsize=9)
    handles = [Patch(color=colours[s], label=s) for s in strategies]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return _save(fig, path)
