"""The linear reference: L2 logistic regression on standardised concatenated features.

Every modality's reference features (``ModalityBlocks``) side by side; a missing
value (an absent modality, an unmeasured lab) is imputed with the training
median and flagged by a missing indicator, then every column is standardised
(imputer and scaler fitted on the training patients only). The penalty C is
chosen by an inner stratified cross-validation on the training patients, on log
loss, so the predicted probabilities are what it optimises. On several small
real cohorts a plain L2 logistic regression was the strongest baseline.
"""

from __future__ import annotations

import numpy as np
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegressionCV
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from fusion_assets.cohorts.spec import CohortSpec
from fusion_assets.models.config import FusionConfig
from fusion_assets.models.inputs import PreparedInputs, State
from fusion_assets.models.reference_features import ModalityBlocks, NonNeuralModel

# C on a log grid from strong to weak shrinkage (10^-4 .. 10^2 on standardised columns)
C_GRID = tuple(np.logspace(-4, 2, 13))
INNER_FOLDS = 5


def inner_folds(labels: np.ndarray, seed: int) -> StratifiedKFold | int:
    """Stratified inner folds, fewer when the minority class is small (at least 2)."""
    minority = int(min(labels.sum(), len(labels) - labels.sum()))
    return StratifiedKFold(max(2, min(INNER_FOLDS, minority)), shuffle=True, random_state=seed)


def logistic_cv(labels: np.ndarray, seed: int) -> LogisticRegressionCV:
    """L2 logistic regression whose C minimises inner-CV log loss on ``labels``' rows."""
    return LogisticRegressionCV(
        Cs=list(C_GRID),
        l1_ratios=(0.0,),
        cv=inner_folds(labels, seed),
        scoring="neg_log_loss",
        max_iter=5_000,
        use_legacy_attributes=False,
    )


def new_logistic(labels: np.ndarray, seed: int) -> Pipeline:
    """Median imputation + indicators, standardisation, L2 logistic regression with C by CV."""
    return make_pipeline(
        SimpleImputer(strategy="median", add_indicator=True),
        StandardScaler(),
        logistic_cv(labels, seed),
    )


class LogisticReference(NonNeuralModel):
    """L2 logistic regression (C by inner CV) on all modalities, missing values flagged."""

    parameters_counted = "coefficients + intercept"

    def __init__(
        self, spec: CohortSpec, preprocessing: dict[str, State], config: FusionConfig
    ) -> None:
        self.blocks = ModalityBlocks(spec, preprocessing, config)
        self.config = config
        self.estimator: Pipeline | None = None

    @property
    def modalities(self) -> list[str]:
        return self.blocks.modalities

    def fit(
        self, prepared: PreparedInputs, labels: np.ndarray, present: np.ndarray
    ) -> LogisticReference:
        labels = np.asarray(labels).astype(np.int64)
        self.blocks.fit(prepared, labels, present)
        features = self.blocks.matrix(prepared, present)
        self.estimator = new_logistic(labels, self.config.train.seed).fit(features, labels)
        return self

    def predict_proba(self, prepared: PreparedInputs, present: np.ndarray) -> np.ndarray:
        if self.estimator is None:
            raise ValueError("the logistic reference is not fitted: call fit first")
        features = self.blocks.matrix(prepared, present)
        return self.estimator.predict_proba(features)[:, 1].astype(np.float64)

    def pair_scorer(self, prepared: PreparedInputs):
        """Features built once per patient; each chunk of masked copies one predict call."""
        if self.estimator is None:
            raise ValueError("the logistic reference is not fitted: call fit first")
        blocks = self.blocks.blocks_once(prepared)

        def score(rows: np.ndarray, present: np.ndarray) -> np.ndarray:
            features = self.blocks.masked_matrix(blocks, rows, present)
            return self.estimator.predict_proba(features)[:, 1].astype(np.float64)

        return score

    def describe(self) -> str:
        return (
            "L2 logistic regression (lbfgs) on median-imputed, standardised features with "
            f"missing indicators; C = {self.chosen_c:.3g} by inner cross-validation"
        )

    @property
    def chosen_c(self) -> float:
        """The penalty inner cross-validation chose."""
        return float(self.estimator[-1].C_) if self.estimator is not None else float("nan")

    @property
    def n_parameters(self) -> int:
        if self.estimator is None:
            return 0
        return int(self.estimator[-1].coef_.size + 1)
