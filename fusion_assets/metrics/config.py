"""Settings of the evaluation maths, with laptop-sized defaults.

Pydantic models, so every knob is defined once with its range and its
description: ``ReportSettings`` holds the knobs a run may set (the Dagster
``ReportConfig`` is a subclass of it), ``EvaluationConfig`` adds the fixed
choices of the maths. Nothing here reads globals or the environment.
"""

from __future__ import annotations

from pydantic import ConfigDict, Field, field_validator

from fusion_assets.cohorts.deployment_profile import DeploymentSettings
from fusion_assets.disclosure import SMALL_CELL_LIMIT
from fusion_assets.metrics.classification import ThresholdRule
from fusion_assets.names import REFERENCE, UNIMODAL_PREFIX


class ReportSettings(DeploymentSettings):
    """The subgroup report's run knobs (shown in the Dagster launchpad); the deployment
    profile's fields are the evaluation's, shared with the stress tests (``DeploymentSettings``)."""

    n_boot: int = Field(default=1000, ge=1, description="Paired stratified bootstrap resamples")
    min_pattern_size: int = Field(
        default=30,
        ge=0,
        description="Availability patterns with fewer test patients pool into 'other'",
    )
    suppress_below: int = Field(
        default=SMALL_CELL_LIMIT,
        ge=1,
        description="Cells under this many patients are suppressed (disclosure control)",
    )
    net_benefit_thresholds: list[float] = Field(
        default=[0.1, 0.2, 0.3],
        min_length=1,
        description="Risk thresholds of the net-benefit table (each in (0, 1))",
    )
    decision_curve_max: float = Field(
        default=0.5, gt=0.01, lt=1.0, description="Decision curves run from 0.01 to this"
    )

    @field_validator("net_benefit_thresholds")
    @classmethod
    def _thresholds_are_risks(cls, values: list[float]) -> list[float]:
        if any(not 0.0 < t < 1.0 for t in values):
            raise ValueError(f"net_benefit_thresholds must lie in (0, 1), got {values}")
        return sorted(values)


class EvaluationConfig(ReportSettings):
    """Knobs of the subgroup table, the bootstrap and the report.

    - ``n_boot``/``seed``/``ci_level``: paired stratified bootstrap (percentile CIs).
    - ``min_pattern_size``: availability patterns with fewer test patients are
      pooled into the subgroup ``other``.
    - ``age_bands``: band edges in years; (45, 65) gives ``<45``, ``45-64``, ``65+``.
    - ``suppress_below``: subgroups with fewer patients keep their row but all
      metrics become NaN (status ``suppressed (<11)``); disclosure control.
    - ``imprecise_below``: rows with fewer events or non-events are flagged imprecise.
    - ``reference``: the strategy every other one is compared with.
    - ``single_prefix``: strategies named ``<prefix><modality>`` are unimodal baselines.
    - ``threshold``: how the operating threshold is chosen on the validation split.
    - ``ece_bins``: equal-mass bins for ECE and the reliability diagrams.
    """

    model_config = ConfigDict(frozen=True)

    seed: int = 0
    ci_level: float = Field(default=0.95, gt=0.0, lt=1.0)
    age_bands: tuple[int, ...] = (45, 65)
    imprecise_below: int = Field(default=100, ge=0)
    reference: str = REFERENCE
    single_prefix: str = UNIMODAL_PREFIX
    threshold: ThresholdRule = Field(default_factory=ThresholdRule)
    ece_bins: int = Field(default=10, ge=1)

    @field_validator("age_bands")
    @classmethod
    def _increasing(cls, bands: tuple[int, ...]) -> tuple[int, ...]:
        if list(bands) != sorted(bands):
            raise ValueError(f"age_bands must be increasing, got {bands}")
        return bands

    @property
    def suppressed_status(self) -> str:
        return f"suppressed (<{self.suppress_below})"

    def is_single(self, strategy: str) -> bool:
        return strategy.startswith(self.single_prefix)
