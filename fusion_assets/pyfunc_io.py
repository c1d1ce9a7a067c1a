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
    """The MLflow input example: real rows of ``patient_ids`` under placeholder ids.

    The example is stored with the model, and no patient identifier may leave
    the warehouse.
    """
    example = rows_to_json(frames, patient_ids)
    example["patient_id"] = [f"example-{i}" for i in range(len(example))]
    return example


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
