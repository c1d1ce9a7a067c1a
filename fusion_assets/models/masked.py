"""Many presence masks of the same patients at about the cost of one pass (the stress tests).

The stress tests score every test patient under some 200 masks (``scoring.stress_scenarios``).
Scoring each masked copy through the whole model repeats work whose result cannot change:

1. **Only what a mask changes.** A (patient, mask) pair whose mask keeps everything the
   patient has is the full-data prediction; the other pairs are deduplicated (a patient
   with M modalities meets at most 2^M masks however many scenarios there are).
2. **Encode once.** A torch model that splits ``encode`` / ``logits_from``
   (``models/base.py``: single-modality models, late, intermediate and attention fusion,
   bagged or not) encodes every patient once; each pair is then scored from the cached
   rows with its mask (heads, attention, stacking only).
3. **Large batches.** Any other torch model (early fusion, a plug-in strategy) scores the
   pairs as masked copies of their input rows, thousands per batch; a non-neural reference
   scores them through its ``pair_scorer`` (features built once, one predict call per
   chunk of pairs).

Everything runs under ``torch.inference_mode()`` in eval mode; the probabilities are
those ``FittedModel.predict_proba(prepared, keep)`` gives per masked copy (same
operations per patient; only the batch sizes differ), before recalibration, which the
caller applies.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from fusion_assets.models.base import Cache, PatientModel
from fusion_assets.models.batch import Batch, take_rows, to_tensors
from fusion_assets.models.inputs import PreparedInputs
from fusion_assets.models.reference_features import NonNeuralModel
from fusion_assets.models.threads import limit_threads

# Patients per encoding batch, and (patient, mask) pairs per scoring batch / predict call.
ENCODE_BATCH = 1024
PAIR_BATCH = 8192
REFERENCE_PAIR_BATCH = 65_536

# (rows int64 [P] into the prepared patients, masks bool [P, M]) -> P(label = 1) [P]
PairScorer = Callable[[np.ndarray, np.ndarray], np.ndarray]


def changed_pairs(
    present: np.ndarray, keeps: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The distinct (patient, effective mask) pairs the masks ``keeps`` [K, n, M] change.

    Returns ``changed`` bool [K, n] (the mask removes something the patient has), the
    pairs' patient rows [P] and masks bool [P, M], and ``inverse`` [changed.sum()]: the
    pair of each changed (mask, patient) in ``changed``'s C order.
    """
    present = np.asarray(present, dtype=bool)
    keeps = np.asarray(keeps, dtype=bool)
    if keeps.ndim != 3 or keeps.shape[1:] != present.shape:
        raise ValueError(
            f"keeps must be bool [n_masks, n_patients, n_modalities] with the last two "
            f"{present.shape}, got shape {keeps.shape}"
        )
    effective = keeps & present[None]
    changed = (effective != present[None]).any(axis=2)
    which, patient = np.nonzero(changed)
    masks = effective[which, patient]
    # one key per pair: the patient's row and its mask's bits
    key = np.column_stack([patient, np.packbits(masks, axis=1).astype(np.int64)])
    unique, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
    del unique
    return changed, patient[first], masks[first], inverse.reshape(-1)


def pair_probabilities(
    predictor: PatientModel | NonNeuralModel,
    prepared: PreparedInputs,
    rows: np.ndarray,
    masks: np.ndarray,
    num_threads: int = 1,
) -> np.ndarray:
    """P(label = 1) [P] of patient ``rows[i]`` under mask ``masks[i]`` (uncalibrated: before
    the fitted model's recalibration)."""
    if len(rows) == 0:
        return np.zeros(0)
    rows = np.asarray(rows, dtype=np.int64)
    masks = np.asarray(masks, dtype=bool)
    with limit_threads(num_threads):
        if isinstance(predictor, NonNeuralModel):
            score = predictor.pair_scorer(prepared)
            return np.concatenate(
                [
                    np.asarray(score(rows[s], masks[s]), dtype=np.float64)
                    for s in _chunks(len(rows), REFERENCE_PAIR_BATCH)
                ]
            )
        logits = _torch_pair_logits(predictor, prepared, rows, masks)
    return 1.0 / (1.0 + np.exp(-logits))


def _chunks(n: int, size: int) -> list[slice]:
    return [slice(start, min(start + size, n)) for start in range(0, n, size)]


def _torch_pair_logits(
    model: PatientModel, prepared: PreparedInputs, rows: np.ndarray, masks: np.ndarray
) -> np.ndarray:
    """Calibrated logits [P] (float64) of a torch model, in eval mode."""
    tensors = to_tensors(prepared)
    was_training = model.training
    model.eval()
    out = []
    try:
        with torch.inference_mode():
            if model.caches_encodings:
                patients, position = np.unique(rows, return_inverse=True)
                cache = _encode(model, tensors, torch.from_numpy(patients))
                index = torch.from_numpy(position.astype(np.int64))
                mask = torch.from_numpy(masks[:, model.columns])
                for s in _chunks(len(rows), PAIR_BATCH):
                    part = {k: v.index_select(0, index[s]) for k, v in cache.items()}
                    out.append(model.forward_from(part, mask[s]).double())
            else:
                index = torch.from_numpy(rows)
                mask = torch.from_numpy(masks)
                for s in _chunks(len(rows), PAIR_BATCH):
                    inputs = {m: take_rows(a, index[s]) for m, a in tensors.inputs.items()}
                    out.append(model(Batch(mask[s], inputs)).double())
    finally:
        model.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros(0)


def _encode(model: PatientModel, tensors, patients: torch.Tensor) -> Cache:
    """``model.encode`` of ``patients`` (rows of ``tensors``), batch by batch, concatenated."""
    parts: list[Cache] = []
    for chunk in patients.split(ENCODE_BATCH):
        parts.append(model.encode(tensors.batch(chunk)))
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
