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
    # 3 rows of a per-patient table: 3 patients, a small cell.
    assert metadata["row_count"].value == "<11" and "dagster/row_count" not in metadata
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


def test_secondary_suppression_leaves_nothing_to_subtract():
    from fusion_assets.disclosure import partition_suppression

    # One small cell: the smallest other one goes too, or 105 - 50 - 40 = 15 ... - 12 = 3.
    assert partition_suppression([3, 50, 40, 12], total=105) == [True, False, False, True]
    # Two small cells whose sum (7) is small itself: a third is needed.
    assert partition_suppression([3, 4, 50, 40], total=97) == [True, True, False, True]
    # Nothing small: nothing hidden; zeros are published and never chosen.
    assert partition_suppression([0, 50, 40]) == [False, False, False]
    assert partition_suppression([0, 5, 40]) == [False, True, True]


def test_counts_rates_and_shares_as_published():
    from fusion_assets.disclosure import count_text, published_share, rate_publishable

    assert [count_text(v) for v in (0, 5, 11, None)] == ["0", "<11", "11", "–"]
    assert count_text(40, hidden=True) == "suppressed"
    assert not rate_publishable(7, 60)  # 12 % of 60 = 7
    assert not rate_publishable(55, 60)  # its complement is 5
    assert rate_publishable(20, 60) and rate_publishable(0, 60)
    assert published_share(5 / 600, 600) is None and published_share(0.5, 600) == 0.5


def test_metadata_tables_of_a_partition_and_of_folds_hide_what_subtraction_gives():
    frame = pd.DataFrame(
        {
            "pattern": ["ehr+notes", "ehr", "notes", "none"],
            "n": [50, 3, 40, 12],
            "n_positive": [20, 1, 15, 6],
            "label_prevalence": [0.4, 0.33, 0.375, 0.5],
        }
    )
    records = [r.data for r in frame_table(frame, partition_of=105).records]
    assert [r["n"] for r in records] == [50, None, 40, None]
    assert records[3]["label_prevalence"] is None  # 6 positives of 12: a small count
    folds = pd.DataFrame(
        {"repeat": [0, 0], "fold": [0, 1], "test_n": [30, 30], "test_events": [4, 12]}
    )
    shown = [r.data for r in frame_table(folds).records]
    assert shown[0]["test_events"] is None and shown[1]["test_events"] == 12


def test_profile_metadata_publishes_no_small_count():
    from fusion_assets.assets.profile import _profile_metadata

    summary = {
        "n_patients": 600,
        "label_prevalence": 5 / 600,  # 5 events: a small cell
        "complete_case_fraction": 0.5,
        "availability": {"ehr": 1.0, "genomics": 7 / 600},
        "modalities": {"ehr": "tabular", "genomics": "omics"},
        "dimensionality": {"ehr": 10, "genomics": 1000},
        "cadence": {},
        "patterns": [
            {"pattern": "ehr", "n": 593, "n_positive": 5, "label_prevalence": 5 / 593},
            {"pattern": "ehr+genomics", "n": 7, "n_positive": 0, "label_prevalence": 0.0},
        ],
    }
    metadata = _profile_metadata(summary)
    assert "label_prevalence" not in metadata and metadata["complete_case_fraction"].value == 0.5
    modalities = [r.data for r in metadata["modalities"].records]
    assert [m["availability"] for m in modalities] == [1.0, None]
    patterns = [r.data for r in metadata["patterns"].records]
    # 7 is small, and 593 would give it back as 600 - 593.
    assert [p["n"] for p in patterns] == [None, None]
    assert all(p["n_positive"] is None for p in patterns)


def test_reliability_bins_with_few_events_are_not_drawn():
    """An equal-mass bin's observed rate times its size is its event count."""
    import numpy as np

    from fusion_assets.metrics.config import EvaluationConfig
    from fusion_assets.metrics.evaluate import reliability_table

    n = 200
    ids = [f"p{i:03d}" for i in range(n)]
    prob = np.linspace(0.01, 0.99, n)
    label = np.zeros(n, dtype=int)
    label[[0, 1]] = 1  # the lowest bin (20 patients): 2 events
    for b in (2, 3, 4):
        label[b * 20 : b * 20 + 12] = 1  # 12 events, 8 non-events: not drawn
    for b in (5, 6):
        label[b * 20 : b * 20 + 10] = 1  # 10 events, 10 non-events: not drawn
    label[160:] = 1  # bins 8-9: all events (0 non-events: published)
    predictions = pd.DataFrame(
        {"strategy": "late", "patient_id": ids, "split": "test", "prob": prob}
    )
    patients = pd.DataFrame({"patient_id": ids, "label": label})
    table = reliability_table(predictions, patients, EvaluationConfig(n_boot=10, ece_bins=10))
    events = (table["observed"] * table["n"]).round()
    assert 0 not in table["bin"].tolist()  # 2 of 20
    assert all(v == 0 or v >= SMALL_CELL_LIMIT for v in events)
    assert all(v == 0 or v >= SMALL_CELL_LIMIT for v in table["n"] - events)
    assert set(table["bin"]) == {1, 7, 8, 9}  # 0 events or 0 non-events are published


def test_subgroup_counts_as_printed_leave_no_count_to_subtract():
    from fusion_assets.disclosure import subgroup_disclosure

    table = pd.DataFrame(
        {
            "subgroup_type": ["all", "site", "site", "site"],
            "subgroup": ["all", "a", "b", "c"],
            "n": [100, 50, 45, 5],
            "events": [30, 20, 9, float("nan")],  # a suppressed subgroup's events are NaN
            "strategy": "late",
        }
    )
    shown = subgroup_disclosure(table).loc["site"]
    # c is small; b would give it back (100 - 50 - 45).
    assert shown["n_text"].tolist() == ["50", "suppressed", "<11"]
    # b's 9 events are small, and 30 - 20 would give b's and c's together (10): a goes too.
    assert shown["events_text"].tolist() == ["suppressed", "<11", "–"]
    assert shown["sens_ok"].tolist() == [True, False, False]  # sensitivity over >= 11 events
    assert shown["spec_ok"].tolist() == [True, True, False]
    assert subgroup_disclosure(table.iloc[:0]).empty
