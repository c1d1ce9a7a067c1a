"""Disclosure control: the one small-cell limit, count suppression and row previews.

Cells (subgroups, bins, event counts) under this many patients are suppressed
before anything leaves the warehouse; 11 is the usual limit of health-data
release rules (counts of 1-10 are never published). A count of 0 is published:
it reveals no patient.

Row-level previews (a table's first rows in Dagster metadata) are off unless
``FUSION_ROW_PREVIEW=pseudonymous``; then patient ids are replaced by keyed
pseudonyms and text columns are left out. Pure pandas; no dagster import.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable

import pandas as pd

SMALL_CELL_LIMIT = 11

PREVIEW_ENV = "FUSION_ROW_PREVIEW"
PSEUDONYM_KEY_ENV = "FUSION_PSEUDONYM_KEY"
PREVIEW_OFF = "off"
PREVIEW_PSEUDONYMOUS = "pseudonymous"
ID_COLUMNS = ("patient_id",)

# Without a configured key, pseudonyms are keyed by a secret of this process: stable
# within a run, unlinkable across runs, and never a plain hash of an MRN (which a
# dictionary of MRNs would reverse).
_PROCESS_KEY = secrets.token_bytes(32)


def is_small(count: object) -> bool:
    """Whether ``count`` is a publishable-only-if-suppressed cell: 1 to limit - 1."""
    try:
        value = float(count)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return 0 < value < SMALL_CELL_LIMIT


def suppressed_count(count: int) -> int | None:
    """``count`` as published: None when it is a small cell."""
    return None if is_small(count) else int(count)


def suppress_small_cells(
    frame: pd.DataFrame,
    counts: Iterable[str],
    derived: Iterable[str] = (),
    totals: dict[str, str] | None = None,
) -> pd.DataFrame:
    """A copy of ``frame`` where every row with a small count is blanked.

    ``counts``: count columns (patients, events); a row where any is small has all of
    them and every ``derived`` column (rates, percentages, metrics computed on those
    patients) set to missing. ``totals``: ``{count: total}`` pairs whose complement
    (``total - count``, e.g. non-events) must not be small either.
    """
    counts = [c for c in counts if c in frame.columns]
    derived = [c for c in derived if c in frame.columns]
    out = frame.copy()
    small = pd.Series(False, index=out.index)
    for column in counts:
        small |= out[column].map(is_small)
    for column, total in (totals or {}).items():
        if column in out.columns and total in out.columns:
            small |= (out[total] - out[column]).map(is_small)
    blanked = counts + derived
    if small.any() and blanked:
        out[blanked] = out[blanked].astype(object)
        out.loc[small, blanked] = None
    return out


def preview_mode() -> str:
    """The row-preview setting: ``off`` (default) or ``pseudonymous``."""
    mode = os.environ.get(PREVIEW_ENV, PREVIEW_OFF).strip().lower() or PREVIEW_OFF
    if mode not in (PREVIEW_OFF, PREVIEW_PSEUDONYMOUS):
        raise ValueError(
            f"{PREVIEW_ENV}={mode!r}: use {PREVIEW_OFF!r} (no row previews, the default) or "
            f"{PREVIEW_PSEUDONYMOUS!r} (pseudonymous ids, no text columns)"
        )
    return mode


def pseudonym(patient_id: object) -> str:
    """A keyed pseudonym of ``patient_id`` (HMAC-SHA256, ``FUSION_PSEUDONYM_KEY`` or a
    per-process secret)."""
    configured = os.environ.get(PSEUDONYM_KEY_ENV)
    key = configured.encode() if configured else _PROCESS_KEY
    digest = hmac.new(key, str(patient_id).encode(), hashlib.sha256).hexdigest()
    return f"psn-{digest[:16]}"


def pseudonymous_preview(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` fit for a preview: ids pseudonymized, text and nested columns left out."""
    keep = {}
    for column in frame.columns:
        series = frame[column]
        if column in ID_COLUMNS:
            keep[column] = series.map(pseudonym)
        elif (
            pd.api.types.is_numeric_dtype(series)
            or pd.api.types.is_bool_dtype(series)
            or pd.api.types.is_datetime64_any_dtype(series)
        ):
            keep[column] = series
    return pd.DataFrame(keep, index=frame.index)
