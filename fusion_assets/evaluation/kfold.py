"""Repeated stratified k-fold: the design for small cohorts (out-of-fold predictions).

A single held-out test split of a few hundred patients is mostly noise, so
cohorts under ``small_cohort_size`` patients are evaluated out of fold:

* every repeat deals the patients into ``folds`` folds, stratified by label x
  availability pattern (``evaluation.assignment``);
* the fold model ``(repeat, fold)`` is trained on the other folds, minus an
  inner validation part carved out of them (stratified too) for early stopping,
  late-fusion stacking and threshold choice;
* each patient is predicted by the one model per repeat that never saw it, and
  every metric is computed per repeat and averaged over the repeats.

The deployed model of each strategy is refitted on all patients the way its fold
models were trained (``evaluation/refit.py``): no early stopping on a carve-out.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fusion_assets.cohorts.deployment_profile import DeploymentProfile
from fusion_assets.evaluation.assignment import assign_folds
from fusion_assets.evaluation.design import (
    DesignNotes,
    EvaluationDesign,
    FoldFit,
    Log,
    PredictionTables,
)
from fusion_assets.evaluation.models import ModelStore, evaluated_models, fold_root
from fusion_assets.evaluation.plan import OOF_TABLE_COLUMNS, fold_summary, plan_id
from fusion_assets.evaluation.settings import CV, CrossValSettings, StressSettings
from fusion_assets.metrics.crossval import repeat_aurocs
from fusion_assets.models.recalibration import METHOD_NOTE
from fusion_assets.models.strategies import STRATEGIES
from fusion_assets.names import FUSION_STORE

METHODS = (
    "Cross-validation (small cohorts): 'test' means out-of-fold, and each repeat predicts "
    "every patient exactly once. Every metric (AUROC, AUPRC, Brier, calibration, ECE, "
    "sensitivity / specificity, ΔAUROC) is computed per repeat on that "
    "repeat's predictions and the point estimates are averaged over the repeats; the "
    "reliability bins likewise. Probabilities are never averaged over repeats first: that "
    "would score a small ensemble of fold models and flatter the one deployed model.",
    "Cross-validation intervals: one label-stratified patient bootstrap per subgroup, the "
    "same resampled patients for every repeat and every strategy (paired). Each resample's "
    "statistic is averaged over the repeats before the percentile interval is taken, so "
    "every patient counts once, the interval reflects patient sampling at the cohort's "
    "size, and the repeat-to-repeat (fold assignment) variation is averaged out rather "
    "than added; the per-repeat AUROC range shows that variation separately.",
    "Cross-validation thresholds and the best single modality come from the inner "
    "validation predictions: each fold model keeps part of its training folds aside "
    "(stratified) for early stopping and late-fusion stacking, and its predictions on those "
    "patients, averaged per patient, form the 'validation' rows.",
    "Cross-validation stress tests (degradation curves, the complete-case table and the model "
    "cards' 'complete cases lose X without M') use the first repeat's fold models, each "
    "patient scored by the model that never saw it; their full-data AUROC is those same "
    "models' with every modality, so losses compare like with like. These are one repeat's "
    "figures, not the repeat average of the headline.",
)
REPEAT_SECTION = (
    "Cross-validation: AUROC per repeat",
    "All-patients AUROC of each repeat's out-of-fold predictions: how much the "
    "estimate moves with the fold assignment alone. The headline AUROC is the mean "
    "over repeats shown here (every metric is computed per repeat, then averaged), "
    "an estimate for one model refitted on all patients; its interval covers "
    "patient sampling, not this spread.",
)
REFIT_SUMMARY = (
    "The deployed models are refitted on all patients for the median epoch at which their fold "
    "models stopped early (no early stopping on a carve-out; gradient boosting and late fusion's "
    "unimodal parts as their fold models were fitted), recalibrated on the fold models' "
    "out-of-fold predictions where that map passes the recalibration gate, and late fusion takes the mean of its fold models' stacking "
    "weights; each deployed model's refit.json and Dagster metadata give its epochs."
)
# Out-of-fold predictions use every patient, but the patients are still few.
SIZE_NOTE = (
    "Small cohort ({n_test} patients, {events} events), so every patient is evaluated out "
    "of fold; intervals are still wide for a cohort this size and subgroup differences are "
    "mostly noise."
)


class RepeatedKFold(EvaluationDesign):
    """Repeated stratified k-fold with out-of-fold predictions for every patient."""

    mode = CV

    @classmethod
    def planned(cls, cohort: pd.DataFrame, settings: CrossValSettings) -> RepeatedKFold:
        s = settings
        plan = assign_folds(cohort, s.folds, s.repeats, s.seed, s.inner_validation)
        return cls(len(cohort), settings, plan, plan_id(plan))

    def split_fractions(self, holdout: tuple[float, float, float]) -> tuple[float, float, float]:
        share = self.settings.inner_validation
        return (1.0 - share, share, 0.0)  # the deployed model sees every patient

    def describe(self) -> str:
        return (
            f"repeated stratified {self.settings.folds}-fold cross-validation, "
            f"{self.settings.repeats} repeat(s), out-of-fold predictions"
        )

    def plan_summary(self, cohort: pd.DataFrame) -> pd.DataFrame | None:
        return fold_summary(self.plan, cohort)

    def fit_fold_models(
        self,
        root: Path,
        name: str,
        fit: FoldFit,
        frames: Mapping[str, pd.DataFrame],
        labels: pd.Series,
        log: Log,
    ) -> Any:
        from fusion_assets.evaluation.fold_models import train_folds  # torch

        log(
            f"{name}: training {self.settings.folds} folds x {self.settings.repeats} repeats "
            f"(cross-validation of a {self.n_patients}-patient cohort)"
        )
        run = train_folds(
            self.plan, self.plan_id, root, fit, frames, labels, log=lambda s: log(f"{name} {s}")
        )
        log(
            f"{name}: {len(run.summary)} fold models in {run.seconds:.1f} s; out-of-fold AUROC "
            f"{run.oof_auroc(labels):.3f} (per-repeat single-model estimate, mean of "
            f"{self.settings.repeats} repeats, as in the report; the ensemble of the repeats' "
            f"averaged probabilities scores {run.ensemble_auroc(labels):.3f}, an optimistic "
            "figure for one model)"
        )
        return run

    def predictions(
        self,
        store: ModelStore,
        modalities: Sequence[str],
        frames: Mapping[str, pd.DataFrame],
        cohort: pd.DataFrame,
        stress: StressSettings,
        deployment: DeploymentProfile | None = None,
    ) -> PredictionTables:
        """Predictions from the fold models' out-of-fold files; stress tests on the first
        repeat's fold models, each patient scored by the model that never saw it."""
        from fusion_assets.evaluation.fold_models import load_oof, stress_by_fold  # torch

        started = time.perf_counter()
        oof = pd.concat(
            [
                load_oof(fold_root(store, kind, name), self.plan, self.plan_id, name).assign(
                    strategy=name
                )
                for kind, name in evaluated_models(modalities)
            ],
            ignore_index=True,
        )[OOF_TABLE_COLUMNS]
        first = [key for key in self.fold_keys if key[0] == 0]
        fused = {
            s: self.load_fold_models(fold_root(store, FUSION_STORE, s), s, first)
            for s in STRATEGIES
        }
        stressed = stress_by_fold(
            fused,
            frames,
            self.plan,
            0,
            stress.rates,
            stress.mask_seeds,
            deployment,
            cohort.set_index("patient_id")["label"] if "label" in cohort.columns else None,
        )
        summary = (
            f"Cross-validation: {len(oof):,} out-of-fold rows from {oof['strategy'].nunique()} "
            f"models; stress tests on the first repeat's fold models in "
            f"{time.perf_counter() - started:.1f} s"
        )
        return PredictionTables(average_repeats(oof), oof, stressed, summary)

    def repeats(self, oof: pd.DataFrame) -> pd.DataFrame | None:
        # Metrics per repeat on the out-of-fold rows, then averaged: a single-model
        # estimate, not the score of the repeat-averaged predictions.
        return oof

    def repeat_metrics(self, oof: pd.DataFrame, patients: pd.DataFrame) -> pd.DataFrame:
        return repeat_aurocs(oof, patients)

    def notes(self, repeat_metrics: pd.DataFrame) -> DesignNotes:
        sections = (
            ((*REPEAT_SECTION, repeat_display(repeat_metrics)),) if len(repeat_metrics) else ()
        )
        return DesignNotes(
            summary=self.summary(),
            methods=(*METHODS, METHOD_NOTE),
            sections=sections,
            size_note=SIZE_NOTE,
        )

    def summary(self) -> str:
        """One paragraph naming the design (for the report's cohort section)."""
        k, r = self.settings.folds, self.settings.repeats
        return (
            f"Small cohort ({self.n_patients} patients, under "
            f"{self.settings.small_cohort_size}): evaluated by repeated stratified {k}-fold "
            f"cross-validation ({k} folds x {r} repeats, folds stratified by label x availability "
            "pattern). Every strategy and single-modality baseline was retrained per fold; each "
            "patient's test prediction comes only from models that never saw it (out-of-fold); "
            f"every metric is computed per repeat and averaged over the {r} repeats. {REFIT_SUMMARY}"
        )


def average_repeats(oof: pd.DataFrame) -> pd.DataFrame:
    """``eval.predictions`` rows from out-of-fold rows: one per strategy x patient x split.

    ``test`` rows average a patient's held-out predictions over the repeats (one
    per repeat); ``validation`` rows average the inner-validation predictions of
    the fold models that kept the patient aside. ``n_models`` says how many.
    """
    grouped = oof.groupby(["strategy", "patient_id", "role"], sort=True)["prob"]
    out = grouped.agg(prob="mean", n_models="size").reset_index()
    out = out.rename(columns={"role": "split"})
    return out[["strategy", "patient_id", "split", "prob", "n_models"]]


def repeat_display(table: pd.DataFrame) -> pd.DataFrame:
    """The per-repeat table formatted for the report."""

    def fmt(x: float) -> str:
        return "–" if not np.isfinite(x) else f"{x:.3f}"

    return pd.DataFrame(
        {
            "strategy": table["strategy"],
            "repeats": table["repeats"],
            "AUROC mean over repeats": table["auroc_mean"].map(fmt),
            "sd": table["auroc_sd"].fillna(np.nan).map(fmt),
            "min – max": [
                f"{fmt(lo)} – {fmt(hi)}" for lo, hi in table[["auroc_min", "auroc_max"]].values
            ],
        }
    )
