"""Torch models for multimodal fusion: no Dagster, no MLflow; usable on its own.

Typical use (the Dagster assets wrap exactly this)::

    uni = {m: train_unimodal(spec, m, frames, labels, train_ids, val_ids, EncoderConfig())[0]
           for m in spec.modality_names}
    fitted, result = train_fusion("late", spec, frames, labels, train_ids, val_ids, uni)
    prepared = fitted.prepare(frames, test_ids)
    probs = fitted.predict_proba(prepared, keep=None)   # keep: bool [n, n_modalities]
    save_model(fitted, folder); fitted = load_model(folder)

Modules: ``config`` (dataclasses), ``inputs`` (aligned frames → arrays, fitted
preprocessing, each modality's by its kind in ``fusion_assets.kinds``),
``encoders`` (the torch encoders the kinds build), ``unimodal``, ``fusion`` (early,
intermediate, late, attention), ``reference`` (gradient boosting), ``training``,
``api`` (``FittedModel``, save / load). The tests' small cohorts are in ``tests/fixtures``.
"""

import importlib
from typing import Any

# Exports resolve on first use (PEP 562): the Dagster code location imports
# ``fusion_assets.models.config`` at load time and must not pay for torch there.
_EXPORTS = {
    "FittedModel": "api",
    "load_model": "api",
    "save_model": "api",
    "EncoderConfig": "config",
    "FusionConfig": "config",
    "TrainConfig": "config",
    "PreparedInputs": "inputs",
    "STRATEGY_NAMES": "training",
    "TrainResult": "training",
    "modality_dropout_mask": "training",
    "train_fusion": "training",
    "train_unimodal": "training",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
