"""The gradient-boosting reference: HGB on every modality's features concatenated.

Absent modalities are left as NaN, which ``HistGradientBoostingClassifier``
routes natively at every split (no imputation). Every fusion strategy is
compared against it, so it must be at least as strong as a default scikit-learn
HGB on the same folds: it uses scikit-learn's defaults (``FusionConfig``'s
``reference_*`` fields) and no class weighting. The earlier
``class_weight="balanced"`` with 200 iterations at the same learning rate
overfitted small cohorts and, even with its odds shifted back, left slopes far
below 1 (breast cancer: AUROC 0.655, slope 0.54 against the default HGB's 0.684).
"""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import train_test_split

from fusion_assets.cohorts.spec import CohortSpec
from fusion_assets.models.config import FusionConfig
from fusion_assets.models.inputs import PreparedInputs, State
from fusion_assets.models.reference_features import ModalityBlocks, NonNeuralModel

# scikit-learn's early_stopping="auto" threshold: above it, 10 % of the rows are held out
EARLY_STOPPING_ROWS = 10_000
VALIDATION_FRACTION = 0.1


def new_hgb(config: FusionConfig, early_stopping: bool) -> HistGradientBoostingClassifier:
    """An HGB with the reference's settings (scikit-learn's defaults unless configured)."""
    return HistGradientBoostingClassifier(
        learning_rate=config.reference_learning_rate,
        max_iter=config.reference_max_iter,
        early_stopping=early_stopping,
        random_state=config.train.seed,
    )


def fit_hgb(
    blocks: ModalityBlocks,
    modalities: list[str] | None,
    prepared: PreparedInputs,
    labels: np.ndarray,
    present: np.ndarray,
    config: FusionConfig,
) -> HistGradientBoostingClassifier:
    """Fit ``blocks`` (screens, kept columns) and an HGB on the given modalities' features.

    Above ``EARLY_STOPPING_ROWS`` the early-stopping rows are split off here (stratified)
    and passed as ``X_val``, so the kept columns are those observed in the rows the
    trees are binned on: scikit-learn's own split could leave a column empty there.
    """
    labels = np.asarray(labels).astype(np.int64)
    rows = np.arange(len(labels))
    early = len(labels) > EARLY_STOPPING_ROWS
    if early:
        rows, val_rows = train_test_split(
            rows, test_size=VALIDATION_FRACTION, stratify=labels, random_state=config.train.seed
        )
    blocks.fit(prepared, labels, present, rows)
    names = modalities or blocks.modalities
    x = np.concatenate([blocks.block(m, prepared, present) for m in names], axis=1)
    model = new_hgb(config, early)
    if early:
        return model.fit(x[rows], labels[rows], X_val=x[val_rows], y_val=labels[val_rows])
    return model.fit(x, labels)


def describe_hgb(estimator: HistGradientBoostingClassifier | None, what: str) -> str:
    """``what``, its boosting iterations and learning rate (early stopping may stop early)."""
    if estimator is None:
        return f"{what}, not fitted"
    return (
        f"{what}, {estimator.n_iter_} iterations of at most {estimator.max_iter} at "
        f"learning rate {estimator.learning_rate:g}"
    )


def tree_nodes(estimator: HistGradientBoostingClassifier) -> int:
    """Number of tree nodes (a size measure comparable in spirit to a parameter count)."""
    predictors = getattr(estimator, "_predictors", [])
    return int(sum(len(tree.nodes) for trees in predictors for tree in trees))


class ReferenceModel(NonNeuralModel):
    """``HistGradientBoostingClassifier`` over all modalities, absent ones as NaN."""

    parameters_counted = "tree nodes"

    def __init__(
        self, spec: CohortSpec, preprocessing: dict[str, State], config: FusionConfig
    ) -> None:
        self.blocks = ModalityBlocks(spec, preprocessing, config)
        self.config = config
        self.estimator: HistGradientBoostingClassifier | None = None

    @property
    def modalities(self) -> list[str]:
        return self.blocks.modalities

    def fit(
        self, prepared: PreparedInputs, labels: np.ndarray, present: np.ndarray
    ) -> ReferenceModel:
        """Fit on the training patients (unweighted: probabilities stay on the data's scale)."""
        self.estimator = fit_hgb(self.blocks, None, prepared, labels, present, self.config)
        return self

    def __setstate__(self, state: dict) -> None:
        if "blocks" not in state:
            raise ValueError(
                "this reference was pickled by an earlier version (class-weighted boosting); "
                "refit it (materialize fused_model[reference] again)"
            )
        self.__dict__.update(state)

    def predict_proba(self, prepared: PreparedInputs, present: np.ndarray) -> np.ndarray:
        if self.estimator is None:
            raise ValueError("the reference is not fitted: call fit first")
        features = self.blocks.matrix(prepared, present)
        return self.estimator.predict_proba(features)[:, 1].astype(np.float64)

    def pair_scorer(self, prepared: PreparedInputs):
        """Features built once per patient; each chunk of masked copies one predict call."""
        if self.estimator is None:
            raise ValueError("the reference is not fitted: call fit first")
        blocks = self.blocks.blocks_once(prepared)

        def score(rows: np.ndarray, present: np.ndarray) -> np.ndarray:
            features = self.blocks.masked_matrix(blocks, rows, present)
            return self.estimator.predict_proba(features)[:, 1].astype(np.float64)

        return score

    @property
    def n_parameters(self) -> int:
        return tree_nodes(self.estimator) if self.estimator is not None else 0

    def describe(self) -> str:
        return describe_hgb(self.estimator, "gradient boosting (histogram trees)")
