"""The synthetic cohort: the oracle is exact (calibrated, closed form, unbeatable)
and the landing batch follows docs/data-contracts.md section 1."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy.stats import norm

from fusion_assets.cohorts import synthetic_params as P
from fusion_assets.cohorts.spec import SYNTH_WEARABLE_CHANNELS
from fusion_assets.cohorts.synthetic import (
    DEFAULT_AVAILABILITY,
    MISSINGNESS,
    SynthConfig,
    SyntheticCohort,
    difficulty_report,
    generate_cohort,
    synthesize_batch,
    write_batch,
)
from fusion_assets.metrics.classification import auroc

MODS = P.MODALITIES


@cache
def big(
    regime: str = "correlated", missingness: str = "mar", fmt: str = "dense"
) -> SyntheticCohort:
    return generate_cohort(
        SynthConfig(
            n_patients=30_000, regime=regime, missingness=missingness, seed=123, genomics_format=fmt
        )
    )


def only(cohort: SyntheticCohort, *names: str) -> np.ndarray:
    mask = np.zeros((len(cohort.labels), len(MODS)), dtype=bool)
    for name in names:
        mask[:, MODS.index(name)] = True
    return mask


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


# ----------------------------------------------------------------------------- oracle


@pytest.mark.parametrize(
    ("regime", "missingness", "fmt"),
    [("correlated", "mar", "dense"), ("synergy", "mnar", "sparse")],
)
def test_oracle_calibrated(regime: str, missingness: str, fmt: str) -> None:
    cohort = big(regime, missingness, fmt)
    y, p = cohort.labels, cohort.oracle["oracle_prob"].to_numpy()
    edges = np.quantile(p, np.linspace(0, 1, 11))
    bins = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, 9)
    for b in range(10):
        sel = bins == b
        mean_p, rate = p[sel].mean(), y[sel].mean()
        se = np.sqrt(mean_p * (1 - mean_p) / sel.sum())
        assert abs(rate - mean_p) < 4 * se + 0.005, (b, mean_p, rate)


def test_oracle_column_is_oracle_given_actual_presence() -> None:
    cohort = big()
    np.testing.assert_allclose(
        cohort.oracle_prob_given(cohort.present_matrix()), cohort.oracle["oracle_prob"].to_numpy()
    )


@pytest.mark.parametrize("modality", ["imaging", "genomics"])
def test_single_gaussian_block_auroc_matches_closed_form(modality: str) -> None:
    # Equal class covariances: LLR is linear, AUROC = Phi(Delta / sqrt 2) with Delta the
    # Mahalanobis distance between class means of ghat (latent + estimation noise).
    cohort = big("independent", "complete")
    params = P.model_params("independent", 0.3)
    block = P.BLOCKS[modality]
    cov = params.sigma[0][block, block] + params.noise_cov[modality]
    delta = params.mu[1, block] - params.mu[0, block]
    expected = norm.cdf(np.sqrt(delta @ np.linalg.solve(cov, delta) / 2))
    got = auroc(cohort.labels, cohort.oracle_prob_given(only(cohort, modality)))
    assert abs(got - expected) < 0.012, (got, expected)


def test_logistic_regression_does_not_beat_oracle() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import PolynomialFeatures, StandardScaler

    cohort = big("correlated", "complete")
    s = cohort.state
    feats = np.column_stack([s.ghat, s.categorical_llr, s.notes_llr])
    feats = PolynomialFeatures(2, include_bias=False).fit_transform(feats)  # room to overfit
    feats = StandardScaler().fit_transform(feats)
    y = cohort.labels
    train, test = slice(0, 18_000), slice(18_000, None)
    model = LogisticRegression(C=1.0, max_iter=500).fit(feats[train], y[train])
    p_model = model.predict_proba(feats[test])[:, 1]
    p_oracle = cohort.oracle["oracle_prob"].to_numpy()[test]
    auc_model, auc_oracle = auroc(y[test], p_model), auroc(y[test], p_oracle)
    assert auc_model <= auc_oracle + 0.004, (auc_model, auc_oracle)
    assert log_loss(y[test], p_model) >= log_loss(y[test], p_oracle) - 0.003
    assert auc_model > auc_oracle - 0.02  # and the signal is learnable from the data


def test_difficulty_targets_default() -> None:
    report = difficulty_report(big())
    assert 0.78 <= report["oracle_auroc_actual"] <= 0.88
    assert report["max_single_lift_fraction"] <= 0.85
    assert report["oracle_auroc_all"] > report["oracle_auroc_late_fusion_all"] + 0.01
    assert report["oracle_auroc_actual"] > report["oracle_auroc_late_fusion_actual"] + 0.01


def test_regimes_order_joint_gain() -> None:
    ind = difficulty_report(big("independent", "complete"))
    assert abs(ind["oracle_auroc_all"] - ind["oracle_auroc_late_fusion_all"]) < 1e-9
    # Conditionally independent modalities: the oracle IS the sum of per-modality
    # LLRs, for any presence pattern, including MNAR's pattern term.
    mnar = difficulty_report(
        generate_cohort(SynthConfig(n_patients=5000, regime="independent", missingness="mnar"))
    )
    assert abs(mnar["oracle_auroc_actual"] - mnar["oracle_auroc_late_fusion_actual"]) < 1e-9
    syn = difficulty_report(generate_cohort(SynthConfig(n_patients=20_000, regime="synergy")))
    assert syn["oracle_auroc_all"] > syn["oracle_auroc_late_fusion_all"] + 0.02


def test_oracle_ignores_bait() -> None:
    with_bait = generate_cohort(SynthConfig(n_patients=2000, bait_rate=0.3))
    without = generate_cohort(SynthConfig(n_patients=2000, bait_rate=0.0))
    pd.testing.assert_frame_equal(with_bait.oracle, without.oracle)


# -------------------------------------------------------------------------- generator

COMBOS = [(r, m) for r in P.REGIMES for m in MISSINGNESS]


@cache
def small(regime: str, missingness: str, seed: int = 0, fmt: str = "dense") -> SyntheticCohort:
    return generate_cohort(
        SynthConfig(
            n_patients=1500, regime=regime, missingness=missingness, seed=seed, genomics_format=fmt
        )
    )


def expected_schema(name: str, fmt: str = "dense") -> dict[str, pa.DataType]:
    key, ts = {"patient_id": pa.string()}, pa.timestamp("us")
    floats = pa.list_(pa.float32())
    if name == "patients":
        return key | {
            "index_time": ts,
            "label": pa.int64(),
            "sex": pa.string(),
            "age": pa.int64(),
            "site": pa.string(),
        }
    if name == "oracle":
        return key | {"oracle_prob": pa.float64()}
    if name == "ehr":
        labs = {f"lab_{j:02d}": pa.float64() for j in range(P.N_LABS)}
        return key | {"event_time": ts} | labs | {"smoking": pa.string(), "diabetes": pa.string()}
    if name == "genomics":
        if fmt == "sparse":
            return key | {"variant_id": pa.int32(), "dosage": pa.float32()}
        return key | {"expression": floats}
    if name == "imaging":
        return key | {"event_time": ts, "pixels": floats}
    if name == "wearables":
        return key | {"event_time": ts} | {c: pa.float64() for c in SYNTH_WEARABLE_CHANNELS}
    return key | {"event_time": ts, "text": pa.string()}


@pytest.mark.parametrize(("regime", "missingness"), COMBOS)
def test_batch_contract(tmp_path: Path, regime: str, missingness: str) -> None:
    cohort = small(regime, missingness)
    folder = write_batch(cohort, tmp_path, "b1")
    files = ["patients", "oracle", *MODS]
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [f"{f}.parquet" for f in files] + ["_READY"]
    )
    ready = (folder / "_READY").stat().st_mtime_ns
    for name in files:
        path = folder / f"{name}.parquet"
        assert path.stat().st_mtime_ns <= ready
        schema = pq.read_schema(path)
        assert {f.name: f.type for f in schema} == expected_schema(name), name
    imaging = pq.read_table(folder / "imaging.parquet").column("pixels")
    genomics = pq.read_table(folder / "genomics.parquet").column("expression")
    assert set(pa.compute.list_value_length(imaging).to_numpy()) == {1024}
    assert set(pa.compute.list_value_length(genomics).to_numpy()) == {2000}


@pytest.mark.parametrize(("regime", "missingness"), COMBOS)
def test_presence_rates_and_rows(regime: str, missingness: str) -> None:
    cohort = small(regime, missingness)
    present = cohort.present_matrix()
    n = len(cohort.labels)
    for j, m in enumerate(MODS):
        target = 1.0 if missingness == "complete" else DEFAULT_AVAILABILITY[m]
        tol = 4 * np.sqrt(target * (1 - target) / n) + 1e-9
        assert abs(present[:, j].mean() - target) <= tol, (m, present[:, j].mean())
        ids_with_rows = set(cohort.modalities[m]["patient_id"])
        assert ids_with_rows == set(cohort.patients["patient_id"][present[:, j]]), m
    assert np.isin(cohort.patients["site"], P.SITES).all()
    assert set(cohort.patients["sex"]) <= {"F", "M"}


@pytest.mark.parametrize(("regime", "missingness"), COMBOS)
def test_bait_after_index_and_last_pre_index_encounter_complete(
    regime: str, missingness: str
) -> None:
    cohort = small(regime, missingness)
    index = cohort.patients.set_index("patient_id")["index_time"]
    for m in ("ehr", "imaging", "wearables", "notes"):
        df = cohort.modalities[m]
        after = df["event_time"].to_numpy() > index.loc[df["patient_id"]].to_numpy()
        assert after.any(), m  # bait exists
        assert (df["event_time"].to_numpy() != index.loc[df["patient_id"]].to_numpy()).all()
    ehr = cohort.modalities["ehr"]
    pre = ehr[ehr["event_time"].to_numpy() < index.loc[ehr["patient_id"]].to_numpy()]
    last = pre.sort_values(["patient_id", "event_time"]).groupby("patient_id").tail(1)
    assert len(last) == ehr["patient_id"].nunique()
    assert last.notna().all().all()  # the signal-carrying encounter is complete
    notes = cohort.modalities["notes"]
    n_words = notes["text"].str.split().str.len()
    assert n_words.between(6, 60).all()


def test_seeds_reproduce_and_differ() -> None:
    a, b = small("correlated", "mar", seed=0), generate_cohort(SynthConfig(n_patients=1500, seed=0))
    c = small("correlated", "mar", seed=1)
    for m in MODS:
        pd.testing.assert_frame_equal(a.modalities[m], b.modalities[m])
    pd.testing.assert_frame_equal(a.oracle, b.oracle)
    assert not np.array_equal(a.oracle["oracle_prob"], c.oracle["oracle_prob"])
    assert not set(a.patients["patient_id"]) & set(c.patients["patient_id"])


def test_batch_ids_disjoint(tmp_path: Path) -> None:
    folders = [
        synthesize_batch(tmp_path, n_patients=200, seed=0),
        synthesize_batch(tmp_path, n_patients=200, seed=1),
        synthesize_batch(tmp_path, n_patients=200, seed=0, batch_id="other"),
    ]
    assert [f.name for f in folders] == [
        "synth-correlated-mar-s0-n200",
        "synth-correlated-mar-s1-n200",
        "other",
    ]
    ids = [set(pd.read_parquet(f / "patients.parquet")["patient_id"]) for f in folders]
    assert all(len(s) == 200 for s in ids)
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])


def test_sparse_genomics(tmp_path: Path) -> None:
    cohort = small("correlated", "mcar", fmt="sparse")
    folder = write_batch(cohort, tmp_path, "sparse")
    schema = pq.read_schema(folder / "genomics.parquet")
    assert {f.name: f.type for f in schema} == expected_schema("genomics", "sparse")
    g = cohort.modalities["genomics"]
    assert g["variant_id"].between(0, 999_999).all()
    per_patient = g.groupby("patient_id").size()
    assert per_patient.between(500, 2000).all()
    assert not g.duplicated(["patient_id", "variant_id"]).any()


def test_bad_config_rejected() -> None:
    with pytest.raises(ValueError, match="regime"):
        generate_cohort(SynthConfig(regime="nope"))
    with pytest.raises(ValueError, match="missingness"):
        generate_cohort(SynthConfig(missingness="nope"))


@pytest.mark.parametrize("fmt", ["dense", "sparse"])
def test_tiny_cohort_with_absent_modalities(tmp_path: Path, fmt: str) -> None:
    availability = DEFAULT_AVAILABILITY | {"genomics": 0.0, "imaging": 0.0}
    cohort = generate_cohort(
        SynthConfig(
            n_patients=3, availability=availability, genomics_format=fmt, missingness="mcar"
        )
    )
    folder = write_batch(cohort, tmp_path, "tiny")
    for name in ("genomics", "imaging"):
        assert len(cohort.modalities[name]) == 0
        schema = pq.read_schema(folder / f"{name}.parquet")
        assert {f.name: f.type for f in schema} == expected_schema(name, fmt)
    assert np.isfinite(cohort.oracle["oracle_prob"]).all()


# ----------------------------------------------------------------------------- study knobs


def _wearable_summaries(cohort: SyntheticCohort) -> pd.DataFrame:
    """Per patient with wearables: each channel's mean and least-squares slope over time."""
    w = cohort.modalities["wearables"]
    index = cohort.patients.set_index("patient_id")["index_time"]
    w = w[w["event_time"] <= w["patient_id"].map(index)]  # the bait comes after index time
    t = (w["event_time"] - w["patient_id"].map(index)).dt.total_seconds() / 86_400.0
    rows = {}
    for channel in SYNTH_WEARABLE_CHANNELS:
        v = w[channel]
        g = pd.DataFrame({"p": w["patient_id"], "t": t, "v": v}).groupby("p")
        mean = g["v"].mean()
        tc = t - w["patient_id"].map(g["t"].mean())
        vc = v - w["patient_id"].map(mean)
        slope = (tc * vc).groupby(w["patient_id"]).sum() / (tc**2).groupby(w["patient_id"]).sum()
        rows[f"{channel}_mean"], rows[f"{channel}_slope"] = mean, slope
    return pd.DataFrame(rows).join(cohort.patients.set_index("patient_id")["label"])


def test_temporal_setting_moves_the_wearables_signal_between_level_and_trend() -> None:
    def signal(temporal: str, stat: str) -> float:
        cohort = generate_cohort(
            SynthConfig(n_patients=4_000, missingness="complete", temporal=temporal, seed=5)
        )
        frame = _wearable_summaries(cohort)
        cols = [c for c in frame if c.endswith(stat)]
        return max(
            max(auroc(frame["label"], frame[c]), 1 - auroc(frame["label"], frame[c])) for c in cols
        )

    assert signal("none", "_mean") > 0.6 and signal("none", "_slope") < 0.56
    assert signal("strong", "_slope") > 0.58 and signal("strong", "_mean") < 0.56
    with pytest.raises(ValueError, match="temporal"):
        SynthConfig(temporal="sometimes").validate()


def test_genomics_panel_size_changes_only_the_noise_genes() -> None:
    small = generate_cohort(SynthConfig(n_patients=3_000, genomics_features=100, seed=2))
    large = generate_cohort(SynthConfig(n_patients=3_000, genomics_features=10_000, seed=2))
    for cohort, width in ((small, 100), (large, 10_000)):
        lengths = cohort.modalities["genomics"]["expression"].map(len)
        assert (lengths == width).all()
    # the same signal genes and loadings: the genomics-alone oracle is the same law
    a = difficulty_report(small)["oracle_auroc_single"]["genomics"]
    b = difficulty_report(large)["oracle_auroc_single"]["genomics"]
    assert abs(a - b) < 0.03
    # and the default panel is the generator's own layout (the default cohort is unchanged)
    params = P.model_params("correlated", 0.3)
    ids, offsets = P.genomics_layout(params, 2_000)
    assert ids is params.gene_ids and offsets is params.gene_offset
    with pytest.raises(ValueError, match="genomics_features"):
        SynthConfig(genomics_features=10).validate()


def test_sites_setting_recruits_from_the_first_sites_only() -> None:
    cohort = generate_cohort(SynthConfig(n_patients=2_000, sites=2, seed=1))
    assert set(cohort.patients["site"]) == set(P.SITES[:2])
    with pytest.raises(ValueError, match="sites"):
        SynthConfig(sites=0).validate()
