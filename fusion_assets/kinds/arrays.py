"""Numpy helpers the kinds' preprocessing shares."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger("fusion_assets.kinds")


def stack_lists(column: pd.Series, length: int | None, modality: str, name: str) -> np.ndarray:
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


def safe_std(x: np.ndarray, axis: Any = 0) -> np.ndarray:
    with warnings.catch_warnings():
        # An all-missing column (e.g. days_since_last of an untimed modality) is
        # expected: its NaN statistic is replaced below.
        warnings.simplefilter("ignore", RuntimeWarning)
        std = np.nanstd(x, axis=axis) if x.size else np.ones(1)
    return np.where(np.isfinite(std) & (std > 1e-8), std, 1.0).astype(np.float32)


def safe_mean(x: np.ndarray, axis: Any = 0) -> np.ndarray:
    if not x.size:
        return np.zeros(1, dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-missing columns: see safe_std
        mean = np.nanmean(x, axis=axis) if np.isfinite(x).any() else np.zeros(x.shape[1:])
    return np.where(np.isfinite(mean), mean, 0.0).astype(np.float32)


def fill_rows(n: int, present: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Scatter the present patients' rows into a zero array of all ``n`` patients."""
    out = np.zeros((n, *rows.shape[1:]), dtype=rows.dtype)
    out[present] = rows
    return out


def log_dropped(modality: str, what: str, dropped: Sequence[Any], n_rows: int) -> None:
    """One log line naming what a fit left out for having no value in its training rows."""
    if len(dropped):
        shown = ", ".join(str(d) for d in list(dropped)[:10])
        more = f" and {len(dropped) - 10} more" if len(dropped) > 10 else ""
        log.info(
            "%s: %d %s with no observed value in the %d training rows dropped for this fit: %s%s",
            modality, len(dropped), what, n_rows, shown, more,
        )  # fmt: skip
