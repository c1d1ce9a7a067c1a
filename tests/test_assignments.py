"""Pinned assignments: the seeded stratified split and fold plan must never move.

A patient's split and folds decide which models saw it; a refactor that changed
them would silently change every reported number. The demo cohort's split
(995 test patients) is produced by the same functions on a larger cohort.
"""

from __future__ import annotations

import hashlib
import json

import duckdb

from fusion_assets.evaluation.assignment import assign_folds
from fusion_assets.evaluation.plan import plan_id
from fusion_assets.warehouse.splits import assign_splits
from tests.fixtures.availability import availability_frame, with_availability


def _splits(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    return dict(con.sql("SELECT patient_id, split FROM profile.splits").fetchall())


def _digest(splits: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(sorted(splits.items())).encode()).hexdigest()[:16]


def test_fold_plan_is_pinned() -> None:
    plan = assign_folds(availability_frame(), folds=5, repeats=3, seed=0)
    assert plan_id(plan) == "5804ad8377585d58"
    test = plan[plan["role"] == "test"].sort_values(["patient_id", "repeat"])
    folds = test.groupby("patient_id")["fold"].apply(list).to_dict()
    assert folds["p0000"] == [4, 2, 0]
    assert folds["p0002"] == [3, 3, 1]
    assert folds["p0202"] == [3, 0, 3]
    inner = plan[(plan["repeat"] == 1) & (plan["fold"] == 2) & (plan["role"] == "validation")]
    assert inner["patient_id"].tolist()[:5] == ["p0106", "p0177", "p0158", "p0186", "p0060"]


def test_holdout_split_is_pinned() -> None:
    con = with_availability(availability_frame())
    assign_splits(con, seed=0)
    splits = _splits(con)
    assert {p: splits[p] for p in ("p0000", "p0001", "p0002", "p0100")} == {
        "p0000": "train",
        "p0001": "test",
        "p0002": "validation",
        "p0100": "train",
    }
    assert _digest(splits) == "c2f7d1767a7638fb"


def test_grown_cohort_split_is_pinned() -> None:
    cohort = availability_frame()
    con = with_availability(cohort.iloc[:150])
    assign_splits(con, seed=4)
    with_availability(cohort, con)
    counts = assign_splits(con, seed=4)
    assert (counts["kept"], counts["added"]) == (150, 53)
    assert counts["per_split"] == {"train": 122, "validation": 42, "test": 39}
    splits = _splits(con)
    assert [splits[p] for p in ("p0000", "p0149", "p0150", "p0151")] == [
        "test",
        "validation",
        "train",
        "test",
    ]
    assert _digest(splits) == "7f20d5a91d3cb5fd"
