"""Stress tests: how AUROC falls as whole modalities go missing.

Input ``degradation_predictions`` (one row per strategy × scenario × rate ×
mask seed × patient): ``strategy, scenario, rate, dropped, mask_seed,
patient_id, prob`` with scenario one of

- ``global``: every present modality of every patient dropped independently
  with probability ``rate``;
- ``modality:<name>``: only ``<name>`` dropped, with probability ``rate``;
- ``leave_one_out``: on the complete-case subset, modality ``dropped`` removed
  for everyone (``rate`` NaN);
- ``single_modality``: on the complete-case subset, only one modality kept;
  ``dropped`` names the modality *kept* (the one the scenario is about).

Outputs:

- :func:`degradation_curves`: AUROC per strategy × scenario × rate, mean over
  mask seeds with its standard deviation, min and max.
- :func:`degradation_summary`: per strategy × rate-scenario, the normalised area
  under the curve ``area = trapz(mean AUROC, rate) / (max rate - min rate)``
  (the AUROC averaged over the rate range), ``auroc_at_0``, ``drop = auroc_at_0
  - area`` (how much is lost on average), ``retained = (area - 0.5) /
  (auroc_at_0 - 0.5)`` (share of above-chance discrimination kept), and the same
  quantities relative to late fusion (``area_vs_late``, ``drop_vs_late``).
- :func:`complete_case_table`: leave-one-out and single-modality AUROCs, with
  each strategy's full-data AUROC on the same complete-case patients.

Zero modalities: the masks may leave a patient with nothing (at rate 0.9 that
is common). That is allowed on purpose: a deployed model meets such patients,
and the model API then returns its prior, which ranks them all equally. It is
what a fair stress test must charge every strategy for.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fusion_assets.metrics.classification import auroc
from fusion_assets.names import LATE

# Pattern-shift scenarios toward a deployment profile (scoring.deployment_masks): rate NaN,
# so they are not degradation curves; metrics/deployment.py reads them.
DEPLOYMENT_REPLAY = "deployment_replay"
DEPLOYMENT_RATE = "deployment_rate:"
# ... and the missingness-mechanism shift (scoring.mechanism_masks), rate NaN too
MECHANISM_SHIFT = "mechanism:mnar_label"
# The stress-test design: rates of whole modalities removed, and random masks per rate.
STRESS_RATES: tuple[float, ...] = (0.0, 0.1, 0.3, 0.5, 0.7, 0.9)
STRESS_SEEDS: int = 5

SUMMARY_COLUMNS = [
    "strategy",
    "scenario",
    "auroc_at_0",
    "area",
    "drop",
    "retained",
    "area_vs_late",
    "drop_vs_late",
]


def random_modality_masks(
    present: np.ndarray,
    rate: float,
    seed: int | np.random.SeedSequence,
    modality: int | None = None,
    keep_at_least_one: bool = False,
) -> np.ndarray:
    """Presence mask after removing whole modalities at random.

    ``present`` is (n patients, m modalities) bool. With ``modality=None`` every
    present modality is dropped independently with probability ``rate``; with
    ``modality=j`` only column j is dropped (with probability ``rate``) and the
    others are untouched. Absent modalities never become present. A patient may
    end with no modality unless ``keep_at_least_one`` (then one of the patient's
    originally present modalities, chosen at random, is restored).
    """
    present = np.asarray(present, dtype=bool)
    if present.ndim != 2:
        raise ValueError(f"present must be 2-d (patients, modalities), got shape {present.shape}")
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must be in [0, 1], got {rate}")
    rng = np.random.default_rng(seed)
    drop = rng.random(present.shape) < rate
    if modality is not None:
        if not 0 <= modality < present.shape[1]:
            raise ValueError(
                f"modality index {modality} out of range for {present.shape[1]} columns"
            )
        only = np.zeros_like(drop)
        only[:, modality] = True
        drop &= only
    out = present & ~drop
    if keep_at_least_one:
        emptied = np.flatnonzero(~out.any(axis=1) & present.any(axis=1))
        if emptied.size:
            # Random present column per emptied row: argmax of random keys over present ones.
            keys = np.where(present[emptied], rng.random((emptied.size, present.shape[1])), -1.0)
            out[emptied, keys.argmax(axis=1)] = True
    return out


def _auroc_by_group(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    rows = []
    for key, g in df.groupby(keys, observed=True, sort=True, dropna=False):
        rows.append((*key, auroc(g["label"].to_numpy(), g["prob"].to_numpy()), len(g)))
    return pd.DataFrame(rows, columns=[*keys, "auroc", "n"])


def _with_labels(degradation_predictions: pd.DataFrame, patients: pd.DataFrame) -> pd.DataFrame:
    missing = {"strategy", "scenario", "rate", "dropped", "mask_seed", "patient_id", "prob"} - set(
        degradation_predictions.columns
    )
    if missing:
        raise ValueError(f"degradation_predictions lacks column(s) {sorted(missing)}.")
    df = degradation_predictions.merge(
        patients[["patient_id", "label"]], on="patient_id", how="left"
    )
    if df["label"].isna().any():
        raise ValueError(
            f"{int(df['label'].isna().sum())} degradation prediction row(s) name patients "
            "missing from patients."
        )
    return df


def degradation_curves(
    degradation_predictions: pd.DataFrame, patients: pd.DataFrame
) -> pd.DataFrame:
    """Columns: strategy, scenario, rate, auroc_mean, auroc_sd, auroc_min, auroc_max, n_seeds, n."""
    df = _with_labels(degradation_predictions, patients)
    df = df[df["rate"].notna()]
    cols = [
        "strategy",
        "scenario",
        "rate",
        "auroc_mean",
        "auroc_sd",
        "auroc_min",
        "auroc_max",
        "n_seeds",
        "n",
    ]
    if df.empty:
        return pd.DataFrame(columns=cols)
    per_seed = _auroc_by_group(df, ["strategy", "scenario", "rate", "mask_seed"])
    agg = (
        per_seed.groupby(["strategy", "scenario", "rate"], observed=True)
        .agg(
            auroc_mean=("auroc", "mean"),
            auroc_sd=("auroc", "std"),
            auroc_min=("auroc", "min"),
            auroc_max=("auroc", "max"),
            n_seeds=("auroc", "size"),
            n=("n", "max"),
        )
        .reset_index()
    )
    agg["strategy"] = agg["strategy"].astype(str)
    agg["scenario"] = agg["scenario"].astype(str)
    return agg[cols].sort_values(["scenario", "strategy", "rate"], ignore_index=True)


def degradation_summary(curves: pd.DataFrame, late: str = LATE) -> pd.DataFrame:
    """Area under each degradation curve and robustness relative to ``late`` (see module doc)."""
    rows = []
    for (strategy, scenario), g in curves.groupby(["strategy", "scenario"], sort=True):
        g = g.sort_values("rate")
        r, a = g["rate"].to_numpy(float), g["auroc_mean"].to_numpy(float)
        ok = np.isfinite(a)
        r, a = r[ok], a[ok]
        if r.size >= 2 and r[-1] > r[0]:
            area = float(np.sum(np.diff(r) * (a[1:] + a[:-1]) / 2.0) / (r[-1] - r[0]))
        else:
            area = float(a[0]) if a.size else float("nan")
        at0 = float(a[0]) if a.size and r[0] == 0.0 else float("nan")
        retained = (area - 0.5) / (at0 - 0.5) if np.isfinite(at0) and at0 > 0.5 else float("nan")
        rows.append((strategy, scenario, at0, area, at0 - area, retained))
    out = pd.DataFrame(rows, columns=SUMMARY_COLUMNS[:6])
    late_rows = out[out["strategy"] == late].set_index("scenario")
    out["area_vs_late"] = out["area"] - out["scenario"].map(late_rows["area"])
    out["drop_vs_late"] = out["drop"] - out["scenario"].map(late_rows["drop"])
    return out[SUMMARY_COLUMNS]


def complete_case_table(
    degradation_predictions: pd.DataFrame,
    patients: pd.DataFrame,
    predictions: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Leave-one-out and single-modality AUROCs on the complete-case subset.

    Columns: strategy, scenario, modality, n, auroc, full_auroc (the strategy's
    AUROC with every modality on the same patients), delta_vs_full.

    ``full_auroc`` compares like with like: it scores the stress-tested models
    themselves with nothing removed (the ``global`` rows at rate 0). Only when
    the stress tests have no rate 0 does it fall back to the test rows of
    ``predictions``, which must then come from the same models (in
    cross-validation: the stress-tested repeat's out-of-fold predictions).
    """
    cols = ["strategy", "scenario", "modality", "n", "auroc", "full_auroc", "delta_vs_full"]
    df = _with_labels(degradation_predictions, patients)
    cc = df[df["scenario"].isin(["leave_one_out", "single_modality"])]
    if cc.empty:
        return pd.DataFrame(columns=cols)
    out = _auroc_by_group(cc, ["strategy", "scenario", "dropped"]).rename(
        columns={"dropped": "modality"}
    )
    for c in ("strategy", "scenario", "modality"):
        out[c] = out[c].astype(str)
    full = _full_data_rows(df, predictions, patients)
    out["full_auroc"] = np.nan
    if full is not None:
        full = full[full["patient_id"].isin(pd.Index(cc["patient_id"].unique()))]
        by_strategy = {
            s: auroc(g["label"].to_numpy(), g["prob"].to_numpy())
            for s, g in full.groupby("strategy", observed=True)
        }
        out["full_auroc"] = out["strategy"].map(by_strategy)
    out["delta_vs_full"] = out["auroc"] - out["full_auroc"]
    return out[cols].sort_values(["scenario", "modality", "strategy"], ignore_index=True)


def _full_data_rows(
    stress: pd.DataFrame, predictions: pd.DataFrame | None, patients: pd.DataFrame
) -> pd.DataFrame | None:
    """``strategy, patient_id, prob, label`` of the stress-tested models with every modality."""
    at_zero = stress[(stress["scenario"] == "global") & (stress["rate"] == 0.0)]
    if len(at_zero):
        # Rate 0 removes nothing, so every mask seed gives the same predictions.
        return at_zero[at_zero["mask_seed"] == at_zero["mask_seed"].min()]
    if predictions is None:
        return None
    test = predictions[predictions["split"] == "test"]
    return test.merge(patients[["patient_id", "label"]], on="patient_id")
