"""Training knobs of a run (pydantic; no dagster, no torch).

A run picks a preset and may override a few of its values; the result is built
as the plain dataclasses of ``fusion_assets.models.config`` with ``replace``.
The Dagster ``TrainingConfig`` is a subclass of this model, so the launchpad
shows these fields, Dagster refuses an unknown preset and pydantic refuses a
value out of range (``max_epochs: -1``) when the run starts.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from pydantic import BaseModel, Field

from fusion_assets.models.config import EncoderConfig, FusionConfig, TrainConfig
from fusion_assets.models.recalibration import MIN_EVENTS_PER_CLASS


class TrainingSettings(BaseModel):
    """The preset and its overrides (``None``: the preset's value)."""

    preset: Literal["default", "tiny"] = Field(
        default="default", description="'default' (laptop demo) or 'tiny' (seconds-long test fits)"
    )
    max_epochs: int | None = Field(default=None, ge=1, description="Most epochs per fit")
    patience: int | None = Field(
        default=None, ge=1, description="Epochs without validation-loss improvement before stopping"
    )
    learning_rate: float | None = Field(default=None, gt=0.0, description="Adam learning rate")
    batch_size: int | None = Field(default=None, ge=1, description="Patients per batch")
    embedding_dim: int | None = Field(
        default=None, ge=1, description="The shared size every encoder maps to"
    )
    modality_dropout: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Probability of hiding each present modality during fusion training",
    )
    availability_indicators: bool = Field(
        default=False, description="Early fusion: append one presence bit per modality"
    )
    seed: int = Field(default=0, description="Seed of weights, batches and dropout masks")
    recalibration: Literal["platt", "isotonic", "none"] = Field(
        default="platt",
        description="Recalibration fitted on held-out patients: 'platt' (logistic, default), "
        "'isotonic' (large cohorts only) or 'none'",
    )
    recalibration_min_events: int = Field(
        default=MIN_EVENTS_PER_CLASS,
        ge=1,
        description="No recalibration where the held-out patients have fewer of either class",
    )

    def _train(self, base: TrainConfig) -> TrainConfig:
        overrides = {
            "max_epochs": self.max_epochs,
            "patience": self.patience,
            "learning_rate": self.learning_rate,
            "batch_size": self.batch_size,
        }
        return replace(
            base,
            seed=self.seed,
            recalibration=self.recalibration,
            recalibration_min_events=self.recalibration_min_events,
            **{k: v for k, v in overrides.items() if v is not None},
        )

    def encoder_config(self) -> EncoderConfig:
        base = EncoderConfig.tiny() if self.preset == "tiny" else EncoderConfig()
        if self.embedding_dim is not None:
            base = replace(base, embedding_dim=self.embedding_dim)
        return replace(base, train=self._train(base.train))

    def fusion_config(self) -> FusionConfig:
        base = FusionConfig.tiny() if self.preset == "tiny" else FusionConfig()
        base = replace(base, encoder=self.encoder_config(), train=self._train(base.train))
        if self.modality_dropout is not None:
            base = replace(base, modality_dropout=self.modality_dropout)
        return replace(base, availability_indicators=self.availability_indicators)
