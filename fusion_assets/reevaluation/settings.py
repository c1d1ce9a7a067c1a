"""Thresholds of the batch re-evaluation and its check (the Dagster config is this model)."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

from fusion_assets.disclosure import SMALL_CELL_LIMIT
from fusion_assets.metrics.drift import DEFAULT_PSI_THRESHOLD, DEFAULT_TV_THRESHOLD
from fusion_assets.models.strategies import STRATEGIES


class BatchEvaluationSettings(BaseModel):
    """Drift thresholds, the small-cell limit and the strategies scored."""

    psi_threshold: float = Field(
        default=DEFAULT_PSI_THRESHOLD,
        ge=0.0,
        description="A feature or prediction PSI above this is flagged as drift",
    )
    pattern_tv_threshold: float = Field(
        default=DEFAULT_TV_THRESHOLD,
        ge=0.0,
        le=1.0,
        description="A total variation distance of the availability-pattern mix above this is "
        "flagged as drift",
    )
    suppress_below: int = Field(
        default=SMALL_CELL_LIMIT,
        ge=1,
        description="Cells under this many patients are suppressed (disclosure control)",
    )
    psi_bins: int = Field(default=10, ge=2, description="Quantile bins of the PSI")
    n_boot: int = Field(
        default=500,
        ge=10,
        description="Label-stratified bootstrap resamples of the batch's own AUROC interval",
    )
    ci_level: float = Field(
        default=0.95, gt=0.0, lt=1.0, description="Level of the batch's AUROC interval"
    )
    seed: int = Field(default=0, description="Seed of the batch's bootstrap")
    strategies: list[str] = Field(
        default=list(STRATEGIES),
        description=f"Fused models scored on the batch (any of {', '.join(STRATEGIES)})",
    )

    @field_validator("strategies")
    @classmethod
    def _known(cls, strategies: list[str]) -> list[str]:
        unknown = sorted(set(strategies) - set(STRATEGIES))
        if unknown:
            raise ValueError(f"unknown strategies {unknown}; expected any of {list(STRATEGIES)}")
        return strategies
