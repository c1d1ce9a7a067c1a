"""The subgroup report as Markdown and as one self-contained HTML file.

``render_report(result, out_dir)`` writes ``report.md``, ``report.html`` (plots
embedded as base64 PNG, inline CSS, no external resources) and the PNGs under
``out_dir/plots/``. It only reads aggregated tables from
:class:`~fusion_assets.metrics.evaluate.EvaluationResult`, so no patient
identifier can reach the report. Every count, event count, rate and percentage
passes the small-cell rule of :mod:`fusion_assets.disclosure` (small cells and
the cells that would reveal them by subtraction are not printed; sensitivity and
specificity only over at least 11 events / non-events).
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from fusion_assets.disclosure import (
    SUBGROUP_KEYS,
    count_text,
    denominator_publishable,
    is_small,
    partition_suppression,
    rate_publishable,
    subgroup_disclosure,
)
from fusion_assets.metrics import plots
from fusion_assets.metrics.calibration import RULE, judge_calibration
from fusion_assets.metrics.evaluate import EvaluationResult

HEADLINE_COLUMNS = [
    "strategy",
    "n",
    "auroc",
    "auroc_ci_low",
    "auroc_ci_high",
    "delta_auroc_vs_reference",
    "delta_auroc_vs_reference_ci_low",
    "delta_auroc_vs_reference_ci_high",
    "brier",
    "cal_intercept",
    "cal_intercept_ci_low",
    "cal_intercept_ci_high",
    "cal_slope",
    "cal_slope_ci_low",
    "cal_slope_ci_high",
    "lift_captured",
]
# Columns that exist only where the cohort has an oracle (synthetic cohorts).
ORACLE_COLUMNS = ("lift_captured",)
# Below these the report warns that intervals are wide.
SMALL_TEST_SET = 1000
WIDE_INTERVAL = 0.10

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1100px;
color:#222;line-height:1.45;padding:0 1em}
h1{border-bottom:2px solid #4c72b0;padding-bottom:.2em}h2{margin-top:1.8em;color:#2b4a7a}
table{border-collapse:collapse;font-size:12px;margin:.6em 0}
th,td{border:1px solid #ccc;padding:3px 6px;text-align:right}th{background:#eef2f8}
td:first-child,th:first-child,td.txt{text-align:left}
.warn{background:#fff4e0;border-left:4px solid #e0a030;padding:.5em 1em}
.ok{background:#eaf6ea;border-left:4px solid #4a4;padding:.5em 1em}
.bad{background:#fdeaea;border-left:4px solid #c33;padding:.5em 1em}
img{max-width:100%;border:1px solid #eee}
.card{border:1px solid #ddd;border-radius:6px;padding:.4em 1em;margin:.8em 0}
"""


@dataclass
class ReportFiles:
    markdown_path: Path
    html_path: Path
    plot_paths: dict[str, Path] = field(default_factory=dict)
    headline: pd.DataFrame = field(default_factory=pd.DataFrame)
    metadata_plot: Path | None = None  # the one PNG to attach to Dagster metadata
    estimate: str = ""  # which estimate every figure is (for logs and metadata)


# ---------------------------------------------------------------- formatting


def _num(x, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)) or pd.isna(x):
        return "–"
    return f"{x:.{digits}f}"


def _ci(est, lo, hi, signed: bool = False, digits: int = 3) -> str:
    if pd.isna(est):
        return "–"
    f = f"{{:{'+' if signed else ''}.{digits}f}}"
    if pd.isna(lo) or pd.isna(hi):
        return f.format(est)
    return f"{f.format(est)} [{f.format(lo)}, {f.format(hi)}]"


def _md_table(df: pd.DataFrame) -> str:
    if df.empty:
        return "_(none)_\n"
    head = "| " + " | ".join(map(str, df.columns)) + " |"
    sep = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(str(v).replace("|", "/") for v in row) + " |" for row in df.values]
    return "\n".join([head, sep, *body]) + "\n"


def _html_table(df: pd.DataFrame) -> str:
    if df.empty:
        return "<p><em>(none)</em></p>"
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>"
        for row in df.values
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


@dataclass
class _Section:
    title: str
    parts: list = field(default_factory=list)  # ("p"|"table"|"img"|"note", payload[, css])

    def p(self, text: str) -> _Section:
        self.parts.append(("p", text))
        return self

    def note(self, text: str, kind: str = "warn") -> _Section:
        self.parts.append(("note", text, kind))
        return self

    def table(self, df: pd.DataFrame) -> _Section:
        self.parts.append(("table", df))
        return self

    def img(self, path: Path, alt: str) -> _Section:
        self.parts.append(("img", path, alt))
        return self

    def bullets(self, items: list[str]) -> _Section:
        self.parts.append(("ul", items))
        return self

    def markdown(self, level: int = 2) -> str:
        out = [f"{'#' * level} {self.title}\n"]
        for part in self.parts:
            kind = part[0]
            if kind == "p":
                out.append(part[1] + "\n")
            elif kind == "note":
                out.append(f"> **{'Note' if part[2] != 'bad' else 'Warning'}:** {part[1]}\n")
            elif kind == "table":
                out.append(_md_table(part[1]))
            elif kind == "img":
                out.append(f"![{part[2]}](plots/{Path(part[1]).name})\n")
            elif kind == "ul":
                out.append("\n".join(f"- {i}" for i in part[1]) + "\n")
        return "\n".join(out)

    def html(self, level: int = 2) -> str:
        out = [f"<h{level}>{html.escape(self.title)}</h{level}>"]
        for part in self.parts:
            kind = part[0]
            if kind == "p":
                out.append(f"<p>{html.escape(part[1])}</p>")
            elif kind == "note":
                out.append(f'<div class="{part[2]}">{html.escape(part[1])}</div>')
            elif kind == "table":
                out.append(_html_table(part[1]))
            elif kind == "img":
                data = base64.b64encode(Path(part[1]).read_bytes()).decode("ascii")
                out.append(f'<img alt="{html.escape(part[2])}" src="data:image/png;base64,{data}">')
            elif kind == "ul":
                out.append(
                    "<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in part[1]) + "</ul>"
                )
        return "\n".join(out)


# ---------------------------------------------------------------- content


def has_oracle(result: EvaluationResult) -> bool:
    """Whether the cohort has an oracle (synthetic): only then do oracle sentences apply."""
    return bool(result.table["oracle_auroc"].notna().any())


def headline_table(result: EvaluationResult) -> pd.DataFrame:
    """All-patients row per strategy (numeric; ``HEADLINE_COLUMNS``, the oracle's only with
    an oracle), best AUROC first."""
    t = result.table
    columns = [c for c in HEADLINE_COLUMNS if has_oracle(result) or c not in ORACLE_COLUMNS]
    h = t[t["subgroup_type"] == "all"][columns]
    return h.sort_values("auroc", ascending=False, ignore_index=True)


def estimate_description(result: EvaluationResult) -> str:
    """Which estimate every figure of the report (and its logs and metadata) is."""
    r = result.subgroups.n_repeats
    if r > 1:
        return (
            f"per-repeat single-model estimate: each of the {r} repeats' out-of-fold predictions "
            f"scored on its own, then averaged over the {r} repeats (not the score of "
            "probabilities averaged over repeats, which would be an ensemble of fold models)"
        )
    return "estimate on the held-out test split"


def _calibration_cells(h: pd.DataFrame) -> dict[str, list[str]]:
    """Intercept and slope with their intervals, and the rule's judgement, per row."""
    judged = [judge_calibration(r) for _, r in h.iterrows()]
    return {
        "cal. intercept [CI]": [
            _ci(a, lo, hi, signed=True, digits=2)
            for a, lo, hi in h[
                ["cal_intercept", "cal_intercept_ci_low", "cal_intercept_ci_high"]
            ].values
        ],
        "cal. slope [CI]": [
            _ci(a, lo, hi, digits=2)
            for a, lo, hi in h[["cal_slope", "cal_slope_ci_low", "cal_slope_ci_high"]].values
        ],
        "calibration": [j.label for j in judged],
    }


def _headline_display(h: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(
        {
            "strategy": h["strategy"],
            "n": h["n"],
            "AUROC [95% CI]": [
                _ci(a, lo, hi) for a, lo, hi in h[["auroc", "auroc_ci_low", "auroc_ci_high"]].values
            ],
            "ΔAUROC vs reference [CI]": [
                _ci(a, lo, hi, signed=True)
                for a, lo, hi in h[
                    [
                        "delta_auroc_vs_reference",
                        "delta_auroc_vs_reference_ci_low",
                        "delta_auroc_vs_reference_ci_high",
                    ]
                ].values
            ],
            "Brier": h["brier"].map(_num),
            **_calibration_cells(h),
        }
    )
    if "lift_captured" in h.columns:
        out["lift captured"] = h["lift_captured"].map(lambda x: _num(x, 2)).to_numpy()
    return out


SUBGROUP_TABLE_COLUMNS = [
    "subgroup",
    "strategy",
    "n",
    "events",
    "AUROC [CI]",
    "ΔAUROC vs ref [CI]",
    "AUPRC",
    "Brier",
    "slope [CI]",
    "intercept [CI]",
    "sens",
    "spec",
    "flags",
]


def _subgroup_display(
    t: pd.DataFrame, status_suppressed: str, disclosure: pd.DataFrame
) -> pd.DataFrame:
    """``disclosure``: :func:`fusion_assets.disclosure.subgroup_disclosure` of the table."""
    rows = []
    for r in t.itertuples():
        shown = disclosure.loc[(r.subgroup_type, r.subgroup)]
        if r.suppressed:
            rows.append(
                [r.subgroup, r.strategy, shown["n_text"], "–", status_suppressed]
                + ["–"] * 7
                + [status_suppressed]
            )
        else:
            rows.append(_subgroup_row(r, shown))
    return pd.DataFrame(rows, columns=SUBGROUP_TABLE_COLUMNS)


def _subgroup_row(r, shown: pd.Series) -> list:
    """One published row of a subgroup table (``SUBGROUP_TABLE_COLUMNS``); counts and the
    rates over them as ``shown`` allows."""
    flags = (["imprecise"] if r.imprecise else []) + ([r.status] if r.status != "ok" else [])
    return [
        r.subgroup,
        r.strategy,
        shown["n_text"],
        shown["events_text"],
        _ci(r.auroc, r.auroc_ci_low, r.auroc_ci_high),
        _ci(
            r.delta_auroc_vs_reference,
            r.delta_auroc_vs_reference_ci_low,
            r.delta_auroc_vs_reference_ci_high,
            signed=True,
        ),
        _num(r.auprc),
        _num(r.brier),
        _ci(r.cal_slope, r.cal_slope_ci_low, r.cal_slope_ci_high, digits=2),
        _ci(r.cal_intercept, r.cal_intercept_ci_low, r.cal_intercept_ci_high, True, 2),
        _num(r.sensitivity, 2) if shown["sens_ok"] else "–",
        _num(r.specificity, 2) if shown["spec_ok"] else "–",
        "; ".join(flags) or "ok",
    ]


def _cohort_notes(result: EvaluationResult) -> list[tuple[str, str]]:
    c, cfg = result.cohort, result.config
    notes = []
    t = result.table
    ref = t[(t["subgroup_type"] == "all") & (t["strategy"] == cfg.reference)]
    width = float((ref["auroc_ci_high"] - ref["auroc_ci_low"]).iloc[0]) if len(ref) else np.nan
    # The evaluation design's own size warning (fusion_assets.evaluation.DesignNotes), if any.
    design_note = c["design"].size_warning(*_cohort_count_texts(result)) if "design" in c else None
    if design_note:
        notes.append((design_note, "warn"))
    elif c["n_test"] < SMALL_TEST_SET or c["events"] < cfg.imprecise_below:
        notes.append(
            (
                f"The test set is small ({_cohort_counts(result)}): "
                f"intervals are wide and subgroup differences are mostly noise.",
                "warn",
            )
        )
    if np.isfinite(width) and width > WIDE_INTERVAL:
        notes.append(
            (
                f"The all-patients AUROC interval of {cfg.reference} is {width:.3f} wide: each "
                "strategy's AUROC is imprecise at this size. A difference between two strategies "
                "is established when its paired interval (the ΔAUROC columns) excludes 0, "
                "whatever the width of the strategies' own intervals; otherwise it is not.",
                "warn",
            )
        )
    n_imp = int(t.loc[~t["suppressed"], "imprecise"].sum())
    n_sup = int(t.groupby(["subgroup_type", "subgroup"])["suppressed"].first().sum())
    if n_imp:
        notes.append(
            (
                f"{n_imp} strategy × subgroup rows have fewer than {cfg.imprecise_below} events "
                "or non-events and are flagged imprecise.",
                "warn",
            )
        )
    if n_sup:
        notes.append(
            (
                f"{n_sup} subgroup(s) have fewer than {cfg.suppress_below} patients; their metrics "
                f"are shown as {cfg.suppressed_status}.",
                "warn",
            )
        )
    return notes


def _cohort_counts(result: EvaluationResult) -> str:
    """``N test patients, E events (prevalence P)`` with the small-cell rule applied: the
    events (and the prevalence) are not printed when they or the non-events are small."""
    n, events = _cohort_count_texts(result)
    if rate_publishable(
        result.cohort["events"], result.cohort["n_test"], result.config.suppress_below
    ):
        return f"{n} test patients, {events} events, prevalence {result.cohort['prevalence']:.1%}"
    return f"{n} test patients, {events} events"


def _cohort_count_texts(result: EvaluationResult) -> tuple[str, str]:
    """The test set's size and event count as printed (events hidden when they or the
    non-events are small)."""
    c, limit = result.cohort, result.config.suppress_below
    n, events = c["n_test"], c["events"]
    if rate_publishable(events, n, limit):
        return str(n), str(events)
    return count_text(n, limit=limit), count_text(events, not is_small(events, limit), limit)


def _model_card(result: EvaluationResult, strategy: str) -> _Section:
    t = result.table
    mine = t[(t["strategy"] == strategy) & ~t["suppressed"]]
    allr = mine[mine["subgroup_type"] == "all"].iloc[0]
    sub = mine[(mine["subgroup_type"] != "all") & mine["auroc"].notna()]
    limits = _card_limitations(result, strategy, allr, sub)
    bullets = [
        f"All patients: AUROC {_ci(allr['auroc'], allr['auroc_ci_low'], allr['auroc_ci_high'])}, "
        f"Brier {_num(allr['brier'])}; {judge_calibration(allr).sentence()}.",
        *_card_subgroup_bullets(sub, result.config.reference),
        "Limitations: " + ("; ".join(limits) if limits else "none measured") + ".",
    ]
    return (
        _Section(f"Model card: {strategy}")
        .p(_card_intended_use(result, strategy, allr))
        .p(_card_data(result))
        .bullets(bullets)
    )


def _card_intended_use(result: EvaluationResult, strategy: str, allr: pd.Series) -> str:
    thr = result.subgroups.thresholds.get(strategy, float("nan"))
    limit = result.config.suppress_below
    events, n = allr["events"], allr["n"]
    sens = _num(allr["sensitivity"], 2) if denominator_publishable(events, limit) else "–"
    spec = _num(allr["specificity"], 2) if denominator_publishable(n - events, limit) else "–"
    return (
        "Intended use: ranking patients by risk of the outcome at the index time, for "
        f"cohorts whose modality mix resembles this one. At the threshold {_num(thr)} "
        f"(chosen on validation by {result.config.threshold.method}) it flags "
        f"{sens} of events (sensitivity) and clears "
        f"{spec} of non-events (specificity) on test"
        + (
            "."
            if sens != "–" and spec != "–"
            else f" (a rate over fewer than {limit} events or non-events is not shown)."
        )
    )


def pattern_disclosure(result: EvaluationResult) -> list[bool]:
    """Which rows of ``result.pattern_counts`` are hidden: small, or revealing one by
    subtraction from the test set's size, or from the size of the pooled ``other``
    pattern subgroup (the patterns under ``min_pattern_size``) that the subgroup table
    prints."""
    cfg = result.config
    n = result.pattern_counts["n"].to_numpy(dtype=float)
    pooled = n < cfg.min_pattern_size
    hidden = np.asarray(partition_suppression(n, result.cohort["n_test"], limit=cfg.suppress_below))
    # Each partition can add to the other's hidden cells: repeat until neither does.
    while pooled.sum() > 1:
        before = hidden.copy()
        hidden[pooled] = partition_suppression(
            n[pooled], n[pooled].sum(), hidden[pooled], limit=cfg.suppress_below
        )
        hidden = np.asarray(
            partition_suppression(n, result.cohort["n_test"], hidden, limit=cfg.suppress_below)
        )
        if (hidden == before).all():
            break
    return hidden.tolist()


def _card_data(result: EvaluationResult) -> str:
    pc = result.pattern_counts
    hidden = pattern_disclosure(result)
    total = max(1, int(pc["n"].sum()))
    limit = result.config.suppress_below

    def shown(n: float, hide: bool) -> str:
        if not hide:
            return f"{n / total:.0%}"
        return f"({count_text(n, True, limit)} patients)" if is_small(n, limit) else "(suppressed)"

    top = ", ".join(
        f"{p} {shown(n, hide)}"
        for (p, n), hide in zip(pc[["pattern", "n"]].values[:3], hidden[:3], strict=True)
    )
    return f"Data: {_cohort_counts(result)}; most common availability patterns: {top}."


def _card_subgroup_bullets(sub: pd.DataFrame, reference: str) -> list[str]:
    """The AUROC range over subgroups and where the strategy is clearly worse / better."""
    if not len(sub):
        return []
    lo, hi = sub.loc[sub["auroc"].idxmin()], sub.loc[sub["auroc"].idxmax()]
    bullets = [
        f"Subgroups: AUROC ranges from {lo['auroc']:.3f} ({lo['subgroup_type']}={lo['subgroup']}) "
        f"to {hi['auroc']:.3f} ({hi['subgroup_type']}={hi['subgroup']})."
    ]
    for word, rows in (
        ("worse", sub[sub["delta_auroc_vs_reference_ci_high"] < 0]),
        ("better", sub[sub["delta_auroc_vs_reference_ci_low"] > 0]),
    ):
        if len(rows):
            names = ", ".join(f"{k}={s}" for k, s in rows[["subgroup_type", "subgroup"]].values[:5])
            bullets.append(f"Clearly {word} than {reference} on: {names}.")
    return bullets


def _card_limitations(
    result: EvaluationResult, strategy: str, allr: pd.Series, sub: pd.DataFrame
) -> list[str]:
    """Measured limits: oracle lift, loss under missing modalities, imprecision, leakage."""
    limits = []
    if np.isfinite(allr["lift_captured"]):
        limits.append(
            f"captures {allr['lift_captured']:.0%} of the discrimination available "
            f"(oracle AUROC {allr['oracle_auroc']:.3f})"
        )
    limits += _card_stress_limitations(result, strategy)
    n_imp = int(sub["imprecise"].sum()) if len(sub) else 0
    if n_imp:
        limits.append(
            f"{n_imp} subgroup estimates are imprecise (<{result.config.imprecise_below} events)"
        )
    if len(result.leaks) and strategy in set(result.leaks["strategy"]):
        limits.append("FLAGGED: exceeds the oracle AUROC; suspect leakage")
    return limits


def _card_stress_limitations(result: EvaluationResult, strategy: str) -> list[str]:
    """AUROC lost under random loss of modalities, and the modality relied on most."""
    limits = []
    s = result.summary
    g = s[(s["strategy"] == strategy) & (s["scenario"] == "global")] if len(s) else s
    if len(g) and np.isfinite(g["drop"].iloc[0]):
        limits.append(
            f"loses {g['drop'].iloc[0]:.3f} AUROC on average when modalities go missing at random "
            f"({g['area_vs_late'].iloc[0]:+.3f} area vs late fusion)"
            if "area_vs_late" in g
            else f"loses {g['drop'].iloc[0]:.3f} AUROC on average when modalities go missing"
        )
    cc = result.complete_case
    loo = cc[(cc["strategy"] == strategy) & (cc["scenario"] == "leave_one_out")] if len(cc) else cc
    if len(loo) and loo["delta_vs_full"].notna().any():
        w = loo.loc[loo["delta_vs_full"].idxmin()]
        limits.append(
            f"depends most on {w['modality']} (complete cases lose {-w['delta_vs_full']:.3f} "
            "AUROC without it)"
        )
    return limits


def _methods(result: EvaluationResult) -> list[str]:
    design = result.cohort.get("design")
    extra = list(design.methods) if design is not None else []
    methods = extra + [
        f"Every figure (tables, model cards, and the Dagster log and metadata) is one estimate: the "
        f"{estimate_description(result)}.",
        "AUROC: rank-based, ties count one half. AUPRC: average precision (step-wise, as scikit-learn).",
        "Brier: mean squared error of the probability; scaled Brier = 1 − Brier / (prevalence × (1 − prevalence)).",
        "Calibration slope: b in logit P(y) = a + b·logit p; calibration intercept: a with logit p as offset "
        "(slope fixed at 1). Ideal: slope 1, intercept 0; both are refitted in every bootstrap resample "
        "(the same resamples as the AUROC) for their intervals. ECE over equal-mass bins.",
        RULE,
        "Intervals: percentile intervals of a label-stratified patient bootstrap; the same resamples are "
        "used for every strategy within a subgroup, so ΔAUROC intervals are paired: a difference is "
        "established when its paired interval excludes 0.",
        "Thresholds are chosen on the validation split and applied unchanged on test.",
        "Best single modality: the single-modality baseline with the highest validation AUROC.",
        "Degradation area: trapezoid of mean AUROC over the missingness rate, divided by the rate span "
        "(the AUROC averaged over rates); drop = AUROC at rate 0 − area.",
    ]
    if has_oracle(result):
        methods += [
            "Lift captured = (AUROC − 0.5) / (oracle AUROC − 0.5), where the oracle is the "
            "Bayes-optimal probability given the modalities each patient has (synthetic cohorts).",
            "Leakage check: a strategy whose AUROC interval lies above the oracle AUROC is flagged.",
        ]
    return methods


# ---------------------------------------------------------------- sections


def _cohort_section(result: EvaluationResult) -> _Section:
    c, cfg = result.cohort, result.config
    intro = _Section("Cohort").p(
        f"{_cohort_counts(result)}; "
        f"{count_text(c['n_validation'], limit=cfg.suppress_below)} validation patients used "
        "for thresholds and for choosing the best "
        f"single modality ({result.subgroups.best_single or 'none'}). {cfg.n_boot} paired "
        f"bootstrap resamples, {cfg.ci_level:.0%} percentile intervals."
    )
    design = c.get("design")  # fusion_assets.evaluation.DesignNotes, set by the report asset
    if design is not None and design.summary:
        intro.p(design.summary)
    for text, kind in _cohort_notes(result):
        intro.note(text, kind)
    return intro


def _design_sections(result: EvaluationResult) -> list[_Section]:
    """The evaluation design's own sections (e.g. the k-fold AUROC per repeat)."""
    design = result.cohort.get("design")
    sections = design.sections if design is not None else ()
    return [_Section(heading).p(text).table(table) for heading, text, table in sections]


def _judged(result: EvaluationResult, strategies: list[str]):
    """The calibration rule on each strategy's all-patients row (``metrics.calibration``)."""
    rows = result.table[result.table["subgroup_type"] == "all"].set_index("strategy")
    return [judge_calibration({**rows.loc[s].to_dict(), "strategy": s}) for s in strategies]


def _headline_section(result: EvaluationResult, headline: pd.DataFrame) -> _Section:
    """The all-patients table, which estimate it is, and where calibration stays poor."""
    sec = _Section("Headline: all test patients").table(_headline_display(headline))
    sec.p(
        f"Every figure here, in the model cards and in the pipeline's log and metadata is the "
        f"{estimate_description(result)}."
    )
    candidates = [s for s in result.subgroups.strategies if not result.config.is_single(s)]
    below = _fused_below_best_single(result, candidates)
    if below:
        sec.note(below, "bad")
    for judgement in _judged(result, candidates):
        if judgement.acceptable is False:
            sentence = judgement.sentence()
            sec.note(f"Calibration stays poor: {sentence}.", "bad")
    return sec


# Fused below the best single modality by more than this is explained in the headline.
FUSED_BELOW_SINGLE = 0.005


def _fused_below_best_single(result: EvaluationResult, fused: list[str]) -> str | None:
    """Why the best fused strategy ends below the best single modality, if it does."""
    best_single = result.subgroups.best_single
    rows = result.table[result.table["subgroup_type"] == "all"].set_index("strategy")
    if not best_single or best_single not in rows.index or not fused:
        return None
    top = max(
        fused, key=lambda s: rows.loc[s, "auroc"] if np.isfinite(rows.loc[s, "auroc"]) else -1
    )
    gap = float(rows.loc[best_single, "auroc"] - rows.loc[top, "auroc"])
    if not gap > FUSED_BELOW_SINGLE:
        return None
    lo, hi = (rows.loc[top, f"delta_auroc_vs_best_single_ci_{e}"] for e in ("low", "high"))
    settled = (
        "the paired interval of the difference excludes 0, so the loss is real"
        if np.isfinite(hi) and hi < 0
        else f"the paired interval [{_num(lo)}, {_num(hi)}] includes 0, so it is not established"
    )
    return (
        f"The best fused strategy ({top}, AUROC {_num(rows.loc[top, 'auroc'])}) ends "
        f"{gap:.3f} below the best single modality ({best_single}, "
        f"{_num(rows.loc[best_single, 'auroc'])}); {settled}. Late fusion's stack is shrunk "
        "toward the modality best on validation patients (infinitely, when inner "
        "cross-validation prefers it), so a loss means the validation patients chose "
        "another modality or blend than the test patients favour: too few validation "
        "patients to choose reliably, not a design that lets fusion fall below its parts."
    )


def _calibration_section(result: EvaluationResult, plot: Path) -> _Section:
    """Intercept and slope with their intervals per strategy, judged by the rule, and the plot."""
    t = result.table
    h = t[t["subgroup_type"] == "all"].sort_values("auroc", ascending=False)
    table = pd.DataFrame(
        {"strategy": h["strategy"].to_numpy(), **_calibration_cells(h), "ECE": h["ece"].map(_num)}
    )
    return _Section("Calibration").p(RULE).table(table).img(plot, "reliability diagram")


def _verdict_section(result: EvaluationResult) -> _Section:
    v, cfg = result.verdict, result.config
    vs = _Section("Verdict")
    ranked = ", ".join(r.get("strategy", "?") for r in result.recommendation) or "none given"
    vs.p(f"Profile recommendation (ranked): {ranked}.")
    dis = v.disagreements
    vs.p(
        "Where measurement and recommendation disagree:"
        if dis
        else "The measurements do not clearly contradict the recommendation in any subgroup."
    )
    if dis:
        vs.bullets(dis)
    if v.stress_sentence not in dis:
        vs.p(v.stress_sentence)
    if v.calibration:
        vs.p("Calibration: " + " ".join(v.calibration))
    n_clear = int(v.winners["clear"].sum())
    vs.p(
        f"{len(v.winners)} subgroups were compared; at {cfg.ci_level:.0%} intervals about one "
        f"comparison in {round(1 / (1 - cfg.ci_level))} looks clear by chance alone, so "
        f"{n_clear} clear result(s) should be read against that."
    )
    vs.table(_winners_display(v.winners, subgroup_disclosure(result.table, cfg.suppress_below)))
    vs.p("Seed claims on this cohort:")
    vs.bullets([f"“{cl.claim}”: {cl.status}. {cl.evidence}" for cl in v.claims])
    if v.study:
        vs.p("What the study of synthetic deployment realities says (not this cohort):")
        vs.bullets(v.study)
    return vs


def _winners_display(winners: pd.DataFrame, disclosure: pd.DataFrame) -> pd.DataFrame:
    win = winners[["subgroup_type", "subgroup", "n", "recommended", "winner"]].copy()
    win["n"] = [
        disclosure.loc[key, "n_text"] if key in disclosure.index else count_text(n)
        for key, n in zip(
            winners[SUBGROUP_KEYS].itertuples(index=False, name=None), winners["n"], strict=True
        )
    ]
    win["compared with"] = winners["compared_with"].fillna("–")
    win["Δ winner − compared [CI]"] = [
        _ci(d, lo, hi, signed=True)
        for d, lo, hi in winners[["delta", "delta_ci_low", "delta_ci_high"]].values
    ]
    win["clear winner"] = winners["clear"].map({True: "yes", False: "no clear winner"})
    win.loc[winners["winner"] == winners["recommended"], "clear winner"] += " (recommended is best)"
    return win


SUBGROUP_LABELS = {
    "pattern": "availability pattern",
    "sex": "sex",
    "age_band": "age band",
    "site": "site",
}


def _forest_section(result: EvaluationResult, plot: Path) -> _Section:
    """The forest plot, and a note on subgroup types left out for having a single level."""
    sec = _Section("AUROC by subgroup").img(plot, "forest plot of AUROC")
    if result.subgroups.omitted:
        sec.note(
            "Left out of the subgroup tables, having one level only (the same patients as "
            "all): "
            + "; ".join(
                f"{SUBGROUP_LABELS.get(kind, kind)} (not recorded)"
                if level == "unknown"
                else f"{SUBGROUP_LABELS.get(kind, kind)} (every test patient: {level})"
                for kind, level in result.subgroups.omitted
            )
            + "."
        )
    return sec


def _subgroup_sections(
    result: EvaluationResult, strategies: list[str] | None = None, prefix: str = "Subgroups by"
) -> list[_Section]:
    """One table per subgroup type present, in ``SUBGROUP_LABELS`` order; only
    ``strategies``' rows when given (the body shows the fused strategies and the best
    single modality, the appendix every row, as ``eval.subgroup_metrics`` holds them)."""
    t = result.table
    disclosure = subgroup_disclosure(t, result.config.suppress_below)
    if strategies is not None:
        t = t[t["strategy"].isin(strategies)]
    return [
        _Section(f"{prefix} {label}").table(
            _subgroup_display(
                t[t["subgroup_type"] == kind], result.config.suppressed_status, disclosure
            )
        )
        for kind, label in SUBGROUP_LABELS.items()
        if (t["subgroup_type"] == kind).any()
    ]


def _degradation_section(result: EvaluationResult, plot: Path | None) -> _Section:
    deg = _Section("Degradation under missing modalities")
    if plot is None:
        return deg.p("No stress-test predictions were given.")
    deg.img(plot, "degradation curves")
    deg.table(_degradation_display(result.summary))
    cc, cfg = result.complete_case, result.config
    if len(cc):
        n_cc = int(cc["n"].max())
        deg.p(
            f"Complete-case subset (n={count_text(n_cc, limit=cfg.suppress_below)}): AUROC with "
            "one modality left out / only one kept."
        )
        if n_cc < cfg.suppress_below:
            deg.note(
                f"Complete-case subset under {cfg.suppress_below} patients: {cfg.suppressed_status}."
            )
        else:
            piv = cc.pivot_table(
                index=["scenario", "modality"], columns="strategy", values="auroc"
            ).round(3)
            deg.table(piv.reset_index())
    return deg


def _degradation_display(summary: pd.DataFrame) -> pd.DataFrame:
    gl = summary[summary["scenario"] == "global"].sort_values("area", ascending=False)
    return pd.DataFrame(
        {
            "strategy": gl["strategy"],
            "AUROC at rate 0": gl["auroc_at_0"].map(_num),
            "area (mean AUROC over rates)": gl["area"].map(_num),
            "drop": gl["drop"].map(_num),
            "retained": gl["retained"].map(lambda x: _num(x, 2)),
            "area vs late": gl["area_vs_late"].map(lambda x: f"{x:+.3f}" if pd.notna(x) else "–"),
        }
    )


def _cost_section(result: EvaluationResult) -> _Section:
    """Per strategy: training seconds, inference time, parameters, peak memory of the fit."""
    from fusion_assets.models.cost import COST_NOTE

    sec = _Section("Cost")
    cost = result.cost
    if cost is None or cost.empty:
        return sec.p("No cost was measured for these models (eval.model_cost is empty).")
    order = {s: i for i, s in enumerate(result.subgroups.strategies)}
    cost = cost.sort_values("strategy", key=lambda s: s.map(order).fillna(len(order)))
    table = pd.DataFrame(
        {
            "strategy": cost["strategy"],
            "training s": cost["train_seconds"].map(lambda x: _num(x, 1)),
            "inference ms / 1,000 patients": cost["inference_ms_per_1000"].map(
                lambda x: _num(x, 1)
            ),
            "parameters": cost["n_parameters"].map(lambda x: f"{int(x):,}" if pd.notna(x) else "–"),
            "what is counted": cost["parameters_counted"],
            "peak memory of the fit, MiB (process RSS)": [
                f"+{_num(up, 0)} ({_num(top, 0)})" if pd.notna(up) else "–"
                for up, top in zip(cost["peak_rss_increase_mib"], cost["peak_rss_mib"], strict=True)
            ],
        }
    )
    folds = cost["fold_models_seconds"].fillna(0.0)
    if (folds > 0.5).any():
        table.insert(2, "fold models s", folds.map(lambda x: _num(x, 1)).to_numpy())
    return sec.p(COST_NOTE).table(table)


def _leakage_section(result: EvaluationResult) -> _Section:
    leak = _Section("Leakage check")
    if result.leaks.empty:
        return leak.note("No strategy exceeds the oracle AUROC beyond its interval.", "ok")
    leak.note(
        f"{len(result.leaks)} strategy × subgroup row(s) exceed the oracle AUROC: suspect leakage.",
        "bad",
    )
    shown = result.leaks.round(3)
    disclosure = subgroup_disclosure(result.table, result.config.suppress_below)
    keys = list(shown[SUBGROUP_KEYS].itertuples(index=False, name=None))
    for column, text in (("n", "n_text"), ("events", "events_text")):
        if column in shown.columns:
            shown[column] = [
                disclosure.loc[k, text] if k in disclosure.index else count_text(v)
                for k, v in zip(keys, shown[column], strict=True)
            ]
    return leak.table(shown)


# ---------------------------------------------------------------- documents


@dataclass
class _Document:
    """The report's sections in order: body, model cards (one level down), closing sections."""

    title: str
    body: list[_Section]
    cards: list[_Section]
    closing: list[_Section]

    def markdown(self) -> str:
        md = [f"# {self.title}\n"] + [s.markdown() for s in self.body]
        md += ["## Model cards\n"] + [cd.markdown(3) for cd in self.cards]
        md += [s.markdown() for s in self.closing]
        return "\n".join(md)

    def html(self) -> str:
        body = [f"<h1>{html.escape(self.title)}</h1>"] + [s.html() for s in self.body]
        body += ["<h2>Model cards</h2>"]
        body += [f'<div class="card">{cd.html(3)}</div>' for cd in self.cards]
        body += [s.html() for s in self.closing]
        return (
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(self.title)}</title><style>{CSS}</style></head><body>"
            + "\n".join(body)
            + "</body></html>"
        )


# ---------------------------------------------------------------- entry point


def _report_plots(
    result: EvaluationResult, fusion: list[str], shown: list[str], plot_dir: Path
) -> dict[str, Path]:
    """The report's figures (drawn by ``plots``) under ``plot_dir``, by the name the report uses."""
    plot_dir.mkdir(parents=True, exist_ok=True)
    cfg, t = result.config, result.table
    paths = {
        "forest": plots.forest_plot(t, shown, plot_dir / "forest_auroc.png"),
        "calibration": plots.calibration_plot(
            result.reliability, shown, plot_dir / "calibration.png"
        ),
        "patterns": plots.pattern_counts_plot(
            result.pattern_counts,
            plot_dir / "patterns.png",
            cfg.suppress_below,
            hidden=pattern_disclosure(result),
        ),
    }
    if len(result.curves):
        paths["degradation"] = plots.degradation_plot(
            result.curves, fusion, plot_dir / "degradation.png"
        )
    if result.utility is not None and len(result.utility.curves):
        paths["decision_curves"] = plots.decision_curve_plot(
            result.utility.curves, fusion, plot_dir / "decision_curves.png"
        )
    return paths


def render_report(
    result: EvaluationResult,
    out_dir: str | Path,
    title: str = "Fusion strategy evaluation",
    provenance: dict[str, str] | None = None,
) -> ReportFiles:
    """Write report.md, report.html and plots/*.png under ``out_dir``.

    ``provenance`` (e.g. date, Dagster run id, model versions, batches) is stamped at the
    top, one line per entry, in the order given."""
    out = Path(out_dir)
    fusion = [s for s in result.subgroups.strategies if not result.config.is_single(s)]
    best_single = result.subgroups.best_single
    shown = fusion + ([best_single] if best_single else [])
    plot_paths = _report_plots(result, fusion, shown, out / "plots")
    headline = headline_table(result)
    body = [
        *(
            [_Section("Provenance").bullets([f"{k}: {v}" for k, v in provenance.items()])]
            if provenance
            else []
        ),
        _cohort_section(result),
        *_design_sections(result),
        _headline_section(result, headline),
        _verdict_section(result),
        *filter(None, [_deployment_section(result), _pattern_shift_section(result)]),
        _forest_section(result, plot_paths["forest"]),
        *_subgroup_sections(result, shown),
        _calibration_section(result, plot_paths["calibration"]),
        _degradation_section(result, plot_paths.get("degradation")),
        _utility_section(result, plot_paths.get("decision_curves")),
        _Section("Availability patterns").img(
            plot_paths["patterns"], "availability pattern counts"
        ),
        _cost_section(result),
    ]
    cards = [_model_card(result, s) for s in fusion]
    closing = []
    if set(result.subgroups.strategies) - set(shown):  # the single-modality rows left out above
        closing += _subgroup_sections(result, prefix="Appendix: every strategy by")
    closing.append(_tripod_section(result))
    if has_oracle(result):
        closing.append(_leakage_section(result))
    closing.append(_Section("Definitions").bullets(_methods(result)))
    document = _Document(title, body, cards, closing)
    md_path = out / "report.md"
    md_path.write_text(document.markdown(), encoding="utf-8")
    html_path = out / "report.html"
    html_path.write_text(document.html(), encoding="utf-8")
    return ReportFiles(
        markdown_path=md_path,
        html_path=html_path,
        plot_paths=plot_paths,
        headline=headline,
        metadata_plot=plot_paths["forest"],
        estimate=estimate_description(result),
    )


# ---------------------------------------------------------------- utility and deployment


def _net_benefit_display(table: pd.DataFrame, strategies: list[str]) -> pd.DataFrame:
    """One row per strategy (and treat all), one column per named threshold: NB [CI]."""
    rows = table[table["strategy"].isin([*strategies, "treat all"])]
    out = {}
    for strategy, g in rows.groupby("strategy", sort=False):
        out[strategy] = {
            f"t = {r['threshold']:.2f}": (
                _ci(r["net_benefit"], r["ci_low"], r["ci_high"], signed=True)
                if pd.notna(r["ci_low"]) and r["strategy"] != "treat all"
                else f"{r['net_benefit']:+.3f}"
            )
            + ("" if r["strategy"] == "treat all" or r["above_treat_all"] else " ·")
            for _, r in g.iterrows()
        }
    df = pd.DataFrame.from_dict(out, orient="index")
    return df.rename_axis("strategy").reset_index()


def _utility_section(result: EvaluationResult, plot: Path | None) -> _Section:
    section = _Section("Clinical utility (decision curves)")
    utility = result.utility
    if utility is None or utility.table.empty:
        return section.p("No decision curves: no held-out predictions.")
    fusion = [s for s in result.subgroups.strategies if not result.config.is_single(s)]
    overall = utility.table[utility.table["subgroup_type"] == "all"]
    section.p(
        "Net benefit = TP/N − FP/N · t/(1 − t) of treating the patients whose predicted risk "
        "is at least the threshold t, on all held-out patients, with paired bootstrap 95% CIs "
        "(the same resamples as the AUROC; treat all has none, as every resample keeps the "
        "number of events). A strategy is useful at t only where its net benefit is above "
        "both treat all and treat none (0); '·' marks a value that is not."
    )
    section.table(_net_benefit_display(overall, fusion))
    patterns = utility.table[utility.table["subgroup_type"] == "pattern"]
    # only patterns whose size the subgroup tables publish (secondary suppression included)
    disclosure = subgroup_disclosure(result.table, result.config.suppress_below).reset_index()
    published = disclosure[(disclosure["subgroup_type"] == "pattern") & ~disclosure["n_hidden"]]
    patterns = patterns[patterns["subgroup"].isin(set(published["subgroup"]))]
    if len(patterns):
        best = patterns[patterns["strategy"].isin(fusion)]
        pivot = best.pivot_table(
            index=["subgroup", "n"], columns=["threshold"], values="net_benefit", aggfunc="max"
        )
        pivot.columns = [f"best NB at t = {t:.2f}" for t in pivot.columns]
        section.p(
            "Per availability pattern (at least the report's minimum pattern size): the best "
            "fused strategy's net benefit at each threshold (points; intervals only for all "
            "patients)."
        )
        section.table(pivot.round(3).reset_index().rename(columns={"subgroup": "pattern"}))
    if plot is not None:
        section.img(plot, "decision curves")
    return section


def _deployment_section(result: EvaluationResult) -> _Section | None:
    deployed = result.deployment
    if deployed is None:
        return None
    rew = deployed.reweighting
    section = _Section(f"Expected performance at deployment: {deployed.profile.name}")
    section.p(f"The deployment profile is {deployed.profile.source()}.")
    section.p(
        f"The {deployed.n_patients} held-out patients are reweighted so that their "
        "availability patterns follow the deployment profile (importance weight per pattern = "
        "deployment share / held-out share); every model is scored on the patients it already "
        "scored, none re-run. Effective sample size under the weights: "
        f"{rew.ess:.0f} of {deployed.n_patients}. Intervals: the report's paired bootstrap, "
        "weighted."
    )
    for warning in deployed.warnings:
        section.note(warning, "bad")
    # fused strategies and the best single modality: a single-modality model scores a
    # patient without its modality as a constant, which is no estimate of anything
    best_single = result.subgroups.best_single
    table = deployed.table[
        [not result.config.is_single(s) or s == best_single for s in deployed.table["strategy"]]
    ].reset_index(drop=True)
    nb = deployed.net_benefit.pivot_table(
        index="strategy", columns="threshold", values="net_benefit"
    )
    display = pd.DataFrame(
        {
            "strategy": table["strategy"],
            "AUROC, held-out mix": table["auroc_held_out"].map(_num),
            "AUROC at deployment [CI]": [
                _ci(r["auroc"], r["auroc_ci_low"], r["auroc_ci_high"]) for _, r in table.iterrows()
            ],
            "Brier at deployment": table["brier"].map(_num),
            **{
                f"NB at t = {t:.2f}": table["strategy"]
                .map(nb[t])
                .map(lambda x: f"{x:+.3f}" if pd.notna(x) else "–")
                for t in nb.columns
            },
        }
    )
    section.table(display)
    winner = table.iloc[0]["strategy"]
    recommended = result.recommendation[0]["strategy"] if result.recommendation else None
    if recommended:
        agrees = "agrees with" if recommended == winner else "differs from"
        section.p(
            f"Under this deployment mix the best AUROC is {winner}'s; the recommended strategy "
            f"({recommended}, the decision matrix's choice) {agrees} it."
        )
    # held-out counts per pattern partition the test patients: small ones, and enough
    # others that the small ones cannot be recovered by subtraction, are hidden; so are
    # their shares and weights (each reveals the count)
    every = rew.table
    hidden = dict(
        zip(
            every["pattern"],
            partition_suppression(
                every["n"].to_numpy(dtype=float),
                float(deployed.n_patients),
                limit=result.config.suppress_below,
            ),
            strict=True,
        )
    )
    shares = every[every["deployment_share"] > 0].head(12)
    status = result.config.suppressed_status
    # a profile measured on a landed batch: its shares count that batch's patients
    hidden_deployed = deployed.profile.hidden_patterns(result.config.suppress_below)
    section.p("Availability patterns, deployment share beside held-out share:")
    section.table(
        pd.DataFrame(
            {
                "pattern": shares["pattern"],
                "deployment share": [
                    status if p in hidden_deployed else f"{x:.1%}"
                    for p, x in zip(shares["pattern"], shares["deployment_share"], strict=True)
                ],
                "held-out share": [
                    status if hidden[p] and n else f"{x:.1%}"
                    for p, n, x in zip(
                        shares["pattern"], shares["n"], shares["held_out_share"], strict=True
                    )
                ],
                "held-out patients": [
                    status if hidden[p] and n else str(n)
                    for p, n in zip(shares["pattern"], shares["n"], strict=True)
                ],
                "weight": [
                    "–" if hidden[p] and n else f"{w:.2f}"
                    for p, n, w in zip(
                        shares["pattern"], shares["n"], shares["weight"], strict=True
                    )
                ],
            }
        )
    )
    if len(rew.unseen):
        section.p(
            "Patterns of the deployment that no held-out patient has: "
            + ", ".join(rew.unseen.index[:10])
            + ". Every fused strategy scores such a patient from the modalities present (the "
            "missing ones are masked as in training with modality dropout); single-modality "
            "models give no prediction where their modality is absent. How well they do there "
            "is not measured: the estimate above leaves those patterns out."
        )
    return section


def _pattern_shift_section(result: EvaluationResult) -> _Section | None:
    shift = result.pattern_shift
    if shift is None or shift.empty:
        return None
    fusion = [s for s in result.subgroups.strategies if not result.config.is_single(s)]
    shift = shift[shift["strategy"].isin(fusion)]
    section = _Section("Pattern-shift stress tests")
    replay = shift[shift["scenario"] == "deployment_replay"].set_index("strategy")
    mnar = shift[shift["scenario"] == "mechanism:mnar_label"].set_index("strategy")
    rates = shift[shift["scenario"] == "deployment_rate"]
    lines = [
        "The held-out patients scored again with their availability shifted (mean ± SD over "
        "mask seeds, the same masks for every strategy; 'full' is the same patients with "
        "nothing removed; a modality is never added). 'MNAR by label': availability made "
        "informative about the outcome, whatever the training mechanism was: patients with "
        "the outcome keep each modality with half the odds the held-out ones have."
    ]
    if len(replay):
        lines.append(
            "Toward the deployment profile"
            + (f" {result.deployment.profile.name!r}" if result.deployment is not None else "")
            + ": 'replay' gives each patient a pattern drawn "
            "from the deployment mix and keeps the modalities it has that the pattern has; 'at "
            "deployment rate' drops one modality at random until its availability is the "
            "deployment's."
        )
    section.p(" ".join(lines))
    table = pd.DataFrame({"strategy": fusion}).set_index("strategy")
    full = (mnar if len(mnar) else replay)["full"]
    table["full"] = full.reindex(table.index).map(_num)

    def spread(frame: pd.DataFrame, s: str) -> str:
        if s not in frame.index or pd.isna(frame.loc[s, "auroc_mean"]):
            return "–"
        sd = frame.loc[s, "auroc_sd"]
        return f"{frame.loc[s, 'auroc_mean']:.3f}" + (f" ± {sd:.3f}" if pd.notna(sd) else "")

    drops = {}
    for label, frame in (("replay", replay), ("MNAR by label", mnar)):
        if len(frame):
            table[label] = [spread(frame, s) for s in table.index]
            drops[label] = (frame["auroc_mean"] - frame["full"]).dropna()
            table[f"Δ {label}"] = (
                drops[label].reindex(table.index).map(lambda x: f"{x:+.3f}" if pd.notna(x) else "–")
            )
    for modality, g in rates.groupby("modality", sort=False):
        g = g.set_index("strategy")
        table[f"{modality} at deployment rate"] = g["auroc_mean"].reindex(table.index).map(_num)
    section.table(table.reset_index())
    for label, delta in drops.items():
        parallel = [s for s in ("early", "intermediate") if s in delta.index]
        if parallel and "late" in delta.index:
            worst = min(parallel, key=lambda s: delta[s])
            verdict = (
                "loses more than late fusion"
                if delta[worst] < delta["late"] - 0.01
                else "does not lose more than late fusion (within 0.01)"
            )
            section.p(
                f"Parallel fusion under the {label} shift: {worst} {verdict} "
                f"(Δ {delta[worst]:+.3f} vs late {delta['late']:+.3f})."
            )
    return section


def _tripod_section(result: EvaluationResult) -> _Section:
    """TRIPOD+AI items this report answers, where, and missing data by group (20b)."""
    section = _Section("TRIPOD+AI")
    deployment = (
        f"'Expected performance at deployment: {result.deployment.profile.name}'"
        if result.deployment is not None
        else "not given (no deployment profile: add `deployment:` to the spec)"
    )
    items = [
        (
            "12e",
            "clinical utility",
            "'Clinical utility (decision curves)': net benefit "
            "against treat all / treat none, overall and per availability pattern",
        ),
        (
            "20b",
            "missing data by group",
            "the table below: each modality's availability "
            "among the test patients of every demographic subgroup",
        ),
        (
            "23a",
            "performance in key subgroups, with CIs",
            "'Subgroups by ...': AUROC, "
            "calibration and Brier per availability pattern, sex, age band and site, paired "
            "bootstrap CIs",
        ),
        (
            "27a",
            "how unavailable inputs are handled at implementation",
            "every fused "
            "strategy scores a patient from the modalities present (absent ones masked, as in "
            "training with modality dropout); a single-modality model does not score patients "
            f"without its modality. Expected performance under the deployment's mix: {deployment}",
        ),
    ]
    section.table(pd.DataFrame(items, columns=["item", "asks for", "where / answer"]))
    availability = result.availability
    if availability is None or availability.empty:
        return section
    disclosure = subgroup_disclosure(result.table, result.config.suppress_below)
    status = result.config.suppressed_status
    rows = []
    for (kind, name), g in availability.groupby(["subgroup_type", "subgroup"], sort=False):
        key = (kind, name)
        n_text = disclosure.loc[key, "n_text"] if key in disclosure.index else count_text(None)
        row = {"subgroup": "all patients" if kind == "all" else f"{kind}: {name}", "n": n_text}
        for _, r in g.iterrows():
            row[r["modality"]] = f"{r['share']:.0%}" if pd.notna(r["share"]) else status
        rows.append(row)
    section.p("Share of the test patients with each modality, by subgroup (item 20b):")
    section.table(pd.DataFrame(rows))
    return section
