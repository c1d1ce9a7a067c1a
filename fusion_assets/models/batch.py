"""Minibatches of ``PreparedInputs`` as torch tensors.

A ``Batch`` carries, per modality, the kind's tensors and one presence mask for
all modalities. Models must treat ``present`` as the truth: a modality that is
masked out (absent, removed by a stress test, or dropped by modality dropout)
must not influence the output, whatever its arrays hold.

Training converts a split to ``TensorInputs`` once (zero-copy for the contiguous
arrays ``prepare`` writes) and gathers every minibatch from those tensors, so no
numpy array is converted per minibatch or per epoch.
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

    def to(self, device: torch.device) -> Batch:
        """The batch on ``device`` (itself on the CPU): data move to a GPU one batch at a time."""
        if device.type == "cpu":
            return self
        return Batch(
            self.present.to(device, non_blocking=True),
            {
                name: {k: v.to(device, non_blocking=True) for k, v in arrays.items()}
                for name, arrays in self.inputs.items()
            },
        )


def is_sparse(inputs: dict[str, torch.Tensor] | dict[str, np.ndarray]) -> bool:
    """Whether a modality's arrays are flat EmbeddingBag bags (sparse omics)."""
    return "offsets" in inputs


def take_rows(inputs: dict[str, torch.Tensor], rows: torch.Tensor) -> dict[str, torch.Tensor]:
    """One modality's tensors for patients ``rows`` (int64 [b]); sparse bags re-packed.

    Dense arrays are gathered along the patient axis. Sparse bags come back as
    ``index`` / ``weight`` / ``offsets`` (what ``nn.EmbeddingBag`` takes), never densified.
    """
    if not is_sparse(inputs):
        return {k: v.index_select(0, rows) for k, v in inputs.items()}
    starts, counts = inputs["offsets"][rows], inputs["counts"][rows]
    total = int(counts.sum())
    new_offsets = torch.cumsum(counts, 0) - counts
    # flat position of every kept entry: its bag's start plus its rank within the bag
    within = torch.arange(total, dtype=torch.int64) - torch.repeat_interleave(
        new_offsets, counts, output_size=total
    )
    flat = torch.repeat_interleave(starts, counts, output_size=total) + within
    return {
        "index": inputs["index"][flat],
        "weight": inputs["weight"][flat],
        "offsets": new_offsets,
    }


@dataclass
class TensorInputs:
    """A split's model inputs as torch tensors: ``present`` bool [n, M] and arrays by modality.

    Sparse modalities keep their ``counts`` (needed to gather bags); reference-only
    arrays are left out.
    """

    present: torch.Tensor
    inputs: dict[str, dict[str, torch.Tensor]]

    def __len__(self) -> int:
        return int(self.present.shape[0])

    def batch(self, rows: torch.Tensor, present: torch.Tensor | None = None) -> Batch:
        """The ``Batch`` of patients ``rows``; ``present`` [n, M] overrides the split's mask."""
        mask = self.present if present is None else present
        return Batch(
            mask[rows], {name: take_rows(arrays, rows) for name, arrays in self.inputs.items()}
        )


def _as_tensor(a: np.ndarray) -> torch.Tensor:
    """The array's memory as a tensor; a copy only if it is non-contiguous or read-only."""
    if not (a.flags.c_contiguous and a.flags.writeable):
        a = np.array(a, order="C")
    return torch.from_numpy(a)


def to_tensors(prepared: PreparedInputs) -> TensorInputs:
    """``prepared`` as tensors sharing its numpy memory (``prepare`` writes contiguous arrays)."""
    inputs = {
        name: {k: _as_tensor(a) for k, a in arrays.items() if k not in REFERENCE_ONLY}
        for name, arrays in prepared.arrays.items()
    }
    return TensorInputs(_as_tensor(np.asarray(prepared.present, dtype=bool)), inputs)


def make_batch(prepared: PreparedInputs, idx: np.ndarray, present: np.ndarray) -> Batch:
    """The batch of patients ``idx``; ``present`` is the [n, M] mask to use (already AND-ed)."""
    rows = torch.from_numpy(np.asarray(idx, dtype=np.int64))
    return to_tensors(prepared).batch(rows, _as_tensor(np.asarray(present, dtype=bool)))


def subset_inputs(prepared: PreparedInputs, rows: np.ndarray) -> PreparedInputs:
    """The patients ``rows`` of prepared inputs (sparse bags re-packed)."""
    if len(rows) == len(prepared) and np.array_equal(rows, np.arange(len(prepared))):
        return prepared
    index = torch.from_numpy(np.asarray(rows, dtype=np.int64))
    arrays = {}
    for name, a in prepared.arrays.items():
        if is_sparse(a):
            tensors = {k: _as_tensor(v) for k, v in a.items()}
            arrays[name] = {k: t.numpy() for k, t in take_rows(tensors, index).items()}
            arrays[name]["counts"] = a["counts"][rows]
        else:
            arrays[name] = {k: v[rows] for k, v in a.items()}
    ids = [prepared.patient_ids[i] for i in rows]
    return PreparedInputs(ids, prepared.modality_names, prepared.present[rows], arrays)
