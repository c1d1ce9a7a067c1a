"""Disclosure control: small cells suppressed in every metadata table, row previews off by
default and pseudonymous when turned on."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from fusion_assets.assets.metadata import frame_table, table_metadata
from fusion_assets.disclosure import (
    PREVIEW_ENV,
    PSEUDONYM_KEY_ENV,
    SMALL_CELL_LIMIT,
    pseudonym,
    suppress_small_cells,
)

MRNS = ["MRN-000123", "MRN-000456", "MRN-000789"]
NOTE = "Patient seen in clinic, complains of chest pain"


@pytest.fixture
def notes_table() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("CREATE SCHEMA aligned")
    con.execute("CREATE TABLE aligned.notes (patient_id VARCHAR, note VARCHAR, length DOUBLE)")
    con.executemany("INSERT INTO aligned.notes VALUES (?, ?, ?)", [(m, NOTE, 42.0) for m in MRNS])
    return con


def test_no_row_preview_by_default(notes_table, monkeypatch):
    monkeypatch.delenv(PREVIEW_ENV, raising=False)
    metadata = table_metadata(notes_table, "aligned.notes")
    assert "preview" not in metadata
    assert metadata["dagster/row_count"].value == 3
    assert not any(m in repr(metadata) for m in MRNS)


def test_turned_on_preview_shows_pseudonymous_ids_and_no_text(notes_table, monkeypatch):
    monkeypatch.setenv(PREVIEW_ENV, "pseudonymous")
    monkeypatch.setenv(PSEUDONYM_KEY_ENV, "a site secret")
    preview = table_metadata(notes_table, "aligned.notes")["preview"]
    shown = [record.data for record in preview.records]
    assert [r["patient_id"] for r in shown] == [pseudonym(m) for m in MRNS]
    assert all(r["patient_id"].startswith("psn-") for r in shown)
    assert {c.name for c in preview.schema.columns} == {"patient_id", "length"}
    text = repr(preview)
    assert NOTE not in text and not any(m in text for m in MRNS)


def test_pseudonyms_are_keyed(monkeypatch):
    monkeypatch.setenv(PSEUDONYM_KEY_ENV, "key one")
    first = pseudonym(MRNS[0])
    monkeypatch.setenv(PSEUDONYM_KEY_ENV, "key two")
    assert pseudonym(MRNS[0]) != first
    assert pseudonym(MRNS[0]) == pseudonym(MRNS[0])


def test_unknown_preview_setting_is_an_error(notes_table, monkeypatch):
    monkeypatch.setenv(PREVIEW_ENV, "all")
    with pytest.raises(ValueError, match="FUSION_ROW_PREVIEW='all'"):
        table_metadata(notes_table, "aligned.notes")


def test_metadata_tables_suppress_small_counts_and_their_rates():
    frame = pd.DataFrame(
        {
            "pattern": ["ehr+notes", "ehr", "notes", "none"],
            "n": [60, 5, 40, 0],
            "events": [20, 2, 35, 0],
            "share": [0.57, 0.05, 0.38, 0.0],
        }
    )
    records = [r.data for r in frame_table(frame).records]
    assert records[0] == {"pattern": "ehr+notes", "n": 60, "events": 20, "share": 0.57}
    # 5 patients: a small cell; its share would reveal it (5 % of 105 = 5).
    assert records[1] == {"pattern": "ehr", "n": None, "events": None, "share": None}
    # 40 patients but 5 non-events: the complement is a small cell.
    assert records[2]["n"] is None and records[2]["share"] is None
    # Zero reveals no patient.
    assert records[3]["n"] == 0


def test_suppression_keeps_the_limit():
    frame = pd.DataFrame({"n": [SMALL_CELL_LIMIT - 1, SMALL_CELL_LIMIT], "rate": [0.1, 0.2]})
    out = suppress_small_cells(frame, ["n"], ["rate"])
    assert out["n"].tolist() == [None, SMALL_CELL_LIMIT]
    assert out["rate"].tolist() == [None, 0.2]
