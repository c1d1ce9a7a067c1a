"""Which fitted models an evaluation reads, and where they live in the model store.

Pure code: the model store is anything with ``path``, ``model_dir(kind, name)``,
``fold_root(kind, name)`` and ``exists(kind, name)`` (``resources.ModelStore``, the
MLflow Model Registry, is one). The deployed model of ``<kind>/<name>`` is trained
on the design's training patients; the fold models of a cross-validated cohort
are part of the same registered version (layout in ``evaluation/fold_models.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from fusion_assets.models.strategies import STRATEGIES
from fusion_assets.names import ENCODER_STORE, FUSION_STORE, unimodal_name


class ModelStore(Protocol):
    path: str

    def model_dir(self, kind: str, name: str) -> Path: ...

    def fold_root(self, kind: str, name: str) -> Path: ...

    def exists(self, kind: str, name: str) -> bool: ...


class ModelsNotReady(RuntimeError):
    """A model the evaluation needs is missing or stale: materialize it (again) first."""


def fold_root(store: ModelStore, kind: str, name: str) -> Path:
    """Where the fold models (and their out-of-fold predictions) of one model live."""
    return store.fold_root(kind, name)


def evaluated_models(modalities: Sequence[str]) -> list[tuple[str, str]]:
    """(store kind, name) of every model the evaluation scores: strategies, then baselines."""
    return [(FUSION_STORE, s) for s in STRATEGIES] + [
        (ENCODER_STORE, unimodal_name(m)) for m in modalities
    ]


def load_deployed_models(store: ModelStore, modalities: Sequence[str]) -> dict[str, Any]:
    """Every fitted fusion strategy and single-modality baseline, by strategy name."""
    from fusion_assets.models.api import load_model  # torch: only when scoring

    wanted = evaluated_models(modalities)
    missing = [name for kind, name in wanted if not store.exists(kind, name)]
    if missing:
        raise ModelsNotReady(
            f"No fitted model for {missing} in {store.path}: materialize "
            "modality_encoder and fused_model (all partitions) first."
        )
    return {name: load_model(store.model_dir(kind, name)) for kind, name in wanted}
