"""The non-neural reference: gradient boosting on concatenated minimally encoded features.

Absent modalities are left as NaN, which ``HistGradientBoostingClassifier``
routes natively at every split (no imputation). Every fusion strategy must be
compared against it.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier

from fusion_assets.cohorts.spec import CohortSpec
from fusion_assets.models.config import FusionConfig
from fusion_assets.models.inputs import (
    N_SPECIAL_TOKENS,
    OOV_TOKEN,
    PAD_TOKEN,
    PreparedInputs,
    State,
)

IMAGE_GRID = 8  # images are block-averaged to at most 8 × 8 per channel


def _pool_image(x: np.ndarray) -> np.ndarray:
    """Block-average [n, C, H, W] to a ≤ 8 × 8 grid (full size if not divisible)."""
    n, c, h, w = x.shape
    fh, fw = max(h // IMAGE_GRID, 1), max(w // IMAGE_GRID, 1)
    if h % fh or w % fw:
        return x.reshape(n, -1)
    return x.reshape(n, c, h // fh, fh, w // fw, fw).mean(axis=(3, 5)).reshape(n, -1)


def _sparse_top(arrays: dict[str, np.ndarray], k: int) -> np.ndarray:
    """Dense [n, k] of the k most frequent training variants (embedding rows 1..k)."""
    counts = arrays["counts"]
    rows = np.repeat(np.arange(len(counts)), counts)
    keep = (arrays["index"] >= 1) & (arrays["index"] <= k)
    out = np.zeros((len(counts), k), dtype=np.float32)
    np.add.at(out, (rows[keep], arrays["index"][keep] - 1), arrays["weight"][keep])
    return out


def _text_tf(tokens: np.ndarray, k: int) -> np.ndarray:
    """Term frequencies of the k most frequent vocabulary entries plus the OOV share."""
    n_tokens = np.maximum((tokens != PAD_TOKEN).sum(1, keepdims=True), 1)
    out = np.zeros((len(tokens), k + 1), dtype=np.float32)
    for j in range(k):
        out[:, j] = (tokens == j + N_SPECIAL_TOKENS).sum(1)
    out[:, k] = (tokens == OOV_TOKEN).sum(1)
    return out / n_tokens


def top_correlated(x: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` columns most correlated (in absolute value) with the labels."""
    if len(labels) < 2 or x.shape[1] <= k:
        return np.arange(min(k, x.shape[1]))
    xc = x - x.mean(0)
    yc = labels - labels.mean()
    score = np.abs(yc @ xc) / (np.sqrt((xc**2).sum(0)) + 1e-8)
    return np.sort(np.argsort(-score, kind="stable")[:k])


def reference_features(
    kind: str,
    state: State,
    arrays: dict[str, np.ndarray],
    config: FusionConfig,
    dense_columns: np.ndarray | None = None,
) -> np.ndarray:
    """One modality's minimally encoded features for gradient boosting, [n, F]."""
    if kind == "tabular":
        return arrays["x_nan"]
    if kind == "omics_dense":
        return arrays["x"] if dense_columns is None else arrays["x"][:, dense_columns]
    if kind == "omics_sparse":
        return _sparse_top(arrays, min(config.reference_sparse_top_k, state["vocab_size"] - 1))
    if kind == "image":
        return _pool_image(arrays["x"])
    if kind == "timeseries":
        values = np.where(arrays["mask"] > 0, arrays["values"], np.nan)
        return np.concatenate([values.reshape(len(values), -1), arrays["mask"].mean(1)], axis=1)
    if kind == "text":
        return _text_tf(arrays["tokens"], min(config.reference_text_top_k, len(state["vocab"])))
    raise ValueError(f"No reference features for input kind {kind!r}.")


class ReferenceModel:
    """``HistGradientBoostingClassifier`` over all modalities, absent ones as NaN."""

    def __init__(
        self, spec: CohortSpec, preprocessing: dict[str, State], config: FusionConfig
    ) -> None:
        self.modalities = [m for m in spec.modality_names if m in preprocessing]
        self.columns = [spec.modality_names.index(m) for m in self.modalities]
        self.kinds = {m: preprocessing[m]["kind"] for m in self.modalities}
        self.preprocessing = preprocessing
        self.config = config
        self.logit_offset = 0.0
        # dense omics columns kept (fitted on train): the weighted quantile binning that
        # class_weight triggers in scikit-learn costs ~20 ms per feature
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
            x = reference_features(
                self.kinds[m],
                self.preprocessing[m],
                prepared.arrays[m],
                self.config,
                self.dense_columns.get(m),
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
            if self.kinds[m] == "omics_dense":
                rows = present[:, col]
                x = prepared.arrays[m]["x"][rows]
                k = self.config.reference_dense_top_k
                self.dense_columns[m] = top_correlated(x, labels[rows].astype(float), k)
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
