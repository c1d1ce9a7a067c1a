"""What the TRIPOD+AI items on missing data and implementation need from the evaluation.

TRIPOD+AI (Collins et al., BMJ 2024) asks, among others, for missing data by group
(item 20b) and for how unavailable inputs are handled at implementation (27a). For a
multimodal model "missing data" is mostly whole modalities: ``availability_by_group``
gives, for each demographic subgroup of the test patients, the share that has each
modality, under the small-cell rule (a share is printed only when neither the count
nor its complement is small). The report's TRIPOD+AI section points every other item
it covers to its own section.

Pure pandas; no dagster.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fusion_assets.disclosure import rate_publishable
from fusion_assets.metrics.config import EvaluationConfig
from fusion_assets.metrics.subgroups import subgroup_masks, wide_probabilities

AVAILABILITY_COLUMNS = ["subgroup_type", "subgroup", "n", "modality", "available", "share"]


def availability_by_group(
    predictions: pd.DataFrame,
    patients: pd.DataFrame,
    modalities: list[str],
    config: EvaluationConfig,
) -> pd.DataFrame:
    """Per subgroup (all, sex, age band, site) of the test patients and modality: how many
    have it and the share (NaN where the small-cell rule hides it)."""
    test, _ = wide_probabilities(predictions, patients, "test")
    if "pattern" not in test.columns or test.empty:
        return pd.DataFrame(columns=AVAILABILITY_COLUMNS)
    has = {
        m: test["pattern"].astype(str).str.split("+").map(lambda names, m=m: m in names)
        for m in modalities
    }
    masks, _ = subgroup_masks(test, config)
    rows = []
    for kind, name, mask in masks:
        if kind == "pattern":  # a pattern is its own availability
            continue
        n = int(mask.sum())
        for m in modalities:
            available = int((has[m].to_numpy() & mask).sum())
            shown = n >= config.suppress_below and rate_publishable(
                available, n, config.suppress_below
            )
            rows.append(
                {
                    "subgroup_type": kind,
                    "subgroup": name,
                    "n": n,
                    "modality": m,
                    "available": available if shown else np.nan,
                    "share": available / n if shown else np.nan,
                }
            )
    return pd.DataFrame(rows, columns=AVAILABILITY_COLUMNS)
