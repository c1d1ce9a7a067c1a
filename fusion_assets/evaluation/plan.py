"""The fold plan's shape and the helpers that read it (pure pandas).

The plan is a long table, one row per (repeat, fold model, patient) with the
patient's ``role`` for that model: ``train``, ``validation`` or ``test``. The
held-out design has an empty plan; its split is ``profile.splits`` alone.
"""

from __future__ import annotations

import hashlib

import pandas as pd

ROLES = ("train", "validation", "test")
SPLITS = ROLES  # the held-out split uses the same three names
PLAN_COLUMNS = ["repeat", "fold", "patient_id", "role"]
# A fold model's predictions on its held-out fold (role 'test') and inner validation part.
OOF_COLUMNS = ["repeat", "fold", "patient_id", "role", "prob"]
# eval.oof_predictions: the same rows of every evaluated model.
OOF_TABLE_COLUMNS = ["strategy", *OOF_COLUMNS]


def empty_plan() -> pd.DataFrame:
    return pd.DataFrame(columns=PLAN_COLUMNS).astype(
        {"repeat": "int32", "fold": "int32", "patient_id": str, "role": str}
    )


def empty_oof_table() -> pd.DataFrame:
    """``eval.oof_predictions`` of a design without fold models: the columns, no rows."""
    return pd.DataFrame(
        {
            "strategy": pd.Series(dtype=str),
            "repeat": pd.Series(dtype="int64"),
            "fold": pd.Series(dtype="int64"),
            "patient_id": pd.Series(dtype=str),
            "role": pd.Series(dtype=str),
            "prob": pd.Series(dtype="float64"),
        }
    )


def fold_keys(plan: pd.DataFrame) -> list[tuple[int, int]]:
    """The (repeat, fold) models of a plan, in order."""
    keys = plan[["repeat", "fold"]].drop_duplicates().sort_values(["repeat", "fold"])
    return [(int(r), int(f)) for r, f in keys.itertuples(index=False)]


def fold_ids(plan: pd.DataFrame, repeat: int, fold: int) -> dict[str, list[str]]:
    """Patient ids per role for fold model ``(repeat, fold)``, in plan order."""
    part = plan[(plan["repeat"] == repeat) & (plan["fold"] == fold)]
    return {role: part.loc[part["role"] == role, "patient_id"].tolist() for role in ROLES}


def plan_patients(plan: pd.DataFrame) -> list[str]:
    """The plan's patients in a fixed order (sorted ids): files beside fold models refer to a
    patient by its position here (``patient_row``), never by its id, and the plan_id they
    record pins the order."""
    return sorted(plan["patient_id"].astype(str).unique().tolist())


def fold_name(repeat: int, fold: int) -> str:
    """Folder name of a fold model inside its model's fold root."""
    return f"r{repeat}_f{fold}"


def plan_id(plan: pd.DataFrame) -> str:
    """A short fingerprint of a plan; fold models record it so stale ones are refused.

    A fold model from another plan may have trained on a patient it is now asked
    to predict out of fold, which would be leakage, not just staleness.
    """
    rows = plan.sort_values(PLAN_COLUMNS)[PLAN_COLUMNS].astype(str)
    digest = hashlib.blake2b(digest_size=8)
    for row in rows.itertuples(index=False):
        digest.update("|".join(row).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def fold_summary(plan: pd.DataFrame, cohort: pd.DataFrame) -> pd.DataFrame:
    """Per (repeat, fold): patients and events per role (for metadata; no identifiers)."""
    merged = plan.merge(cohort[["patient_id", "label"]], on="patient_id", how="left")
    g = merged.groupby(["repeat", "fold", "role"])["label"]
    out = pd.DataFrame({"n": g.size(), "events": g.sum()}).reset_index()
    wide = out.pivot_table(index=["repeat", "fold"], columns="role", values=["n", "events"])
    wide.columns = [f"{role}_{stat}" for stat, role in wide.columns]
    cols = [f"{r}_{s}" for r in ROLES for s in ("n", "events") if f"{r}_{s}" in wide.columns]
    return wide[cols].fillna(0).astype(int).reset_index()
