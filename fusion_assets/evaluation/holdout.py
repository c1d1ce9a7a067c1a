"""The held-out design: one stratified train / validation / test split.

The deployed models are the only models: they are fitted on train (validation
for early stopping, stacking and thresholds) and scored on validation and test.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from fusion_assets.cohorts.deployment_profile import DeploymentProfile
from fusion_assets.evaluation.design import (
    DesignNotes,
    EvaluationDesign,
    FoldFit,
    Log,
    PredictionTables,
)
from fusion_assets.evaluation.models import ModelStore, load_deployed_models
from fusion_assets.evaluation.plan import empty_oof_table
from fusion_assets.evaluation.settings import HOLDOUT, CrossValSettings, StressSettings
from fusion_assets.metrics.crossval import empty_repeat_table
from fusion_assets.models.recalibration import METHOD_NOTE
from fusion_assets.models.strategies import STRATEGIES


class HeldOut(EvaluationDesign):
    """Evaluation on the held-out test split of ``profile.splits``."""

    mode = HOLDOUT

    @classmethod
    def planned(cls, cohort: pd.DataFrame, settings: CrossValSettings) -> HeldOut:
        return cls(len(cohort), settings)

    def split_fractions(self, holdout: tuple[float, float, float]) -> tuple[float, float, float]:
        return holdout

    def describe(self) -> str:
        return "a held-out test split"

    def fit_fold_models(
        self,
        root: Path,
        name: str,
        fit: FoldFit,
        frames: Mapping[str, pd.DataFrame],
        labels: pd.Series,
        log: Log,
    ) -> Any:
        return None  # the deployed model is the evaluated model

    def predictions(
        self,
        store: ModelStore,
        modalities: Sequence[str],
        frames: Mapping[str, pd.DataFrame],
        cohort: pd.DataFrame,
        stress: StressSettings,
        deployment: DeploymentProfile | None = None,
    ) -> PredictionTables:
        from fusion_assets.models.device import resolve_device  # torch: only when scoring
        from fusion_assets.scoring import score, stress_test

        started = time.perf_counter()
        models = load_deployed_models(store, modalities)
        scored = cohort[cohort["split"].isin(["validation", "test"])]
        predictions = score(models, frames, scored, device=stress.device)
        scoring_s = time.perf_counter() - started
        test_ids = scored.loc[scored["split"] == "test", "patient_id"].tolist()
        fused = {s: models[s] for s in STRATEGIES}
        started = time.perf_counter()
        # the mechanism-shift stress test needs the labels (absent: that scenario is left out)
        labels = scored.set_index("patient_id")["label"] if "label" in scored.columns else None
        stressed = stress_test(
            fused,
            frames,
            test_ids,
            stress.rates,
            stress.mask_seeds,
            deployment=deployment,
            labels=labels,
        )
        summary = (
            f"Scored {len(scored)} validation/test patients with {len(models)} models "
            f"(torch on {resolve_device(stress.device).type}) in "
            f"{scoring_s:.1f} s; stress tests: {len(stressed):,} predictions in "
            f"{time.perf_counter() - started:.1f} s"
        )
        return PredictionTables(predictions, empty_oof_table(), stressed, summary)

    def repeats(self, oof: pd.DataFrame) -> pd.DataFrame | None:
        return None  # one split: the test predictions are the only repeat

    def repeat_metrics(self, oof: pd.DataFrame, patients: pd.DataFrame) -> pd.DataFrame:
        return empty_repeat_table()

    def notes(self, repeat_metrics: pd.DataFrame) -> DesignNotes:
        return DesignNotes(methods=(METHOD_NOTE,))
