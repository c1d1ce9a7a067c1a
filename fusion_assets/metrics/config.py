"""Settings of the evaluation maths, with laptop-sized defaults.

The Dagster asset maps its Config onto this dataclass; nothing here reads
globals or the environment.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fusion_assets.metrics.classification import ThresholdRule


@dataclass(frozen=True)
class EvaluationConfig:
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

    n_boot: int = 1000
    seed: int = 0
    ci_level: float = 0.95
    min_pattern_size: int = 30
    age_bands: tuple[int, ...] = (45, 65)
    suppress_below: int = 11
    imprecise_below: int = 100
    reference: str = "reference"
    single_prefix: str = "single:"
    threshold: ThresholdRule = field(default_factory=ThresholdRule)
    ece_bins: int = 10

    def __post_init__(self) -> None:
        if self.n_boot < 1:
            raise ValueError(f"n_boot must be >= 1, got {self.n_boot}")
        if not 0.0 < self.ci_level < 1.0:
            raise ValueError(f"ci_level must be in (0, 1), got {self.ci_level}")
        if list(self.age_bands) != sorted(self.age_bands):
            raise ValueError(f"age_bands must be increasing, got {self.age_bands}")

    @property
    def suppressed_status(self) -> str:
        return f"suppressed (<{self.suppress_below})"

    def is_single(self, strategy: str) -> bool:
        return strategy.startswith(self.single_prefix)
