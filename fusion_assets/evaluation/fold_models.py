"""Fold models of a cross-validated small cohort: train, save, predict out of fold.

Pure code (torch, no dagster), used by the repeated k-fold design
(``evaluation.kfold``) and imported only when fold models are fitted or read.
One model (a ``single:<modality>`` baseline or a fusion strategy) has
a *fold root* folder in the model store::

    <fold root>/r<repeat>_f<fold>/   one fitted model per fold (save_model layout)
    <fold root>/oof.parquet          repeat, fold, patient_row, role, prob, raw_prob
    <fold root>/folds.json           plan_id + per-fold summary; written last

``oof.parquet`` holds each fold model's predictions on its held-out fold
(``role = 'test'``) and on its inner validation part (``role = 'validation'``),
recalibrated (``prob``, recalibration fitted on the inner validation part) and as
the predictor gives them (``raw_prob``, what the deployed refit's recalibration is
fitted on: ``evaluation/refit.py``). The file leaves the warehouse with the
model's registered versions, so it names no patient: ``patient_row`` is the
patient's position in the plan's patient list (``plan.plan_patients``), and
reading it back needs the plan (the one whose plan_id ``folds.json`` records).
``folds.json`` is the completion marker: readers refuse a root whose plan_id
is not the current plan's, because a fold model from another plan may have
trained on the patients it would now be asked to predict.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fusion_assets.evaluation.models import ModelsNotReady
from fusion_assets.evaluation.plan import (
    OOF_COLUMNS,
    fold_ids,
    fold_keys,
    fold_name,
    plan_patients,
)
from fusion_assets.metrics.classification import auroc
from fusion_assets.metrics.subgroups import repeat_mean
from fusion_assets.models.api import FittedModel, load_model, save_model
from fusion_assets.models.training import TrainResult, label_vector
from fusion_assets.scoring import stress_test

OOF_FILE = "oof.parquet"
MARKER_FILE = "folds.json"

# (repeat, fold, train_ids, validation_ids) -> (fitted model, train result)
FoldFit = Callable[[int, int, list[str], list[str]], tuple[FittedModel, TrainResult]]


class StaleFoldModels(ModelsNotReady):
    """A fold root is missing, unfinished or was trained on another fold plan."""


@dataclass
class FoldRun:
    """What ``train_folds`` produced: the out-of-fold rows and a per-fold summary."""

    oof: pd.DataFrame  # OOF_COLUMNS + raw_prob (before the fold model's recalibration)
    summary: (
        pd.DataFrame
    )  # repeat, fold, n_train, n_validation, n_test, val_auroc, fold_test_auroc, ...
    seconds: float

    def oof_auroc(self, labels: pd.Series) -> float:
        """The all-patients AUROC as the report computes it (the primary estimate): per
        repeat on that repeat's out-of-fold predictions, then averaged over the repeats."""
        test = self.oof[self.oof["role"] == "test"]
        per_repeat = [
            auroc(label_vector(labels, g["patient_id"].tolist()), g["prob"].to_numpy())
            for _, g in test.groupby("repeat", sort=True)
        ]
        return float(repeat_mean(np.array(per_repeat)))

    def ensemble_auroc(self, labels: pd.Series) -> float:
        """AUROC of the out-of-fold probabilities averaged over repeats: a small ensemble of
        fold models, above what one deployed model achieves; only ever shown labelled so."""
        test = self.oof[self.oof["role"] == "test"]
        mean = test.groupby("patient_id")["prob"].mean()
        return auroc(label_vector(labels, mean.index.tolist()), mean.to_numpy())


def train_folds(
    plan: pd.DataFrame,
    plan_id: str,
    root: Path,
    fit: FoldFit,
    frames: Mapping[str, pd.DataFrame],
    labels: pd.Series,
    log: Callable[[str], None] = lambda _: None,
) -> FoldRun:
    """Train one model per (repeat, fold) of ``plan``, save each and its OOF predictions."""
    started = time.perf_counter()
    root = Path(root)
    if root.exists():
        shutil.rmtree(root)  # models of an older plan must not survive next to new ones
    root.mkdir(parents=True)
    parts, summary = [], []
    for repeat, fold in fold_keys(plan):
        ids = fold_ids(plan, repeat, fold)
        t0 = time.perf_counter()
        fitted, result = fit(repeat, fold, ids["train"], ids["validation"])
        save_model(fitted, root / fold_name(repeat, fold))
        scored = ids["test"] + ids["validation"]
        prepared = fitted.prepare(dict(frames), scored)
        prob = fitted.predict_proba(prepared)
        # before the fold model's recalibration: what the deployed refit's is fitted on
        raw = fitted.predict_proba(prepared, recalibrated=False)
        roles = ["test"] * len(ids["test"]) + ["validation"] * len(ids["validation"])
        part = pd.DataFrame(
            {"repeat": repeat, "fold": fold, "patient_id": scored, "role": roles, "prob": prob}
        ).assign(raw_prob=raw)
        parts.append(part)
        held_out = part[part["role"] == "test"]
        fold_auroc = auroc(
            label_vector(labels, held_out["patient_id"]), held_out["prob"].to_numpy()
        )
        summary.append(
            {
                "repeat": repeat,
                "fold": fold,
                "n_train": len(ids["train"]),
                "n_validation": len(ids["validation"]),
                "n_test": len(ids["test"]),
                "val_auroc": float(result.val_auroc),
                "train_auroc": float(result.train_auroc),
                "fold_test_auroc": fold_auroc,
                "best_epoch": int(result.best_epoch),
                "seconds": round(time.perf_counter() - t0, 2),
            }
        )
        log(
            f"fold r{repeat} f{fold}: {len(ids['train'])} train / {len(ids['validation'])} "
            f"validation, held-out AUROC {fold_auroc:.3f} ({summary[-1]['seconds']:.1f} s)"
        )
    oof = pd.concat(parts, ignore_index=True)[[*OOF_COLUMNS, "raw_prob"]]
    save_oof(root, oof, plan)
    table = pd.DataFrame(summary)
    (root / MARKER_FILE).write_text(
        json.dumps({"plan_id": plan_id, "folds": table.to_dict("records")}, indent=1)
    )
    return FoldRun(oof, table, time.perf_counter() - started)


def check_fold_root(root: Path, plan_id: str, name: str) -> None:
    """Raise :class:`StaleFoldModels` unless ``root`` holds finished models of ``plan_id``."""
    marker = Path(root) / MARKER_FILE
    if not marker.exists():
        raise StaleFoldModels(
            f"No finished fold models for {name!r} in {root}: materialize that partition "
            "again (after the splits asset) so each fold model is trained."
        )
    recorded = json.loads(marker.read_text()).get("plan_id")
    if recorded != plan_id:
        raise StaleFoldModels(
            f"The fold models of {name!r} in {root} were trained on fold plan {recorded}, "
            f"not the current plan {plan_id}: re-materialize them (they might have seen the "
            "patients they would be asked to predict out of fold)."
        )


def load_fold_models(
    root: Path, plan_id: str, name: str, keys: Sequence[tuple[int, int]]
) -> dict[tuple[int, int], FittedModel]:
    """The fold models of one model, by (repeat, fold); stale or missing ones are refused."""
    check_fold_root(root, plan_id, name)
    return {key: load_model(Path(root) / fold_name(*key)) for key in keys}


def load_oof(root: Path, plan: pd.DataFrame, plan_id: str, name: str) -> pd.DataFrame:
    """``oof.parquet`` of one model (``OOF_COLUMNS``, ids from ``plan``), after checking
    that it was written for ``plan_id``."""
    check_fold_root(root, plan_id, name)
    stored = pd.read_parquet(Path(root) / OOF_FILE)
    ids = np.asarray(plan_patients(plan), dtype=object)
    rows = stored.pop("patient_row").to_numpy()
    if len(rows) and (rows.min() < 0 or rows.max() >= len(ids)):
        raise StaleFoldModels(
            f"The out-of-fold file of {name!r} in {root} refers to patients the fold plan does "
            "not have: re-materialize the model."
        )
    stored.insert(OOF_COLUMNS.index("patient_id"), "patient_id", ids[rows])
    return stored[OOF_COLUMNS]


def save_oof(root: Path, oof: pd.DataFrame, plan: pd.DataFrame) -> Path:
    """Write ``oof`` (with patient ids) as ``<root>/oof.parquet`` with no id: each patient_id
    replaced by its position in ``plan``'s patients (``load_oof`` maps them back)."""
    position = {pid: i for i, pid in enumerate(plan_patients(plan))}
    rows = oof["patient_id"].astype(str).map(position)
    if rows.isna().any():
        raise ValueError("out-of-fold rows of patients outside the fold plan")
    stored = oof.copy()
    stored.insert(list(oof.columns).index("patient_id"), "patient_row", rows.astype("int32"))
    path = Path(root) / OOF_FILE
    stored.drop(columns="patient_id").to_parquet(path, index=False)
    return path


def stress_by_fold(
    models: Mapping[str, Mapping[tuple[int, int], FittedModel]],
    frames: Mapping[str, pd.DataFrame],
    plan: pd.DataFrame,
    repeat: int,
    rates: Sequence[float],
    n_seeds: int,
    deployment=None,
    labels=None,
) -> pd.DataFrame:
    """Stress tests of one repeat, each patient scored by the fold model that never saw it.

    Masks are drawn per fold (:func:`fusion_assets.scoring.stress_test`), and every
    strategy meets the same ones (the folds are shared), so the comparison
    between strategies stays paired.
    """
    parts = []
    keys = [k for k in fold_keys(plan) if k[0] == repeat]
    for key in keys:
        ids = fold_ids(plan, *key)["test"]
        fold_models = {strategy: by_fold[key] for strategy, by_fold in models.items()}
        part = stress_test(
            fold_models, frames, ids, rates, n_seeds, deployment=deployment, labels=labels
        )
        part["fold"] = np.int32(key[1])
        parts.append(part)
    return pd.concat(parts, ignore_index=True)
