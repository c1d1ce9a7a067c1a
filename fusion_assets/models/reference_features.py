"""What every non-neural reference reads: each modality's minimally encoded features.

A modality's block is its kind's ``reference_features`` (found from the fitted
preprocessing's tag, so a pickled model needs nothing else), with the columns
the kind screens on the training patients (dense omics: the most label-correlated
genes) and without the columns no training patient has a value in. An absent
modality's block is NaN, which each reference handles its own way (boosting
routes it, logistic regression imputes it with an indicator).

``NonNeuralModel`` is the interface the prediction API, persistence (pickled,
``reference.pkl``) and training dispatch on, so a new reference needs no
special case anywhere else.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from fusion_assets.cohorts.spec import CohortSpec
from fusion_assets.kinds import preprocessing_kind
from fusion_assets.models.config import FusionConfig
from fusion_assets.models.inputs import PreparedInputs, State

log = logging.getLogger(__name__)


class NonNeuralModel:
    """A scikit-learn style reference: ``fit(prepared, labels, present)`` then
    ``predict_proba(prepared, present)`` -> P(label = 1) [n]; pickled when saved."""

    #: what ``n_parameters`` counts (the report's cost table names it)
    parameters_counted = "parameters"

    def fit(
        self, prepared: PreparedInputs, labels: np.ndarray, present: np.ndarray
    ) -> NonNeuralModel:
        raise NotImplementedError

    def predict_proba(self, prepared: PreparedInputs, present: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def pair_scorer(
        self, prepared: PreparedInputs
    ) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
        """``score(rows, present)``: P(label = 1) of patients ``rows`` (repeats allowed) of
        ``prepared``, each under its own mask ``present`` [len(rows), M] (the stress tests,
        ``models/masked.py``). By default the masked copies' inputs are gathered and scored
        in one call; a reference whose features are per patient builds them once instead."""
        from fusion_assets.models.batch import subset_inputs

        return lambda rows, present: self.predict_proba(subset_inputs(prepared, rows), present)

    @property
    def n_parameters(self) -> int:
        raise NotImplementedError

    def describe(self) -> str:
        """How the fitted model was fitted, in words (Dagster metadata, MLflow)."""
        return type(self).__name__


class ModalityBlocks:
    """Per-modality reference features, their screens and kept columns fitted on train."""

    def __init__(
        self, spec: CohortSpec, preprocessing: dict[str, State], config: FusionConfig
    ) -> None:
        self.modalities = [m for m in spec.modality_names if m in preprocessing]
        self.columns = [spec.modality_names.index(m) for m in self.modalities]
        self.preprocessing = preprocessing
        self.config = config
        # columns a kind screens (dense omics, fitted on train): see fit_reference_screen
        self.screens: dict[str, np.ndarray] = {}
        # per modality, the block's columns with an observed value in the fitting rows
        self.kept: dict[str, np.ndarray] = {}

    def raw_block(self, modality: str, prepared: PreparedInputs, present: np.ndarray) -> np.ndarray:
        """The modality's features [n, F] before dropping empty columns; NaN if absent."""
        state = self.preprocessing[modality]
        x = preprocessing_kind(state).reference_features(
            state, prepared.arrays[modality], self.config, self.screens.get(modality)
        )
        x = x.astype(np.float32, copy=True)
        x[~present[:, self.columns[self.modalities.index(modality)]]] = np.nan
        return x

    def fit(
        self,
        prepared: PreparedInputs,
        labels: np.ndarray,
        present: np.ndarray,
        rows: np.ndarray | None = None,
    ) -> ModalityBlocks:
        """Screens and kept columns from the training patients ``rows`` (default: all)."""
        rows = np.arange(len(prepared)) if rows is None else rows
        labels = np.asarray(labels)
        for m, col in zip(self.modalities, self.columns, strict=True):
            state = self.preprocessing[m]
            has = np.zeros(len(prepared), dtype=bool)
            has[rows] = present[rows, col]
            screen = preprocessing_kind(state).fit_reference_screen(
                state, prepared.arrays[m], has, labels, self.config
            )
            if screen is not None:
                self.screens[m] = screen
            # A column with no observed value in the fitting rows (a time bin nobody has
            # in this fold, days_since_last of an untimed modality) carries nothing and
            # breaks scikit-learn's binning ("window shape cannot be larger than input
            # array shape"): drop it, here and at prediction.
            observed = np.isfinite(self.raw_block(m, prepared, present)[rows]).any(axis=0)
            self.kept[m] = observed
            if not observed.all():
                log.info(
                    "reference features of %r: %d of %d columns have no observed value in "
                    "the %d training patients and are dropped for this fit",
                    m,
                    int((~observed).sum()),
                    len(observed),
                    len(rows),
                )
        return self

    def block(self, modality: str, prepared: PreparedInputs, present: np.ndarray) -> np.ndarray:
        """The modality's kept features [n, F'] (NaN where absent or unobserved)."""
        x = self.raw_block(modality, prepared, present)
        return x[:, self.kept[modality]] if modality in self.kept else x

    def matrix(self, prepared: PreparedInputs, present: np.ndarray) -> np.ndarray:
        """Every modality's kept features concatenated [n, ΣF']."""
        blocks = [self.block(m, prepared, present) for m in self.modalities]
        return np.concatenate(blocks, axis=1) if blocks else np.zeros((len(prepared), 0))

    def blocks_once(self, prepared: PreparedInputs) -> dict[str, np.ndarray]:
        """Every modality's kept features [n, F'] under the patients' own presence."""
        return {m: self.block(m, prepared, prepared.present) for m in self.modalities}

    def masked_matrix(
        self, blocks: dict[str, np.ndarray], rows: np.ndarray, present: np.ndarray
    ) -> np.ndarray:
        """``matrix`` of patients ``rows`` each under its mask ``present`` [len(rows), M]
        (a subset of the patient's own presence), from ``blocks_once``: the features are
        per patient, so a masked copy's block is the patient's, NaN where masked."""
        parts = []
        for m, col in zip(self.modalities, self.columns, strict=True):
            x = blocks[m][rows]  # a copy
            x[~present[:, col]] = np.nan
            parts.append(x)
        return np.concatenate(parts, axis=1) if parts else np.zeros((len(rows), 0))

    def present_columns(self, present: np.ndarray) -> np.ndarray:
        """Presence [n, len(modalities)] of the modalities read, as floats (availability flags)."""
        return present[:, self.columns].astype(np.float64)


class DropEmptyColumns(TransformerMixin, BaseEstimator):
    """Keep the columns with at least one finite value in the rows it was fitted on.

    Inside an inner cross-validation (the stacked reference's out-of-fold models) a
    column observed in the training fold can still be empty in an inner fold.
    """

    def fit(self, x: np.ndarray, y: np.ndarray | None = None) -> DropEmptyColumns:
        self.kept_ = np.isfinite(np.asarray(x, dtype=np.float64)).any(axis=0)
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x)[:, self.kept_]
