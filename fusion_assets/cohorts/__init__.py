"""Cohort sources: the synthetic generator and the cohort spec."""

from __future__ import annotations

import os

from fusion_assets.cohorts.spec import CohortSpec, ModalitySpec, synthetic_spec

COHORT_SPEC_ENV = "FUSION_COHORT_SPEC"


def load_cohort_spec() -> CohortSpec:
    """The cohort this code location serves.

    The synthetic cohort is the default. Set ``FUSION_COHORT_SPEC`` to a spec
    file to serve your own data (modality partitions are read from it when
    Dagster loads the definitions).
    """
    path = os.environ.get(COHORT_SPEC_ENV)
    if not path:
        return synthetic_spec()
    from fusion_assets.cohorts.spec_file import read_spec_file

    return read_spec_file(path)


__all__ = ["CohortSpec", "ModalitySpec", "load_cohort_spec", "synthetic_spec"]
