"""The base class every neural patient model (unimodal or fused) derives from.

``forward(batch)`` returns *calibrated* logits [b]. Training with a class
``pos_weight`` w shifts the optimal logit by log(w); models keep that shift in
the ``logit_offset`` buffer (-log w) so that predicted probabilities stay on the
scale of the data (Brier, calibration), while the training loop fits
``forward(batch) - logit_offset`` with the weighted loss.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from fusion_assets.cohorts.spec import CohortSpec
from fusion_assets.models.batch import Batch
from fusion_assets.models.encoders import Encoder


class PatientModel(nn.Module):
    """A torch model scoring patients from a ``Batch``; ``modalities`` are the ones it reads."""

    #: whether training-time modality dropout applies (joint models only)
    uses_modality_dropout: bool = False

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
        raise NotImplementedError

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.logits(batch) + self.logit_offset

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
