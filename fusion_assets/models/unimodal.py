"""Unimodal model = one encoder + a head: the single-modality baseline and late fusion's part."""

from __future__ import annotations

import torch
from torch import nn

from fusion_assets.cohorts.spec import CohortSpec
from fusion_assets.kinds import kind_of
from fusion_assets.models.base import PatientModel
from fusion_assets.models.batch import Batch
from fusion_assets.models.config import EncoderConfig
from fusion_assets.models.inputs import State


class UnimodalModel(PatientModel):
    """Scores a patient from one modality; a patient without it gets the training prior."""

    def __init__(
        self, spec: CohortSpec, modality: str, state: State, config: EncoderConfig
    ) -> None:
        super().__init__(spec, [modality])
        m = spec.modality(modality)
        self.encoder = kind_of(m).build_encoder(m, state, config)
        self.head = nn.Sequential(
            nn.GELU(), nn.Dropout(config.dropout), nn.Linear(config.embedding_dim, 1)
        )

    @property
    def modality(self) -> str:
        return self.modalities[0]

    def logits(self, batch: Batch) -> torch.Tensor:
        return self.head(self.encoder(batch.inputs[self.modality])).squeeze(-1)

    def forward(self, batch: Batch) -> torch.Tensor:
        has = self.present(batch)[:, 0]
        return torch.where(has, self.logits(batch) + self.logit_offset, self.prior_logit)
