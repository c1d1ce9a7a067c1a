"""Subgroup table, suppression, leakage flag and stress-test masks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fusion_assets.metrics.bootstrap import percentile_ci
from fusion_assets.metrics.config import EvaluationConfig
from fusion_assets.metrics.degradation import (
    complete_case_table,
    degradation_curves,
    degradation_summary,
    random_modality_masks,
)
from fusion_assets.metrics.leakage import describe_leaks, leakage_flags
from fusion_assets.metrics.subgroups import TABLE_COLUMNS, age_band_labels, subgroup_table
from tests.fixtures.simulate import simulate_inputs

CFG = EvaluationConfig(n_boot=100, seed=3)


@pytest.fixture(scope="module")
def inputs():
    return simulate_inputs(
        n_test=1500, n_validation=600, seed=1, n_mask_seeds=2, rates=(0, 0.5, 0.9)
    )


@pytest.fixture(scope="module")
def result(inputs):
    return subgroup_table(inputs.predictions, inputs.patients, CFG)


def test_table_shape_and_columns(inputs, result) -> None:
    t = result.table
    assert list(t.columns) == TABLE_COLUMNS
    strategies = sorted(inputs.predictions["strategy"].unique())
    assert sorted(t["strategy"].unique()) == strategies
    # Every subgroup has one row per strategy.
    assert (t.groupby(["subgroup_type", "subgroup"]).size() == len(strategies)).all()
    assert set(t["subgroup_type"]) == {"all", "pattern", "sex", "age_band", "site"}
    all_rows = t[t["subgroup_type"] == "all"]
    assert (all_rows["n"] == 1500).all()
    # Patterns partition the test set (small ones pooled into "other").
    pat = t[(t["subgroup_type"] == "pattern") & (t["strategy"] == "late")]
    assert pat["n"].sum() == 1500
    assert result.best_single.startswith("single:")


def test_metrics_are_consistent_with_point_estimates(inputs, result) -> None:
    from sklearn.metrics import roc_auc_score

    t = result.table
    test = inputs.patients.merge(
        inputs.predictions[(inputs.predictions["split"] == "test")], on="patient_id"
    )
    for s in ("late", "early"):
        g = test[test["strategy"] == s]
        row = t[(t["subgroup_type"] == "all") & (t["strategy"] == s)].iloc[0]
        assert row["auroc"] == pytest.approx(roc_auc_score(g["label"], g["prob"]))
        assert row["auroc_ci_low"] < row["auroc"] < row["auroc_ci_high"]
    ref = t[t["strategy"] == "reference"]
    assert ref["delta_auroc_vs_reference"].isna().all()
    late = t[(t["subgroup_type"] == "all") & (t["strategy"] == "late")].iloc[0]
    r = t[(t["subgroup_type"] == "all") & (t["strategy"] == "reference")].iloc[0]
    assert late["delta_auroc_vs_reference"] == pytest.approx(late["auroc"] - r["auroc"])
    assert late["lift_captured"] == pytest.approx(
        (late["auroc"] - 0.5) / (late["oracle_auroc"] - 0.5)
    )


def test_paired_deltas_come_from_the_shared_resamples_in_every_subgroup(result) -> None:
    t = result.table[~result.table["suppressed"] & (result.table["status"] != "modality absent")]
    for (kind, name), g in t.groupby(["subgroup_type", "subgroup"], sort=False):
        boot = result.boot_auroc[(kind, name)]
        g = g.set_index("strategy")
        for s in g.index:
            r = g.loc[s]
            assert (r["auroc_ci_low"], r["auroc_ci_high"]) == percentile_ci(boot[s], CFG.ci_level)
            for col, other in (
                ("delta_auroc_vs_reference", CFG.reference),
                ("delta_auroc_vs_best_single", result.best_single),
            ):
                if s == other or other not in g.index:
                    assert np.isnan(r[col]) and np.isnan(r[f"{col}_ci_low"])
                    continue
                assert r[col] == pytest.approx(r["auroc"] - g.loc[other, "auroc"], abs=1e-15)
                ci = percentile_ci(boot[s] - boot[other], CFG.ci_level)
                assert (r[f"{col}_ci_low"], r[f"{col}_ci_high"]) == ci


def test_suppression_and_imprecise_flags(inputs) -> None:
    patients = inputs.patients.copy()
    test_ids = inputs.predictions.loc[inputs.predictions["split"] == "test", "patient_id"].unique()
    # Plant a tiny site with 7 test patients.
    patients.loc[patients["patient_id"].isin(test_ids[:7]), "site"] = "tiny_site"
    t = subgroup_table(inputs.predictions, patients, CFG).table
    tiny = t[(t["subgroup_type"] == "site") & (t["subgroup"] == "tiny_site")]
    assert len(tiny) == inputs.predictions["strategy"].nunique()  # kept, not dropped
    assert tiny["suppressed"].all()
    assert (tiny["status"] == "suppressed (<11)").all()
    assert tiny["auroc"].isna().all() and tiny["events"].isna().all()
    assert (tiny["n"] == 7).all()
    # ~300 events in 1,500 patients overall: not imprecise; a small site is.
    all_rows = t[t["subgroup_type"] == "all"]
    assert not all_rows["imprecise"].any()
    assert t[(t["subgroup_type"] == "pattern") & (t["n"] < 200)]["imprecise"].all()


def test_leakage_flag_fires_on_planted_leak_only(inputs, result) -> None:
    rng = np.random.default_rng(0)
    leak = inputs.predictions[inputs.predictions["strategy"] == "late"].copy()
    labels = leak["patient_id"].map(inputs.patients.set_index("patient_id")["label"])
    leak["prob"] = np.clip(labels + rng.normal(0, 0.3, len(leak)), 0, 1)
    leak["strategy"] = "leaky"
    assert leakage_flags(result.table).empty
    leaky = subgroup_table(pd.concat([inputs.predictions, leak]), inputs.patients, CFG).table
    flags = leakage_flags(leaky)
    assert not flags.empty
    assert set(flags["strategy"]) == {"leaky"}
    assert "leaky on all=all" in describe_leaks(flags)


def test_missing_predictions_and_single_class_rows(inputs) -> None:
    preds = inputs.predictions
    # Drop 10 test predictions of one strategy: it is scored on the rest, status says so.
    drop = preds[(preds["strategy"] == "early") & (preds["split"] == "test")].index[:10]
    t = subgroup_table(preds.drop(drop), inputs.patients, CFG).table
    row = t[(t["subgroup_type"] == "all") & (t["strategy"] == "early")].iloc[0]
    assert row["n"] == 1490 and "10 patient(s) without prediction" in row["status"]
    # A subgroup with no events keeps its row with NaN AUROC and a reason.
    patients = inputs.patients.copy()
    test_ids = set(preds.loc[preds["split"] == "test", "patient_id"])
    neg = patients[(patients["label"] == 0) & patients["patient_id"].isin(test_ids)].index[:20]
    patients.loc[neg, "site"] = "no_events"
    t = subgroup_table(preds, patients, CFG).table
    ne = t[t["subgroup"] == "no_events"]
    assert ne["auroc"].isna().all()
    assert ne["status"].str.contains("single class").all()


def test_age_bands() -> None:
    bands = age_band_labels(pd.Series([20, 44, 45, 64, 65, 90, np.nan]), (45, 65))
    assert bands.tolist() == ["<45", "<45", "45-64", "45-64", "65+", "65+", "unknown"]


def test_random_modality_masks_rates_and_monotonicity() -> None:
    rng = np.random.default_rng(0)
    present = rng.random((20_000, 5)) < [0.95, 0.3, 0.5, 0.2, 0.8]
    for rate in (0.0, 0.1, 0.5, 0.9, 1.0):
        out = random_modality_masks(present, rate, seed=1)
        assert not (out & ~present).any()  # never adds a modality
        kept = out.sum() / present.sum()
        assert kept == pytest.approx(1 - rate, abs=0.01)
    out = random_modality_masks(present, 0.5, seed=2, modality=1)
    assert np.array_equal(out[:, [0, 2, 3, 4]], present[:, [0, 2, 3, 4]])
    assert out[:, 1].sum() / present[:, 1].sum() == pytest.approx(0.5, abs=0.03)
    assert np.array_equal(
        random_modality_masks(present, 0.5, 3), random_modality_masks(present, 0.5, 3)
    )
    full = random_modality_masks(present, 1.0, seed=4)
    assert not full.any()  # zero modalities allowed by default
    kept1 = random_modality_masks(present, 1.0, seed=4, keep_at_least_one=True)
    assert (kept1.sum(axis=1) == present.any(axis=1)).all()
    assert not (kept1 & ~present).any()


def test_degradation_tables(inputs) -> None:
    curves = degradation_curves(inputs.degradation_predictions, inputs.patients)
    assert set(curves["scenario"]) >= {"global", "modality:ehr"}
    g = curves[(curves["scenario"] == "global") & (curves["strategy"] == "late")]
    assert g["rate"].tolist() == [0.0, 0.5, 0.9]
    assert (g["n_seeds"] == 2).all()
    assert g["auroc_mean"].iloc[0] > g["auroc_mean"].iloc[-1]
    summary = degradation_summary(curves)
    late = summary[(summary["strategy"] == "late") & (summary["scenario"] == "global")].iloc[0]
    assert late["area_vs_late"] == 0.0
    # Area is the mean AUROC over the rate range (trapezoid / span).
    a = g["auroc_mean"].to_numpy()
    expected = (0.5 * (a[0] + a[1]) * 0.5 + 0.5 * (a[1] + a[2]) * 0.4) / 0.9
    assert late["area"] == pytest.approx(expected)
    cc = complete_case_table(inputs.degradation_predictions, inputs.patients, inputs.predictions)
    assert set(cc["scenario"]) == {"leave_one_out", "single_modality"}
    assert cc["full_auroc"].notna().all()


# ------------------------------------------------ cross-validation: metrics per repeat


def _oof_rows(preds: pd.DataFrame, repeat: int) -> pd.DataFrame:
    """``eval.oof_predictions``-shaped test rows for one repeat from test predictions."""
    test = preds.loc[preds["split"] == "test", ["strategy", "patient_id", "prob"]]
    return test.assign(repeat=repeat, fold=0, role="test")


def test_identical_repeats_equal_the_single_repeat_result(inputs, result) -> None:
    from fusion_assets.metrics.evaluate import reliability_table

    # R identical repeats: every per-repeat estimate is the held-out one, so is the mean.
    oof = pd.concat([_oof_rows(inputs.predictions, r) for r in range(3)], ignore_index=True)
    cv = subgroup_table(inputs.predictions, inputs.patients, CFG, repeats=oof)
    numeric = result.table.select_dtypes("number").columns
    other = result.table.columns.difference(numeric)
    pd.testing.assert_frame_equal(cv.table[other], result.table[other])
    np.testing.assert_allclose(
        cv.table[numeric].to_numpy(float),
        result.table[numeric].to_numpy(float),
        rtol=1e-12,
        atol=1e-12,
    )
    for key, boots in result.boot_auroc.items():
        for s, b in boots.items():
            np.testing.assert_allclose(cv.boot_auroc[key][s], b, rtol=1e-12, atol=1e-12)
    pd.testing.assert_frame_equal(
        reliability_table(inputs.predictions, inputs.patients, CFG, oof),
        reliability_table(inputs.predictions, inputs.patients, CFG),
    )


def _repeated_scores(
    rng: np.random.Generator, n: int, repeats: int, shift: dict[str, float], noise: dict[str, float]
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(patients, repeat-averaged predictions, per-repeat oof rows) of a binormal model.

    Strategy s scores patient i in repeat r as shift[s] * y_i + z_i + e_sir with
    z ~ N(0, 1) shared by all repeats and e ~ N(0, noise[s]^2) fresh per repeat (the
    fold models disagree), so one repeat's AUROC is Phi(shift / sqrt(2 (1 + noise^2)))
    while averaging probabilities over repeats shrinks e: a planted ensemble gain.
    """
    y = (rng.random(n) < 0.3).astype(int)
    y[:2] = [0, 1]
    z = rng.normal(size=n)
    ids = [f"p{i}" for i in range(n)]
    patients = pd.DataFrame({"patient_id": ids, "label": y})
    rows = []
    for s in shift:
        for r in range(repeats):
            score = shift[s] * y + z + rng.normal(0.0, noise[s], n)
            rows.append(
                pd.DataFrame({"strategy": s, "repeat": r, "patient_id": ids, "prob": score})
            )
    oof = pd.concat(rows, ignore_index=True)
    oof["prob"] = 1.0 / (1.0 + np.exp(-oof["prob"]))
    oof["role"] = "test"
    averaged = oof.groupby(["strategy", "patient_id"], as_index=False)["prob"].mean()
    return patients, averaged.assign(split="test"), oof


def test_planted_ensemble_gain_does_not_reach_the_cv_headline() -> None:
    from fusion_assets.metrics.crossval import repeat_aurocs

    rng = np.random.default_rng(5)
    patients, averaged, oof = _repeated_scores(
        rng, 400, 4, {"reference": 1.0, "early": 1.4}, {"reference": 1.5, "early": 1.5}
    )
    cfg = EvaluationConfig(n_boot=200, seed=0)
    per_repeat = repeat_aurocs(oof, patients).set_index("strategy")
    old = subgroup_table(averaged, patients, cfg).table.set_index("strategy")
    cv = subgroup_table(averaged, patients, cfg, repeats=oof).table.set_index("strategy")
    for s in ("reference", "early"):
        # The repeat-averaged probabilities score above every repeat (the planted gain) ...
        assert old.loc[s, "auroc"] > per_repeat.loc[s, "auroc_max"]
        # ... while the cv headline is the single-model estimate: the per-repeat mean.
        assert cv.loc[s, "auroc"] == pytest.approx(per_repeat.loc[s, "auroc_mean"], abs=1e-12)
        assert cv.loc[s, "auroc_ci_low"] < cv.loc[s, "auroc"] < cv.loc[s, "auroc_ci_high"]
    # Deltas are per repeat then averaged, which is the difference of the means.
    delta = per_repeat.loc["early", "auroc_mean"] - per_repeat.loc["reference", "auroc_mean"]
    assert cv.loc["early", "delta_auroc_vs_reference"] == pytest.approx(delta, abs=1e-12)


def test_cv_intervals_cover_the_single_model_auroc() -> None:
    from scipy.stats import norm

    shift = {"reference": 1.0, "early": 1.3}
    noise = {"reference": 1.0, "early": 0.5}
    truth = {s: norm.cdf(shift[s] / np.sqrt(2 * (1 + noise[s] ** 2))) for s in shift}
    true_delta = truth["early"] - truth["reference"]
    cfg = EvaluationConfig(n_boot=200, seed=0)
    rng = np.random.default_rng(11)
    n_sims = 150
    hits = {"reference": 0, "early": 0, "delta": 0}
    for _ in range(n_sims):
        patients, averaged, oof = _repeated_scores(rng, 200, 3, shift, noise)
        t = subgroup_table(averaged, patients, cfg, repeats=oof).table.set_index("strategy")
        for s in shift:
            hits[s] += t.loc[s, "auroc_ci_low"] <= truth[s] <= t.loc[s, "auroc_ci_high"]
        e = t.loc["early"]
        hits["delta"] += (
            e["delta_auroc_vs_reference_ci_low"]
            <= true_delta
            <= e["delta_auroc_vs_reference_ci_high"]
        )
    # Nominal 95 %; 150 simulations give a standard error of about 0.018.
    for name, k in hits.items():
        assert 0.88 <= k / n_sims <= 0.995, (name, k / n_sims)


def test_calibration_intervals_equal_a_loop_over_resamples_and_repeats() -> None:
    """The CI columns are the loop one would write: one fit per resample and repeat,
    the same resamples as the AUROC interval, each resample's fit averaged over repeats."""
    from sklearn.metrics import roc_auc_score

    from fusion_assets.metrics.bootstrap import stratified_bootstrap_counts
    from fusion_assets.metrics.classification import calibration_intercept_slope
    from fusion_assets.metrics.subgroups import (
        _seed_for,
        repeat_mean,
        repeat_probabilities,
        wide_probabilities,
    )

    rng = np.random.default_rng(3)
    patients, averaged, oof = _repeated_scores(
        rng, 120, 3, {"reference": 1.0, "early": 1.6}, {"reference": 0.8, "early": 1.2}
    )
    cfg = EvaluationConfig(n_boot=40, seed=0)
    table = subgroup_table(averaged, patients, cfg, repeats=oof).table
    table = table[table["subgroup_type"] == "all"].set_index("strategy")
    test, strategies = wide_probabilities(averaged, patients, "test")
    y = test["label"].to_numpy()
    counts = stratified_bootstrap_counts(y, cfg.n_boot, _seed_for(cfg, "all", "all"))
    resamples = [np.repeat(np.arange(y.size), c) for c in counts.T]
    repeats = repeat_probabilities(oof, test, strategies)
    for s in strategies:
        row = table.loc[s]
        aurocs = [[roc_auc_score(y[i], probs[s][i]) for i in resamples] for probs in repeats]
        # The same resamples as the AUROC interval ...
        lo, hi = percentile_ci(repeat_mean(np.array(aurocs)), cfg.ci_level)
        assert (row["auroc_ci_low"], row["auroc_ci_high"]) == pytest.approx((lo, hi), abs=1e-12)
        # ... give the calibration intervals, fit by fit.
        fits = np.array(
            [
                [calibration_intercept_slope(y[i], probs[s][i]) for i in resamples]
                for probs in repeats
            ]
        )  # (repeats, resamples, intercept | slope)
        for j, name in enumerate(("cal_intercept", "cal_slope")):
            lo, hi = percentile_ci(repeat_mean(fits[:, :, j]), cfg.ci_level)
            assert (row[f"{name}_ci_low"], row[f"{name}_ci_high"]) == pytest.approx(
                (lo, hi), abs=1e-8
            )
            assert row[f"{name}_ci_low"] < row[name] < row[f"{name}_ci_high"]


def test_complete_case_losses_compare_the_stress_tested_models(inputs) -> None:
    from fusion_assets.metrics.classification import auroc
    from fusion_assets.metrics.evaluate import stressed_repeat

    stress = inputs.degradation_predictions
    # Predictions from other models (here: shuffled): the full-data AUROC must not use them.
    other = inputs.predictions.copy()
    other["prob"] = np.random.default_rng(0).permutation(other["prob"].to_numpy())
    cc = complete_case_table(stress, inputs.patients, other)
    labels = inputs.patients.set_index("patient_id")["label"]
    complete = stress.loc[stress["scenario"] == "leave_one_out", "patient_id"].unique()
    full = stress[
        (stress["scenario"] == "global") & (stress["rate"] == 0) & (stress["mask_seed"] == 0)
    ]
    late = full[(full["strategy"] == "late") & full["patient_id"].isin(complete)]
    expected = auroc(labels[late["patient_id"]].to_numpy(), late["prob"].to_numpy())
    assert (cc.loc[cc["strategy"] == "late", "full_auroc"] == expected).all()
    # Without a rate-0 stress test: the given predictions, in cross-validation the first
    # repeat's out-of-fold rows (the repeat the stress tests ran on), not the repeat average.
    no_zero = stress[~((stress["scenario"] == "global") & (stress["rate"] == 0))]
    oof = pd.concat([_oof_rows(inputs.predictions, r) for r in (0, 1)], ignore_index=True)
    oof.loc[oof["repeat"] == 1, "prob"] = 1 - oof.loc[oof["repeat"] == 1, "prob"]
    first = complete_case_table(no_zero, inputs.patients, stressed_repeat(other, oof))
    np.testing.assert_allclose(first["full_auroc"], cc["full_auroc"], rtol=1e-12)


def test_a_cohort_of_complete_cases_tests_the_early_claim_on_all_patients(inputs) -> None:
    from fusion_assets.metrics.verdict import check_early_on_complete

    complete = "+".join(inputs.modalities)
    patients = inputs.patients.assign(pattern=complete)
    res = subgroup_table(inputs.predictions, patients, CFG)
    assert dict(res.omitted)["pattern"] == complete
    assert "pattern" not in set(res.table["subgroup_type"])
    claim = check_early_on_complete(res, CFG, modalities=list(inputs.modalities))
    assert claim.status != "not testable"
    assert f"complete-case pattern {complete} (n=1500)" in claim.evidence


def test_a_single_modality_model_on_patients_without_its_modality_is_not_an_auroc() -> None:
    rng = np.random.default_rng(0)
    n = 400
    y = rng.integers(0, 2, n)
    has_genes = np.arange(n) % 2 == 0
    ids = [f"p{i}" for i in range(n)]
    patients = pd.DataFrame(
        {"patient_id": ids, "label": y, "pattern": np.where(has_genes, "labs+genes", "labs")}
    )
    good = 1 / (1 + np.exp(-(2 * y - 1 + rng.normal(size=n))))
    # what a single-modality model gives a patient without its modality: one constant
    genes_only = np.where(has_genes, good, 0.3)
    predictions = pd.concat(
        [
            pd.DataFrame({"strategy": s, "patient_id": ids, "split": "test", "prob": p})
            for s, p in (("late", good), ("single:genes", genes_only), ("single:labs", good))
        ]
    )
    table = subgroup_table(predictions, patients, EvaluationConfig(n_boot=50, reference="late"))
    rows = table.table.set_index(["subgroup", "strategy"])
    absent = rows.loc[("labs", "single:genes")]
    assert absent["status"] == "modality absent" and np.isnan(absent["auroc"])
    assert np.isnan(absent["auroc_ci_low"]) and np.isnan(absent["delta_auroc_vs_reference"])
    assert rows.loc[("labs+genes", "single:genes"), "auroc"] > 0.6
    assert rows.loc[("labs", "single:labs"), "status"] == "ok"
