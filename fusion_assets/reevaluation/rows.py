"""The long-format result rows of ``eval.batch_metrics``."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

DATA_STRATEGY = "data"  # drift rows: a property of the batch, not of a model
# The batch's patients that are already in the training cohort (profile.splits).
TRAINING_OVERLAP = ("provenance", "patients_in_training")
COLUMNS = [
    "batch_id",
    "strategy",
    "kind",
    "metric",
    "subgroup",
    "value",
    "ci_low",
    "ci_high",
    "suppressed",
    "reference",
    "reference_low",
    "reference_high",
    "flagged",
    "model_version",
]


def is_nan(value: object) -> bool:
    return isinstance(value, float) and math.isnan(value)


@dataclass
class ResultRows:
    """Accumulates the long-format result rows of one batch."""

    batch_id: str
    rows: list[dict] = field(default_factory=list)

    def add(self, strategy: str, kind: str, metric: str, subgroup: str, value: float, **extra):
        row = {
            "batch_id": self.batch_id,
            "strategy": strategy,
            "kind": kind,
            "metric": metric,
            "subgroup": subgroup,
            "value": None if value is None or is_nan(value) else float(value),
            "ci_low": None,
            "ci_high": None,
            "suppressed": False,
            "reference": None,
            "reference_low": None,
            "reference_high": None,
            "flagged": False,
            "model_version": None,
        }
        row.update(extra)
        self.rows.append(row)

    def frame(self) -> pd.DataFrame:
        table = pd.DataFrame(self.rows, columns=COLUMNS)
        # Explicit dtypes: an empty or all-NULL column must still filter and write cleanly.
        return table.astype(
            {
                "value": "float64",
                "ci_low": "float64",
                "ci_high": "float64",
                "reference": "float64",
                "reference_low": "float64",
                "reference_high": "float64",
                "suppressed": "bool",
                "flagged": "bool",
                # The registered version of the strategy's model (empty for data rows).
                "model_version": "Int64",
            }
        )
