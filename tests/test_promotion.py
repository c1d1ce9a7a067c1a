"""Promotion on evidence and rollback (issue 12 item 2), on a real MLflow sqlite registry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fusion_assets.assets.promotion import ROLLBACK_TAG, champion_check, promote_by_hand
from fusion_assets.promotion import PromotionRules, candidate_order, choose_candidate, decide
from resources.model_store import ModelStore

CALIBRATED = pd.Series(
    {
        "strategy": "late",
        "cal_slope": 1.0,
        "cal_slope_ci_low": 0.8,
        "cal_slope_ci_high": 1.2,
        "cal_intercept": 0.0,
        "cal_intercept_ci_low": -0.1,
        "cal_intercept_ci_high": 0.1,
    }
)


def _cohort(n: int = 600, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    patients = pd.DataFrame(
        {
            "patient_id": [f"p{i}" for i in range(n)],
            "label": rng.integers(0, 2, n),
            "pattern": rng.choice(["ehr+notes", "ehr"], n),
            "sex": rng.choice(["F", "M"], n),
        }
    )
    signal = patients["label"] * 1.5 + rng.normal(size=n)
    good = pd.Series(1 / (1 + np.exp(-signal.to_numpy())), index=patients["patient_id"])
    return patients, good


def test_a_candidate_worse_than_the_champion_is_not_promoted() -> None:
    patients, champion_prob = _cohort()
    noise = np.random.default_rng(1).uniform(size=len(patients))
    worse = pd.Series(0.3 * champion_prob.to_numpy() + 0.7 * noise, index=champion_prob.index)
    rules = PromotionRules(n_boot=200)
    decision = decide(
        "late", "test", worse, CALIBRATED, patients, ("early", 3), champion_prob, rules
    )
    assert not decision.promoted
    assert decision.delta_ci[0] < -rules.max_auroc_loss
    assert any("ΔAUROC vs champion" in r and "not above" in r for r in decision.reasons)
    assert decision.subgroups["loses"].any()  # large subgroups lose more than 0.05 too
    # The same candidate against itself clears every rule.
    same = decide("late", "test", worse, CALIBRATED, patients, ("early", 3), worse, rules)
    assert same.promoted, same.reasons


def test_calibration_rule_and_first_promotion() -> None:
    patients, prob = _cohort()
    rules = PromotionRules(n_boot=50)
    assert decide("late", "t", prob, CALIBRATED, patients, None, None, rules).promoted
    extreme = CALIBRATED.copy()
    extreme[["cal_slope", "cal_slope_ci_low", "cal_slope_ci_high"]] = [0.4, 0.3, 0.6]
    refused = decide("late", "t", prob, extreme, patients, None, None, rules)
    assert not refused.promoted and "calibration fails" in refused.reasons[0]
    # A champion without comparable predictions stays.
    kept = decide("late", "t", prob, CALIBRATED, patients, ("late", 1), None, rules)
    assert not kept.promoted


def test_candidate_is_the_recommended_unless_clearly_beaten() -> None:
    overall = pd.DataFrame(
        {
            "strategy": ["late", "early"],
            "auroc": [0.70, 0.74],
            "auroc_ci_low": [0.65, 0.70],
            "auroc_ci_high": [0.75, 0.78],
        }
    )
    assert choose_candidate(overall, "late")[0] == "late"
    overall.loc[1, "auroc"] = 0.80
    assert choose_candidate(overall, "late")[0] == "early"


def test_the_other_of_recommended_and_winner_is_tried_next() -> None:
    overall = pd.DataFrame(
        {
            "strategy": ["late", "attention", "early"],
            "auroc": [0.785, 0.800, 0.733],
            "auroc_ci_low": [0.755, 0.771, 0.70],
            "auroc_ci_high": [0.815, 0.828, 0.76],
        }
    )
    order = candidate_order(overall, "late")
    assert [name for name, _ in order] == ["late", "attention"]
    assert "tried because late did not clear the rules" in order[1][1]
    # The clear winner goes first and the recommended strategy second.
    overall.loc[1, "auroc"] = 0.85
    assert [name for name, _ in candidate_order(overall, "late")] == ["attention", "late"]
    # When the recommended strategy is the winner there is one candidate.
    assert [name for name, _ in candidate_order(overall, "attention")] == ["attention"]


@pytest.fixture
def registry(tmp_path: Path) -> ModelStore:
    """Two registered versions of ``demo.late`` in a real sqlite registry."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri, registry_uri=uri)
    client.create_registered_model("demo.late")
    for _ in range(2):
        client.create_model_version("demo.late", source=(tmp_path / "model").as_uri())
    return ModelStore(str(tmp_path / "models"), uri, "demo")


def test_rollback_moves_the_alias_back_and_is_recorded(registry: ModelStore) -> None:
    assert champion_check(registry).severity.value == "WARN"  # no champion yet
    registry.set_champion("late", 2)
    assert not champion_check(registry).passed  # moved without evidence: blocking failure
    message = promote_by_hand(registry, 1)
    assert registry.champion() == ("late", 1)
    assert (
        "was late v2" in message and "was late v2" in registry.version_tags("late", 1)[ROLLBACK_TAG]
    )
    assert champion_check(registry).passed
    with pytest.raises(ValueError, match="no version 7"):
        promote_by_hand(registry, 7)
