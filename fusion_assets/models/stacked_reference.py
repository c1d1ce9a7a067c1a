"""The multi-block stacking reference: one boosting model per modality, stacked.

The pattern used in practice for missing modalities: each modality gets its own
``HistGradientBoostingClassifier`` fitted on the training patients that have
it; a logistic regression combines their logits with one availability flag per
modality, so a patient is scored from the modalities it has and the intercept
shifts with what is missing. The stacker is fitted on *out-of-fold* logits (an
inner stratified cross-validation on the training patients), never on the
in-sample predictions of the models it combines, and its modality weights are
kept positive (``_fit_stacker``): on ~80 training patients (ischemic stroke) an
unconstrained stacker learned negative weights from noisy out-of-fold logits
and the stack reached AUROC 0.518 with a calibration slope of 0.08.
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


def _log_loss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


class StackedReference(NonNeuralModel):
    """Per-modality HGB, stacked with availability flags by a logistic regression."""

    parameters_counted = "tree nodes + stacker coefficients"

    def __init__(
        self, spec: CohortSpec, preprocessing: dict[str, State], config: FusionConfig
    ) -> None:
        self.blocks = ModalityBlocks(spec, preprocessing, config)
        self.config = config
        self.models: dict[str, Pipeline] = {}
        self.stacker: LogisticRegressionCV | None = None
        self.stacked: list[str] = []  # modalities whose logits the stacker reads
        self.direct: str | None = None  # no positive weight: this modality scores alone
        self.prevalence = 0.5
        self.oof_log_loss: dict[str, float] = {}  # per modality, of its out-of-fold logits

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
        self.oof_log_loss[modality] = _log_loss(y, oof)
        z = np.zeros(len(labels))
        z[has] = _logit(oof)
        self.models[modality] = self._modality_model().fit(x[has], y)
        return z

    def _stack_features(self, logits: dict[str, np.ndarray], flags: np.ndarray) -> np.ndarray:
        return np.column_stack([*(logits[m] for m in self.stacked), flags])

    def fit(
        self, prepared: PreparedInputs, labels: np.ndarray, present: np.ndarray
    ) -> StackedReference:
        labels = np.asarray(labels).astype(np.int64)
        self.blocks.fit(prepared, labels, present)
        logits = {}
        for m, col in zip(self.blocks.modalities, self.blocks.columns, strict=True):
            has = present[:, col].astype(bool)
            z = self._out_of_fold(m, self.blocks.block(m, prepared, present), labels, has)
            if z is not None:
                logits[m] = z
        if not logits:
            raise ValueError("stacked reference: no modality has patients of both classes")
        self._fit_stacker(logits, self._flags(present), labels)
        return self

    def _flags(self, present: np.ndarray) -> np.ndarray:
        """Availability [n, modalities with a model] as floats."""
        cols = [
            c for m, c in zip(self.modalities, self.blocks.columns, strict=True) if m in self.models
        ]
        return present[:, cols].astype(np.float64)

    def _fit_stacker(
        self, logits: dict[str, np.ndarray], flags: np.ndarray, labels: np.ndarray
    ) -> None:
        """Logistic stacker whose modality weights are all positive.

        On a small cohort a weak modality's out-of-fold logits can be anti-correlated
        with the label (each inner fold's model leans toward the prevalence of the
        patients it was fitted on, the opposite of the held-out fold's): a negative
        weight learned from that is noise, not signal. The modality with the most
        negative weight is left out and the stacker refitted until every weight is
        positive; if none is, the modality with the lowest out-of-fold log loss scores
        patients on its own (``direct``).
        """
        self.stacked = list(logits)
        while self.stacked:
            stacker = logistic_cv(labels, self.config.train.seed).fit(
                self._stack_features(logits, flags), labels
            )
            weights = stacker.coef_[0, : len(self.stacked)]
            if (weights > 0).all():
                self.stacker, self.direct = stacker, None
                return
            self.stacked.pop(int(np.argmin(weights)))
        self.stacker = None
        self.direct = min(logits, key=self.oof_log_loss.__getitem__)
        self.prevalence = float(labels.mean())

    def _logits(self, modality: str, prepared: PreparedInputs, present: np.ndarray) -> np.ndarray:
        """The modality model's logits where the modality is present, 0 elsewhere."""
        has = present[:, self.blocks.columns[self.modalities.index(modality)]].astype(bool)
        z = np.zeros(len(prepared))
        if has.any():
            x = self.blocks.block(modality, prepared, present)[has]
            z[has] = _logit(self.models[modality].predict_proba(x)[:, 1])
        return z

    def predict_proba(self, prepared: PreparedInputs, present: np.ndarray) -> np.ndarray:
        if not self.models:
            raise ValueError("the stacked reference is not fitted: call fit first")
        if self.stacker is None:
            has = present[:, self.blocks.columns[self.modalities.index(self.direct)]].astype(bool)
            z = self._logits(self.direct, prepared, present)
            return np.where(has, 1 / (1 + np.exp(-z)), self.prevalence)
        logits = {m: self._logits(m, prepared, present) for m in self.stacked}
        features = self._stack_features(logits, self._flags(present))
        return self.stacker.predict_proba(features)[:, 1]

    def pair_scorer(self, prepared: PreparedInputs):
        """Each modality model's logits computed once per patient that has the modality;
        a masked copy zeroes the masked ones and the stacker scores a chunk in one call."""
        if not self.models:
            raise ValueError("the stacked reference is not fitted: call fit first")
        read = [self.direct] if self.stacker is None else self.stacked
        cached = {m: self._logits(m, prepared, prepared.present) for m in read}

        def column(m: str, present: np.ndarray) -> np.ndarray:
            return present[:, self.blocks.columns[self.modalities.index(m)]].astype(bool)

        def score(rows: np.ndarray, present: np.ndarray) -> np.ndarray:
            if self.stacker is None:
                z = cached[self.direct][rows]
                return np.where(column(self.direct, present), 1 / (1 + np.exp(-z)), self.prevalence)
            logits = {m: np.where(column(m, present), cached[m][rows], 0.0) for m in read}
            features = self._stack_features(logits, self._flags(present))
            return self.stacker.predict_proba(features)[:, 1]

        return score

    def describe(self) -> str:
        iterations = ", ".join(f"{m} {model[-1].n_iter_}" for m, model in self.models.items())
        per_modality = f"gradient boosting per modality (iterations: {iterations})"
        if self.stacker is None:
            return f"{per_modality}; {self.direct} scores alone (no positive stacking weight)"
        return (
            f"{per_modality}, stacked with availability flags by L2 logistic regression "
            f"(lbfgs) on out-of-fold logits of {', '.join(self.stacked)}"
        )

    @property
    def n_parameters(self) -> int:
        trees = sum(tree_nodes(model[-1]) for model in self.models.values())
        stack = self.stacker.coef_.size + 1 if self.stacker is not None else 0
        return int(trees + stack)
