"""Read what a pipeline run left in its DuckDB: cohort, folds, predictions, metrics, features.

Read-only; the tables are the pipeline's own (docs/data-contracts.md): ``aligned.*``,
``profile.{availability,evaluation_mode,folds,splits,recommendation}`` and
``eval.{predictions,oof_predictions,subgroup_metrics}``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

# Columns of aligned tables that are bookkeeping, not features.
_NOT_FEATURES = {"patient_id", "days_since_last"}
# Aligned omics vectors (docs/data-contracts.md §3).
_OMICS_VECTOR = "values"


@dataclass
class Modality:
    """One modality as the baselines see it: its aligned feature columns."""

    name: str
    kind: str  # tabular | omics | timeseries
    features: pd.DataFrame  # index patient_id; numeric columns, or object for categorical
    present: int  # patients with this modality

    @property
    def width(self) -> int:
        return self.features.shape[1]

    @property
    def categorical(self) -> int:
        return int(sum(not pd.api.types.is_numeric_dtype(t) for t in self.features.dtypes))


@dataclass
class PipelineRun:
    """One cohort's warehouse after ``fusion-assets run``."""

    mode: str  # cv | holdout
    patients: pd.DataFrame  # patient_id, label, sex, age, site, pattern
    folds: pd.DataFrame  # repeat, fold, patient_id, role (cv); empty in holdout
    splits: pd.DataFrame  # patient_id, split
    modalities: list[Modality]
    predictions: pd.DataFrame | None = None  # eval.predictions
    oof: pd.DataFrame | None = None  # eval.oof_predictions (cv)
    subgroup_all: pd.DataFrame | None = None  # eval.subgroup_metrics, subgroup 'all'
    recommended: str | None = None  # rank 1 of profile.recommendation
    settings: dict = field(default_factory=dict)


def _exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    row = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        [schema, table],
    ).fetchone()
    return bool(row and row[0])


def _modality(con: duckdb.DuckDBPyConnection, name: str, kind: str) -> Modality:
    frame = con.sql(f'SELECT * FROM aligned."{name}"').df().set_index("patient_id")
    if kind == "timeseries":
        return _timeseries(name, frame)
    if kind == "omics" and list(frame.columns) == [_OMICS_VECTOR]:  # dense; sparse has indices
        vectors = np.stack(frame[_OMICS_VECTOR].to_numpy()).astype(np.float64)
        columns = [f"{name}:{j}" for j in range(vectors.shape[1])]
        features = pd.DataFrame(vectors, index=frame.index, columns=columns)
        return Modality(name, "omics", features, len(frame))
    if kind != "tabular":
        raise NotImplementedError(
            f"modality {name!r} ({kind}): the baselines concatenate tabular, dense omics and "
            "timeseries modalities only (not images, text or sparse omics)."
        )
    keep = [c for c in frame.columns if c not in _NOT_FEATURES]
    # Untimed modalities have no days_since_last; a timed one keeps it as a feature.
    if "days_since_last" in frame.columns and frame["days_since_last"].notna().any():
        keep.append("days_since_last")
    features = frame[keep].rename(columns=lambda c: f"{name}:{c}")
    return Modality(name, "tabular", features, len(frame))


def _timeseries(name: str, frame: pd.DataFrame) -> Modality:
    """One column per (bin, channel) cell, NaN where the bin has no sample; plus n_samples."""
    values = np.stack(frame["values"].to_numpy()).astype(np.float64)
    mask = np.stack(frame["mask"].to_numpy()) > 0
    cells = np.where(mask, values, np.nan)
    columns = [f"{name}:cell{j}" for j in range(cells.shape[1])]
    features = pd.DataFrame(cells, index=frame.index, columns=columns)
    features[f"{name}:n_samples"] = frame["n_samples"].astype(np.float64)
    return Modality(name, "timeseries", features, len(frame))


def read_run(db_path: Path, kinds: dict[str, str]) -> PipelineRun:
    """Everything the benchmark needs from one warehouse (tables a failed run lacks are None).

    ``kinds``: modality name -> kind, from the cohort spec.
    """
    with duckdb.connect(str(db_path), read_only=True) as con:
        patients = con.sql(
            "SELECT p.patient_id, p.label, p.sex, p.age, p.site, a.pattern "
            "FROM aligned.patients p JOIN profile.availability a USING (patient_id) "
            "ORDER BY p.patient_id"
        ).df()
        mode_row = con.execute("SELECT mode, settings FROM profile.evaluation_mode").fetchone()
        mode = mode_row[0] if mode_row else "holdout"
        folds = con.sql("SELECT repeat, fold, patient_id, role FROM profile.folds").df()
        splits = con.sql("SELECT patient_id, split FROM profile.splits").df()
        modalities = [_modality(con, name, kind) for name, kind in kinds.items()]
        run = PipelineRun(mode, patients, folds, splits, modalities)
        if mode_row:
            run.settings = json.loads(mode_row[1])
        if _exists(con, "eval", "predictions"):
            run.predictions = con.sql("SELECT * FROM eval.predictions").df()
        if _exists(con, "eval", "oof_predictions") and mode == "cv":
            run.oof = con.sql("SELECT * FROM eval.oof_predictions").df()
        if _exists(con, "eval", "subgroup_metrics"):
            run.subgroup_all = con.sql(
                "SELECT * FROM eval.subgroup_metrics WHERE subgroup_type = 'all'"
            ).df()
        if _exists(con, "profile", "recommendation"):
            row = con.execute(
                "SELECT strategy FROM profile.recommendation ORDER BY rank LIMIT 1"
            ).fetchone()
            run.recommended = row[0] if row else None
    return run


def feature_matrix(run: PipelineRun) -> pd.DataFrame:
    """Every modality's columns side by side, one row per patient (absent modality: NaN)."""
    index = pd.Index(run.patients["patient_id"], name="patient_id")
    blocks = [m.features.reindex(index) for m in run.modalities]
    return pd.concat(blocks, axis=1)
