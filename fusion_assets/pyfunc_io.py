"""The MLflow pyfunc input format: one row per patient, a JSON column per modality.

``patient_id`` plus, per modality, the patient's aligned row as a JSON object
(null when the modality is absent), so a served model accepts exactly what the
warehouse's aligned tables hold. Pure pandas; no mlflow import.
"""

import json

import numpy as np
import pandas as pd


def rows_to_json(frames: dict[str, pd.DataFrame], patient_ids: list[str]) -> pd.DataFrame:
    """The pyfunc input for ``patient_ids``: a JSON column per modality (None if absent)."""
    out = pd.DataFrame({"patient_id": patient_ids})
    for name, frame in frames.items():
        indexed = frame.set_index("patient_id")
        column = []
        for pid in patient_ids:
            if pid not in indexed.index:
                column.append(None)
                continue
            record = {
                k: (v.tolist() if isinstance(v, np.ndarray) else v)
                for k, v in indexed.loc[pid].items()
            }
            column.append(json.dumps(record, default=_jsonable))
        out[name] = column
    return out


def input_example(frames: dict[str, pd.DataFrame], patient_ids: list[str]) -> pd.DataFrame:
    """The MLflow input example: ``len(patient_ids)`` synthetic rows in the pyfunc format.

    The example is stored with every registered version and leaves the warehouse, so it
    holds no patient's value: every modality present, each column a neutral value of
    its type (numbers 0, flags false, times 2000-01-01, text ``"example"``, arrays of
    the column's length filled with 0 or, for integer arrays such as sparse indices,
    0, 1, 2, ...). ``patient_ids`` only says how many rows (the ids are not written).
    """
    record = {name: _synthetic_record(frame) for name, frame in frames.items()}
    n = len(patient_ids)
    out = pd.DataFrame({"patient_id": [f"example-{i}" for i in range(n)]})
    for name, values in record.items():
        out[name] = [json.dumps(values, default=_jsonable)] * n
    return out


def _synthetic_record(frame: pd.DataFrame) -> dict[str, object]:
    """One aligned row of ``frame``'s columns and types, with no value taken from it."""
    return {column: _neutral(frame[column]) for column in frame.columns if column != "patient_id"}


def _neutral(series: pd.Series) -> object:
    if pd.api.types.is_bool_dtype(series):
        return False
    if pd.api.types.is_numeric_dtype(series):
        return 0
    if pd.api.types.is_datetime64_any_dtype(series):
        return pd.Timestamp("2000-01-01").isoformat()
    present = series.dropna()
    if present.empty:
        return None
    value = present.iloc[0]  # its type and length only
    if isinstance(value, np.ndarray | list | tuple):
        array = np.asarray(value)
        if np.issubdtype(array.dtype, np.integer):
            return list(range(len(array)))
        if np.issubdtype(array.dtype, np.number):
            return [0.0] * len(array)
        return [""] * len(array)
    if isinstance(value, bool | np.bool_):
        return False
    if isinstance(value, int | float | np.number):
        return 0
    if isinstance(value, pd.Timestamp):
        return pd.Timestamp("2000-01-01").isoformat()
    return "example"


def json_to_frames(model_input: pd.DataFrame, modalities: list[str]) -> dict[str, pd.DataFrame]:
    frames = {}
    for name in modalities:
        if name not in model_input.columns:
            continue
        rows = [
            {"patient_id": pid, **json.loads(payload)}
            for pid, payload in zip(model_input["patient_id"], model_input[name], strict=True)
            if isinstance(payload, str)
        ]
        frames[name] = pd.DataFrame(rows) if rows else pd.DataFrame({"patient_id": []})
    return frames


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return str(value)
