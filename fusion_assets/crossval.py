"""Repeated stratified k-fold for small cohorts: the mode decision and the fold plan.

Pure code (no dagster, no torch). A single held-out test split of a few hundred
patients is mostly noise, so cohorts under ``small_cohort_size`` patients are
evaluated out of fold instead:

* every repeat deals the patients into ``folds`` folds, stratified by label x
  availability pattern, in a seeded-hash order (so the plan is reproducible and
  independent of row order);
* the fold model ``(repeat, fold)`` is trained on the other folds, minus an
  inner validation part carved out of them (stratified too) for early stopping,
  late-fusion stacking and threshold choice;
* each patient is predicted by the one model per repeat that never saw it.

The plan is a long table, one row per (repeat, fold model, patient) with the
patient's ``role`` for that model: ``train``, ``validation`` or ``test``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

CV = "cv"
HOLDOUT = "holdout"
ROLES = ("train", "validation", "test")
PLAN_COLUMNS = ["repeat", "fold", "patient_id", "role"]


@dataclass(frozen=True)
class CrossValSettings:
    """How small cohorts are cross-validated.

    - ``small_cohort_size``: cohorts with fewer patients use repeated k-fold;
      0 forces the held-out split, a huge value forces cross-validation.
    - ``folds`` x ``repeats``: fold models per encoder and per strategy.
    - ``inner_validation``: share of each fold model's training folds kept aside
      for early stopping, stacking and thresholds (also the final model's share).
    """

    small_cohort_size: int = 1000
    folds: int = 5
    # Fold training is cheap at this size (5 x 3 x 10 small models: about 80 s on two
    # cores for 198 patients); the stress tests, run on one repeat, cost as much.
    repeats: int = 3
    seed: int = 0
    inner_validation: float = 0.2

    def __post_init__(self) -> None:
        if self.folds < 2:
            raise ValueError(f"folds must be at least 2, got {self.folds}.")
        if self.repeats < 1:
            raise ValueError(f"repeats must be at least 1, got {self.repeats}.")
        if not 0.0 < self.inner_validation < 1.0:
            raise ValueError(
                f"inner_validation must be a share in (0, 1), got {self.inner_validation}."
            )

    def mode(self, n_patients: int) -> str:
        """``cv`` for cohorts under ``small_cohort_size`` patients, else ``holdout``."""
        return CV if n_patients < self.small_cohort_size else HOLDOUT

    def describe(self) -> str:
        return (
            f"repeated stratified {self.folds}-fold cross-validation, {self.repeats} repeat(s), "
            f"out-of-fold predictions"
        )

    def to_dict(self) -> dict:
        return asdict(self)


def _order(seed: int, *parts: object) -> int:
    """Seeded, stable hash (unlike Python's ``hash``, the same in every process)."""
    key = ":".join(str(p) for p in (seed, *parts)).encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big")


def _stratified_sequence(cohort: pd.DataFrame, seed: int, *salt: object) -> pd.DataFrame:
    """Patients sorted by stratum (label, pattern), then by a seeded hash within it.

    Dealing this sequence round robin (or every n-th patient) spreads every
    stratum evenly, and carrying the counter across strata keeps the totals
    balanced even when most strata hold one or two patients.
    """
    out = cohort[["patient_id", "label", "pattern"]].copy()
    out["pattern"] = out["pattern"].fillna("none").astype(str)
    out["_order"] = [_order(seed, *salt, p) for p in out["patient_id"]]
    return out.sort_values(["label", "pattern", "_order", "patient_id"], ignore_index=True)


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
    """The fold plan: ``repeat, fold, patient_id, role`` (see the module docstring).

    ``cohort`` needs ``patient_id``, ``label`` and ``pattern``. Per repeat every
    patient has exactly one ``test`` row; fold sizes differ by at most one, and
    so do the per-fold counts of every label x pattern stratum.
    """
    CrossValSettings(folds=folds, repeats=repeats, inner_validation=inner_validation)
    check_cohort(cohort, folds)
    parts = []
    for repeat in range(repeats):
        seq = _stratified_sequence(cohort, seed, "fold", repeat)
        fold_of = np.arange(len(seq)) % folds
        for fold in range(folds):
            test = seq["patient_id"].to_numpy()[fold_of == fold]
            rest = cohort[~cohort["patient_id"].isin(test)]
            inner = _stratified_sequence(rest, seed, "inner", repeat, fold)
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


def fold_keys(plan: pd.DataFrame) -> list[tuple[int, int]]:
    """The (repeat, fold) models of a plan, in order."""
    keys = plan[["repeat", "fold"]].drop_duplicates().sort_values(["repeat", "fold"])
    return [(int(r), int(f)) for r, f in keys.itertuples(index=False)]


def fold_ids(plan: pd.DataFrame, repeat: int, fold: int) -> dict[str, list[str]]:
    """Patient ids per role for fold model ``(repeat, fold)``, in plan order."""
    part = plan[(plan["repeat"] == repeat) & (plan["fold"] == fold)]
    return {role: part.loc[part["role"] == role, "patient_id"].tolist() for role in ROLES}


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


def settings_json(settings: CrossValSettings, mode: str, n_patients: int) -> str:
    """The evaluation mode as a JSON string (stored beside the plan)."""
    return json.dumps({"mode": mode, "n_patients": int(n_patients), **settings.to_dict()})
