"""Reading the aligned cohort out of the warehouse for training and evaluation."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pandas as pd

from fusion_assets.cohorts import CohortSpec
from fusion_assets.warehouse.sql import table_exists


def load_frames(
    con: duckdb.DuckDBPyConnection, spec: CohortSpec, modalities: list[str] | None = None
) -> dict[str, pd.DataFrame]:
    """``aligned.<modality>`` as DataFrames (list columns arrive as numpy arrays)."""
    names = modalities or spec.modality_names
    return {
        name: con.sql(f'SELECT * FROM aligned."{name}"').df()
        for name in names
        if table_exists(con, "aligned", name)
    }


def load_cohort(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """One row per patient: label, demographics, availability pattern, split and oracle.

    ``split`` is NULL for patients the split asset has not seen yet (a new batch),
    ``oracle_prob`` is present only for synthetic cohorts.
    """
    oracle = table_exists(con, "raw", "oracle")
    splits = table_exists(con, "profile", "splits")
    query = f"""
        SELECT p.patient_id, p.label, p.sex, p.age, p.site, p.batch_id,
               a.pattern, a.n_modalities,
               {"s.split" if splits else "NULL::VARCHAR AS split"}
               {", o.oracle_prob" if oracle else ""}
        FROM aligned.patients p
        JOIN profile.availability a USING (patient_id)
        {"LEFT JOIN profile.splits s USING (patient_id)" if splits else ""}
        {
        '''LEFT JOIN (SELECT patient_id, any_value(oracle_prob ORDER BY batch_id DESC) AS oracle_prob
                       FROM raw.oracle GROUP BY patient_id) o USING (patient_id)'''
        if oracle
        else ""
    }
        ORDER BY p.patient_id
    """
    return con.sql(query).df()


def split_ids(cohort: pd.DataFrame, split: str) -> list[str]:
    """Patient ids of one split, in patient order."""
    return cohort.loc[cohort["split"] == split, "patient_id"].tolist()


@dataclass
class TrainingData:
    """What every fit needs: aligned frames, labels and the train/validation ids."""

    frames: dict[str, pd.DataFrame]
    labels: pd.Series  # label by patient_id
    train_ids: list[str]
    val_ids: list[str]


def load_training_data(
    con: duckdb.DuckDBPyConnection, spec: CohortSpec, modalities: list[str] | None = None
) -> TrainingData:
    """Frames, labels and the deployed model's train / validation ids from ``profile.splits``."""
    cohort = load_cohort(con)
    return TrainingData(
        frames=load_frames(con, spec, modalities),
        labels=cohort.set_index("patient_id")["label"],
        train_ids=split_ids(cohort, "train"),
        val_ids=split_ids(cohort, "validation"),
    )
