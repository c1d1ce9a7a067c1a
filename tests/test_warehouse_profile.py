"""Profile, checks, recommendation and splits on the hand-made ten-patient cohort."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pytest

from fusion_assets.decision_matrix import RecommendationThresholds, recommend_strategies
from fusion_assets.kinds import get_kind
from fusion_assets.metrics.plots import pattern_chart_png, png_markdown
from fusion_assets.warehouse import align
from fusion_assets.warehouse.align import align_all, align_modality
from fusion_assets.warehouse.checks import (
    check_availability_floor,
    check_label_prevalence,
    check_labels_and_index_times,
    check_no_future_rows,
    check_unique_patient_ids,
)
from fusion_assets.warehouse.ingest import ingest_batch
from fusion_assets.warehouse.profile import build_availability, summarize_profile
from fusion_assets.warehouse.recommend import write_recommendation
from fusion_assets.warehouse.splits import assign_splits
from tests.fixtures.cohort import IDS, SPARSE, patients_frame, write_batch


@pytest.fixture
def profiled(tmp_path: Path, handmade_warehouse, spec):
    con, _ = handmade_warehouse
    build_availability(con, spec)
    return con, spec, tmp_path


def test_availability_table(profiled):
    con, _, _ = profiled
    cols = [r[0] for r in con.execute("DESCRIBE profile.availability").fetchall()]
    assert cols == [
        "patient_id",
        "labs",
        "genes",
        SPARSE,
        "scan",
        "watch",
        "memo",
        "pattern",
        "n_modalities",
        "label",
    ]
    got = dict(con.execute("SELECT patient_id, pattern FROM profile.availability").fetchall())
    assert got == {
        "P01": "labs+genes+snp.calls+scan+watch+memo",
        "P02": "labs+genes+snp.calls+watch+memo",
        "P03": "labs",
        "P04": "none",  # only post-index rows
        "P05": "labs+genes",
        "P06": "labs+genes",
        "P07": "labs+scan",
        "P08": "labs",
        "P09": "labs",
        "P10": "none",
    }
    assert con.execute(
        "SELECT n_modalities FROM profile.availability WHERE patient_id = 'P02'"
    ).fetchall() == [(5,)]


def test_summary_matches_hand_computation(profiled):
    con, spec, _ = profiled
    s = summarize_profile(con, spec)
    assert (s["n_patients"], s["n_positive"], s["label_prevalence"], s["n_sites"]) == (
        10,
        4,
        0.4,
        2,
    )
    assert s["availability"] == {
        "labs": 0.8, "genes": 0.4, SPARSE: 0.2, "scan": 0.2, "watch": 0.2, "memo": 0.2
    }  # fmt: skip
    assert s["complete_case_fraction"] == 0.1
    patterns = {p["pattern"]: (p["n"], p["label_prevalence"]) for p in s["patterns"]}
    assert patterns == {
        "labs": (3, pytest.approx(1 / 3)),  # P03 (1), P08, P09
        "none": (2, 0.5),  # P04 (1), P10
        "labs+genes": (2, 0.0),
        "labs+scan": (1, 0.0),
        "labs+genes+snp.calls+watch+memo": (1, 1.0),
        "labs+genes+snp.calls+scan+watch+memo": (1, 1.0),
    }
    assert [p["pattern"] for p in s["patterns"]][:3] == ["labs", "labs+genes", "none"]
    # 3 lab features; 4 genes; 1,000 variants; 4x4x1 pixels; 4 bins x 2 channels;
    # words first/note/second/hello/world.
    assert s["dimensionality"] == {
        "labs": 3, "genes": 4, SPARSE: 1_000, "scan": 16, "watch": 8, "memo": 5
    }  # fmt: skip
    labs = s["cadence"][
        "labs"
    ]  # samples used per patient: 2,1,1,2,1,1,1,1; gaps 5 d (P01), 1 d (P05)
    assert labs["patients"] == 8 and labs["samples_per_patient_median"] == 1.0
    assert labs["samples_per_patient_q3"] == pytest.approx(1.25)
    assert labs["median_gap_days"] == pytest.approx(3.0) and labs["gap_cv"] == pytest.approx(2 / 3)
    watch = s["cadence"][
        "watch"
    ]  # P01 in-window samples at 3.9, 3.5, 0.5 days before: gaps 0.4, 3.0
    assert watch["median_gap_days"] == pytest.approx(1.7) and watch["patients"] == 2
    assert "genes" not in s["cadence"] and SPARSE not in s["cadence"]  # untimed


def test_pattern_chart(profiled):
    con, spec, _ = profiled
    png = pattern_chart_png(summarize_profile(con, spec))
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert png_markdown(png).startswith("![availability patterns](data:image/png;base64,iVBOR")


def test_checks_pass_on_clean_cohort(profiled):
    con, spec, _ = profiled
    assert check_unique_patient_ids(con)[0]
    assert check_labels_and_index_times(con)[0]
    assert check_availability_floor(con, spec, floor=0.1)[0]
    assert check_label_prevalence(con, min_patients=100)[0]
    assert check_no_future_rows(con, spec.modalities) == (
        True,
        {"future_rows": dict.fromkeys(spec.modality_names, 0)},
    )


def test_unique_ids_check_fails(profiled):
    con, _, _ = profiled
    con.execute(
        "INSERT INTO aligned.patients SELECT * FROM aligned.patients WHERE patient_id = 'P03'"
    )
    passed, meta = check_unique_patient_ids(con)
    assert not passed and meta["duplicated_rows"] == 2


def test_label_and_index_time_check_fails(profiled):
    con, _, _ = profiled
    con.execute("UPDATE aligned.patients SET label = NULL WHERE patient_id = 'P03'")
    con.execute("UPDATE aligned.patients SET index_time = NULL WHERE patient_id IN ('P04', 'P05')")
    passed, meta = check_labels_and_index_times(con)
    assert not passed and meta["missing_label"] == 1 and meta["missing_index_time"] == 2


def test_availability_floor_check_fails(profiled):
    con, spec, _ = profiled
    passed, meta = check_availability_floor(con, spec, floor=0.3)
    assert not passed and meta["below_floor"] == [SPARSE, "scan", "watch", "memo"]
    assert check_availability_floor(con, spec, floor={"labs": 0.9})[0] is False


def test_label_prevalence_check_fails(profiled):
    con, _, _ = profiled
    passed, meta = check_label_prevalence(con, min_patients=2)
    assert not passed and list(meta["degenerate_patterns"]) == ["labs+genes"]


def test_future_rows_check_fails(profiled, monkeypatch):
    con, spec, _ = profiled
    monkeypatch.setattr(align, "BEFORE_INDEX", "TRUE")
    align_modality(con, spec.modality("memo"))
    passed, meta = check_no_future_rows(con, spec.modalities)
    assert not passed and meta["future_rows"]["memo"] == 2  # P01's and P08's post-index notes


# ------------------------------------------------------------ recommendation
def summary(n=10_000, avail=None, complete=0.95, dims=None, kinds=None, cadence=None, sites=10):
    avail = avail or {"a": 0.97, "b": 0.96}
    kinds = kinds or dict.fromkeys(avail, "tabular")
    return {
        "n_patients": n,
        "availability": avail,
        "complete_case_fraction": complete,
        "dimensionality": dims or {m: 50 for m in avail},
        "modalities": kinds,
        "temporal": [m for m, kind in kinds.items() if get_kind(kind).temporal],
        "cadence": cadence or {},
        "n_sites": sites,
    }


CASES = {
    "late": summary(avail={"a": 1.0, "b": 0.3}, complete=0.3),
    "late_by_complete_case": summary(avail={"a": 0.75, "b": 0.72}, complete=0.45),
    "intermediate": summary(dims={"a": 20, "b": 20_000}),
    "attention": summary(
        avail={"a": 0.98, "w": 0.95},
        kinds={"a": "tabular", "w": "timeseries"},
        cadence={"w": {"gap_cv": 1.1, "median_gap_days": 0.3}},
    ),
    "early": summary(n=800, complete=0.95, sites=1),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_recommendation_branches(case):
    recs = recommend_strategies(CASES[case], RecommendationThresholds())
    assert [r["rank"] for r in recs] == [1, 2, 3, 4]
    assert sorted(r["strategy"] for r in recs) == ["attention", "early", "intermediate", "late"]
    assert recs[0]["strategy"] == case.split("_")[0]
    assert all(r["reasons"] for r in recs)
    assert [r["score"] for r in recs] == sorted((r["score"] for r in recs), reverse=True)


def test_recommendation_reasons_carry_numbers():
    recs = {r["strategy"]: r for r in recommend_strategies(CASES["late"])}
    assert any("30.0%" in reason and "b" in reason for reason in recs["late"]["reasons"])
    intermediate = {r["strategy"]: r for r in recommend_strategies(CASES["intermediate"])}[
        "intermediate"
    ]
    assert any("ratio of 1,000" in reason for reason in intermediate["reasons"])
    regular = summary(
        avail={"a": 0.98, "w": 0.95},
        kinds={"a": "tabular", "w": "timeseries"},
        cadence={"w": {"gap_cv": 0.1, "median_gap_days": 1.0}},
    )
    assert (
        recommend_strategies(regular)[0]["strategy"] == "late"
    )  # regular cadence: no attention bonus
    stricter = RecommendationThresholds(small_cohort=500)
    assert recommend_strategies(CASES["early"], stricter)[0]["strategy"] != "early"


def test_write_recommendation(profiled):
    con, spec, _ = profiled
    recs = recommend_strategies(summarize_profile(con, spec))
    write_recommendation(con, recs)
    got = con.execute(
        "SELECT rank, strategy, len(reasons) > 0 FROM profile.recommendation ORDER BY rank"
    ).fetchall()
    assert [g[1] for g in got] == [r["strategy"] for r in recs] and all(g[2] for g in got)


# ------------------------------------------------------------------ splits
def fake_availability(con, n, offset=0):
    """profile.availability rows for n patients in four strata (label x pattern).

    Not tests/fixtures/availability.py's random frame: the strata sizes here are exact
    multiples of 5, so the split counts asserted below are exact, and a second call
    appends patients the way a second batch does.
    """
    frame = pd.DataFrame(
        {
            "patient_id": [f"Q{offset + i:05d}" for i in range(n)],
            "pattern": ["a+b" if i % 3 else "a" for i in range(n)],
            "label": [int(i % 4 == 0) for i in range(n)],
        }
    )
    con.register("_f", frame)
    con.execute("CREATE SCHEMA IF NOT EXISTS profile")
    if offset == 0:
        con.execute("CREATE OR REPLACE TABLE profile.availability AS SELECT * FROM _f")
    else:
        con.execute("INSERT INTO profile.availability SELECT * FROM _f")
    con.unregister("_f")


def split_fractions(con):
    return con.execute(
        """
        SELECT a.label, a.pattern, count(*) AS n,
               avg(CAST(s.split = 'train' AS DOUBLE)), avg(CAST(s.split = 'validation' AS DOUBLE))
        FROM profile.splits s JOIN profile.availability a USING (patient_id)
        GROUP BY ALL ORDER BY ALL
        """
    ).fetchall()


def test_splits_are_stratified_seeded_and_stable_when_cohort_grows(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    fake_availability(con, 1200)
    first = assign_splits(con, seed=7)
    assert first["per_split"] == {"train": 720, "validation": 240, "test": 240}
    for _, _, n, train, val in split_fractions(con):
        assert abs(train * n - 0.6 * n) <= 1 and abs(val * n - 0.2 * n) <= 1
    before = dict(con.execute("SELECT patient_id, split FROM profile.splits").fetchall())

    fake_availability(con, 600, offset=1200)
    second = assign_splits(con, seed=7)
    assert (second["kept"], second["added"]) == (1200, 600)
    after = dict(con.execute("SELECT patient_id, split FROM profile.splits").fetchall())
    assert all(after[p] == s for p, s in before.items())
    for _, _, n, train, val in split_fractions(con):
        assert abs(train * n - 0.6 * n) <= 1 and abs(val * n - 0.2 * n) <= 1

    # Same seed -> same assignment; another seed -> a different one.
    other = duckdb.connect(str(tmp_path / "w2.duckdb"))
    fake_availability(other, 1200)
    assign_splits(other, seed=7)
    assert dict(other.execute("SELECT patient_id, split FROM profile.splits").fetchall()) == before
    fake_availability(other, 1200)
    other.execute("DROP TABLE profile.splits")
    assign_splits(other, seed=8)
    assert dict(other.execute("SELECT patient_id, split FROM profile.splits").fetchall()) != before


def test_splits_small_strata_and_second_batch(profiled):
    con, spec, tmp_path = profiled
    assign_splits(con, seed=0)
    old = dict(con.execute("SELECT patient_id, split FROM profile.splits").fetchall())
    assert set(old) == set(IDS)
    # Singleton strata (e.g. label 1 x 'none', label 0 x 'none') go to train; the
    # two-patient stratum label 0 x 'labs+genes' (P05, P06) gets train + validation.
    assert old["P07"] == old["P01"] == old["P04"] == old["P10"] == "train"
    assert sorted(old[p] for p in ("P05", "P06")) == ["train", "validation"]

    new_ids = [f"N{i:02d}" for i in range(30)]
    frames = {"patients": patients_frame(new_ids, [i % 2 for i in range(30)])}
    ingest_batch(con, write_batch(tmp_path / "landing", "b2", frames), spec)
    align_all(con, spec.modalities)
    build_availability(con, spec)
    result = assign_splits(con, seed=0)
    now = dict(con.execute("SELECT patient_id, split FROM profile.splits").fetchall())
    assert all(now[p] == s for p, s in old.items())
    assert result["added"] == 30
    # The new patients form the (label x 'none') strata with P04 / P10: near 60/20/20 each.
    strata = con.execute(
        "SELECT a.label, count(*), sum(CAST(s.split = 'train' AS INTEGER)) FROM profile.splits s "
        "JOIN profile.availability a USING (patient_id) WHERE a.pattern = 'none' GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    for _, n, train in strata:
        assert abs(train - 0.6 * n) <= 1


def test_splits_reject_bad_fractions(profiled):
    con, _, _ = profiled
    with pytest.raises(ValueError, match="fractions"):
        assign_splits(con, fractions=(0.5, 0.5, 0.5))


def test_the_matrix_judges_the_deployment_availability_when_a_profile_is_given():
    from fusion_assets.cohorts.deployment_profile import DeploymentProfile, at_deployment

    trained = summary(dims={"a": 20, "b": 20_000})  # both modalities for nearly everyone
    assert recommend_strategies(trained)[0]["strategy"] == "intermediate"
    deployed = at_deployment(trained, DeploymentProfile(rates={"a": 1.0, "b": 0.1}), ["a", "b"])
    assert deployed["availability"] == {"a": 1.0, "b": pytest.approx(0.1)}
    assert deployed["complete_case_fraction"] == pytest.approx(0.1)
    assert deployed["dimensionality"] == trained["dimensionality"]
    assert recommend_strategies(deployed)[0]["strategy"] == "late"
