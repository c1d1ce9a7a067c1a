"""The batch scored with the champion and the other strategies' registered versions.

The asset pins the champion's strategy at the champion's version (alias ``champion``)
before scoring; every other strategy is read at its newest registered version, each
resolved once per re-evaluation and loaded by version URI (``models:/<name>/<version>``):
a training that registers a new version meanwhile changes nothing in this re-evaluation,
and the versions it records are the ones whose predictions it measured.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fusion_assets.evaluation.models import ModelStore
from fusion_assets.names import FUSION_STORE
from fusion_assets.reevaluation.inputs import BatchInputs


def missing_models(store: ModelStore, strategies: Sequence[str]) -> list[str]:
    """The strategies without a fused model in the store (not scored)."""
    return sorted(s for s in strategies if not store.exists(FUSION_STORE, s))


def score_batch(
    store: ModelStore, strategies: Sequence[str], inputs: BatchInputs
) -> dict[str, np.ndarray]:
    """P(label) per strategy for the batch's patients, for the models that exist.

    ``store.versions_used`` says afterwards which version each strategy was read at.
    """
    available = [s for s in strategies if store.exists(FUSION_STORE, s)]
    if not available or inputs.batch.empty:
        return {}
    # Imported here: torch costs seconds, and the sensors import the asset package.
    from fusion_assets.models.api import load_model

    ids = inputs.batch["patient_id"].tolist()
    scores: dict[str, np.ndarray] = {}
    for strategy in available:
        fitted = load_model(store.model_dir(FUSION_STORE, strategy))
        prepared = fitted.prepare(inputs.frames, ids)
        scores[strategy] = np.asarray(fitted.predict_proba(prepared), dtype=float)
    return scores
