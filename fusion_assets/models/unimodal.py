"""Unimodal model = one encoder + a head: the single-modality baseline and late fusion's part."""

from __future__ import annotations

import torch
from torch import nn

from fusion_assets.cohorts.spec import CohortSpec
from fusion_assets.kinds import kind_of
from fusion_assets.models.base import Cache, PatientModel
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

    def encode(self, batch: Batch) -> Cache:
        return {"logit": self.head(self.encoder(batch.inputs[self.modality])).squeeze(-1)}

    def logits_from(self, cache: Cache, present: torch.Tensor) -> torch.Tensor:
        return cache["logit"]

    def logit_if_present(self, cache: Cache) -> torch.Tensor:
        """Calibrated logits [b] as if every patient had the modality."""
        return cache["logit"] + self.logit_offset

    def forward_from(self, cache: Cache, present: torch.Tensor) -> torch.Tensor:
        return torch.where(present[:, 0], self.logit_if_present(cache), self.prior_logit)
