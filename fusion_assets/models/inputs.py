"""Aligned DataFrames (data-contracts §3) → arrays, with preprocessing fitted on train only.

Each modality is handled by its *input kind* (the spec's kind, with omics split
into dense and sparse). For every kind there is a ``fit`` that learns plain,
serializable state (dicts of numbers and numpy arrays) from the training
patients, and a ``transform`` that turns a frame into arrays aligned to a
patient order. A patient missing from a modality's frame does not have that
modality: its ``present`` bit is False and its rows are zeros.

Sparse omics are never densified: they become a flat index / weight list with
per-patient offsets, the input format of ``nn.EmbeddingBag``.
"""

from __future__ import annotations

import math
import re
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from fusion_assets.cohorts.spec import CohortSpec, ModalitySpec
from fusion_assets.models.config import EncoderConfig

PAD_TOKEN = 0  # text: padding id, ignored by the bag-of-embeddings
OOV_TOKEN = 1  # text: any token outside the fitted vocabulary
N_SPECIAL_TOKENS = 2
SPARSE_OOV = 0  # sparse omics: the shared bucket of variants outside the fitted vocabulary

State = dict[str, Any]


def input_kind(modality: ModalitySpec) -> str:
    """The preprocessing / encoder family of a modality: its kind, omics split by format."""
    if modality.kind == "omics":
        fmt = modality.option("format", "dense")
        if fmt not in ("dense", "sparse"):
            raise ValueError(
                f"Modality {modality.name!r}: omics option 'format' must be 'dense' or "
                f"'sparse', got {fmt!r}."
            )
        return f"omics_{fmt}"
    return modality.kind


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


def _stack_lists(column: pd.Series, length: int | None, modality: str, name: str) -> np.ndarray:
    """An object column of equal-length lists / arrays → float32 [rows, length]."""
    if len(column) == 0:
        return np.zeros((0, length or 0), dtype=np.float32)
    rows = [np.asarray(v, dtype=np.float32).ravel() for v in column]
    lengths = {len(r) for r in rows}
    if length is not None and lengths != {length}:
        raise ValueError(
            f"Modality {modality!r}, column {name!r}: expected lists of length {length}, "
            f"found lengths {sorted(lengths)[:5]} over {len(rows)} rows."
        )
    if length is None and len(lengths) != 1:
        raise ValueError(
            f"Modality {modality!r}, column {name!r}: lists have differing lengths "
            f"{sorted(lengths)[:5]} over {len(rows)} rows."
        )
    return np.stack(rows)


def _safe_std(x: np.ndarray, axis: Any = 0) -> np.ndarray:
    with warnings.catch_warnings():
        # An all-missing column (e.g. days_since_last of an untimed modality) is
        # expected: its NaN statistic is replaced below.
        warnings.simplefilter("ignore", RuntimeWarning)
        std = np.nanstd(x, axis=axis) if x.size else np.ones(1)
    return np.where(np.isfinite(std) & (std > 1e-8), std, 1.0).astype(np.float32)


def _safe_mean(x: np.ndarray, axis: Any = 0) -> np.ndarray:
    if not x.size:
        return np.zeros(1, dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-missing columns: see _safe_std
        mean = np.nanmean(x, axis=axis) if np.isfinite(x).any() else np.zeros(x.shape[1:])
    return np.where(np.isfinite(mean), mean, 0.0).astype(np.float32)


def _fill(n: int, present: np.ndarray, rows: np.ndarray, dtype: Any = np.float32) -> np.ndarray:
    """Scatter the present patients' rows into a zero array of all ``n`` patients."""
    out = np.zeros((n, *rows.shape[1:]), dtype=dtype)
    out[present] = rows
    return out


# --------------------------------------------------------------------------- tabular


def _tabular_columns(modality: ModalitySpec, frame: pd.DataFrame) -> list[str]:
    features = modality.option("features")
    if features:
        columns = list(features)
        if "days_since_last" in frame.columns and "days_since_last" not in columns:
            columns.append("days_since_last")
        return columns
    return [c for c in frame.columns if c != "patient_id"]


def _fit_tabular(modality: ModalitySpec, rows: pd.DataFrame, config: EncoderConfig) -> State:
    numeric, categorical = [], []
    for column in _tabular_columns(modality, rows):
        if column not in rows.columns:
            raise ValueError(
                f"Modality {modality.name!r}: feature column {column!r} named in the spec is "
                f"not in the aligned frame (columns: {list(rows.columns)[:10]}...)."
            )
        series = rows[column]
        if pd.api.types.is_numeric_dtype(series) or series.isna().all():
            numeric.append(column)
        else:
            categorical.append(column)
    values = rows[numeric].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    categories = {}
    for column in categorical:
        counts = rows[column].dropna().astype(str).value_counts()
        top = counts.sort_index().sort_values(ascending=False, kind="stable")
        categories[column] = sorted(top.index[: config.tabular_max_categories].tolist())
    return {
        "numeric": numeric,
        "mean": _safe_mean(values),
        "std": _safe_std(values),
        "categories": categories,
    }


def _transform_tabular(
    modality: ModalitySpec, state: State, rows: pd.DataFrame
) -> dict[str, np.ndarray]:
    numeric = state["numeric"]
    raw = np.full((len(rows), len(numeric)), np.nan)
    for j, column in enumerate(numeric):
        if column in rows.columns:
            raw[:, j] = pd.to_numeric(rows[column], errors="coerce").to_numpy(np.float64)
    missing = ~np.isfinite(raw)
    standardized = (raw - state["mean"]) / state["std"]
    # NaN → 0 (the training mean) plus an indicator, so "not measured" stays visible
    standardized[missing] = 0.0
    blocks = [standardized, missing.astype(np.float64)]
    for column, cats in state["categories"].items():
        onehot = np.zeros((len(rows), len(cats)))
        if column in rows.columns and cats:
            codes = pd.Categorical(rows[column].astype("string"), categories=cats).codes
            known = codes >= 0  # unknown or missing category → all zeros
            onehot[np.flatnonzero(known), codes[known]] = 1.0
        blocks.append(onehot)
    # the un-imputed standardized values, for the reference model's native NaN handling
    raw_std = (raw - state["mean"]) / state["std"]
    return {
        "x": np.concatenate(blocks, axis=1).astype(np.float32),
        "x_nan": np.concatenate([raw_std, *blocks[2:]], axis=1).astype(np.float32),
    }


# --------------------------------------------------------------------------- omics


def _fit_omics_dense(modality: ModalitySpec, rows: pd.DataFrame, config: EncoderConfig) -> State:
    values = _stack_lists(rows["values"], modality.option("n_features"), modality.name, "values")
    # expression-like non-negative data is heavy tailed: log1p before standardizing
    log1p = bool(values.size and np.nanmin(values) >= 0)
    if log1p:
        values = np.log1p(values)
    return {
        "n_features": int(values.shape[1]),
        "log1p": log1p,
        "mean": _safe_mean(values),
        "std": _safe_std(values),
    }


def _transform_omics_dense(
    modality: ModalitySpec, state: State, rows: pd.DataFrame
) -> dict[str, np.ndarray]:
    values = _stack_lists(rows["values"], state["n_features"], modality.name, "values")
    if state["log1p"]:
        values = np.log1p(np.maximum(values, 0.0))
    x = (values - state["mean"]) / state["std"]
    return {"x": np.nan_to_num(x, nan=0.0).astype(np.float32)}


def _fit_omics_sparse(modality: ModalitySpec, rows: pd.DataFrame, config: EncoderConfig) -> State:
    if len(rows):
        indices = np.concatenate(
            [np.unique(np.asarray(v, dtype=np.int64)) for v in rows["indices"]]
        )
        weights = np.concatenate([np.asarray(v, dtype=np.float32) for v in rows["values"]])
    else:
        indices, weights = np.zeros(0, np.int64), np.zeros(0, np.float32)
    variant, frequency = np.unique(indices, return_counts=True)
    # only recurrent variants get their own embedding row: private variants seen in one
    # or two patients carry no learnable signal, only noise and parameters
    min_count = max(config.sparse_min_count, math.ceil(config.sparse_min_frequency * len(rows)))
    recurrent = frequency >= min_count
    variant, frequency = variant[recurrent], frequency[recurrent]
    # most frequent first; ties by variant id so the vocabulary is deterministic
    order = np.lexsort((variant, -frequency))[: config.sparse_max_vocab]
    kept = variant[order]  # rank r ↔ embedding row r + 1 (row 0 is the OOV bucket)
    sort = np.argsort(kept)
    scale = float(np.mean(np.abs(weights))) if weights.size else 1.0
    return {
        "n_features": int(modality.option("n_features", 0) or 0),
        "kept_sorted": kept[sort].astype(np.int64),
        "kept_rank": sort.astype(np.int64),
        "vocab_size": int(len(kept) + 1),
        "scale": scale if scale > 0 else 1.0,
    }


def _transform_omics_sparse(
    modality: ModalitySpec, state: State, rows: pd.DataFrame, present: np.ndarray
) -> dict[str, np.ndarray]:
    n = len(present)
    counts = np.zeros(n, dtype=np.int64)
    index_parts, weight_parts = [], []
    for i, (idx, val) in zip(
        np.flatnonzero(present), zip(rows["indices"], rows["values"], strict=True), strict=True
    ):
        idx = np.asarray(idx, dtype=np.int64)
        val = np.asarray(val, dtype=np.float32)
        if len(idx) != len(val):
            raise ValueError(
                f"Modality {modality.name!r}, patient row {i}: 'indices' has {len(idx)} "
                f"entries but 'values' has {len(val)}."
            )
        index_parts.append(idx)
        weight_parts.append(val)
        counts[i] = len(idx)
    raw = np.concatenate(index_parts) if index_parts else np.zeros(0, np.int64)
    weight = np.concatenate(weight_parts) if weight_parts else np.zeros(0, np.float32)
    kept = state["kept_sorted"]
    pos = np.clip(np.searchsorted(kept, raw), 0, max(len(kept) - 1, 0))
    known = (kept[pos] == raw) if len(kept) else np.zeros(len(raw), dtype=bool)
    index = np.where(known, state["kept_rank"][pos] + 1, SPARSE_OOV) if len(kept) else raw * 0
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    # the OOV bucket gets the *mean* dosage of a patient's rare variants, not the sum:
    # hundreds of private variants would otherwise swamp the bag with their count
    owner = np.repeat(np.arange(n), counts)
    rare = index == SPARSE_OOV
    n_rare = np.bincount(owner[rare], minlength=n)
    weight = np.where(rare, weight / np.maximum(n_rare[owner], 1), weight)
    return {
        "index": index.astype(np.int64),
        "weight": (weight / state["scale"]).astype(np.float32),
        "offsets": offsets,
        "counts": counts,
    }


# --------------------------------------------------------------------------- image


def _image_shape(modality: ModalitySpec) -> tuple[int, int, int]:
    try:
        return (
            int(modality.option("channels", 1)),
            int(modality.options["height"]),
            int(modality.options["width"]),
        )
    except KeyError as missing:
        raise ValueError(
            f"Image modality {modality.name!r} needs spec options 'height' and 'width'."
        ) from missing


def _image_pixels(modality: ModalitySpec, rows: pd.DataFrame) -> np.ndarray:
    c, h, w = _image_shape(modality)
    flat = _stack_lists(rows["pixels"], c * h * w, modality.name, "pixels")
    # the contract stores height × width × channels row-major; torch wants [C, H, W]
    return flat.reshape(-1, h, w, c).transpose(0, 3, 1, 2)


def _fit_image(modality: ModalitySpec, rows: pd.DataFrame, config: EncoderConfig) -> State:
    pixels = _image_pixels(modality, rows)
    return {"mean": _safe_mean(pixels, axis=(0, 2, 3)), "std": _safe_std(pixels, axis=(0, 2, 3))}


def _transform_image(
    modality: ModalitySpec, state: State, rows: pd.DataFrame
) -> dict[str, np.ndarray]:
    pixels = _image_pixels(modality, rows)
    x = (pixels - state["mean"][None, :, None, None]) / state["std"][None, :, None, None]
    return {"x": np.nan_to_num(x, nan=0.0).astype(np.float32)}


# --------------------------------------------------------------------------- timeseries


def _series_shape(modality: ModalitySpec) -> tuple[int, int]:
    channels = modality.option("channels")
    n_bins = modality.option("n_bins")
    if not channels or not n_bins:
        raise ValueError(
            f"Timeseries modality {modality.name!r} needs spec options 'channels' and 'n_bins'."
        )
    return int(n_bins), len(channels)


def _series_arrays(modality: ModalitySpec, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    t, c = _series_shape(modality)
    values = _stack_lists(rows["values"], t * c, modality.name, "values").reshape(-1, t, c)
    mask = _stack_lists(rows["mask"], t * c, modality.name, "mask").reshape(-1, t, c)
    mask = (mask > 0).astype(np.float32)
    return np.nan_to_num(values, nan=0.0) * mask, mask


def _fit_timeseries(modality: ModalitySpec, rows: pd.DataFrame, config: EncoderConfig) -> State:
    values, mask = _series_arrays(modality, rows)
    # channel statistics over observed bins only: unobserved bins are zeros, not data
    observed = np.where(mask > 0, values, np.nan).reshape(-1, values.shape[-1])
    return {"mean": _safe_mean(observed), "std": _safe_std(observed)}


def _transform_timeseries(
    modality: ModalitySpec, state: State, rows: pd.DataFrame
) -> dict[str, np.ndarray]:
    values, mask = _series_arrays(modality, rows)
    standardized = (values - state["mean"]) / state["std"] * mask
    return {"values": standardized.astype(np.float32), "mask": mask}


# --------------------------------------------------------------------------- text

_WORD = re.compile(r"[a-z0-9]+")


def tokenize(text: str) -> list[str]:
    """Lowercase word split (letters and digits); no external tokenizer."""
    return _WORD.findall(str(text).lower()) if isinstance(text, str) else []


def _fit_text(modality: ModalitySpec, rows: pd.DataFrame, config: EncoderConfig) -> State:
    document_frequency: Counter[str] = Counter()
    for text in rows["text"] if len(rows) else []:
        document_frequency.update(set(tokenize(text)))
    ranked = sorted(
        (w for w, df in document_frequency.items() if df >= config.text_min_df),
        key=lambda w: (-document_frequency[w], w),
    )
    return {"vocab": ranked[: config.text_vocab_size], "max_tokens": config.text_max_tokens}


def _transform_text(
    modality: ModalitySpec, state: State, rows: pd.DataFrame
) -> dict[str, np.ndarray]:
    lookup = {w: i + N_SPECIAL_TOKENS for i, w in enumerate(state["vocab"])}
    max_tokens = state["max_tokens"]
    tokens = np.full((len(rows), max_tokens), PAD_TOKEN, dtype=np.int64)
    for i, text in enumerate(rows["text"] if len(rows) else []):
        # notes are oldest first: keep the most recent tokens
        ids = [lookup.get(w, OOV_TOKEN) for w in tokenize(text)][-max_tokens:]
        tokens[i, : len(ids)] = ids
    return {"tokens": tokens}


def text_vocab_size(state: State) -> int:
    """Embedding rows a text modality needs (vocabulary plus padding and OOV)."""
    return len(state["vocab"]) + N_SPECIAL_TOKENS


# --------------------------------------------------------------------------- dispatch

_FIT = {
    "tabular": _fit_tabular,
    "omics_dense": _fit_omics_dense,
    "omics_sparse": _fit_omics_sparse,
    "image": _fit_image,
    "timeseries": _fit_timeseries,
    "text": _fit_text,
}


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
    return {"kind": input_kind(modality), **_FIT[input_kind(modality)](modality, rows, config)}


def transform_modality(
    modality: ModalitySpec, state: State, frame: pd.DataFrame | None, patient_ids: Sequence[str]
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(present [n], arrays aligned to ``patient_ids``; absent patients are zeros).

    Arrays per kind: tabular ``x`` [n, F] and ``x_nan`` (NaN kept); omics dense ``x``
    [n, D]; omics sparse ``index``/``weight`` [nnz] with ``offsets``/``counts`` [n];
    image ``x`` [n, C, H, W]; timeseries ``values``/``mask`` [n, T, C]; text
    ``tokens`` [n, L].
    """
    present, rows = _rows_for(frame, patient_ids, modality.name)
    n = len(patient_ids)
    kind = state["kind"]
    if kind == "omics_sparse":
        return present, _transform_omics_sparse(modality, state, rows, present)
    if not present.any():
        # still produce correctly shaped zero arrays: transform an empty frame by shape
        rows = None
    transform = {
        "tabular": _transform_tabular,
        "omics_dense": _transform_omics_dense,
        "image": _transform_image,
        "timeseries": _transform_timeseries,
        "text": _transform_text,
    }[kind]
    if rows is None:
        arrays = transform(modality, state, _empty_rows(modality, kind))
    else:
        arrays = transform(modality, state, rows)
    dtype_of = {name: a.dtype for name, a in arrays.items()}
    return present, {name: _fill(n, present, a, dtype_of[name]) for name, a in arrays.items()}


def _empty_rows(modality: ModalitySpec, kind: str) -> pd.DataFrame:
    """A zero-row frame with the columns a kind's transform reads."""
    columns = {
        "tabular": ["patient_id"],
        "omics_dense": ["values"],
        "image": ["pixels"],
        "timeseries": ["values", "mask"],
        "text": ["text"],
    }[kind]
    return pd.DataFrame({c: pd.Series([], dtype=object) for c in columns})


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
