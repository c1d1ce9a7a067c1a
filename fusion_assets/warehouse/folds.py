"""The evaluation mode and the fold plan in the warehouse (``profile.evaluation_mode``/``folds``).

``profile.evaluation_mode``: one row, ``mode`` (``holdout`` | ``cv``), ``n_patients``
and the settings (JSON) it was decided with. ``profile.folds``: the fold plan of
:func:`fusion_assets.crossval.assign_folds` (``repeat, fold, patient_id, role``);
empty in holdout mode. ``profile.splits`` is written in both modes: the held-out
train / validation / test split, or in cv mode the final model's train /
validation carve-out of all patients (no test: the final model sees everyone and
evaluation comes from the fold models).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pandas as pd

from fusion_assets.crossval import (
    CV,
    HOLDOUT,
    PLAN_COLUMNS,
    CrossValSettings,
    assign_folds,
    plan_id,
)
from fusion_assets.warehouse.splits import assign_splits
from fusion_assets.warehouse.sql import table_exists


@dataclass
class EvaluationMode:
    """What the downstream assets need to know about how the cohort is evaluated."""

    mode: str = HOLDOUT
    n_patients: int = 0
    settings: dict[str, Any] = field(default_factory=dict)
    plan: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=PLAN_COLUMNS))
    plan_id: str = ""

    @property
    def is_cv(self) -> bool:
        return self.mode == CV


def _previous_mode(con: duckdb.DuckDBPyConnection) -> str | None:
    if not table_exists(con, "profile", "evaluation_mode"):
        return None
    row = con.execute("SELECT mode FROM profile.evaluation_mode LIMIT 1").fetchone()
    return row[0] if row else None


def write_evaluation_plan(
    con: duckdb.DuckDBPyConnection,
    settings: CrossValSettings,
    holdout_fractions: tuple[float, float, float],
    split_seed: int = 0,
) -> dict[str, Any]:
    """Decide the mode from the cohort size; write splits, the fold plan and the mode.

    Switching mode starts ``profile.splits`` afresh: a cv-mode split has no test
    patients, so keeping it would leave a grown cohort's test split made only of
    the newest patients (and in cv mode no patient is held out anyway).
    """
    cohort = con.execute("SELECT patient_id, label, pattern FROM profile.availability").df()
    n = len(cohort)
    mode = settings.mode(n)
    if mode == CV:
        # First, so that a cohort that cannot be cross-validated changes nothing.
        plan = assign_folds(
            cohort, settings.folds, settings.repeats, settings.seed, settings.inner_validation
        )
    else:
        plan = pd.DataFrame(columns=PLAN_COLUMNS).astype(
            {"repeat": "int32", "fold": "int32", "patient_id": str, "role": str}
        )
    record = pd.DataFrame(
        {
            "mode": [mode],
            "n_patients": [n],
            "plan_id": [plan_id(plan) if mode == CV else ""],
            "settings": [json.dumps(settings.to_dict())],
        }
    )
    fractions = (
        (1.0 - settings.inner_validation, settings.inner_validation, 0.0)
        if mode == CV
        else holdout_fractions
    )
    con.execute("BEGIN TRANSACTION")
    con.register("_plan_df", plan)
    con.register("_mode_df", record)
    try:
        if _previous_mode(con) not in (None, mode):
            con.execute("DROP TABLE IF EXISTS profile.splits")
        counts = assign_splits(con, seed=split_seed, fractions=fractions)
        con.execute(
            "CREATE OR REPLACE TABLE profile.folds AS SELECT CAST(repeat AS INTEGER) AS repeat, "
            "CAST(fold AS INTEGER) AS fold, CAST(patient_id AS VARCHAR) AS patient_id, "
            "CAST(role AS VARCHAR) AS role FROM _plan_df ORDER BY repeat, fold, role, patient_id"
        )
        con.execute("CREATE OR REPLACE TABLE profile.evaluation_mode AS SELECT * FROM _mode_df")
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    finally:
        con.unregister("_plan_df")
        con.unregister("_mode_df")
    return {"mode": mode, "n_patients": n, "splits": counts, "plan_rows": len(plan)}


def read_evaluation_mode(con: duckdb.DuckDBPyConnection) -> EvaluationMode:
    """The recorded mode and plan; a warehouse from before cv existed reads as holdout."""
    if not table_exists(con, "profile", "evaluation_mode"):
        return EvaluationMode()
    row = con.execute(
        "SELECT mode, n_patients, plan_id, settings FROM profile.evaluation_mode LIMIT 1"
    ).fetchone()
    if row is None:
        return EvaluationMode()
    mode, n, pid, settings = row
    plan = (
        con.execute(f"SELECT {', '.join(PLAN_COLUMNS)} FROM profile.folds").df()
        if mode == CV
        else pd.DataFrame(columns=PLAN_COLUMNS)
    )
    return EvaluationMode(mode, int(n), json.loads(settings), plan, pid)
