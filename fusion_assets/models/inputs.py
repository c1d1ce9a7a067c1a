"""Aligned DataFrames (data-contracts §3) → arrays, with preprocessing fitted on train only.

Each modality is handled by its kind (``fusion_assets.kinds``): a ``fit`` that
learns plain, serializable state (dicts of numbers and numpy arrays, tagged
with the kind's ``preprocessing_tag``) from the training patients, and a
``transform`` that turns a frame into arrays aligned to a patient order. A
patient missing from a modality's frame does not have that modality: its
``present`` bit is False and its rows are zeros.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from fusion_assets.cohorts.spec import CohortSpec, ModalitySpec
from fusion_assets.kinds import State, kind_of, preprocessing_kind
from fusion_assets.kinds.base import ModalityKind
from fusion_assets.models.config import EncoderConfig


@dataclass
class PreparedInputs:
    """Preprocessed inputs for an ordered list of patients.

    ``present[i, j]`` says whether patient ``i`` has modality ``modality_names[j]``
    (every modality of the spec, in spec order). ``arrays[name]`` holds the kind
    specific arrays of the modalities a model uses (see ``transform_modality``).
    """

    patient_ids: list[str]
    modality_names: list[str]
    present: np.ndarray
    arrays: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.patient_ids)


# --------------------------------------------------------------------------- helpers


def _rows_for(
    frame: pd.DataFrame | None, patient_ids: Sequence[str], modality: str
) -> tuple[np.ndarray, pd.DataFrame]:
    """(present bool [n], the frame's rows of the present patients in patient order)."""
    if frame is None or len(frame) == 0:
        return np.zeros(len(patient_ids), dtype=bool), pd.DataFrame()
    if "patient_id" not in frame.columns:
        raise ValueError(f"Aligned frame of modality {modality!r} has no 'patient_id' column.")
    ids = frame["patient_id"].astype(str)
    if ids.duplicated().any():
        raise ValueError(
            f"Aligned frame of modality {modality!r} has {int(ids.duplicated().sum())} "
            "duplicated patient_id rows; the aligned format has one row per patient."
        )
    position = pd.Index(ids).get_indexer([str(p) for p in patient_ids])
    present = position >= 0
    return present, frame.iloc[position[present]]


# --------------------------------------------------------------------------- dispatch


def fit_modality(
    modality: ModalitySpec,
    frame: pd.DataFrame | None,
    train_ids: Sequence[str],
    config: EncoderConfig,
) -> State:
    """Fit one modality's preprocessing on the training patients that have it."""
    present, rows = _rows_for(frame, train_ids, modality.name)
    if not present.any():
        raise ValueError(
            f"Modality {modality.name!r}: none of the {len(train_ids)} training patients has "
            "it, so its preprocessing cannot be fitted. Drop it from the spec or the run."
        )
    kind = kind_of(modality)
    return {"kind": kind.preprocessing_tag, **kind.fit(modality, rows, config)}


def screen_modality(
    modality: ModalitySpec,
    state: State,
    frame: pd.DataFrame | None,
    train_ids: Sequence[str],
    labels: np.ndarray,
    config: EncoderConfig,
) -> State:
    """The kind's feature screen (``fit_screen``) on the training patients that have the
    modality: it sees their labels only, so a fold's screen never sees its test labels."""
    kind = kind_of(modality)
    if type(kind).fit_screen is ModalityKind.fit_screen:
        return state  # the kind screens nothing: no need to transform the training rows
    present, arrays = transform_modality(modality, state, frame, train_ids)
    rows = {name: a[present] for name, a in arrays.items()}
    return kind.fit_screen(modality, state, rows, np.asarray(labels)[present], config)


def transform_modality(
    modality: ModalitySpec, state: State, frame: pd.DataFrame | None, patient_ids: Sequence[str]
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(present [n], arrays aligned to ``patient_ids``; absent patients are zeros).

    The arrays are the kind's: tabular ``x`` [n, F] and ``x_nan`` (NaN kept); omics
    dense ``x`` [n, D]; omics sparse ``index``/``weight`` [nnz] with ``offsets``/``counts``
    [n]; image ``x`` [n, C, H, W]; timeseries ``values``/``mask`` [n, T, C]; text
    ``tokens`` [n, L].
    """
    present, rows = _rows_for(frame, patient_ids, modality.name)
    kind = kind_of(modality)
    if preprocessing_kind(state) is not kind:
        raise ValueError(
            f"Modality {modality.name!r} is of kind {kind.preprocessing_tag!r} but its fitted "
            f"preprocessing is {state.get('kind')!r}: the model was fitted for another spec."
        )
    return present, kind.transform(modality, state, rows, present)


def presence(
    spec: CohortSpec, frames: dict[str, pd.DataFrame], patient_ids: Sequence[str]
) -> np.ndarray:
    """Bool [n, n_modalities] in spec order: does each patient have each modality."""
    columns = [_rows_for(frames.get(name), patient_ids, name)[0] for name in spec.modality_names]
    return np.stack(columns, axis=1) if columns else np.zeros((len(patient_ids), 0), dtype=bool)


def fit_preprocessing(
    spec: CohortSpec,
    frames: dict[str, pd.DataFrame],
    train_ids: Sequence[str],
    config: EncoderConfig,
    modalities: Sequence[str] | None = None,
) -> dict[str, State]:
    """Fitted preprocessing per modality (all of the spec's unless ``modalities`` given)."""
    names = list(modalities) if modalities is not None else spec.modality_names
    return {
        name: fit_modality(spec.modality(name), frames.get(name), train_ids, config)
        for name in names
    }


def prepare(
    spec: CohortSpec,
    preprocessing: dict[str, State],
    frames: dict[str, pd.DataFrame],
    patient_ids: Sequence[str],
) -> PreparedInputs:
    """Apply fitted preprocessing once; frames may hold other patients or lack some."""
    ids = [str(p) for p in patient_ids]
    arrays = {}
    for name, state in preprocessing.items():
        _, arrays[name] = transform_modality(spec.modality(name), state, frames.get(name), ids)
    return PreparedInputs(ids, spec.modality_names, presence(spec, frames, ids), arrays)
