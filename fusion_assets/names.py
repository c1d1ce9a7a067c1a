"""The names every layer shares: fusion strategies, unimodal baselines, model-store kinds.

Pure and import-free (no torch, no dagster), so the code location, the models,
the metrics and the decision matrix all read the same spelling from here.
"""

from __future__ import annotations

EARLY = "early"
INTERMEDIATE = "intermediate"
LATE = "late"
ATTENTION = "attention"
# The non-neural baseline every strategy is compared against (gradient boosting).
REFERENCE = "reference"

# The four fusion strategies the decision matrix chooses between.
FUSION_STRATEGIES: tuple[str, ...] = (EARLY, INTERMEDIATE, LATE, ATTENTION)
# Everything fused_model fits, in partition order: the four strategies and the reference.
STRATEGIES: tuple[str, ...] = (*FUSION_STRATEGIES, REFERENCE)

# A single-modality baseline (a modality encoder's unimodal head) is named "single:<modality>".
UNIMODAL_PREFIX = "single:"

# Model-store kinds (folders): the modality encoders and the fused models.
ENCODER_STORE = "encoders"
FUSION_STORE = "fusion"


def unimodal_name(modality: str) -> str:
    """The strategy name of ``modality``'s single-modality baseline."""
    return f"{UNIMODAL_PREFIX}{modality}"


def is_unimodal(strategy: str) -> bool:
    return strategy.startswith(UNIMODAL_PREFIX)
