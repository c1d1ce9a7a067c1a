"""Seeded, stratified assignment of patients: the one ordering behind the split and the folds.

Pure code (pandas). Patients are ordered by stratum (label x availability
pattern) and, within a stratum, by a seeded hash of their id: reproducible in
every process and independent of row order. Two dealing rules use that one
sequence:

* the held-out split (:func:`assign_splits`) gives each new patient the split
  furthest below its target share within the stratum, starting from the
  stratum's existing counts, so a grown cohort keeps every old assignment;
* the fold plan (:func:`assign_folds`) deals each repeat's sequence round robin
  into the folds, then carves every fold model's inner validation part by
  systematic sampling over the same kind of sequence.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from fusion_assets.evaluation.plan import PLAN_COLUMNS, SPLITS
from fusion_assets.evaluation.settings import CrossValSettings

STRATUM = ["label", "pattern"]


def seeded_order(seed: int, *parts: object) -> int:
    """Seeded, stable hash (unlike Python's or DuckDB's ``hash``, the same in every process)."""
    key = ":".join(str(p) for p in (seed, *parts)).encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big")


def stratified_sequence(cohort: pd.DataFrame, seed: int, *salt: object) -> pd.DataFrame:
    """Patients sorted by stratum (label, pattern), then by a seeded hash within it.

    Dealing this sequence round robin (or every n-th patient) spreads every
    stratum evenly, and carrying the counter across strata keeps the totals
    balanced even when most strata hold one or two patients.
    """
    out = cohort[["patient_id", *STRATUM]].copy()
    out["pattern"] = out["pattern"].fillna("none").astype(str)
    out["_order"] = [seeded_order(seed, *salt, p) for p in out["patient_id"]]
    return out.sort_values([*STRATUM, "_order", "patient_id"], ignore_index=True)


def deal_by_deficit(n_new: int, existing: dict[str, int], fractions: Sequence[float]) -> list[str]:
    """Splits for ``n_new`` patients of one stratum (already in sequence order).

    Starting from the stratum's existing counts, each patient goes to the split
    whose count lags its target share of the running total the most; ties go to
    the earlier split. One patient -> train; two -> train + validation; large
    strata converge to the fractions, and a grown stratum is pulled back to them.
    """
    counts = [existing.get(s, 0) for s in SPLITS]
    total = sum(counts)
    out = []
    for _ in range(n_new):
        total += 1
        deficits = [f * total - c for f, c in zip(fractions, counts, strict=True)]
        k = max(range(len(SPLITS)), key=lambda i: (deficits[i], -i))
        counts[k] += 1
        out.append(SPLITS[k])
    return out


def check_fractions(fractions: Sequence[float]) -> None:
    if len(fractions) != 3 or abs(sum(fractions) - 1) > 1e-9 or min(fractions) < 0:
        raise ValueError(
            f"fractions must be three non-negative shares summing to 1, got {tuple(fractions)}."
        )


def assign_splits(
    cohort: pd.DataFrame,
    existing: pd.DataFrame,
    seed: int = 0,
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """``patient_id, split`` for the whole cohort, and counts for metadata.

    ``cohort``: ``patient_id, label, pattern``; ``existing``: the splits given
    before (``patient_id, split``). Patients already split keep their split; new
    ones are dealt within their stratum (see :func:`deal_by_deficit`). Patients
    no longer in the cohort keep their row: a split, once given, is never reused.
    """
    check_fractions(fractions)
    known = dict(zip(existing["patient_id"], existing["split"], strict=True))
    # A patient without a label or pattern belongs to no stratum and is not split yet.
    cohort = cohort.dropna(subset=STRATUM)
    is_new = ~cohort["patient_id"].isin(known)
    already = cohort[~is_new].assign(split=lambda f: f["patient_id"].map(known))
    existing_counts = {
        stratum: group["split"].value_counts().to_dict()
        for stratum, group in already.groupby(STRATUM, sort=True)
    }
    sequence = stratified_sequence(cohort[is_new], seed)
    new_rows = []
    for stratum, fresh in sequence.groupby(STRATUM, sort=True):
        splits = deal_by_deficit(len(fresh), existing_counts.get(stratum, {}), fractions)
        new_rows.append(pd.DataFrame({"patient_id": fresh["patient_id"], "split": splits}))
    added = pd.concat(new_rows, ignore_index=True) if new_rows else existing.iloc[0:0]
    result = pd.concat([existing[["patient_id", "split"]], added], ignore_index=True)
    counts = result["split"].value_counts().to_dict()
    return result, {
        "n_patients": len(result),
        "kept": len(existing),
        "added": len(added),
        "per_split": {s: int(counts.get(s, 0)) for s in SPLITS},
        "seed": seed,
        "fractions": list(fractions),
    }


def check_cohort(cohort: pd.DataFrame, folds: int) -> None:
    """Raise a clear error when the cohort cannot be cross-validated with ``folds`` folds."""
    if cohort["patient_id"].duplicated().any():
        raise ValueError("The cohort lists a patient more than once; patient_id must be unique.")
    counts = cohort["label"].value_counts()
    smallest = int(counts.min()) if len(counts) == 2 else 0
    if smallest < folds:
        raise ValueError(
            f"Cross-validation with {folds} folds needs at least {folds} patients of each label; "
            f"the cohort has {counts.to_dict()}. Lower `folds` in the splits config or add patients."
        )


def assign_folds(
    cohort: pd.DataFrame,
    folds: int = 5,
    repeats: int = 2,
    seed: int = 0,
    inner_validation: float = 0.2,
) -> pd.DataFrame:
    """The fold plan: ``repeat, fold, patient_id, role`` (see ``evaluation.plan``).

    ``cohort`` needs ``patient_id``, ``label`` and ``pattern``. Per repeat every
    patient has exactly one ``test`` row; fold sizes differ by at most one, and
    so do the per-fold counts of every label x pattern stratum.
    """
    CrossValSettings(folds=folds, repeats=repeats, inner_validation=inner_validation)
    check_cohort(cohort, folds)
    parts = []
    for repeat in range(repeats):
        seq = stratified_sequence(cohort, seed, "fold", repeat)
        fold_of = np.arange(len(seq)) % folds
        for fold in range(folds):
            test = seq["patient_id"].to_numpy()[fold_of == fold]
            rest = cohort[~cohort["patient_id"].isin(test)]
            inner = stratified_sequence(rest, seed, "inner", repeat, fold)
            # Systematic sampling over the stratified sequence: every (1/share)-th
            # patient, so each stratum gives its proportional share (+-1).
            i = np.arange(len(inner))
            is_val = np.floor((i + 1) * inner_validation) > np.floor(i * inner_validation)
            roles = np.where(is_val, "validation", "train")
            parts.append(
                pd.DataFrame(
                    {
                        "repeat": repeat,
                        "fold": fold,
                        "patient_id": np.r_[test, inner["patient_id"].to_numpy()],
                        "role": np.r_[np.full(len(test), "test", dtype=object), roles],
                    }
                )
            )
    plan = pd.concat(parts, ignore_index=True)
    plan["repeat"] = plan["repeat"].astype("int32")
    plan["fold"] = plan["fold"].astype("int32")
    return plan[PLAN_COLUMNS]
