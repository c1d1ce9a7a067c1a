"""The names every layer shares: the built-in fusion strategies, unimodal baselines,
model-store kinds.

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
# Two more non-neural references: L2 logistic regression on the concatenated features
# with missing indicators, and one boosting model per modality stacked with availability flags.
REFERENCE_LOGISTIC = "reference_logistic"
REFERENCE_STACKED = "reference_stacked"

# What fused_model fits, in partition order, is the strategy registry
# (fusion_assets.models.strategies): these four and the three references, plus any plug-in.

# A single-modality baseline (a modality encoder's unimodal head) is named "single:<modality>".
UNIMODAL_PREFIX = "single:"

# Model-store kinds (folders): the modality encoders and the fused models.
ENCODER_STORE = "encoders"
FUSION_STORE = "fusion"


def unimodal_name(modality: str) -> str:
    """The strategy name of ``modality``'s single-modality baseline."""
    return f"{UNIMODAL_PREFIX}{modality}"


def is_unimodal(strategy: str) -> bool:
    """Whether ``strategy`` names a single-modality baseline."""
    return strategy.startswith(UNIMODAL_PREFIX)
