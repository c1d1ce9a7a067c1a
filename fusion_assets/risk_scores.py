"""Risk scores of new patients: the champion's probability, and how much to trust it.

Pure code (no dagster, no mlflow). For every patient of a landing batch: the
champion's predicted probability, the registered model and version that produced
it, the patient's availability pattern, how many training patients had that
pattern, a flag when it was rare (fewer than ``rare_pattern_below``) or absent, and
the champion strategy's held-out AUROC with its interval on that pattern (from
``eval.subgroup_metrics``; a pattern too small for its own row is read from the
pooled ``other`` row, and says so in ``auroc_subgroup``). The asset is
``fusion_assets/assets/risk_scores.py``, the SQL ``warehouse/risk_scores.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

SEEN, RARE, UNSEEN = "seen", "rare", "unseen"
OTHER_PATTERN = "other"  # the report's pool of patterns with too few test patients
COLUMNS = [
    "batch_id",
    "patient_id",
    "index_time",
    "prob",
    "model_name",
    "strategy",
    "model_version",
    "pattern",
    "n_training_pattern",
    "pattern_support",
    "flagged",
    "pattern_auroc",
    "pattern_auroc_ci_low",
    "pattern_auroc_ci_high",
    "auroc_subgroup",
]


class RiskScoreSettings(BaseModel):
    """When an availability pattern is too rare in training to trust its score blindly."""

    rare_pattern_below: int = Field(
        default=30,
        ge=1,
        description="A pattern held by fewer training patients than this is flagged 'rare' "
        "(absent: 'unseen')",
    )


@dataclass(frozen=True)
class ScoringModel:
    """The model that scores: a strategy's registered version (the champion)."""

    strategy: str
    version: int
    registered_name: str

    def __str__(self) -> str:
        return f"{self.registered_name} v{self.version}"


def pattern_support(
    training_patterns: pd.Series, patterns: pd.Series, rare_below: int
) -> pd.DataFrame:
    """``pattern, n_training_pattern, pattern_support`` for each pattern of ``patterns``."""
    counts = training_patterns.value_counts()
    wanted = sorted(set(patterns))
    n = np.array([int(counts.get(p, 0)) for p in wanted], dtype=int)
    support = np.where(n == 0, UNSEEN, np.where(n < rare_below, RARE, SEEN))
    return pd.DataFrame({"pattern": wanted, "n_training_pattern": n, "pattern_support": support})


def pattern_evidence(
    subgroup_metrics: pd.DataFrame | None, strategy: str, patterns: pd.Series
) -> pd.DataFrame:
    """``pattern, pattern_auroc, pattern_auroc_ci_low/high, auroc_subgroup`` per pattern.

    A pattern without its own (unsuppressed) row takes the pooled ``other`` row when the
    report has one; otherwise every evidence column is empty.
    """
    wanted = sorted(set(patterns))
    empty = pd.DataFrame(
        {
            "pattern": wanted,
            "pattern_auroc": np.nan,
            "pattern_auroc_ci_low": np.nan,
            "pattern_auroc_ci_high": np.nan,
            "auroc_subgroup": None,
        }
    )
    if subgroup_metrics is None or subgroup_metrics.empty:
        return empty
    rows = subgroup_metrics[
        (subgroup_metrics["strategy"] == strategy)
        & (subgroup_metrics["subgroup_type"] == "pattern")
        & subgroup_metrics["auroc"].notna()
    ]
    if "suppressed" in rows.columns:
        rows = rows[~rows["suppressed"].fillna(False).astype(bool)]
    by_pattern = rows.drop_duplicates("subgroup").set_index("subgroup")
    records = []
    for pattern in wanted:
        source = pattern if pattern in by_pattern.index else OTHER_PATTERN
        if source not in by_pattern.index:
            records.append(empty[empty["pattern"] == pattern].iloc[0].to_dict())
            continue
        row = by_pattern.loc[source]
        records.append(
            {
                "pattern": pattern,
                "pattern_auroc": float(row["auroc"]),
                "pattern_auroc_ci_low": float(row["auroc_ci_low"]),
                "pattern_auroc_ci_high": float(row["auroc_ci_high"]),
                "auroc_subgroup": source,
            }
        )
    return pd.DataFrame.from_records(records, columns=list(empty.columns))


def risk_scores(
    batch_id: str,
    patients: pd.DataFrame,
    probs: np.ndarray,
    model: ScoringModel,
    support: pd.DataFrame,
    evidence: pd.DataFrame,
) -> pd.DataFrame:
    """One row per patient (``patients``: patient_id, index_time, pattern, in its order)."""
    if len(probs) != len(patients):
        raise ValueError(f"{len(probs)} probabilities for {len(patients)} patients")
    out = patients[["patient_id", "index_time", "pattern"]].reset_index(drop=True)
    out = out.assign(
        batch_id=batch_id,
        prob=np.asarray(probs, dtype=float),
        model_name=model.registered_name,
        strategy=model.strategy,
        model_version=int(model.version),
    )
    out = out.merge(support, on="pattern", how="left").merge(evidence, on="pattern", how="left")
    out["flagged"] = out["pattern_support"] != SEEN
    return out[COLUMNS].astype({"model_version": "int64", "n_training_pattern": "int64"})


def support_counts(scores: pd.DataFrame) -> dict[str, int]:
    """Patients per ``pattern_support`` (seen / rare / unseen), zeros included."""
    counts = scores["pattern_support"].value_counts()
    return {level: int(counts.get(level, 0)) for level in (SEEN, RARE, UNSEEN)}


def champion_probabilities(
    model_dir: Path, frames: Mapping[str, pd.DataFrame], patient_ids: list[str]
) -> np.ndarray:
    """P(label) of the saved model in ``model_dir`` for ``patient_ids``."""
    # Imported here: torch costs seconds, and the code location imports the asset package.
    from fusion_assets.models.api import load_model

    if not patient_ids:
        return np.zeros(0, dtype=float)
    fitted = load_model(model_dir)
    return np.asarray(fitted.predict_proba(fitted.prepare(dict(frames), patient_ids)), dtype=float)
