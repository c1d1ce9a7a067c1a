"""Dagster metadata for warehouse tables and data frames: native tables, rounded numbers.

Everything here is published (the event log, the UI, a shared PostgreSQL): no table
preview unless ``FUSION_ROW_PREVIEW=pseudonymous`` (then pseudonymous ids, no text),
and every table's count columns pass the small-cell rule (fusion_assets/disclosure.py).
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass
from typing import Any

import dagster as dg
import duckdb
import pandas as pd

from fusion_assets.cohorts.deployment_profile import DeploymentProfile, mix_fingerprint
from fusion_assets.disclosure import (
    PREVIEW_PSEUDONYMOUS,
    count_text,
    is_small,
    partition_suppression,
    preview_mode,
    pseudonymous_preview,
    suppress_small_cells,
)
from fusion_assets.warehouse.contracts import column_description
from fusion_assets.warehouse.sql import table_fingerprint, table_summary

PREVIEW_ROWS = 5
DIGITS = 3
# List payloads (images, expression vectors) are far too wide to preview.
_LIST_PREVIEW_CHARS = 40
_PREVIEW_COLUMNS = 12
_SCHEMA_COLUMNS = 200
# Columns of metadata tables that count patients or events: a row where one is a small
# cell has its counts and every number computed on those patients (rates, percentages,
# metrics) blanked. ``total - events`` (the non-events) is a count too.
COUNT_COLUMNS = (
    "n",
    "n_patients",
    "patients",
    "events",
    "n_events",
    "n_positive",
    "non_events",
    "count",
    "n_train",
    "n_validation",
    "n_test",
    "n_labelled",
)
# ... and every column named <part>_n, <part>_events (the fold plan's train_n, test_events).
COUNT_SUFFIXES = ("_n", "_events")
_COMPLEMENTS = {"events": "n", "n_events": "n_patients", "n_positive": "n"}


def table_metadata(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, Any]:
    """Row count, column schema (with descriptions) and, when the setting allows, a small
    pseudonymous preview of ``schema.table``."""
    show = preview_mode() == PREVIEW_PSEUDONYMOUS
    n_rows, columns, preview = table_summary(con, table, PREVIEW_ROWS if show else 0)
    schema = dg.TableSchema(
        columns=[
            dg.TableColumn(name=n, type=t, description=column_description(table, n))
            for n, t in columns[:_SCHEMA_COLUMNS]
        ]
    )
    metadata = {
        "table": dg.MetadataValue.text(table),
        "dagster/column_schema": schema,
        "n_columns": dg.MetadataValue.int(len(columns)),
    }
    # The rows of an aligned or profile table are patients (of a modality, a batch): a
    # small row count is a small cell, published as '<11' only.
    if is_small(n_rows):
        metadata["row_count"] = dg.MetadataValue.text(count_text(n_rows))
    else:
        metadata["dagster/row_count"] = dg.MetadataValue.int(n_rows)
    if show:
        shown = pseudonymous_preview(preview).iloc[:, :_PREVIEW_COLUMNS]
        metadata["preview"] = frame_table(shown.map(_short))
    return metadata


def table_version(
    con: duckdb.DuckDBPyConnection, table: str, where: str = "", params: list | None = None
) -> dg.DataVersion:
    """The table's content fingerprint as a Dagster data version: a re-materialization
    that changes nothing keeps its version, so downstream assets are not marked stale."""
    return dg.DataVersion(table_fingerprint(con, table, where, params))


def frame_table(
    frame: pd.DataFrame, digits: int = DIGITS, partition_of: int | None = None
) -> dg.MetadataValue:
    """A data frame as a native Dagster table (sortable in the UI), numbers rounded, small
    cells suppressed (``COUNT_COLUMNS``); ``partition_of``: the rows partition a published
    total of that many patients (patterns of a cohort), so secondary suppression applies."""
    frame = disclosed(frame, partition_of)
    columns = [str(c) for c in frame.columns]
    schema = dg.TableSchema(
        columns=[
            dg.TableColumn(n, _column_type(frame[c]))
            for n, c in zip(columns, frame.columns, strict=True)
        ]
    )
    records = [
        dg.TableRecord({n: _cell(v, digits) for n, v in zip(columns, row, strict=True)})
        for row in frame.itertuples(index=False, name=None)
    ]
    return dg.MetadataValue.table(records=records, schema=schema)


def disclosed(frame: pd.DataFrame, partition_of: int | None = None) -> pd.DataFrame:
    """``frame`` as it may be published: rows with a small count have their counts and
    every float column (rates, percentages, metrics of those patients) blanked; with
    ``partition_of``, also the rows that would give a blanked ``n`` back by subtraction."""
    columns = [str(c) for c in frame.columns]
    counts = [c for c in columns if c in COUNT_COLUMNS or c.endswith(COUNT_SUFFIXES)]
    if not counts:
        return frame
    rates = [c for c in frame.columns if pd.api.types.is_float_dtype(frame[c])]
    totals = dict(_COMPLEMENTS)
    totals.update({c: f"{c[: -len('_events')]}_n" for c in counts if c.endswith("_events")})
    out = suppress_small_cells(frame, counts, rates, totals=totals)
    if partition_of is not None and "n" in frame.columns and len(frame):
        hidden = partition_suppression(
            frame["n"].to_numpy(dtype=float), partition_of, primary=out["n"].isna().to_numpy()
        )
        blanked = [*counts, *rates]
        out[blanked] = out[blanked].astype(object)
        out.loc[hidden, blanked] = None
    return out


def rounded(value: float, digits: int = DIGITS) -> dg.MetadataValue:
    return dg.MetadataValue.float(round(float(value), digits))


def _column_type(series: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(series):
        return "bool"
    if pd.api.types.is_integer_dtype(series):
        return "int"
    if pd.api.types.is_float_dtype(series):
        return "float"
    return "string"


def _cell(value: Any, digits: int) -> Any:
    """Table cells must be str, int, float or bool; NaN and None become an empty cell."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return round(value, digits)
    if hasattr(value, "item"):  # numpy scalars
        return _cell(value.item(), digits)
    return str(value)


def _short(value: Any) -> Any:
    if isinstance(value, bool | int | float) or value is None:
        return value
    text = str(value)
    return text if len(text) <= _LIST_PREVIEW_CHARS else text[:_LIST_PREVIEW_CHARS] + "…"


def png_markdown(png: bytes, alt: str) -> dg.MetadataValue:
    """A PNG shown inline in the Dagster UI's metadata panel (a chart has no native type)."""
    encoded = base64.b64encode(png).decode("ascii")
    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{encoded})")


def _latest_metadata(context: dg.AssetExecutionContext, key: dg.AssetKey, name: str):
    """The value of ``name`` in the latest materialization of ``key`` (None: no such entry)."""
    event = context.instance.get_latest_materialization_event(key)
    if event is None or event.asset_materialization is None:
        return None
    value = event.asset_materialization.metadata.get(name)
    return value.value if value is not None else None


def scored_versions(context: dg.AssetExecutionContext, predictions: dg.AssetKey) -> dict[str, int]:
    """Strategy -> the registered version the latest ``predictions`` materialization scored
    (its ``model_versions`` metadata): what promotion weighs and the report names."""
    value = _latest_metadata(context, predictions, "model_versions")
    return {k: int(v) for k, v in (value or {}).items()}


# The predictions step records the deployment profile its stress tests ran toward.
STRESS_PROFILE = "deployment_profile"


def stress_profile_metadata(
    profile: DeploymentProfile | None, modalities: list[str]
) -> dg.MetadataValue:
    """The profile as given (a batch named, its measured mix left in the warehouse) and the
    resolved mix's fingerprint; ``{"profile": null}`` without a profile."""
    if profile is None:
        return dg.MetadataValue.json({"profile": None, "fingerprint": None})
    return dg.MetadataValue.json(
        {
            "profile": profile.as_given().model_dump(exclude_none=True),
            "source": profile.source(),
            "fingerprint": mix_fingerprint(profile, modalities),
        }
    )


@dataclass(frozen=True)
class StressProfile:
    """What the latest predictions materialization recorded of its deployment profile."""

    given: DeploymentProfile | None  # as given: a batch still to be measured
    fingerprint: str | None


def stress_profile(
    context: dg.AssetExecutionContext, predictions: dg.AssetKey
) -> StressProfile | None:
    """The profile the latest ``predictions`` materialization's stress tests ran toward; None
    for a materialization from before it was recorded."""
    value = _latest_metadata(context, predictions, STRESS_PROFILE)
    if value is None:
        return None
    given = value.get("profile")
    return StressProfile(
        DeploymentProfile(**given) if given is not None else None, value.get("fingerprint")
    )
