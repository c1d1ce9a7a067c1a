"""Align: as-of-index-time features per kind, leakage exclusion, latest batch wins."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd

from fusion_assets.warehouse import align
from fusion_assets.warehouse.align import (
    align_all,
    align_modality,
    align_patients,
    count_future_rows,
)
from fusion_assets.warehouse.ingest import ingest_batch
from fusion_assets.warehouse.sql import qident
from tests.fixtures.cohort import (
    SPARSE,
    T0,
    d,
    handmade_batch,
    patients_frame,
    suite_spec,
    write_batch,
)


def rows(con, sql):
    return con.execute(sql).fetchall()


def test_patients_one_row_each(handmade_warehouse):
    con, _ = handmade_warehouse
    assert rows(
        con, "SELECT count(*), count(DISTINCT patient_id), sum(label) FROM aligned.patients"
    ) == [(10, 10, 4)]
    cols = [r[0] for r in rows(con, "DESCRIBE aligned.patients")]
    assert cols == ["patient_id", "index_time", "label", "sex", "age", "site", "batch_id"]


def test_tabular_last_non_null_before_index(handmade_warehouse):
    con, results = handmade_warehouse
    got = rows(con, "SELECT * FROM aligned.labs ORDER BY patient_id")
    assert got == [
        ("P01", 5.0, 1.0, 5.0, "no"),  # lab_a from d(10): the d(5) row has it null
        ("P02", 3.0, 2.0, 20.0, "yes"),
        ("P03", 1.0, 3.0, 30.0, "no"),
        ("P05", 1.0, 4.0, 41.0, "yes"),  # lab_a from d(2), lab_b and smoker from d(1)
        ("P06", 7.0, 6.0, 60.0, "no"),
        ("P07", 4.0, 7.0, 70.0, "no"),
        ("P08", 6.0, 8.0, 80.0, "yes"),
        ("P09", 2.0, 9.0, 90.0, "no"),
    ]
    assert results["labs"].rows_after_index_time == 2 and results["labs"].rows_used == 10


def test_dense_omics_image_text(handmade_warehouse):
    con, _ = handmade_warehouse
    genes = rows(con, 'SELECT patient_id, "values" FROM aligned.genes ORDER BY 1')
    assert [g[0] for g in genes] == ["P01", "P02", "P05", "P06"] and genes[1][1] == [1, 2, 3, 4]
    assert rows(con, 'SELECT typeof("values") FROM aligned.genes LIMIT 1') == [("FLOAT[]",)]
    # Most recent image before the index time; P04's only image is after it.
    assert rows(con, "SELECT * FROM aligned.scan ORDER BY 1") == [
        ("P01", 3.0, [2.0] * 16),
        ("P07", 1.0, [3.0] * 16),
    ]
    assert rows(con, "SELECT * FROM aligned.memo ORDER BY 1") == [
        ("P01", 2, "first note\nsecond note"),
        ("P02", 1, "hello world"),
    ]


def test_timeseries_bins_and_mask(handmade_warehouse):
    con, _ = handmade_warehouse
    got = rows(con, 'SELECT patient_id, n_samples, "values", mask FROM aligned.watch ORDER BY 1')
    # 4 one-day bins x (hr, steps), time-major.  P01: bin0 hr mean(60,70)=65, steps 100;
    # bin3 steps 10 only.  P02: bin2 hr 90, steps 5.  P03 only has samples outside the window.
    assert got == [
        ("P01", 3, [65, 100, 0, 0, 0, 0, 0, 10], [1, 1, 0, 0, 0, 0, 0, 1]),
        ("P02", 1, [0, 0, 0, 0, 90, 5, 0, 0], [0, 0, 0, 0, 1, 1, 0, 0]),
    ]


def test_timeseries_bin_edges(tmp_path, warehouse_con):
    """Samples exactly on a bin edge go to the later bin; the window start is inclusive."""
    spec = suite_spec()
    frames = {
        "patients": patients_frame(["A"], [1]),
        "watch": pd.DataFrame(
            {
                "patient_id": ["A"] * 4,
                "event_time": [d(4), d(3), T0 - timedelta(microseconds=1), d(4.0001)],
                "hr": [1.0, 2.0, 4.0, 100.0],
                "steps": [None, None, None, None],
            }
        ),
    }
    con = warehouse_con
    ingest_batch(con, write_batch(tmp_path / "landing", "b1", frames), spec)
    align_patients(con)
    align_modality(con, spec.modality("watch"))
    assert rows(con, 'SELECT n_samples, "values", mask FROM aligned.watch') == [
        (3, [1, 0, 2, 0, 0, 0, 4, 0], [1, 0, 1, 0, 0, 0, 1, 0])
    ]


def test_leakage_bait_never_reaches_aligned(handmade_warehouse):
    con, _ = handmade_warehouse
    spec = suite_spec()
    for m in spec.modality_names:
        dump = rows(con, f"SELECT CAST(a AS VARCHAR) FROM aligned.{qident(m)} a")
        text = " ".join(r[0] for r in dump)
        assert "999" not in text and "LEAK" not in text and "label is positive" not in text, m
        assert count_future_rows(con, spec.modality(m)) == 0
    scan = rows(con, "SELECT list(p) FROM (SELECT unnest(pixels) AS p FROM aligned.scan)")[0][0]
    assert 9.0 not in scan  # the post-index images
    assert rows(con, "SELECT count(*) FROM aligned.scan WHERE patient_id = 'P04'") == [(0,)]
    assert rows(con, "SELECT count(*) FROM aligned.memo WHERE patient_id = 'P08'") == [(0,)]


def test_count_future_rows_fails_when_the_filter_is_broken(handmade_warehouse, monkeypatch):
    con, _ = handmade_warehouse
    spec = suite_spec()
    monkeypatch.setattr(align, "BEFORE_INDEX", "TRUE")
    for name in ["labs", "scan", "watch", "memo"]:
        align_modality(con, spec.modality(name))
        assert count_future_rows(con, spec.modality(name)) > 0, name


def test_count_future_rows_flags_unexplained_rows(handmade_warehouse):
    con, _ = handmade_warehouse
    con.execute("INSERT INTO aligned.memo VALUES ('P05', 1, 'forged')")
    assert count_future_rows(con, suite_spec().modality("memo")) == 1


def test_sparse_omics(tmp_path, warehouse_con):
    spec = suite_spec()
    frames = {
        "patients": patients_frame(["A", "B", "C"], [0, 1, 0]),
        "labs": pd.DataFrame({"patient_id": ["A"], "event_time": [d(1)], "x": [1.0]}),
        SPARSE: pd.DataFrame(
            {
                "patient_id": ["A", "A", "A", "B"],
                "variant_id": pd.array([42, 7, 99, 3], dtype="int32"),
                "dosage": pd.array([1.0, 2.0, 1.0, 0.5], dtype="float32"),
            }
        ),
    }
    con = warehouse_con
    ingest_batch(con, write_batch(tmp_path / "landing", "b1", frames), spec)
    align_all(con, spec.modalities)
    assert rows(
        con, 'SELECT patient_id, indices, "values" FROM aligned."snp.calls" ORDER BY 1'
    ) == [
        ("A", [7, 42, 99], [2.0, 1.0, 1.0]),
        ("B", [3], [0.5]),
    ]
    assert [r[1] for r in rows(con, 'DESCRIBE aligned."snp.calls"')] == [
        "VARCHAR",
        "INTEGER[]",
        "FLOAT[]",
    ]


def test_latest_batch_wins(tmp_path, warehouse_con):
    spec = suite_spec()
    landing = tmp_path / "landing"
    con = warehouse_con
    ingest_batch(con, write_batch(landing, "b1", handmade_batch()), spec)
    later = T0 + timedelta(days=10)
    frames = {
        "patients": patients_frame(["P01", "P11"], [0, 1], index_time=later),
        "labs": pd.DataFrame(
            {
                "patient_id": ["P01"],
                "event_time": [later - timedelta(days=1)],
                "lab_a": [-1.0],
                "lab_b": [None],
                "smoker": [None],
            }
        ),
    }
    ingest_batch(con, write_batch(landing, "b2", frames), spec)
    align_all(con, spec.modalities)
    assert rows(
        con, "SELECT label, index_time, batch_id FROM aligned.patients WHERE patient_id = 'P01'"
    ) == [(0, later, "b2")]
    assert rows(con, "SELECT count(*) FROM aligned.patients") == [(11,)]
    # Labs for P01 come from b2 only (b1's lab_b is not carried over).
    assert rows(
        con, "SELECT days_since_last, lab_a, lab_b FROM aligned.labs WHERE patient_id = 'P01'"
    ) == [(1.0, -1.0, None)]
    # P01's scan rows (b1 only) are still used, now against the new index time:
    # the image at T0+5d is now before it.
    assert rows(
        con, "SELECT days_since_last, pixels FROM aligned.scan WHERE patient_id = 'P01'"
    ) == [(5.0, [9.0] * 16)]


def test_modality_absent_from_every_batch_gives_empty_table(tmp_path, warehouse_con):
    spec = suite_spec()
    frames = {k: v for k, v in handmade_batch().items() if k in ("patients", "labs")}
    con = warehouse_con
    ingest_batch(con, write_batch(tmp_path / "landing", "b1", frames), spec)
    results = align_all(con, spec.modalities)
    assert results["watch"].patients == 0
    assert [r[0] for r in rows(con, "DESCRIBE aligned.watch")] == [
        "patient_id",
        "n_samples",
        "values",
        "mask",
    ]
