"""Minibatches of ``PreparedInputs`` as torch tensors.

A ``Batch`` carries, per modality, the kind's tensors and one presence mask for
all modalities. Models must treat ``present`` as the truth: a modality that is
masked out (absent, removed by a stress test, or dropped by modality dropout)
must not influence the output, whatever its arrays hold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from fusion_assets.models.inputs import PreparedInputs

# arrays kept for the non-neural reference only; not worth copying into every batch
REFERENCE_ONLY = frozenset({"x_nan"})


@dataclass
class Batch:
    """Tensors for ``b`` patients: ``present`` bool [b, M] in spec order, inputs by modality."""

    present: torch.Tensor
    inputs: dict[str, dict[str, torch.Tensor]]

    def with_present(self, present: torch.Tensor) -> Batch:
        return Batch(present, self.inputs)


def _take_sparse(arrays: dict[str, np.ndarray], idx: np.ndarray) -> dict[str, torch.Tensor]:
    """Gather the bags of patients ``idx`` from flat EmbeddingBag arrays (no densifying)."""
    starts, counts = arrays["offsets"][idx], arrays["counts"][idx]
    total = int(counts.sum())
    new_offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    # flat position of every kept entry: its bag's start plus its rank within the bag
    within = np.arange(total, dtype=np.int64) - np.repeat(new_offsets, counts)
    flat = np.repeat(starts, counts) + within
    return {
        "index": torch.from_numpy(arrays["index"][flat]),
        "weight": torch.from_numpy(arrays["weight"][flat]),
        "offsets": torch.from_numpy(new_offsets),
    }


def make_batch(prepared: PreparedInputs, idx: np.ndarray, present: np.ndarray) -> Batch:
    """The batch of patients ``idx``; ``present`` is the [n, M] mask to use (already AND-ed)."""
    inputs: dict[str, dict[str, torch.Tensor]] = {}
    for name, arrays in prepared.arrays.items():
        if "offsets" in arrays:
            inputs[name] = _take_sparse(arrays, idx)
        else:
            inputs[name] = {
                k: torch.from_numpy(np.ascontiguousarray(a[idx]))
                for k, a in arrays.items()
                if k not in REFERENCE_ONLY
            }
    return Batch(torch.from_numpy(present[idx]), inputs)


def subset_inputs(prepared: PreparedInputs, rows: np.ndarray) -> PreparedInputs:
    """The patients ``rows`` of prepared inputs (sparse bags re-packed)."""
    if len(rows) == len(prepared) and np.array_equal(rows, np.arange(len(prepared))):
        return prepared
    arrays = {}
    for name, a in prepared.arrays.items():
        if "offsets" in a:
            batch = make_batch(
                PreparedInputs([], [], prepared.present, {name: a}), rows, prepared.present
            )
            t = batch.inputs[name]
            arrays[name] = {
                "index": t["index"].numpy(),
                "weight": t["weight"].numpy(),
                "offsets": t["offsets"].numpy(),
                "counts": a["counts"][rows],
            }
        else:
            arrays[name] = {k: v[rows] for k, v in a.items()}
    ids = [prepared.patient_ids[i] for i in rows]
    return PreparedInputs(ids, prepared.modality_names, prepared.present[rows], arrays)
