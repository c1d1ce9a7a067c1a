"""Run settings of the evaluation design and the stress tests (pydantic; no dagster).

Each knob is defined once here, with its range and description; the Dagster
``SplitConfig`` and ``StressTestConfig`` are subclasses of these models, so the
launchpad shows the same fields and a run is validated when it starts.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from fusion_assets.cohorts.deployment_profile import DeploymentSettings
from fusion_assets.metrics.degradation import STRESS_RATES, STRESS_SEEDS
from fusion_assets.models.config import DeviceName

# The modes recorded in profile.evaluation_mode.
HOLDOUT = "holdout"
CV = "cv"

Share = Annotated[float, Field(ge=0.0, le=1.0)]


class CrossValSettings(BaseModel):
    """How the evaluation design is chosen, and how small cohorts are cross-validated.

    - ``small_cohort_size``: cohorts with fewer patients use repeated k-fold;
      0 forces the held-out split, a huge value forces cross-validation.
    - ``folds`` x ``repeats``: fold models per encoder and per strategy.
    - ``inner_validation``: share of each fold model's training folds kept aside
      for early stopping, stacking and thresholds (also the final model's share).
    """

    model_config = ConfigDict(frozen=True)

    small_cohort_size: int = Field(
        default=1000,
        ge=0,
        description="Cohorts with fewer patients are evaluated by repeated stratified k-fold "
        "(0: always a held-out split)",
    )
    folds: int = Field(default=5, ge=2, description="k of the repeated k-fold (small cohorts)")
    # Fold training is cheap at this size (5 x 3 x 10 small models: about 80 s on two
    # cores for 198 patients); the stress tests, run on one repeat, cost as much.
    repeats: int = Field(default=3, ge=1, description="Repeats of the k-fold (small cohorts)")
    seed: int = Field(default=0, description="Seed of the split and of the fold plan")
    inner_validation: float = Field(
        default=0.2,
        gt=0.0,
        lt=1.0,
        description="Small cohorts: share of each fold model's training folds (and of the final "
        "model's patients) kept for early stopping, stacking and thresholds",
    )

    def mode(self, n_patients: int) -> str:
        """``cv`` for cohorts under ``small_cohort_size`` patients, else ``holdout``."""
        return CV if n_patients < self.small_cohort_size else HOLDOUT

    def to_dict(self) -> dict[str, Any]:
        """The cross-validation settings alone (what ``profile.evaluation_mode`` records)."""
        return {name: getattr(self, name) for name in CrossValSettings.model_fields}


class SplitSettings(CrossValSettings):
    """The design settings plus the held-out split's shares of each label x pattern stratum."""

    train: float = Field(
        default=0.6, ge=0.0, le=1.0, description="Share of each label x pattern stratum"
    )
    validation: float = Field(
        default=0.2, ge=0.0, le=1.0, description="Share for validation (held-out split)"
    )
    test: float = Field(default=0.2, ge=0.0, le=1.0, description="Share for test (held-out split)")

    @property
    def holdout_fractions(self) -> tuple[float, float, float]:
        return (self.train, self.validation, self.test)

    def cross_validation(self) -> CrossValSettings:
        return CrossValSettings(**self.to_dict())


class StressSettings(DeploymentSettings):
    """The stress tests: whole modalities removed at random, and toward the deployment profile
    (the spec's, or the one these fields give: ``DeploymentSettings``)."""

    rates: list[Share] = Field(
        default=list(STRESS_RATES),
        description="Fractions of present modalities removed at random (each in [0, 1])",
    )
    mask_seeds: int = Field(default=STRESS_SEEDS, ge=1, description="Random masks per rate")
    device: DeviceName = Field(
        default="auto",
        description="Where the deployed torch models score the validation and test patients "
        "(auto: CUDA when present); the stress tests' masked scoring stays on the CPU",
    )
