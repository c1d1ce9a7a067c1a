"""The base class every neural patient model (unimodal or fused) derives from.

``forward(batch)`` returns *calibrated* logits [b]. Training with a class
``pos_weight`` w shifts the optimal logit by log(w); models keep that shift in
the ``logit_offset`` buffer (-log w) so that predicted probabilities stay on the
scale of the data (Brier, calibration), while the training loop fits
``forward(batch) - logit_offset`` with the weighted loss.

A model may split its computation in two (``encode`` / ``logits_from``): what
each patient's present modalities give whatever else is masked (the
per-modality embeddings, a unimodal model's logit) and what depends on the mask
(heads, attention, stacking). Its ``logits`` and ``forward`` are then that
composition, so the stress tests (``models/masked.py``) can encode every
patient once and score every mask from the cache with the very same code.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from fusion_assets.cohorts.spec import CohortSpec
from fusion_assets.models.batch import Batch
from fusion_assets.models.encoders import Encoder

# Per-patient tensors (leading dimension b) a model's ``encode`` returns.
Cache = dict[str, torch.Tensor]


class PatientModel(nn.Module):
    """A torch model scoring patients from a ``Batch``; ``modalities`` are the ones it reads."""

    #: whether training-time modality dropout applies (joint models only)
    uses_modality_dropout: bool = False
    #: what the fit's ``n_parameters`` counts (the report's cost table names it)
    parameters_counted: str = "torch parameters"

    def __init__(self, spec: CohortSpec, modalities: list[str]) -> None:
        super().__init__()
        self.modalities = list(modalities)
        # column of each used modality in ``Batch.present`` (spec order)
        self.columns = [spec.modality_names.index(m) for m in self.modalities]
        self.register_buffer("logit_offset", torch.zeros(()))
        self.register_buffer("prior_logit", torch.zeros(()))

    def set_calibration(self, pos_weight: float, prevalence: float) -> None:
        """Record the training class balance: the pos_weight shift and the prior."""
        self.logit_offset.fill_(-math.log(pos_weight))
        p = min(max(prevalence, 1e-4), 1 - 1e-4)
        self.prior_logit.fill_(math.log(p / (1 - p)))

    def logits(self, batch: Batch) -> torch.Tensor:
        """Uncalibrated logits [b] (on the scale the training loss sees)."""
        if not self.caches_encodings:
            raise NotImplementedError
        return self.logits_from(self.encode(batch), self.present(batch))

    def forward(self, batch: Batch) -> torch.Tensor:
        if self.caches_encodings:
            return self.forward_from(self.encode(batch), self.present(batch))
        return self.logits(batch) + self.logit_offset

    # ------------------------------------------------------------------ encode once, mask many

    @property
    def caches_encodings(self) -> bool:
        """Whether the model implements ``encode`` / ``logits_from`` (else it is scored
        per masked copy of its inputs)."""
        return type(self).encode is not PatientModel.encode

    def encode(self, batch: Batch) -> Cache:
        """Per-patient tensors that do not depend on the presence mask (a present
        modality's embedding is the same whatever else is masked); every value has
        leading dimension b."""
        raise NotImplementedError

    def logits_from(self, cache: Cache, present: torch.Tensor) -> torch.Tensor:
        """Uncalibrated logits [b] from ``encode``'s cache and the mask ``present``
        (bool [b, len(modalities)])."""
        raise NotImplementedError

    def forward_from(self, cache: Cache, present: torch.Tensor) -> torch.Tensor:
        """Calibrated logits [b] from the cache: what ``forward`` returns."""
        return self.logits_from(cache, present) + self.logit_offset

    def param_groups(self, learning_rate: float) -> list[dict]:
        """Optimizer parameter groups; joint models slow down pretrained encoders."""
        return [{"params": list(self.parameters()), "lr": learning_rate}]

    def penalty(self) -> torch.Tensor:
        """Extra regularization added to the training loss."""
        # every encoder counted once, however deeply it is nested
        return sum((m.penalty() for m in self.modules() if isinstance(m, Encoder)), torch.zeros(()))

    def present(self, batch: Batch) -> torch.Tensor:
        """Bool [b, len(modalities)]: presence of the used modalities."""
        return batch.present[:, self.columns]
