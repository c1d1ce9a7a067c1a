"""Torch models for multimodal fusion: no Dagster, no MLflow; usable on its own.

Typical use (the Dagster assets wrap exactly this)::

    uni = {m: train_unimodal(spec, m, frames, labels, train_ids, val_ids, EncoderConfig())[0]
           for m in spec.modality_names}
    fitted, result = train_fusion("late", spec, frames, labels, train_ids, val_ids, uni)
    prepared = fitted.prepare(frames, test_ids)
    probs = fitted.predict_proba(prepared, keep=None)   # keep: bool [n, n_modalities]
    save_model(fitted, folder); fitted = load_model(folder)

Modules: ``config`` (dataclasses), ``inputs`` (aligned frames → arrays, fitted
preprocessing), ``encoders`` (one per kind), ``unimodal``, ``fusion`` (early,
intermediate, late, attention), ``reference`` (gradient boosting), ``training``,
``api`` (``FittedModel``, save / load), ``toy`` (a tiny test cohort).
"""

from fusion_assets.models.api import FittedModel, load_model, save_model
from fusion_assets.models.config import EncoderConfig, FusionConfig, TrainConfig
from fusion_assets.models.inputs import PreparedInputs
from fusion_assets.models.training import (
    STRATEGY_NAMES,
    TrainResult,
    modality_dropout_mask,
    train_fusion,
    train_unimodal,
)

__all__ = [
    "STRATEGY_NAMES",
    "EncoderConfig",
    "FittedModel",
    "FusionConfig",
    "PreparedInputs",
    "TrainConfig",
    "TrainResult",
    "load_model",
    "modality_dropout_mask",
    "save_model",
    "train_fusion",
    "train_unimodal",
]
