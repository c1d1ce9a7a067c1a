"""Cohort sources: the synthetic generator and the cohort spec."""

from __future__ import annotations

from fusion_assets.cohorts.spec import CohortSpec, ModalitySpec, synthetic_spec

# The shortcut that makes the code location serve one spec file's cohort alone
# (fusion_assets/definitions.py); cohorts are otherwise declared in fusion_assets/defs/.
COHORT_SPEC_ENV = "FUSION_COHORT_SPEC"

__all__ = ["COHORT_SPEC_ENV", "CohortSpec", "ModalitySpec", "synthetic_spec"]
