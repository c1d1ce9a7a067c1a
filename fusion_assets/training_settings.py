"""Training knobs of a run (pydantic; no dagster, no torch).

A run picks a preset (``default`` unless set; ``auto``: the one
``models.presets.choose_preset`` picks from the cohort's profile) and may override
a few of its values; the result is built
as the plain dataclasses of ``fusion_assets.models.config`` with ``replace``.
The Dagster ``TrainingConfig`` is a subclass of this model, so the launchpad
shows these fields, Dagster refuses an unknown preset and pydantic refuses a
value out of range (``max_epochs: -1``) when the run starts.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from pydantic import BaseModel, Field

from fusion_assets.models.config import DeviceName, EncoderConfig, FusionConfig, TrainConfig
from fusion_assets.models.presets import PresetName, encoder_preset, fusion_preset
from fusion_assets.models.recalibration import MIN_EVENTS_PER_CLASS


class TrainingSettings(BaseModel):
    """The preset and its overrides (``None``: the preset's value)."""

    # 'default', not 'auto': on two real cohorts small_n (what auto picks there) gained
    # AUROC and calibration on one and lost AUROC on the other, and left early fusion
    # under-confident on both (benchmarks/results/presets.md)
    preset: PresetName = Field(
        default="default",
        description=(
            "'default' (laptop synthetic cohort), 'small_n' (narrower, more regularised "
            "networks; dense omics screened per fold), 'auto' (chosen from the profile: "
            "'small_n' for small, few-events-per-feature or p >> n cohorts, else 'default'; "
            "profile metadata 'training_preset' shows the choice), or 'tiny' (seconds-long "
            "test fits)"
        ),
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
    device: DeviceName = Field(
        default="auto",
        description="Where torch models train: 'auto' (CUDA when torch sees a GPU, else the "
        "CPU), 'cpu', or 'cuda' (an error without a GPU); the choice is in the run metadata",
    )
    mixed_precision: bool = Field(
        default=False,
        description="CUDA only: bfloat16 autocast while training (ignored on the CPU)",
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
            device=self.device,
            mixed_precision=self.mixed_precision,
            **{k: v for k, v in overrides.items() if v is not None},
        )

    def concrete_preset(self, chosen: str | None = None) -> str:
        """The preset trained with: ``chosen`` (from the profile) when ``auto``."""
        return (chosen or "default") if self.preset == "auto" else self.preset

    def encoder_config(self, chosen: str | None = None) -> EncoderConfig:
        base = encoder_preset(self.concrete_preset(chosen))
        if self.embedding_dim is not None:
            base = replace(base, embedding_dim=self.embedding_dim)
        return replace(base, train=self._train(base.train))

    def fusion_config(self, chosen: str | None = None) -> FusionConfig:
        base = fusion_preset(self.concrete_preset(chosen))
        base = replace(base, encoder=self.encoder_config(chosen), train=self._train(base.train))
        if self.modality_dropout is not None:
            base = replace(base, modality_dropout=self.modality_dropout)
        return replace(base, availability_indicators=self.availability_indicators)


# A fused model may fall this far below the best single modality's held-out AUROC before
# its fit check fails: bagging and seed noise move tiny fits by a few hundredths, a fusion
# that loses more than that to one of its own inputs is broken, not unlucky
MAX_AUROC_BELOW_BEST_SINGLE = 0.05


class FusionTrainingSettings(TrainingSettings):
    """The fused models' knobs: training, plus the margin of their fit check."""

    max_auroc_below_best_single: float = Field(
        default=MAX_AUROC_BELOW_BEST_SINGLE,
        ge=-1.0,
        le=1.0,
        description=(
            "Fit check: the fused model's held-out AUROC may be at most this far below the "
            "best single modality's on the same patients, or the fit is not registered "
            "(negative: it must beat the best single modality by that much)"
        ),
    )
