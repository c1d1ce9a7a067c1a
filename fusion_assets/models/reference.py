"""The non-neural reference: gradient boosting on concatenated minimally encoded features.

Each modality's features are its kind's ``reference_features`` (found from the
fitted preprocessing's tag, so a pickled model needs nothing else).

Absent modalities are left as NaN, which ``HistGradientBoostingClassifier``
routes natively at every split (no imputation). Every fusion strategy must be
compared against it.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier

from fusion_assets.cohorts.spec import CohortSpec
from fusion_assets.kinds import preprocessing_kind
from fusion_assets.models.config import FusionConfig
from fusion_assets.models.inputs import PreparedInputs, State


class ReferenceModel:
    """``HistGradientBoostingClassifier`` over all modalities, absent ones as NaN."""

    def __init__(
        self, spec: CohortSpec, preprocessing: dict[str, State], config: FusionConfig
    ) -> None:
        self.modalities = [m for m in spec.modality_names if m in preprocessing]
        self.columns = [spec.modality_names.index(m) for m in self.modalities]
        self.preprocessing = preprocessing
        self.config = config
        self.logit_offset = 0.0
        # columns a kind screens (dense omics, fitted on train): see fit_reference_screen
        self.dense_columns: dict[str, np.ndarray] = {}
        self.estimator = HistGradientBoostingClassifier(
            learning_rate=config.reference_learning_rate,
            max_iter=config.reference_max_iter,
            class_weight="balanced",
            early_stopping=True,
            random_state=config.train.seed,
        )

    def features(self, prepared: PreparedInputs, present: np.ndarray) -> np.ndarray:
        """Concatenated features [n, F]; every column of an absent modality is NaN."""
        blocks = []
        for m, col in zip(self.modalities, self.columns, strict=True):
            state = self.preprocessing[m]
            x = preprocessing_kind(state).reference_features(
                state, prepared.arrays[m], self.config, self.dense_columns.get(m)
            )
            x = x.astype(np.float32, copy=True)
            x[~present[:, col]] = np.nan
            blocks.append(x)
        return np.concatenate(blocks, axis=1) if blocks else np.zeros((len(prepared), 0))

    def fit(
        self, prepared: PreparedInputs, labels: np.ndarray, present: np.ndarray
    ) -> ReferenceModel:
        """Fit on training patients; class_weight="balanced" is undone at prediction time."""
        labels = np.asarray(labels).astype(np.int64)
        for m, col in zip(self.modalities, self.columns, strict=True):
            state = self.preprocessing[m]
            screen = preprocessing_kind(state).fit_reference_screen(
                state, prepared.arrays[m], present[:, col], labels, self.config
            )
            if screen is not None:
                self.dense_columns[m] = screen
        features = self.features(prepared, present)
        # A column with no observed value in training (e.g. days_since_last of an untimed
        # tabular modality, or a lab never measured in a small fold) carries nothing and
        # breaks scikit-learn's binning: drop it, here and at prediction.
        self.observed_columns = np.isfinite(features).any(axis=0)
        self.estimator.fit(features[:, self.observed_columns], labels)
        n_pos = max(int(labels.sum()), 1)
        n_neg = max(len(labels) - n_pos, 1)
        # balanced weights scale the odds by n_neg / n_pos; shift them back for calibration
        self.logit_offset = -math.log(n_neg / n_pos)
        return self

    def predict_proba(self, prepared: PreparedInputs, present: np.ndarray) -> np.ndarray:
        features = self.features(prepared, present)
        observed = getattr(self, "observed_columns", None)  # None: pickled before it existed
        if observed is not None:
            features = features[:, observed]
        p = self.estimator.predict_proba(features)[:, 1]
        p = np.clip(p, 1e-7, 1 - 1e-7)
        logit = np.log(p / (1 - p)) + self.logit_offset
        return 1.0 / (1.0 + np.exp(-logit))

    @property
    def n_parameters(self) -> int:
        """Number of tree nodes (a size measure comparable in spirit to a parameter count)."""
        predictors = getattr(self.estimator, "_predictors", [])
        return int(sum(len(tree.nodes) for trees in predictors for tree in trees))
