"""The evaluation designs (held-out, repeated stratified k-fold) behind one interface.

Pure code, no dagster: ``design.EvaluationDesign`` is the interface,
``holdout.HeldOut`` and ``kfold.RepeatedKFold`` its implementations, chosen by
:func:`choose_design` from the cohort size. ``assignment`` holds the one seeded
stratified ordering behind both the split and the fold plan; ``fold_models``
(torch) trains and reads fold models and is imported only when they are used.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from fusion_assets.evaluation.design import DesignNotes, EvaluationDesign, PredictionTables
from fusion_assets.evaluation.holdout import HeldOut
from fusion_assets.evaluation.kfold import RepeatedKFold
from fusion_assets.evaluation.models import ModelsNotReady, fold_root
from fusion_assets.evaluation.settings import (
    CV,
    HOLDOUT,
    CrossValSettings,
    SplitSettings,
    StressSettings,
)

DESIGNS: dict[str, type[EvaluationDesign]] = {
    HeldOut.mode: HeldOut,
    RepeatedKFold.mode: RepeatedKFold,
}


def choose_design(cohort: pd.DataFrame, settings: CrossValSettings) -> EvaluationDesign:
    """The design for ``cohort`` (``patient_id, label, pattern``), with its fold plan.

    Raises ``ValueError`` when a small cohort cannot be cross-validated (too few
    patients of a label for the folds).
    """
    return DESIGNS[settings.mode(len(cohort))].planned(cohort, settings)


def design_from_record(
    record: Mapping[str, Any] | None, plan: pd.DataFrame | None = None
) -> EvaluationDesign:
    """The design recorded in ``profile.evaluation_mode`` (``None``: nothing recorded yet,
    which reads as held out, like a warehouse from before cross-validation existed)."""
    if record is None:
        return HeldOut(0, CrossValSettings())
    settings = CrossValSettings(**record["settings"])
    return DESIGNS[record["mode"]](record["n_patients"], settings, plan, record["plan_id"])


__all__ = [
    "CV",
    "DESIGNS",
    "HOLDOUT",
    "CrossValSettings",
    "DesignNotes",
    "EvaluationDesign",
    "HeldOut",
    "ModelsNotReady",
    "PredictionTables",
    "RepeatedKFold",
    "SplitSettings",
    "StressSettings",
    "choose_design",
    "design_from_record",
    "fold_root",
]
