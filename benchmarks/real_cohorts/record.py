"""Results of the real-cohort benchmark: one JSON document, rendered as Markdown.

``benchmarks/results/real_cohorts.json`` keeps one entry per cohort (a run with
``--cohorts a,b`` replaces those entries and keeps the others, each with the
commit it was measured at); ``real_cohorts.md`` is rendered from it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from real_cohorts.baselines import HGB, LOGISTIC


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {"cohorts": {}}


def save(document: dict[str, Any], json_path: Path, md_path: Path) -> None:
    json_path.write_text(json.dumps(document, indent=2, default=_plain) + "\n")
    md_path.write_text(render(document))


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"not JSON serialisable: {value!r}")


def _f(x: Any, signed: bool = False) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{x:+.3f}" if signed else f"{x:.3f}"


def _ci(point: Any, lo: Any, hi: Any, signed: bool = False) -> str:
    return f"{_f(point, signed)} [{_f(lo, signed)}, {_f(hi, signed)}]"


def _row(rows: list[dict], strategy: str | None) -> dict | None:
    return next((r for r in rows if r["strategy"] == strategy), None)


def _auroc(row: dict | None) -> str:
    return _ci(row["auroc"], row["auroc_ci_low"], row["auroc_ci_high"]) if row else "–"


def _slope(row: dict | None) -> str:
    return _ci(row["cal_slope"], row["cal_slope_ci_low"], row["cal_slope_ci_high"]) if row else "–"


def _best(rows: list[dict], single: bool) -> dict | None:
    chosen = [
        r
        for r in rows
        if r["source"] == "pipeline" and r["strategy"].startswith("single:") == single
    ]
    return max(chosen, key=lambda r: r["auroc"]) if chosen else None


def _met(gap: dict | None) -> str:
    if gap is None:
        return "–"
    return "met" if gap["met"] else "**not met**"


def summary_table(document: dict[str, Any]) -> list[str]:
    lines = [
        "| cohort | n (events) | evaluation | best strategy | AUROC [CI] | cal. slope [CI] "
        "| recommended | AUROC [CI] | cal. slope [CI] | best single modality | AUROC [CI] "
        "| HGB AUROC [CI] | logistic AUROC [CI] | wall s |",
        "|" + "---|" * 14,
    ]
    for name, c in document["cohorts"].items():
        rows = c.get("rows", [])
        best, single = _best(rows, single=False), _best(rows, single=True)
        rec = _row(rows, c.get("recommended"))
        lines.append(
            f"| {name} | {c.get('n', '–')} ({c.get('events', '–')}) | {c.get('evaluation', '–')} "
            f"| {best['strategy'] if best else '–'} | {_auroc(best)} | {_slope(best)} "
            f"| {c.get('recommended') or '–'} | {_auroc(rec)} | {_slope(rec)} "
            f"| {single['strategy'] if single else '–'} | {_auroc(single)} "
            f"| {_auroc(_row(rows, HGB))} | {_auroc(_row(rows, LOGISTIC))} "
            f"| {c.get('wall_s', {}).get('total', '–')} |"
        )
    return lines


def gaps_table(document: dict[str, Any]) -> list[str]:
    lines = [
        "| cohort | best − better baseline, ΔAUROC [paired CI] | best: slope CI ∋ 1 or in "
        "[0.8, 1.25] | recommended: same | best fused − best single, ΔAUROC [paired CI] |",
        "|---|---|---|---|---|",
    ]
    for name, c in document["cohorts"].items():
        g = c.get("gaps", {})
        vs_base, fused = g.get("best_vs_baseline"), g.get("fused_vs_single")
        cells = [
            (
                f"{vs_base['a']} − {vs_base['b']}: "
                f"{_ci(vs_base['delta'], vs_base['ci_low'], vs_base['ci_high'], True)} "
                f"{_met(vs_base)}"
            )
            if vs_base
            else "–",
            *[
                f"{g[k]['strategy']} {_ci(g[k]['cal_slope'], g[k]['ci_low'], g[k]['ci_high'])} "
                f"{_met(g[k])}"
                if k in g
                else "–"
                for k in ("best_calibration", "recommended_calibration")
            ],
            (
                f"{fused['a']} − {fused['b']}: "
                f"{_ci(fused['delta'], fused['ci_low'], fused['ci_high'], True)} {_met(fused)}"
            )
            if fused
            else "–",
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def cohort_section(name: str, c: dict[str, Any]) -> list[str]:
    lines = [f"### {name}", "", c.get("description", "").strip(), ""]
    mods = ", ".join(
        f"{m['name']} ({m['kind']}, {m['width']} features"
        + (f", {m['categorical']} categorical" if m.get("categorical") else "")
        + f", present for {m['present']})"
        for m in c.get("modalities", [])
    )
    lines += [
        f"- patients {c.get('n', '–')}, events {c.get('events', '–')}; "
        f"evaluation: {c.get('evaluation', '–')}",
        f"- modalities: {mods or '–'}",
        f"- recommended (profile.recommendation rank 1): {c.get('recommended') or '–'}; "
        f"best single modality as the pipeline picks it (validation AUROC): "
        f"{c.get('best_single_by_validation') or '–'}",
        f"- pipeline: {c['pipeline']['status']}"
        + (f" (exit {c['pipeline']['rc']})" if c["pipeline"].get("rc") else "")
        + "; wall time "
        + ", ".join(f"{k} {v} s" for k, v in c.get("wall_s", {}).items() if v is not None)
        + f"; commit {c.get('commit', '–')}",
    ]
    if c.get("baseline_features") is not None:
        dropped = {int(k): v for k, v in c.get("baseline_empty_columns_dropped", {}).items()}
        empty = ", ".join(f"{v} fold model(s) dropped {k}" for k, v in dropped.items() if k)
        lines.append(
            f"- baselines: {c['baseline_features']} concatenated feature columns"
            + (f"; columns with no training value: {empty}" if empty else "")
        )
    if c.get("consistent") is not None:
        lines.append(
            "- recomputed pipeline AUROCs and intervals equal eval.subgroup_metrics: "
            + ("yes" if c["consistent"] else "**no**")
        )
    if c["pipeline"].get("log_tail"):
        lines += ["", "Pipeline output, last lines:", "", "```", *c["pipeline"]["log_tail"], "```"]
    if c.get("error"):
        lines += ["", f"Benchmark error: `{c['error']}`"]
    rows = c.get("rows", [])
    if rows:
        lines += [
            "",
            "| strategy | source | AUROC [95% CI] | cal. slope [95% CI] | cal. intercept | Brier |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['strategy']} | {r['source']} | {_auroc(r)} | {_slope(r)} "
            f"| {_f(r['cal_intercept'], True)} | {_f(r['brier'])} |"
            for r in rows
        ]
    return [*lines, ""]


def wide_import_section(w: dict[str, Any]) -> list[str]:
    return [
        "## Wide dense omics import (optional part, `--wide-import`)",
        "",
        f"`fusion-assets import` of a {w['columns']:,}-column dense omics CSV "
        f'({w["patients"]} patients, seeded random values, `features: "regex:..."`): '
        f"status **{w['status']}**, "
        + (f"{w['seconds']:.0f} s" if w.get("seconds") is not None else "no time")
        + f" (timeout {w['timeout_s']} s; "
        f"issue 11's target: under {w['target_s']} s — {'met' if w.get('met') else 'not met'}); "
        f"commit {w.get('commit', '–')}, measured {w.get('measured_at', '–')}.",
        "",
    ]


def render(document: dict[str, Any]) -> str:
    lines = [
        "# Real cohorts: the pipeline against plain scikit-learn baselines on the same folds",
        "",
        "Written by `python benchmarks/real_cohorts.py` (see its docstring); do not edit by hand.",
        "Per cohort: every strategy's all-patients AUROC and calibration slope from the "
        "pipeline's `eval.subgroup_metrics`, and a default `HistGradientBoostingClassifier` "
        "(`baseline:hgb`) and an L2 logistic regression (`baseline:logistic`) on the "
        "concatenated features, fitted on the pipeline's own folds and scored with its "
        "evaluation (per-repeat metrics averaged over repeats in cross-validation, the test "
        "split in held-out mode; paired label-stratified bootstrap, 95 % percentile "
        "intervals). Calibration-slope intervals are the subgroup table's own (the slope "
        "refitted in every resample, the same resamples as the AUROC).",
        "",
        f"Last run: {document.get('measured_at', '–')}, {document.get('machine', '')}.",
        "",
        "## Summary",
        "",
        *summary_table(document),
        "",
        '## Issue 11\'s "Done when", per cohort',
        "",
        *gaps_table(document),
        "",
        "Best strategy: the pipeline's highest all-patients AUROC, single modalities excluded "
        "(references included); best fused: early, intermediate, late or attention; best "
        "single: the highest all-patients AUROC among `single:*` (the report itself picks "
        'its best single modality on validation AUROC: listed per cohort below). "met" '
        "follows issue 11: ΔAUROC ≥ −0.005; slope interval containing 1 or slope in "
        "[0.8, 1.25].",
        "",
        "## Cohorts",
        "",
    ]
    for name, c in document["cohorts"].items():
        lines += cohort_section(name, c)
    if "wide_import" in document:
        lines += wide_import_section(document["wide_import"])
    return "\n".join(lines).rstrip() + "\n"
