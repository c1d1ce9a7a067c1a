"""The evaluation design: one interface, chosen once from the cohort size.

An :class:`EvaluationDesign` answers every question that differs between a
held-out split (``evaluation.holdout``) and repeated stratified k-fold
(``evaluation.kfold``):

* the plan: the shares of ``profile.splits`` and the fold plan (``profile.folds``);
* which models to fit: the deployed model always, plus the fold models a design
  needs (:meth:`fit_fold_models`, :meth:`load_fold_models`);
* how predictions are assembled: ``eval.predictions``, ``eval.oof_predictions``
  and ``eval.stress_predictions`` (:meth:`predictions`);
* how metrics are averaged over repeats: what ``subgroup_table(..., repeats=...)``
  receives (:meth:`repeats`) and the per-repeat table (:meth:`repeat_metrics`);
* how the report describes it (:meth:`notes`).

Callers never branch on the mode; :func:`choose_design` is the one place that
looks at the cohort size, and :func:`design_from_record` rebuilds the recorded
design from ``profile.evaluation_mode``.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from fusion_assets.cohorts.deployment_profile import DeploymentProfile
from fusion_assets.evaluation.assignment import assign_splits
from fusion_assets.evaluation.models import ModelStore
from fusion_assets.evaluation.plan import empty_plan, fold_keys
from fusion_assets.evaluation.settings import CrossValSettings, StressSettings

# (repeat, fold, train_ids, validation_ids) -> (fitted model, train result); torch-side.
FoldFit = Callable[[int, int, list[str], list[str]], tuple[Any, Any]]
Log = Callable[[str], None]


@dataclass
class PredictionTables:
    """The three prediction tables of one evaluation (column contracts in docs/data-contracts.md)."""

    predictions: pd.DataFrame  # eval.predictions: strategy, patient_id, split, prob[, n_models]
    oof: pd.DataFrame  # eval.oof_predictions: OOF_TABLE_COLUMNS (zero rows without fold models)
    stress: pd.DataFrame  # eval.stress_predictions
    summary: str  # one line for the run log


@dataclass(frozen=True)
class DesignNotes:
    """What the report says about the design; ``metrics/report.py`` renders it as given.

    - ``summary``: a paragraph for the cohort section (``None``: nothing to add).
    - ``methods``: definitions placed before the report's own methods.
    - ``sections``: ``(title, text, table)`` sections after the cohort section.
    - ``size_note``: a warning about the cohort size with ``{n_test}`` and
      ``{events}`` placeholders (``None``: the report's own test-size rule applies).
    """

    summary: str | None = None
    methods: tuple[str, ...] = ()
    sections: tuple[tuple[str, str, pd.DataFrame], ...] = ()
    size_note: str | None = None

    def size_warning(self, n_test: int | str, events: int | str) -> str | None:
        # The report passes the counts as it may print them (fusion_assets.disclosure).
        return self.size_note.format(n_test=n_test, events=events) if self.size_note else None


class EvaluationDesign(ABC):
    """How a cohort is evaluated; see the module docstring for what each method decides."""

    mode: ClassVar[str]  # recorded in profile.evaluation_mode

    def __init__(
        self,
        n_patients: int,
        settings: CrossValSettings,
        plan: pd.DataFrame | None = None,
        plan_id: str = "",
    ) -> None:
        self.n_patients = int(n_patients)
        self.settings = settings
        self.plan = empty_plan() if plan is None else plan
        self.plan_id = plan_id

    @classmethod
    @abstractmethod
    def planned(cls, cohort: pd.DataFrame, settings: CrossValSettings) -> EvaluationDesign:
        """The design for ``cohort`` (``patient_id, label, pattern``) with its fold plan."""

    # --- the plan ------------------------------------------------------------------------

    @abstractmethod
    def split_fractions(self, holdout: tuple[float, float, float]) -> tuple[float, float, float]:
        """Train / validation / test shares of ``profile.splits`` (the deployed model's split)."""

    def assign_splits(
        self,
        cohort: pd.DataFrame,
        existing: pd.DataFrame,
        previous_mode: str | None,
        holdout: tuple[float, float, float],
        seed: int,
    ) -> tuple[pd.DataFrame, dict[str, Any]]:
        """``profile.splits`` for the cohort, extending ``existing`` when the design is unchanged.

        Switching design starts the split afresh: a cross-validation split has no
        test patients, so keeping it would leave a grown cohort's test split made
        only of the newest patients (and in cross-validation no patient is held out).
        """
        if previous_mode not in (None, self.mode):
            existing = existing.iloc[0:0]
        return assign_splits(cohort, existing, seed, self.split_fractions(holdout))

    def record(self) -> dict[str, Any]:
        """The row of ``profile.evaluation_mode``."""
        return {
            "mode": self.mode,
            "n_patients": self.n_patients,
            "plan_id": self.plan_id,
            "settings": json.dumps(self.settings.to_dict()),
        }

    @abstractmethod
    def describe(self) -> str:
        """The design in a few words (logs and metadata)."""

    def plan_summary(self, cohort: pd.DataFrame) -> pd.DataFrame | None:
        """Per fold model: patients and events per role (``None`` without fold models)."""
        return None

    # --- which models to fit -------------------------------------------------------------

    @property
    def fold_keys(self) -> list[tuple[int, int]]:
        """The (repeat, fold) models fitted beside each deployed model (none when held out)."""
        return fold_keys(self.plan)

    @abstractmethod
    def fit_fold_models(
        self,
        root: Path,
        name: str,
        fit: FoldFit,
        frames: Mapping[str, pd.DataFrame],
        labels: pd.Series,
        log: Log,
    ) -> Any:
        """Fit, save and predict out of fold with the design's fold models of one model.

        Returns the :class:`~fusion_assets.evaluation.fold_models.FoldRun`, or ``None``
        when the design has no fold models.
        """

    def load_fold_models(
        self, root: Path, name: str, keys: Sequence[tuple[int, int]] | None = None
    ) -> dict[tuple[int, int], Any]:
        """The fold models of one model by (repeat, fold); stale ones raise ``ModelsNotReady``."""
        keys = self.fold_keys if keys is None else list(keys)
        if not keys:
            return {}
        from fusion_assets.evaluation.fold_models import load_fold_models

        return load_fold_models(root, self.plan_id, name, keys)

    # --- predictions, metrics, report ----------------------------------------------------

    @abstractmethod
    def predictions(
        self,
        store: ModelStore,
        modalities: Sequence[str],
        frames: Mapping[str, pd.DataFrame],
        cohort: pd.DataFrame,
        stress: StressSettings,
        deployment: DeploymentProfile | None = None,
    ) -> PredictionTables:
        """Every strategy and single-modality baseline scored, and the stress tests (with
        the pattern-shift scenarios toward ``deployment`` when given)."""

    @abstractmethod
    def repeats(self, oof: pd.DataFrame) -> pd.DataFrame | None:
        """What ``subgroup_table``/``evaluate`` receive as ``repeats``."""

    @abstractmethod
    def repeat_metrics(self, oof: pd.DataFrame, patients: pd.DataFrame) -> pd.DataFrame:
        """``eval.cv_repeat_metrics``: the all-patients AUROC per repeat (zero rows when held out)."""

    @abstractmethod
    def notes(self, repeat_metrics: pd.DataFrame) -> DesignNotes:
        """How the report describes this design."""
