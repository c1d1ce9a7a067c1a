"""The multi-block stacking reference: one boosting model per modality, stacked.

The pattern used in practice for missing modalities: each modality gets its own
``HistGradientBoostingClassifier`` fitted on the training patients that have
it; a logistic regression combines their logits with one availability flag per
modality, so a patient is scored from the modalities it has and the intercept
shifts with what is missing. The stacker is fitted on *out-of-fold* logits (an
inner stratified cross-validation on the training patients), never on the
in-sample predictions of the models it combines.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegressionCV
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import Pipeline, make_pipeline

from fusion_assets.cohorts.spec import CohortSpec
from fusion_assets.models.config import FusionConfig
from fusion_assets.models.inputs import PreparedInputs, State
from fusion_assets.models.logistic_reference import logistic_cv
from fusion_assets.models.reference import new_hgb, tree_nodes
from fusion_assets.models.reference_features import (
    DropEmptyColumns,
    ModalityBlocks,
    NonNeuralModel,
)

STACK_FOLDS = 5
MIN_CLASS = 2  # a modality whose patients have fewer of either class gets no model


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


class StackedReference(NonNeuralModel):
    """Per-modality HGB, stacked with availability flags by a logistic regression."""

    def __init__(
        self, spec: CohortSpec, preprocessing: dict[str, State], config: FusionConfig
    ) -> None:
        self.blocks = ModalityBlocks(spec, preprocessing, config)
        self.config = config
        self.models: dict[str, Pipeline] = {}
        self.stacker: LogisticRegressionCV | None = None

    @property
    def modalities(self) -> list[str]:
        return self.blocks.modalities

    def _modality_model(self) -> Pipeline:
        return make_pipeline(DropEmptyColumns(), new_hgb(self.config, early_stopping=False))

    def _out_of_fold(
        self, modality: str, x: np.ndarray, labels: np.ndarray, has: np.ndarray
    ) -> np.ndarray | None:
        """Out-of-fold logits of the modality's patients (0 elsewhere); None: too few."""
        y = labels[has]
        if min(int(y.sum()), int(len(y) - y.sum())) < MIN_CLASS or x.shape[1] == 0:
            return None  # nothing to learn: too few of a class, or no feature with a value
        minority = int(min(y.sum(), len(y) - y.sum()))
        folds = StratifiedKFold(
            min(STACK_FOLDS, minority), shuffle=True, random_state=self.config.train.seed
        )
        oof = cross_val_predict(
            self._modality_model(), x[has], y, cv=folds, method="predict_proba"
        )[:, 1]
        z = np.zeros(len(labels))
        z[has] = _logit(oof)
        self.models[modality] = self._modality_model().fit(x[has], y)
        return z

    def _stack_features(self, logits: list[np.ndarray], flags: list[np.ndarray]) -> np.ndarray:
        return np.column_stack([*logits, *flags]) if logits else np.zeros((len(flags[0]), 0))

    def fit(
        self, prepared: PreparedInputs, labels: np.ndarray, present: np.ndarray
    ) -> StackedReference:
        labels = np.asarray(labels).astype(np.int64)
        self.blocks.fit(prepared, labels, present)
        logits, flags = [], []
        for m, col in zip(self.blocks.modalities, self.blocks.columns, strict=True):
            has = present[:, col].astype(bool)
            z = self._out_of_fold(m, self.blocks.block(m, prepared, present), labels, has)
            if z is not None:
                logits.append(z)
                flags.append(has.astype(np.float64))
        if not logits:
            raise ValueError("stacked reference: no modality has patients of both classes")
        self.stacker = logistic_cv(labels, self.config.train.seed).fit(
            self._stack_features(logits, flags), labels
        )
        return self

    def predict_proba(self, prepared: PreparedInputs, present: np.ndarray) -> np.ndarray:
        if self.stacker is None:
            raise ValueError("the stacked reference is not fitted: call fit first")
        logits, flags = [], []
        for m, col in zip(self.blocks.modalities, self.blocks.columns, strict=True):
            if m not in self.models:
                continue
            has = present[:, col].astype(bool)
            z = np.zeros(len(prepared))
            if has.any():
                x = self.blocks.block(m, prepared, present)[has]
                z[has] = _logit(self.models[m].predict_proba(x)[:, 1])
            logits.append(z)
            flags.append(has.astype(np.float64))
        return self.stacker.predict_proba(self._stack_features(logits, flags))[:, 1]

    @property
    def n_parameters(self) -> int:
        trees = sum(tree_nodes(model[-1]) for model in self.models.values())
        stack = self.stacker.coef_.size + 1 if self.stacker is not None else 0
        return int(trees + stack)
