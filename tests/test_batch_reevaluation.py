"""Batch re-evaluation compares like with like, and risk scores flag unfamiliar patterns.

Pure code on hand-built batches (the metrics, bootstrap and row code are the real ones);
the Dagster assets on a real pipeline are in tests/test_risk_scores.py.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fusion_assets.reevaluation import summary
from fusion_assets.reevaluation.inputs import BatchInputs
from fusion_assets.reevaluation.performance import strategy_rows
from fusion_assets.reevaluation.rows import ResultRows
from fusion_assets.reevaluation.settings import BatchEvaluationSettings
from fusion_assets.risk_scores import (
    RARE,
    SEEN,
    UNSEEN,
    ScoringModel,
    pattern_evidence,
    pattern_support,
    risk_scores,
)

REFERENCE = pd.DataFrame(
    {"auroc": [0.85], "ci_low": [0.80], "ci_high": [0.90]},
    index=pd.Index(["late"], name="strategy"),
)


def _batch(n: int, signal: float, seed: int, in_training: bool = False):
    """A labelled batch whose probabilities separate the classes by ``signal``."""
    rng = np.random.default_rng(seed)
    y = np.tile([0.0, 1.0], n // 2)
    logits = signal * (2 * y - 1) + rng.normal(size=n)
    batch = pd.DataFrame(
        {
            "patient_id": [f"p{i}" for i in range(n)],
            "label": y,
            "pattern": "ehr",
            "ehr": True,
            "in_training": in_training,
        }
    )
    inputs = BatchInputs(batch, None, {}, {}, None, REFERENCE)
    return inputs, 1 / (1 + np.exp(-logits))


def _evaluate(inputs: BatchInputs, probs: np.ndarray) -> pd.DataFrame:
    rows = ResultRows("b")
    strategy_rows("late", probs, inputs, BatchEvaluationSettings(n_boot=300), rows, 4)
    return rows.frame()


def _auroc_all(table: pd.DataFrame) -> pd.Series:
    return table[(table["metric"] == "auroc") & (table["subgroup"] == "all")].iloc[0]


def test_a_small_batch_below_the_reference_by_its_point_estimate_does_not_warn() -> None:
    inputs, probs = _batch(40, signal=0.45, seed=1)
    table = _evaluate(inputs, probs)
    row = _auroc_all(table)
    # The point estimate is under the reference's lower bound; the batch's own interval is
    # wide and overlaps the reference's: no alarm.
    assert row["value"] < REFERENCE.loc["late", "ci_low"]
    assert row["ci_low"] < row["value"] < row["ci_high"]
    assert row["ci_high"] >= REFERENCE.loc["late", "ci_low"]
    assert not row["flagged"] and not summary.check_problems(table)
    assert row["model_version"] == 4


def test_a_clearly_worse_batch_warns_with_both_intervals() -> None:
    inputs, probs = _batch(600, signal=0.3, seed=2)
    table = _evaluate(inputs, probs)
    row = _auroc_all(table)
    assert row["ci_high"] < REFERENCE.loc["late", "ci_low"] and row["flagged"]
    (problem,) = summary.check_problems(table)
    assert problem.startswith("late: batch AUROC") and "[0.800, 0.900]" in problem
    assert summary.flag_counts(table)["auroc_below_reference"] == 1


def test_a_training_batch_is_not_re_evaluated_as_new() -> None:
    inputs, probs = _batch(200, signal=2.0, seed=3, in_training=True)
    table = _evaluate(inputs, probs)
    assert inputs.is_training_batch
    assert table[table["kind"] == "performance"].empty
    assert summary.evaluation_status(inputs).startswith(summary.TRAINING_BATCH)

    # Only part of the batch in the training cohort: the rest is evaluated, alone.
    inputs.batch.loc[inputs.batch.index[:100], "in_training"] = False
    table = _evaluate(inputs, probs)
    n = table[(table["metric"] == "n") & (table["subgroup"] == "all")]["value"].iloc[0]
    assert n == 100
    assert summary.evaluation_status(inputs).startswith("re-evaluation on the 100 new patients")


def test_risk_scores_flag_rare_and_unseen_patterns_with_their_evidence() -> None:
    training = pd.Series(["ehr"] * 50 + ["ehr+notes"] * 5)
    patients = pd.DataFrame(
        {
            "patient_id": ["a", "b", "c"],
            "index_time": pd.to_datetime(["2024-01-01"] * 3),
            "pattern": ["ehr", "ehr+notes", "ehr+imaging"],
        }
    )
    metrics = pd.DataFrame(
        {
            "strategy": ["late", "late", "early"],
            "subgroup_type": "pattern",
            "subgroup": ["ehr", "other", "ehr"],
            "auroc": [0.8, 0.7, 0.6],
            "auroc_ci_low": [0.75, 0.6, 0.5],
            "auroc_ci_high": [0.85, 0.8, 0.7],
            "suppressed": False,
        }
    )
    model = ScoringModel("late", 3, "synthetic.late")
    table = risk_scores(
        "b1",
        patients,
        np.array([0.1, 0.5, 0.9]),
        model,
        pattern_support(training, patients["pattern"], rare_below=30),
        pattern_evidence(metrics, "late", patients["pattern"]),
    ).set_index("patient_id")
    assert table["pattern_support"].to_dict() == {"a": SEEN, "b": RARE, "c": UNSEEN}
    assert table["flagged"].to_dict() == {"a": False, "b": True, "c": True}
    assert table["n_training_pattern"].to_dict() == {"a": 50, "b": 5, "c": 0}
    # Own row for a report pattern, the pooled "other" row for the rest; never early's rows.
    assert table["auroc_subgroup"].to_dict() == {"a": "ehr", "b": "other", "c": "other"}
    assert table.loc["a", "pattern_auroc"] == 0.8 and table.loc["c", "pattern_auroc_ci_low"] == 0.6
    assert (table["model_name"] == "synthetic.late").all() and (table["model_version"] == 3).all()
    assert table["prob"].tolist() == [0.1, 0.5, 0.9]
