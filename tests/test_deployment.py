"""Deployment availability profiles and net benefit (issue 15 items 1 and 3), on known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from fusion_assets.cohorts.deployment_profile import DeploymentProfile
from fusion_assets.metrics.deployment import deployment_estimates, reweight
from fusion_assets.metrics.net_benefit import decision_curve, weighted_net_benefit

MODALITIES = ["ehr", "genomics", "imaging"]


def test_rates_become_a_pattern_mix_in_spec_order() -> None:
    mix = DeploymentProfile(rates={"ehr": 1.0, "genomics": 0.1, "imaging": 0.5}).target_mix(
        MODALITIES
    )
    assert mix.sum() == pytest.approx(1.0)
    assert mix["ehr+genomics+imaging"] == pytest.approx(0.05)
    assert mix["ehr"] == pytest.approx(0.45)
    assert "genomics" not in mix.index  # ehr is always there: no pattern without it
    explicit = DeploymentProfile(patterns={"imaging+ehr": 3, "ehr": 1}).target_mix(MODALITIES)
    assert explicit.to_dict() == {"ehr+imaging": 0.75, "ehr": 0.25}


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"rates": {"ehr": 1.0}, "patterns": {"ehr": 1.0}},
        {"rates": {"ehr": 1.5, "genomics": 0, "imaging": 0}},
        {"patterns": {"ehr": -1.0}},
        {"rates": {"ehr": 1.0}, "batch": "ed-pilot"},
        {"patterns": {"ehr": 1.0}, "batch": "ed-pilot"},  # a measured mix has its patients
        {"batch": "ed-pilot", "batch_patients": 10},  # ... and its patterns
        {"batch": "../elsewhere"},  # a landing folder's name
    ],
)
def test_bad_profiles_are_refused(fields: dict) -> None:
    with pytest.raises(ValidationError):
        DeploymentProfile(**fields)


def test_a_batch_profile_is_measured_before_it_has_a_mix() -> None:
    named = DeploymentProfile(name="ED pilot", batch="ed-pilot-2026-11")
    assert named.needs_measuring
    named.check(MODALITIES)  # nothing to check until the warehouse measures it
    with pytest.raises(ValueError, match="'ed-pilot-2026-11'.*resolve_deployment"):
        named.target_mix(MODALITIES)
    measured = DeploymentProfile(
        name="ED pilot",
        batch="ed-pilot-2026-11",
        patterns={"ehr": 0.75, "ehr+imaging": 0.25},
        batch_patients=40,
    )
    assert not measured.needs_measuring
    assert measured.target_mix(MODALITIES).to_dict() == {"ehr": 0.75, "ehr+imaging": 0.25}
    assert measured.source() == (
        "the availability-pattern mix of landed batch 'ed-pilot-2026-11' (40 patients)"
    )


def test_run_settings_give_one_profile_or_leave_the_specs() -> None:
    from fusion_assets.cohorts.deployment_profile import DeploymentSettings

    assert DeploymentSettings().deployment_override() is None
    override = DeploymentSettings(deployment_name="ED", deployment_batch="b2").deployment_override()
    assert override == DeploymentProfile(name="ED", batch="b2")
    with pytest.raises(ValidationError, match="exactly one"):
        DeploymentSettings(
            deployment_batch="b2", deployment_patterns={"ehr": 1}
        ).deployment_override()


def test_the_report_keeps_the_stress_tests_profile() -> None:
    from fusion_assets.cohorts.deployment_profile import evaluation_profile, mix_fingerprint

    stressed = DeploymentProfile(name="ED", patterns={"ehr": 3, "ehr+imaging": 1})
    ran = mix_fingerprint(stressed, MODALITIES)
    assert evaluation_profile(stressed, ran, None, MODALITIES) is stressed
    same = DeploymentProfile(name="ED", patterns={"ehr": 0.75, "imaging+ehr": 0.25})
    assert mix_fingerprint(same, MODALITIES) == ran
    assert evaluation_profile(stressed, ran, same, MODALITIES) is same
    other = DeploymentProfile(name="ED", rates={"ehr": 1, "genomics": 0, "imaging": 0.5})
    with pytest.raises(ValueError, match="not the one the predictions step"):
        evaluation_profile(stressed, ran, other, MODALITIES)
    with pytest.raises(ValueError, match="ran toward: no deployment profile"):
        evaluation_profile(None, None, other, MODALITIES)
    assert evaluation_profile(None, None, None, MODALITIES) is None
    # the profile resolved again is no longer the mix the stress tests ran toward
    with pytest.raises(ValueError, match="no longer the mix"):
        evaluation_profile(other, ran, None, MODALITIES)


def test_a_batchs_small_pattern_shares_are_not_published() -> None:
    measured = DeploymentProfile(
        batch="b",
        patterns={"ehr": 0.87, "ehr+imaging": 0.07, "ehr+genomics": 0.06},
        batch_patients=100,
    )
    # 7 and 6 patients: both hidden (one alone would be recovered from the other shares)
    assert measured.hidden_patterns() == {"ehr+imaging", "ehr+genomics"}
    alone = measured.model_copy(update={"patterns": {"ehr": 0.6, "imaging": 0.35, "none": 0.05}})
    assert alone.hidden_patterns() == {"none", "imaging"}  # the next smallest hides it
    written = DeploymentProfile(patterns={"ehr": 0.9, "ehr+imaging": 0.05, "ehr+genomics": 0.05})
    assert written.hidden_patterns() == set()  # shares someone wrote count no patient


def test_unknown_or_missing_modalities_are_named() -> None:
    with pytest.raises(ValueError, match="missing \\['imaging'\\]"):
        DeploymentProfile(rates={"ehr": 1, "genomics": 0.5}).target_mix(MODALITIES)
    with pytest.raises(ValueError, match="unknown \\['mri'\\]"):
        DeploymentProfile(patterns={"ehr+mri": 1}).target_mix(MODALITIES)


def test_weights_reproduce_the_target_mix_and_name_unseen_patterns() -> None:
    patterns = pd.Series(["ehr"] * 80 + ["ehr+genomics"] * 20)
    target = pd.Series({"ehr": 0.5, "ehr+genomics": 0.3, "ehr+imaging": 0.2})
    rew = reweight(patterns, target)
    share = pd.Series(rew.weights).groupby(patterns).sum() / rew.weights.sum()
    assert share["ehr+genomics"] == pytest.approx(0.3 / 0.8)  # renormalised over the covered
    assert rew.covered == pytest.approx(0.8)
    assert list(rew.unseen.index) == ["ehr+imaging"]
    assert rew.ess < len(patterns)


def test_net_benefit_matches_its_definition() -> None:
    y = np.array([1, 1, 0, 0, 0])
    p = np.array([0.9, 0.3, 0.6, 0.1, 0.2])
    nb = weighted_net_benefit(y, p, np.array([0.25, 0.5]), np.ones(5))[:, 0]
    # t = 0.25: treated 0.9, 0.3, 0.6 -> TP 2, FP 1: 2/5 - 1/5 * 1/3
    assert nb[0] == pytest.approx(2 / 5 - (1 / 5) * (0.25 / 0.75))
    assert nb[1] == pytest.approx(1 / 5 - 1 / 5)  # t = 0.5: TP 1, FP 1
    curves = decision_curve(y, {"m": p}, np.array([0.25]))
    assert curves["treat all"][0] == pytest.approx(0.4 - 0.6 / 3)
    assert curves["treat none"][0] == 0.0


def _cohort(n: int = 2000, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Strategy 'genomics_hungry' is good only with genomics; 'robust' is fair everywhere."""
    rng = np.random.default_rng(seed)
    has_genomics = rng.random(n) < 0.5
    y = rng.integers(0, 2, n)
    signal = 2 * y - 1
    robust = 1 / (1 + np.exp(-(0.8 * signal + rng.normal(size=n))))
    hungry = np.where(
        has_genomics,
        1 / (1 + np.exp(-(2.5 * signal + rng.normal(size=n)))),
        rng.uniform(size=n),
    )
    ids = [f"p{i}" for i in range(n)]
    patients = pd.DataFrame(
        {
            "patient_id": ids,
            "label": y,
            "pattern": np.where(has_genomics, "ehr+genomics", "ehr"),
        }
    )
    predictions = pd.concat(
        [
            pd.DataFrame({"strategy": s, "patient_id": ids, "split": "test", "prob": p})
            for s, p in (("robust", robust), ("genomics_hungry", hungry))
        ]
    )
    return predictions, patients


def test_the_winner_changes_when_the_deployment_lacks_genomics() -> None:
    predictions, patients = _cohort()
    research = DeploymentProfile(name="research", rates={"ehr": 1, "genomics": 0.9, "imaging": 0})
    emergency = DeploymentProfile(name="ed", rates={"ehr": 1, "genomics": 0.05, "imaging": 0})
    kw = {"modalities": MODALITIES, "thresholds": (0.2, 0.5), "n_boot": 200}
    at_research = deployment_estimates(predictions, patients, research, **kw)
    at_ed = deployment_estimates(predictions, patients, emergency, **kw)
    assert at_research.table.iloc[0]["strategy"] == "genomics_hungry"
    assert at_ed.table.iloc[0]["strategy"] == "robust"
    row = at_ed.table.set_index("strategy").loc["genomics_hungry"]
    assert row["auroc_ci_low"] <= row["auroc"] <= row["auroc_ci_high"]
    assert row["auroc"] < row["auroc_held_out"]  # held-out mix flatters it for this deployment
    assert set(at_ed.net_benefit["strategy"]) == {"robust", "genomics_hungry", "treat all"}
    assert not at_ed.warnings  # both patterns are common among held-out patients


def test_a_rare_pattern_the_deployment_needs_is_warned_about() -> None:
    predictions, patients = _cohort(n=400)
    patients.loc[patients.index[:5], "pattern"] = "ehr+imaging"  # 5 held-out patients
    profile = DeploymentProfile(patterns={"ehr+imaging": 0.9, "ehr": 0.1})
    result = deployment_estimates(predictions, patients, profile, MODALITIES, (0.2,), n_boot=50)
    assert any("effective" in w for w in result.warnings)
    assert result.reweighting.ess < 100


def test_deployment_masks_only_remove_and_hit_the_deployment_rates() -> None:
    from fusion_assets.scoring import deployment_masks

    rng = np.random.default_rng(1)
    present = np.column_stack([np.ones(4000, bool), rng.random(4000) < 0.6, rng.random(4000) < 0.9])
    profile = DeploymentProfile(rates={"ehr": 1.0, "genomics": 0.1, "imaging": 0.95})
    masks = list(deployment_masks(present, MODALITIES, profile, n_seeds=2))
    names = [(scenario, dropped) for scenario, _, dropped, _, _ in masks]
    # imaging is already below its deployment rate: no scenario lowers it
    assert names == [("deployment_replay", ""), ("deployment_rate:genomics", "genomics")] * 2
    for _, rate, _, _, keep in masks:
        assert np.isnan(rate) and not (keep & ~present).any()  # nothing is ever added
    replay = masks[0][4]
    assert replay[:, 1].mean() == pytest.approx(0.6 * 0.1, abs=0.015)
    assert masks[1][4][:, 1].mean() == pytest.approx(0.1, abs=0.015)
    assert (masks[1][4][:, 2] == present[:, 2]).all()  # the other modalities untouched


def test_pattern_shift_table_reads_the_deployment_scenarios() -> None:
    from fusion_assets.metrics.deployment import pattern_shift_table

    rng = np.random.default_rng(0)
    n = 300
    ids = [f"p{i}" for i in range(n)]
    y = rng.integers(0, 2, n)
    patients = pd.DataFrame({"patient_id": ids, "label": y})
    good = y + rng.normal(0, 0.7, n)
    rows = [
        pd.DataFrame(
            {
                "strategy": "late",
                "scenario": scenario,
                "rate": rate,
                "dropped": dropped,
                "mask_seed": seed,
                "patient_id": ids,
                "prob": good + noise * rng.normal(0, 1, n),
            }
        )
        for scenario, rate, dropped, seed, noise in [
            ("global", 0.0, "", 0, 0.0),
            ("deployment_replay", np.nan, "", 0, 1.0),
            ("deployment_replay", np.nan, "", 1, 1.0),
            ("deployment_rate:genomics", np.nan, "genomics", 0, 0.5),
            ("mechanism:mnar_label", np.nan, "", 0, 0.8),
        ]
    ]
    table = pattern_shift_table(pd.concat(rows), patients).set_index(["scenario", "modality"])
    replay = table.loc[("deployment_replay", "")]
    assert replay["n_seeds"] == 2 and replay["auroc_mean"] < replay["full"]
    assert table.loc[("deployment_rate", "genomics"), "n_seeds"] == 1
    assert table.loc[("mechanism:mnar_label", ""), "auroc_mean"] < replay["full"]
    assert set(table.index.get_level_values("scenario")) == {
        "deployment_replay",
        "deployment_rate",
        "mechanism:mnar_label",
    }
    assert pattern_shift_table(pd.concat(rows[:1]), patients).empty


def test_the_reweighted_auroc_matches_a_cohort_resampled_to_the_mix() -> None:
    """Importance weights by pattern estimate what a cohort drawn with the deployment mix
    would show: compare with a direct computation on such a cohort, resampled by pattern."""
    from fusion_assets.metrics.classification import auroc

    predictions, patients = _cohort(n=6000, seed=2)
    profile = DeploymentProfile(rates={"ehr": 1.0, "genomics": 0.15, "imaging": 0.0})
    result = deployment_estimates(predictions, patients, profile, MODALITIES, (0.2,), n_boot=100)
    mix = profile.target_mix(MODALITIES)
    rng = np.random.default_rng(5)
    drawn = []
    for pattern, share in mix.items():
        members = patients.index[patients["pattern"] == pattern]
        drawn.append(rng.choice(members, size=int(round(share * 20_000)), replace=True))
    resampled = patients.loc[np.concatenate(drawn)]
    y = resampled["label"].to_numpy()
    for strategy in ("robust", "genomics_hungry"):
        prob = predictions[predictions["strategy"] == strategy].set_index("patient_id")["prob"]
        direct = auroc(y, prob.loc[resampled["patient_id"]].to_numpy())
        estimate = result.table.set_index("strategy").loc[strategy, "auroc"]
        assert estimate == pytest.approx(direct, abs=0.01), strategy


def test_the_mechanism_shift_halves_the_odds_of_presence_for_the_outcome_only() -> None:
    from fusion_assets.scoring import mechanism_masks

    rng = np.random.default_rng(3)
    n = 20_000
    labels = rng.random(n) < 0.3
    present = np.column_stack([np.ones(n, bool), rng.random(n) < 0.6])
    (scenario, rate, _, seed, keep), *_ = list(mechanism_masks(present, labels, n_seeds=1))
    assert scenario == "mechanism:mnar_label" and np.isnan(rate) and seed == 0
    assert not (keep & ~present).any()
    assert (keep[~labels] == present[~labels]).all()  # patients without the outcome keep all

    def odds(p: float) -> float:
        return p / (1 - p)

    held = present[labels, 1].mean()
    shifted = keep[labels, 1].mean()
    assert odds(shifted) / odds(held) == pytest.approx(0.5, rel=0.05)
    assert keep[labels, 0].all()  # present for everyone: infinite odds stay so, nothing dropped
