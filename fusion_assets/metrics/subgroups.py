"""The subgroup table: every strategy × subgroup of the test split, with paired CIs.

Inputs (pandas DataFrames):

- ``predictions``: ``strategy, patient_id, split ('validation'|'test'), prob``.
- ``patients``: ``patient_id, label (0/1), sex, age, site, pattern`` and
  optionally ``oracle_prob`` (Bayes-optimal probability given the modalities the
  patient has; synthetic cohorts only).

Subgroups (column ``subgroup_type`` / ``subgroup``): ``all/all``; ``pattern/<p>``
for each availability pattern with at least ``min_pattern_size`` test patients,
the rest pooled into ``pattern/other``; ``sex/<value>``; ``age_band/<band>``;
``site/<value>``. Missing demographics become ``unknown``. A subgroup type
with a single level (a column absent or empty, so every patient is
``unknown``; one site; ages that all fall in one band, e.g. ages not in years)
is left out: it would repeat the all-patients row. ``SubgroupResult.omitted``
names it and its one level, for the report's note.

Bootstrap: within each subgroup one label-stratified count matrix is drawn
(seeded by the config seed and the subgroup's name) and shared by every
strategy, so ΔAUROC intervals are paired. AUROC, AUPRC and Brier are
recomputed under every resample, and so are the calibration intercept and
slope (a logistic fit per resample, ``weighted_logistic``): each has a
``<metric>_ci_low`` / ``<metric>_ci_high`` interval (``INTERVAL_METRICS``).

Repeats (cross-validation mode): ``repeats`` holds each patient's out-of-fold
test prediction once per repeat (``strategy, repeat, patient_id, prob``). Every
metric is computed per repeat on that repeat's predictions, with the *same*
count matrix for every repeat and strategy, and the per-repeat point estimates
and per-resample statistics are averaged over repeats before the percentile
interval is taken. Scoring repeat-averaged probabilities instead would score a
small ensemble of fold models, optimistic for the one deployed model; averaging
the metric keeps it a single-model estimate, and averaging the resamples
(rather than pooling them) keeps the interval about patient sampling, with the
fold-assignment noise averaged out. Without ``repeats`` (held-out mode) the
test rows of ``predictions`` are the single "repeat" and nothing changes.

The best single modality is the ``single:*`` strategy with the highest AUROC on
the *validation* split (all validation patients), so choosing it does not use
the test set. Thresholds are chosen per strategy on the validation split too.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from fusion_assets.metrics.bootstrap import (
    percentile_ci,
    stratified_bootstrap_counts,
    weighted_auroc,
    weighted_average_precision,
    weighted_brier,
)
from fusion_assets.metrics.classification import auroc, binary_metrics, choose_threshold
from fusion_assets.metrics.config import EvaluationConfig
from fusion_assets.metrics.weighted_logistic import weighted_calibration

METRIC_COLUMNS = [
    "auroc",
    "auroc_ci_low",
    "auroc_ci_high",
    "auprc",
    "auprc_ci_low",
    "auprc_ci_high",
    "brier",
    "brier_ci_low",
    "brier_ci_high",
    "scaled_brier",
    "cal_intercept",
    "cal_intercept_ci_low",
    "cal_intercept_ci_high",
    "cal_slope",
    "cal_slope_ci_low",
    "cal_slope_ci_high",
    "ece",
    "threshold",
    "sensitivity",
    "specificity",
    "delta_auroc_vs_reference",
    "delta_auroc_vs_reference_ci_low",
    "delta_auroc_vs_reference_ci_high",
    "delta_auroc_vs_best_single",
    "delta_auroc_vs_best_single_ci_low",
    "delta_auroc_vs_best_single_ci_high",
    "oracle_auroc",
    "delta_auroc_vs_oracle",
    "delta_auroc_vs_oracle_ci_low",
    "delta_auroc_vs_oracle_ci_high",
    "lift_captured",
]
TABLE_COLUMNS = [
    "subgroup_type",
    "subgroup",
    "strategy",
    "n",
    "events",
    "prevalence",
    *METRIC_COLUMNS,
    "imprecise",
    "suppressed",
    "status",
]
REQUIRED_PREDICTION_COLUMNS = ("strategy", "patient_id", "split", "prob")
REQUIRED_PATIENT_COLUMNS = ("patient_id", "label")
REQUIRED_REPEAT_COLUMNS = ("strategy", "repeat", "patient_id", "prob")


@dataclass
class SubgroupResult:
    """The table plus what later steps (verdict, leakage, report) reuse.

    ``boot_auroc[(subgroup_type, subgroup)][strategy]`` holds the B bootstrap
    AUROCs on that subgroup's shared resamples (absent for suppressed subgroups).
    """

    table: pd.DataFrame
    boot_auroc: dict[tuple[str, str], dict[str, np.ndarray]] = field(default_factory=dict)
    best_single: str | None = None
    thresholds: dict[str, float] = field(default_factory=dict)
    strategies: list[str] = field(default_factory=list)
    n_repeats: int = 1  # repeats averaged (cross-validation); 1 for a held-out split
    omitted: list[tuple[str, str]] = field(default_factory=list)  # (type, its one level)


def _check_columns(df: pd.DataFrame, required: tuple[str, ...], name: str) -> None:
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ValueError(f"{name} lacks column(s) {missing}; it has {list(df.columns)}.")


def wide_probabilities(
    predictions: pd.DataFrame, patients: pd.DataFrame, split: str
) -> tuple[pd.DataFrame, list[str]]:
    """One row per patient of ``split``: patient columns + one prob column per strategy.

    Patients without a prediction for a strategy get NaN there (they are left
    out of that strategy's metrics). Raises if a (strategy, patient) pair is
    duplicated or a predicted patient is missing from ``patients``.
    """
    _check_columns(predictions, REQUIRED_PREDICTION_COLUMNS, "predictions")
    _check_columns(patients, REQUIRED_PATIENT_COLUMNS, "patients")
    part = predictions.loc[predictions["split"] == split, ["strategy", "patient_id", "prob"]]
    dup = part.duplicated(["strategy", "patient_id"])
    if dup.any():
        raise ValueError(
            f"predictions has {int(dup.sum())} duplicated (strategy, patient_id) rows in split "
            f"{split!r}; each strategy must predict each patient once."
        )
    strategies = sorted(part["strategy"].unique().tolist())
    wide = part.pivot(index="patient_id", columns="strategy", values="prob")
    unknown = wide.index.difference(pd.Index(patients["patient_id"]))
    if len(unknown):
        raise ValueError(
            f"{len(unknown)} predicted patient(s) in split {split!r} are missing from patients."
        )
    merged = patients.merge(wide.reset_index(), on="patient_id", how="inner")
    return merged.reset_index(drop=True), strategies


def age_band_labels(age: pd.Series, edges: tuple[int, ...]) -> pd.Series:
    """Age bands from increasing edges: (45, 65) -> '<45', '45-64', '65+'; NaN -> 'unknown'."""
    labels = [f"<{edges[0]}"] if edges else []
    labels += [f"{lo}-{hi - 1}" for lo, hi in zip(edges[:-1], edges[1:], strict=False)]
    labels += [f"{edges[-1]}+"] if edges else ["all ages"]
    values = pd.to_numeric(age, errors="coerce").to_numpy(dtype=np.float64)
    idx = np.searchsorted(np.asarray(edges, dtype=np.float64), values, side="right")
    out = np.array(labels, dtype=object)[np.minimum(idx, len(labels) - 1)]
    out[np.isnan(values)] = "unknown"
    return pd.Series(out, index=age.index)


Mask = tuple[str, str, np.ndarray]  # (subgroup_type, subgroup, boolean mask over cohort rows)


def subgroup_masks(
    cohort: pd.DataFrame, config: EvaluationConfig
) -> tuple[list[Mask], list[tuple[str, str]]]:
    """The subgroups in report order, and the types left out for having a single level."""
    masks = _candidate_masks(cohort, config)
    levels: dict[str, list[str]] = {}
    for kind, name, _ in masks[1:]:
        levels.setdefault(kind, []).append(name)
    single = {kind: names[0] for kind, names in levels.items() if len(names) == 1}
    kept = [m for m in masks if m[0] not in single]
    return kept, list(single.items())


def _candidate_masks(cohort: pd.DataFrame, config: EvaluationConfig) -> list[Mask]:
    """Every subgroup of every type, single-level types included, in report order."""
    n = len(cohort)
    out: list[tuple[str, str, np.ndarray]] = [("all", "all", np.ones(n, dtype=bool))]
    if "pattern" in cohort.columns:
        pattern = cohort["pattern"].fillna("unknown").astype(str)
        sizes = pattern.value_counts()
        kept = [p for p in sizes.index if sizes[p] >= config.min_pattern_size]
        # Large patterns first (by size, then name) so tables read from common to rare.
        kept.sort(key=lambda p: (-sizes[p], p))
        for p in kept:
            out.append(("pattern", p, (pattern == p).to_numpy()))
        rest = ~pattern.isin(kept).to_numpy()
        if rest.any():
            out.append(("pattern", "other", rest))
    for col, kind in (("sex", "sex"), ("site", "site")):
        if col in cohort.columns:
            values = cohort[col].fillna("unknown").astype(str)
            for v in sorted(values.unique()):
                out.append((kind, v, (values == v).to_numpy()))
        if col == "sex" and "age" in cohort.columns:
            bands = age_band_labels(cohort["age"], tuple(config.age_bands))
            order = [b for b in _band_order(config.age_bands) if (bands == b).any()]
            for b in order:
                out.append(("age_band", b, (bands == b).to_numpy()))
    return out


def _band_order(edges: tuple[int, ...]) -> list[str]:
    labels = age_band_labels(pd.Series(np.r_[np.asarray(edges) - 1, edges[-1]]), tuple(edges))
    return [*labels.tolist(), "unknown"]


def _seed_for(config: EvaluationConfig, kind: str, name: str) -> np.random.SeedSequence:
    # Seed by name, not position, so adding a site does not reshuffle other subgroups.
    return np.random.SeedSequence([config.seed, zlib.crc32(f"{kind}/{name}".encode())])


def best_single_modality(
    predictions: pd.DataFrame, patients: pd.DataFrame, config: EvaluationConfig
) -> str | None:
    """The ``single:*`` strategy with the highest validation AUROC (None if there is none)."""
    singles = [s for s in predictions["strategy"].unique() if config.is_single(str(s))]
    if not singles:
        return None
    val, _ = wide_probabilities(
        predictions[predictions["strategy"].isin(singles)], patients, "validation"
    )
    if val.empty:
        # No validation split: fall back to a fixed, documented choice (alphabetical).
        return sorted(singles)[0]
    y = val["label"].to_numpy()
    scores = {}
    for s in singles:
        ok = val[s].notna().to_numpy()
        scores[s] = auroc(y[ok], val[s].to_numpy()[ok])
    finite = {s: a for s, a in scores.items() if np.isfinite(a)}
    return max(sorted(finite), key=lambda s: finite[s]) if finite else sorted(singles)[0]


def validation_thresholds(
    predictions: pd.DataFrame, patients: pd.DataFrame, config: EvaluationConfig
) -> dict[str, float]:
    """Operating threshold per strategy, chosen on the validation split."""
    val, strategies = wide_probabilities(predictions, patients, "validation")
    y = val["label"].to_numpy() if not val.empty else np.array([])
    out = {}
    for s in strategies:
        ok = val[s].notna().to_numpy()
        out[s] = choose_threshold(y[ok], val[s].to_numpy()[ok], config.threshold)
    return out


def _nan_row() -> dict[str, float]:
    return dict.fromkeys(METRIC_COLUMNS, float("nan"))


def repeat_probabilities(
    repeats: pd.DataFrame | None, test: pd.DataFrame, strategies: list[str]
) -> list[dict[str, np.ndarray]]:
    """Test probabilities per repeat: one ``{strategy: prob array}`` per repeat, in repeat order.

    Arrays follow the row order of ``test`` (from :func:`wide_probabilities`);
    a patient without a prediction in a repeat gets NaN there. Without
    ``repeats`` the wide test columns are the only repeat (held-out mode).
    ``repeats`` rows with a ``role`` other than ``test`` are ignored, so
    ``eval.oof_predictions`` can be passed as it is.
    """
    if repeats is None:
        return [{s: test[s].to_numpy(dtype=np.float64) for s in strategies}]
    _check_columns(repeats, REQUIRED_REPEAT_COLUMNS, "repeats")
    part = repeats
    if "role" in part.columns:
        part = part[part["role"] == "test"]
    part = part[list(REQUIRED_REPEAT_COLUMNS)]
    if part.empty:
        raise ValueError("repeats has no test rows; pass None for held-out evaluation.")
    dup = part.duplicated(["strategy", "repeat", "patient_id"])
    if dup.any():
        raise ValueError(
            f"repeats has {int(dup.sum())} duplicated (strategy, repeat, patient_id) test rows; "
            "each patient must be predicted once per repeat."
        )
    unknown = pd.Index(part["patient_id"].unique()).difference(pd.Index(test["patient_id"]))
    if len(unknown):
        raise ValueError(f"{len(unknown)} patient(s) in repeats have no test prediction row.")
    ids = pd.Index(test["patient_id"])
    out = []
    for _, g in part.groupby("repeat", sort=True):
        wide = g.pivot(index="patient_id", columns="strategy", values="prob").reindex(ids)
        out.append(
            {
                s: (wide[s] if s in wide.columns else pd.Series(np.nan, index=ids)).to_numpy(
                    dtype=np.float64
                )
                for s in strategies
            }
        )
    return out


def repeat_mean(values: np.ndarray) -> np.ndarray:
    """Mean over axis 0 (repeats), skipping repeats where the value is undefined (NaN).

    One repeat is returned as it is (bit for bit), so the held-out path is
    unchanged. NaN where no repeat has a finite value.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.shape[0] == 1:
        return values[0]
    finite = np.isfinite(values)
    total = np.where(finite, values, 0.0).sum(axis=0)
    k = finite.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(k > 0, total / np.maximum(k, 1), np.nan)


# Metrics with a percentile interval: each has ``<name>_ci_low`` / ``<name>_ci_high`` columns.
INTERVAL_METRICS = ("auroc", "auprc", "brier", "cal_intercept", "cal_slope")


def _strategy_estimates(
    y: np.ndarray,
    p: np.ndarray,
    counts: np.ndarray,
    threshold: float,
    config: EvaluationConfig,
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Point metrics and the resample statistics (``INTERVAL_METRICS``) of one repeat.

    A strategy missing some patients is scored on the rest; its resample
    weights are zeroed there so pairing holds on the patients it has.
    """
    ok = np.isfinite(p)
    w = counts if ok.all() else counts * ok[:, None]
    pp = np.where(ok, p, 0.0)
    m = binary_metrics(y[ok], pp[ok], threshold, config.ece_bins)
    intercepts, slopes = weighted_calibration(y, pp, w)
    resamples = {
        "auroc": weighted_auroc(y, pp, w),
        "auprc": weighted_average_precision(y, pp, w),
        "brier": weighted_brier(y, pp, w),
        "cal_intercept": intercepts,
        "cal_slope": slopes,
    }
    return m, resamples


@dataclass(frozen=True)
class _TestSplit:
    """What every subgroup of the test split is scored from (rows in ``wide_probabilities`` order)."""

    labels: np.ndarray  # int8
    per_repeat: list[dict[str, np.ndarray]]  # see repeat_probabilities
    oracle: np.ndarray | None  # Bayes-optimal probability; None without ``oracle_prob``
    strategies: list[str]
    thresholds: dict[str, float]
    best_single: str | None


def subgroup_table(
    predictions: pd.DataFrame,
    patients: pd.DataFrame,
    config: EvaluationConfig | None = None,
    repeats: pd.DataFrame | None = None,
) -> SubgroupResult:
    """Metrics for every strategy × subgroup of the test split (columns: ``TABLE_COLUMNS``).

    ``repeats`` (cross-validation mode): per-repeat out-of-fold test predictions;
    metrics are then computed per repeat and averaged (see the module docstring).
    The test cohort, thresholds and best single modality still come from
    ``predictions`` (its test and validation rows).
    """
    config = config or EvaluationConfig()
    test, data = _test_split(predictions, patients, config, repeats)
    rows: list[dict] = []
    boot: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    masks, omitted = subgroup_masks(test, config)
    for kind, name, mask in masks:
        base = {"subgroup_type": kind, "subgroup": name, "n": int(mask.sum())}
        if base["n"] < config.suppress_below:
            rows.extend(_suppressed_rows(base, data.strategies, config))
            continue
        group_rows, boot[(kind, name)] = _scored_subgroup(base, mask, data, config)
        rows.extend(group_rows)
    return SubgroupResult(
        table=pd.DataFrame(rows, columns=TABLE_COLUMNS),
        boot_auroc=boot,
        best_single=data.best_single,
        thresholds=data.thresholds,
        strategies=data.strategies,
        n_repeats=len(data.per_repeat),
        omitted=omitted,
    )


def _test_split(
    predictions: pd.DataFrame,
    patients: pd.DataFrame,
    config: EvaluationConfig,
    repeats: pd.DataFrame | None,
) -> tuple[pd.DataFrame, _TestSplit]:
    """The wide test cohort and what its subgroups are scored from (validated inputs)."""
    test, strategies = wide_probabilities(predictions, patients, "test")
    if test.empty:
        raise ValueError("predictions has no rows with split == 'test'; nothing to evaluate.")
    best_single = best_single_modality(predictions, patients, config)
    thresholds = validation_thresholds(predictions, patients, config)
    data = _TestSplit(
        labels=test["label"].to_numpy().astype(np.int8),
        per_repeat=repeat_probabilities(repeats, test, strategies),
        oracle=(
            test["oracle_prob"].to_numpy(dtype=np.float64)
            if "oracle_prob" in test.columns
            else None
        ),
        strategies=strategies,
        thresholds=thresholds,
        best_single=best_single,
    )
    return test, data


def _suppressed_rows(base: dict, strategies: list[str], config: EvaluationConfig) -> list[dict]:
    """One row per strategy of a subgroup under the disclosure limit: only its size is kept."""
    return [
        {
            **base,
            "strategy": s,
            # Counts below the disclosure limit are not published either.
            "events": np.nan,
            "prevalence": np.nan,
            **_nan_row(),
            "imprecise": True,
            "suppressed": True,
            "status": config.suppressed_status,
        }
        for s in strategies
    ]


def _scored_subgroup(
    base: dict, mask: np.ndarray, data: _TestSplit, config: EvaluationConfig
) -> tuple[list[dict], dict[str, np.ndarray]]:
    """Rows (one per strategy) of a published subgroup and each strategy's resample AUROCs."""
    y = data.labels[mask]
    # float64 once per subgroup, reused by every strategy and every repeat (see
    # bootstrap.as_weights): one resample draws the same patients in every repeat,
    # which is what makes averaging the resample statistics over repeats paired.
    counts = stratified_bootstrap_counts(
        y, config.n_boot, _seed_for(config, base["subgroup_type"], base["subgroup"])
    ).astype(np.float64)
    oracle_auc, oracle_boot = float("nan"), None
    if data.oracle is not None and np.isfinite(data.oracle[mask]).all():
        oracle_auc = auroc(y, data.oracle[mask])
        oracle_boot = weighted_auroc(y, data.oracle[mask], counts)
    rows: dict[str, dict] = {}
    boot: dict[str, np.ndarray] = {}
    for s in data.strategies:
        probs = [repeat[s][mask] for repeat in data.per_repeat]
        threshold = data.thresholds.get(s, float("nan"))
        m, boot[s] = _repeat_averaged_metrics(y, probs, counts, threshold, config)
        m.update(_oracle_columns(m["auroc"], boot[s], oracle_auc, oracle_boot, config.ci_level))
        rows[s] = {**base, "strategy": s, **m, **_coverage(y, probs, config)}
    for s in _absent_singles(base, data.strategies, config):
        # A single-modality model on patients without its modality scores them all alike:
        # its "AUROC 0.500 [0.500, 0.500]" would read as a precise estimate of nothing.
        rows[s].update({**_nan_row(), "status": MODALITY_ABSENT})
        boot.pop(s, None)
    _add_paired_deltas(rows, boot, data.best_single, config)
    return list(rows.values()), boot


MODALITY_ABSENT = "modality absent"


def _absent_singles(base: dict, strategies: list[str], config: EvaluationConfig) -> list[str]:
    """The single-modality strategies whose modality no patient of this pattern has."""
    if base["subgroup_type"] != "pattern" or base["subgroup"] == "other":
        return []
    present = set(str(base["subgroup"]).split("+"))
    return [
        s
        for s in strategies
        if config.is_single(s) and s[len(config.single_prefix) :] not in present
    ]


def _repeat_averaged_metrics(
    y: np.ndarray,
    probs: list[np.ndarray],
    counts: np.ndarray,
    threshold: float,
    config: EvaluationConfig,
) -> tuple[dict[str, float], np.ndarray]:
    """Point metrics with percentile CIs, averaged over repeats, and the resample AUROCs."""
    estimates = [_strategy_estimates(y, p, counts, threshold, config) for p in probs]
    # Point estimates and resample statistics are averaged over repeats here;
    # every derived number (deltas, lift) is linear in them, so it equals the
    # per-repeat value averaged too. A resample whose fit fails in one repeat
    # (calibration under separation) is averaged over the repeats where it exists.
    m = {k: float(repeat_mean(np.array([e[0][k] for e in estimates]))) for k in estimates[0][0]}
    resamples = {
        name: repeat_mean(np.stack([e[1][name] for e in estimates])) for name in INTERVAL_METRICS
    }
    for name, values in resamples.items():
        m[f"{name}_ci_low"], m[f"{name}_ci_high"] = percentile_ci(values, config.ci_level)
    return m, resamples["auroc"]


def _oracle_columns(
    auc: float,
    boot_auc: np.ndarray,
    oracle_auc: float,
    oracle_boot: np.ndarray | None,
    level: float,
) -> dict[str, float]:
    """The gap to the oracle AUROC (paired CI) and the share of its lift over 0.5 captured."""
    low, high = (
        percentile_ci(boot_auc - oracle_boot, level)
        if oracle_boot is not None
        else (float("nan"), float("nan"))
    )
    denom = oracle_auc - 0.5
    return {
        "oracle_auroc": oracle_auc,
        "delta_auroc_vs_oracle": auc - oracle_auc,
        "delta_auroc_vs_oracle_ci_low": low,
        "delta_auroc_vs_oracle_ci_high": high,
        "lift_captured": (auc - 0.5) / denom if denom > 0 else float("nan"),
    }


def _coverage(y: np.ndarray, probs: list[np.ndarray], config: EvaluationConfig) -> dict:
    """Size, events, flags and status of the patients a strategy predicted in every repeat.

    In cross-validation every patient is tested once per repeat, so that is all of them.
    """
    ok = np.logical_and.reduce([np.isfinite(p) for p in probs])
    yy = y[ok]
    status = "ok" if (0 < yy.sum() < yy.size) else "single class: AUROC undefined"
    if not ok.all():
        status += f" ({int((~ok).sum())} patient(s) without prediction)"
    n, events = int(ok.sum()), int(yy.sum())
    return {
        "n": n,
        "events": events,
        "prevalence": events / n if n else np.nan,
        "imprecise": bool(min(events, n - events) < config.imprecise_below),
        "suppressed": False,
        "status": status,
    }


def _add_paired_deltas(
    rows: dict[str, dict],
    boot: dict[str, np.ndarray],
    best_single: str | None,
    config: EvaluationConfig,
) -> None:
    """ΔAUROC vs the reference and vs the best single modality, with paired CIs, in place."""
    for s, r in rows.items():
        for col, other in (
            ("delta_auroc_vs_reference", config.reference),
            ("delta_auroc_vs_best_single", best_single),
        ):
            if other is None or other not in boot or other == s or s not in boot:
                r[col] = r[f"{col}_ci_low"] = r[f"{col}_ci_high"] = np.nan
                continue
            r[col] = r["auroc"] - rows[other]["auroc"]
            r[f"{col}_ci_low"], r[f"{col}_ci_high"] = percentile_ci(
                boot[s] - boot[other], config.ci_level
            )
