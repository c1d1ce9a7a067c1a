"""Ingest: validation, quarantine, idempotence and atomicity on a real DuckDB file."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pyarrow as pa
import pytest

from fusion_assets.landing_zone import list_ready_batches
from fusion_assets.warehouse import ingest
from fusion_assets.warehouse.ingest import ingest_batch
from fusion_assets.warehouse.quarantine import BatchValidationError
from tests.fixtures.cohort import SPARSE, handmade_batch, suite_spec, write_batch
from tests.fixtures.warehouse import raw_snapshot


def test_ingest_loads_every_table_and_is_idempotent(tmp_path, warehouse_con):
    landing = tmp_path / "landing"
    batch = write_batch(landing, "b1", handmade_batch())
    first = ingest_batch(warehouse_con, batch, suite_spec())
    assert first.rows == {
        "patients": 10, "labs": 12, "genes": 4, SPARSE: 3, "scan": 5, "watch": 7, "memo": 5
    }  # fmt: skip
    before = raw_snapshot(warehouse_con)
    second = ingest_batch(warehouse_con, batch, suite_spec())
    assert second.rows == first.rows
    assert raw_snapshot(warehouse_con) == before
    assert warehouse_con.execute("SELECT count(*), max(seq) FROM raw.batches").fetchall() == [
        (1, 1)
    ]
    assert warehouse_con.execute("SELECT DISTINCT batch_id FROM raw.labs").fetchall() == [("b1",)]
    types = dict(
        warehouse_con.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'scan'"
        ).fetchall()
    )
    assert types["pixels"] == "FLOAT[]" and types["event_time"] == "TIMESTAMP"


def test_ready_batches_need_the_marker_and_skip_quarantine(tmp_path):
    landing = tmp_path / "landing"
    write_batch(landing, "b2", handmade_batch())
    write_batch(landing, "b1", handmade_batch())
    write_batch(landing, "b3", handmade_batch(), ready=False)
    write_batch(landing / "_quarantine", "bad", handmade_batch())
    assert list_ready_batches(landing) == ["b1", "b2"]
    assert list_ready_batches(tmp_path / "missing") == []


def test_orphan_modality_rows_are_counted_and_skipped(tmp_path, warehouse_con):
    frames = handmade_batch()
    memo = frames["memo"]
    frames["memo"] = pd.concat([memo, memo.head(2).assign(patient_id="P99")], ignore_index=True)
    result = ingest_batch(
        warehouse_con, write_batch(tmp_path / "landing", "b1", frames), suite_spec()
    )
    assert result.orphan_rows == {"memo": 2}
    assert result.rows["memo"] == 5
    assert warehouse_con.execute(
        "SELECT count(*) FROM raw.memo WHERE patient_id = 'P99'"
    ).fetchall() == [(0,)]


def _drop_label(f):
    f["patients"] = f["patients"].drop(columns=["label"])


def _text_index_time(f):
    f["patients"]["index_time"] = f["patients"]["index_time"].astype(str)


def _duplicate_patient(f):
    p = f["patients"]
    f["patients"] = pd.concat([p, p.iloc[[0, 1]]], ignore_index=True)


def _label_two(f):
    f["patients"].loc[[2, 5, 7], "label"] = 2


def _infinite_lab(f):
    f["labs"].loc[[0, 3], "lab_a"] = float("inf")
    f["labs"].loc[4, "lab_b"] = float("-inf")


def _wrong_image_size(f):
    scan = f["scan"].to_pandas()
    scan.loc[1, "pixels"] = [1.0, 2.0, 3.0]
    f["scan"] = pa.Table.from_pandas(scan, preserve_index=False)


# (mutation, file corruption, expected error: file, column, check substring, failing rows)
BAD_BATCHES = {
    "missing_column": (_drop_label, None, ("patients.parquet", "label", "column_in_dataframe", 10)),
    "wrong_type": (
        _text_index_time,
        None,
        ("patients.parquet", "index_time", "dtype_is_datetime", 10),
    ),
    "duplicate_patient": (
        _duplicate_patient,
        None,
        ("patients.parquet", "patient_id", "field_uniqueness", 4),
    ),
    "label_outside_01": (_label_two, None, ("patients.parquet", "label", "isin", 3)),
    "empty_file": (None, ("genes.parquet", 0), ("genes.parquet", None, "readable_parquet", 0)),
    "truncated_file": (None, ("labs.parquet", 0.5), ("labs.parquet", None, "readable_parquet", 0)),
    "infinities": (_infinite_lab, None, ("labs.parquet", "lab_a", "finite", 2)),
    "wrong_image_size": (
        _wrong_image_size,
        None,
        ("scan.parquet", "pixels", "list_length == 16", 1),
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_BATCHES))
def test_bad_batch_is_quarantined_and_warehouse_untouched(tmp_path, warehouse_con, case):
    mutate, corrupt, (file, column, check, failing) = BAD_BATCHES[case]
    landing = tmp_path / "landing"
    ingest_batch(warehouse_con, write_batch(landing, "b1", handmade_batch()), suite_spec())
    before = raw_snapshot(warehouse_con)

    frames = handmade_batch()
    if mutate:
        mutate(frames)
    bad = write_batch(landing, "b2", frames)
    if corrupt:
        name, keep = corrupt
        data = (bad / name).read_bytes()
        (bad / name).write_bytes(data[: int(len(data) * keep)])

    with pytest.raises(BatchValidationError) as info:
        ingest_batch(warehouse_con, bad, suite_spec())

    message = str(info.value)
    assert "'b2'" in message.splitlines()[0] and file in message and check.split()[0] in message
    report_path = landing / "_quarantine" / "b2" / "errors.json"
    assert report_path.exists() and not bad.exists()
    assert (landing / "_quarantine" / "b2" / file).exists()
    report = json.loads(report_path.read_text())
    match = [
        e
        for e in report["errors"]
        if e["file"] == file and e["column"] == column and check in e["check"]
    ]
    assert match, report["errors"]
    assert match[0]["failing_rows"] == failing
    assert all(len(e["examples"]) <= 5 for e in report["errors"])
    assert all(e["fix"] for e in report["errors"])
    assert raw_snapshot(warehouse_con) == before
    assert list_ready_batches(landing) == ["b1"]


def test_all_errors_are_collected_in_one_report(tmp_path, warehouse_con):
    frames = handmade_batch()
    _label_two(frames)
    _infinite_lab(frames)
    _wrong_image_size(frames)
    with pytest.raises(BatchValidationError) as info:
        ingest_batch(warehouse_con, write_batch(tmp_path / "landing", "b1", frames), suite_spec())
    checks = {(e["file"], e["check"]) for e in info.value.errors}
    assert {
        ("patients.parquet", "isin([0, 1])"),
        ("labs.parquet", "finite"),
        ("scan.parquet", "list_length == 16"),
    } <= checks
    assert not warehouse_con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'raw'"
    ).fetchall()[0][0]


def test_examples_are_capped_at_five(tmp_path, warehouse_con):
    frames = handmade_batch()
    frames["patients"]["label"] = 7
    with pytest.raises(BatchValidationError) as info:
        ingest_batch(warehouse_con, write_batch(tmp_path / "landing", "b1", frames), suite_spec())
    (err,) = [e for e in info.value.errors if e["column"] == "label"]
    assert err["failing_rows"] == 10 and len(err["examples"]) == 5


def test_crash_mid_transaction_rolls_back(tmp_path, warehouse_con, monkeypatch):
    landing = tmp_path / "landing"
    batch = write_batch(landing, "b1", handmade_batch())
    ingest_batch(warehouse_con, batch, suite_spec())
    before = raw_snapshot(warehouse_con)
    original = ingest._insert_file

    def crash_on_scan(con_, check, batch_id, known_only):
        inserted = original(con_, check, batch_id, known_only)
        if check.schema.table == "scan":  # after patients, genes and labs were rewritten
            raise RuntimeError("disk full (injected)")
        return inserted

    monkeypatch.setattr(ingest, "_insert_file", crash_on_scan)
    with pytest.raises(RuntimeError, match="injected"):
        ingest_batch(warehouse_con, batch, suite_spec())  # re-load: its DELETEs ran first
    assert raw_snapshot(warehouse_con) == before

    second = write_batch(landing, "b2", handmade_batch())
    with pytest.raises(RuntimeError, match="injected"):
        ingest_batch(warehouse_con, second, suite_spec())
    assert raw_snapshot(warehouse_con) == before
    assert warehouse_con.execute("SELECT list(batch_id) FROM raw.batches").fetchall() == [(["b1"],)]


def test_missing_patients_file_is_an_error(tmp_path, warehouse_con):
    frames = handmade_batch()
    del frames["patients"]
    with pytest.raises(BatchValidationError, match="patients.parquet"):
        ingest_batch(warehouse_con, write_batch(tmp_path / "landing", "b1", frames), suite_spec())


def test_requarantine_keeps_the_older_report(tmp_path, warehouse_con):
    landing = tmp_path / "landing"
    for _ in range(2):
        frames = handmade_batch()
        _label_two(frames)
        with pytest.raises(BatchValidationError):
            ingest_batch(warehouse_con, write_batch(landing, "b1", frames), suite_spec())
    names = sorted(p.name for p in (landing / "_quarantine").iterdir())
    assert names[0] == "b1" and names[1].startswith("b1.") and len(names) == 2
    shutil.rmtree(landing)
