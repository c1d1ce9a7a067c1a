"""The evaluation design in the warehouse: ``profile.evaluation_mode``, ``profile.folds``.

``profile.evaluation_mode``: one row, ``mode`` (``holdout`` | ``cv``), ``n_patients``,
``plan_id`` and the settings (JSON) it was decided with. ``profile.folds``: the
fold plan (``repeat, fold, patient_id, role``); empty in the held-out design.
``profile.splits`` is written by both designs: the held-out train / validation /
test split, or in cross-validation the final model's train / validation
carve-out of all patients (no test: the final model sees everyone and
evaluation comes from the fold models). The decisions are pure code in
``fusion_assets.evaluation``; this module reads and writes them.
"""

from __future__ import annotations

import json
from typing import Any

import duckdb
import pandas as pd

from fusion_assets.evaluation import (
    CrossValSettings,
    EvaluationDesign,
    choose_design,
    design_from_record,
)
from fusion_assets.evaluation.plan import PLAN_COLUMNS
from fusion_assets.warehouse.splits import read_splits, read_stratification_cohort, write_splits
from fusion_assets.warehouse.sql import table_exists

FOLDS_TABLE = "profile.folds"
MODE_TABLE = "profile.evaluation_mode"


def _recorded(con: duckdb.DuckDBPyConnection) -> dict[str, Any] | None:
    if not table_exists(con, "profile", "evaluation_mode"):
        return None
    row = con.execute(
        f"SELECT mode, n_patients, plan_id, settings FROM {MODE_TABLE} LIMIT 1"
    ).fetchone()
    if row is None:
        return None
    mode, n, pid, settings = row
    return {"mode": mode, "n_patients": int(n), "plan_id": pid, "settings": json.loads(settings)}


def write_evaluation_plan(
    con: duckdb.DuckDBPyConnection,
    settings: CrossValSettings,
    holdout_fractions: tuple[float, float, float],
    split_seed: int = 0,
) -> dict[str, Any]:
    """Choose the design from the cohort size; write splits, the fold plan and the mode.

    One transaction: a cohort that cannot be cross-validated, or a failed write,
    changes nothing. Returns counts for metadata.
    """
    cohort = read_stratification_cohort(con)
    design = choose_design(cohort, settings)
    previous = _recorded(con)
    splits, counts = design.assign_splits(
        cohort,
        read_splits(con),
        previous["mode"] if previous else None,
        holdout_fractions,
        split_seed,
    )
    con.execute("BEGIN TRANSACTION")
    con.register("_plan_df", design.plan)
    con.register("_mode_df", pd.DataFrame([design.record()]))
    try:
        write_splits(con, splits)
        con.execute(
            f"CREATE OR REPLACE TABLE {FOLDS_TABLE} AS SELECT CAST(repeat AS INTEGER) AS repeat, "
            "CAST(fold AS INTEGER) AS fold, CAST(patient_id AS VARCHAR) AS patient_id, "
            "CAST(role AS VARCHAR) AS role FROM _plan_df ORDER BY repeat, fold, role, patient_id"
        )
        con.execute(f"CREATE OR REPLACE TABLE {MODE_TABLE} AS SELECT * FROM _mode_df")
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    finally:
        con.unregister("_plan_df")
        con.unregister("_mode_df")
    return {
        "mode": design.mode,
        "n_patients": design.n_patients,
        "splits": counts,
        "plan_rows": len(design.plan),
    }


def read_evaluation_design(con: duckdb.DuckDBPyConnection) -> EvaluationDesign:
    """The recorded design and its plan; a warehouse from before cv existed reads as held out."""
    record = _recorded(con)
    if record is None:
        return design_from_record(None)
    plan = con.execute(f"SELECT {', '.join(PLAN_COLUMNS)} FROM {FOLDS_TABLE}").df()
    return design_from_record(record, plan)
