"""Disclosure control: the one small-cell limit, count suppression and row previews.

Cells (subgroups, bins, event counts) under this many patients are suppressed
before anything leaves the warehouse; 11 is the usual limit of health-data
release rules (counts of 1-10 are never published). A count of 0 is published:
it reveals no patient. Everything that publishes an aggregate about patients
(Dagster metadata, the report and its model cards, plots, MLflow artifacts)
goes through this module:

* a count of 1 to limit - 1 is shown as ``<11`` (:func:`count_text`);
* a rate or percentage is shown only when its numerator and denominator are
  publishable counts (:func:`rate_publishable`): 12 % of 60 would reveal 7;
* sensitivity is a rate over events, specificity over non-events: each is shown
  only when its denominator is not small;
* secondary suppression (:func:`partition_suppression`): cells that partition a
  published total (the levels of one subgroup type, the availability patterns)
  are suppressed further until no suppressed cell can be recovered by
  subtraction: never exactly one suppressed cell, and the suppressed cells'
  sum (which the total reveals) not small either.

Row-level previews (a table's first rows in Dagster metadata) are off unless
``FUSION_ROW_PREVIEW=pseudonymous``; then patient ids are replaced by keyed
pseudonyms and text columns are left out. Pure pandas; no dagster import.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable, Sequence

import numpy as np
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


def is_small(count: object, limit: int = SMALL_CELL_LIMIT) -> bool:
    """Whether ``count`` is a publishable-only-if-suppressed cell: 1 to limit - 1."""
    try:
        value = float(count)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return 0 < value < limit


SECONDARY_TEXT = "suppressed"  # a cell hidden so that a small one cannot be recovered


def count_text(count: object, hidden: bool = False, limit: int = SMALL_CELL_LIMIT) -> str:
    """``count`` as printed: ``<11`` when small, ``suppressed`` when ``hidden`` (secondary
    suppression), the number otherwise; a missing count is ``–``."""
    if count is None or pd.isna(count):  # type: ignore[arg-type]
        return "–"
    if is_small(count, limit):
        return f"<{limit}"
    return SECONDARY_TEXT if hidden else str(int(count))  # type: ignore[arg-type]


def rate_publishable(numerator: object, denominator: object, limit: int = SMALL_CELL_LIMIT) -> bool:
    """Whether ``numerator / denominator`` may be shown: neither count nor the complement
    ``denominator - numerator`` is small (each is recoverable from the rate and the other)."""
    try:
        num, den = float(numerator), float(denominator)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    if not (np.isfinite(num) and np.isfinite(den)) or den <= 0:
        return False
    return not (is_small(den, limit) or is_small(num, limit) or is_small(den - num, limit))


def published_share(share: float | None, total: int, limit: int = SMALL_CELL_LIMIT) -> float | None:
    """``share`` (of ``total`` patients) if it may be shown, else None: the count it stands
    for (``share * total``) and its complement must not be small."""
    if share is None or not np.isfinite(share):
        return None
    return float(share) if rate_publishable(round(share * total), total, limit) else None


def denominator_publishable(denominator: object, limit: int = SMALL_CELL_LIMIT) -> bool:
    """Whether a rate over ``denominator`` patients may be shown (sensitivity over events,
    specificity over non-events): the denominator is a known, not small count."""
    try:
        value = float(denominator)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return bool(np.isfinite(value)) and value > 0 and not is_small(value, limit)


def partition_suppression(
    counts: Sequence[float],
    total: float | None = None,
    primary: Sequence[bool] | None = None,
    others: Sequence[tuple[Sequence[float], float | None]] = (),
    limit: int = SMALL_CELL_LIMIT,
) -> list[bool]:
    """Which cells of a partition of a published ``total`` to hide.

    ``counts``: the cells (patients per level; ``total`` their published sum, default the
    sum); ``primary``: cells hidden anyway (default: the small ones); ``others``: further
    partitions of the same cells with their published totals (events, non-events; a
    cell may be missing there). Cells are added, smallest non-zero first, while exactly
    one cell is hidden or, in any partition, the hidden cells' sum (the total minus the
    shown cells) is small.
    """
    values = np.asarray(counts, dtype=float)
    hidden = (
        np.array([is_small(v, limit) for v in values], dtype=bool)
        if primary is None
        else np.asarray(primary, dtype=bool).copy()
    )
    partitions = [(values, np.nansum(values) if total is None else float(total))]
    for cells, cells_total in others:
        cells = np.asarray(cells, dtype=float)
        partitions.append((cells, np.nansum(cells) if cells_total is None else float(cells_total)))

    def recoverable() -> bool:
        if not hidden.any():
            return False
        if hidden.sum() == 1:
            return True
        return any(is_small(t - np.nansum(c[~hidden]), limit) for c, t in partitions)

    while recoverable():
        candidates = np.flatnonzero(~hidden & (values > 0))
        if not len(candidates):
            break
        hidden[candidates[np.argmin(values[candidates])]] = True
    return hidden.tolist()


SUBGROUP_KEYS = ["subgroup_type", "subgroup"]


def subgroup_disclosure(table: pd.DataFrame, limit: int = SMALL_CELL_LIMIT) -> pd.DataFrame:
    """What of each subgroup's counts may be printed, from a table with one row per
    strategy x subgroup (``subgroup_type``, ``subgroup``, ``n``, ``events``; the
    ``all`` row is the published total).

    One row per subgroup: ``n_text`` and ``events_text`` as printed (:func:`count_text`),
    ``n_hidden`` / ``events_hidden`` (small or secondarily suppressed: the levels of a
    subgroup type partition the test patients, its events and its non-events), and
    ``sens_ok`` / ``spec_ok``: sensitivity (over events) and specificity (over
    non-events) only where that denominator is not small.
    """
    first = table.drop_duplicates(SUBGROUP_KEYS)[[*SUBGROUP_KEYS, "n", "events"]]
    first = first.reset_index(drop=True)
    everyone = first[first["subgroup_type"] == "all"]
    total_n = float(everyone["n"].iloc[0]) if len(everyone) else None
    total_events = float(everyone["events"].iloc[0]) if len(everyone) else None
    parts = []
    for kind, g in first.groupby("subgroup_type", sort=False):
        n = g["n"].astype(float).to_numpy()
        events = g["events"].astype(float).to_numpy()
        non_events = n - events
        if kind == "all":
            n_hidden = [is_small(v, limit) for v in n]
        else:
            n_hidden = partition_suppression(n, total_n, limit=limit)
        primary = [
            h or not np.isfinite(e) or is_small(e, limit) or is_small(ne, limit)
            for h, e, ne in zip(n_hidden, events, non_events, strict=True)
        ]
        if kind == "all":
            events_hidden = primary
        else:
            other_totals = (
                [(events, total_events), (non_events, total_n - total_events)]
                if total_n is not None and total_events is not None and np.isfinite(total_events)
                else [(events, None), (non_events, None)]
            )
            events_hidden = partition_suppression(n, total_n, primary, other_totals, limit)
        parts.append(
            g.assign(
                n_hidden=n_hidden,
                events_hidden=events_hidden,
                n_text=[count_text(v, h, limit) for v, h in zip(n, n_hidden, strict=True)],
                events_text=[
                    count_text(e, h, limit) if np.isfinite(e) else count_text(None)
                    for e, h in zip(events, events_hidden, strict=True)
                ],
                sens_ok=[denominator_publishable(e, limit) for e in events],
                spec_ok=[denominator_publishable(ne, limit) for ne in non_events],
            )
        )
    columns = ["n_hidden", "events_hidden", "n_text", "events_text", "sens_ok", "spec_ok"]
    out = (
        pd.concat(parts, ignore_index=True)
        if parts
        else first.reindex(columns=[*first.columns, *columns])
    )
    return out.set_index(SUBGROUP_KEYS)


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
