"""Pandera schemas for a landing batch, built from the cohort spec.

The schemas cover the *scalar* columns of every landing file (keys, times,
labels, numeric and categorical payloads).  List payloads (image pixels, dense
omics vectors) are checked for presence and type here too, but their lengths and
element values are checked in :mod:`fusion_assets.warehouse.validate` with
vectorised DuckDB over the parquet file, because pandas would hold millions of
Python lists.

Dtype checks are written as dataframe-level checks on the dtype *family*
(integer, numeric, string, datetime) rather than pandera's exact dtypes, so a
label written as int8 or an ``age`` written as int32 is accepted while a label
written as text is not.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow as pa_arrow

from fusion_assets.cohorts.spec import ModalitySpec
from fusion_assets.kinds import LandingColumn, ListColumnRule, kind_of
from fusion_assets.kinds.base import EVENT_TIME, PATIENT_KEY


# ---------------------------------------------------------------- dtype checks
def _dtype_check(family: str) -> pa.Check:
    """A check that the column's dtype belongs to ``family``.

    Returns one boolean for the whole column, so pandera reports it once; the
    ingest report counts every row of the file as failing.
    """
    tests = {
        "integer": pd.api.types.is_integer_dtype,
        "numeric": lambda d: pd.api.types.is_numeric_dtype(d) and not pd.api.types.is_bool_dtype(d),
        "string": lambda d: pd.api.types.is_string_dtype(d) or pd.api.types.is_object_dtype(d),
        "datetime": pd.api.types.is_datetime64_any_dtype,
    }
    test = tests[family]
    # An all-null column has no type of its own (arrow "null"); it fits any family.
    return pa.Check(lambda s: bool(test(s.dtype) or s.isna().all()), name=f"dtype_is_{family}")


def _finite() -> pa.Check:
    """Numeric values must be finite; nulls are handled by ``nullable``."""

    def check(s: pd.Series) -> pd.Series:
        if not pd.api.types.is_numeric_dtype(s.dtype):
            return pd.Series(True, index=s.index)
        values = s.to_numpy(dtype="float64", na_value=np.nan)
        return pd.Series(~np.isinf(values), index=s.index)

    return pa.Check(check, name="finite")


def _integral() -> pa.Check:
    """Whole numbers (an age read back as float because of nulls is fine)."""

    def check(s: pd.Series) -> pd.Series:
        if not pd.api.types.is_numeric_dtype(s.dtype):
            return pd.Series(True, index=s.index)
        values = s.to_numpy(dtype="float64", na_value=np.nan)
        return pd.Series(np.isnan(values) | (values == np.round(values)), index=s.index)

    return pa.Check(check, name="integral")


def _strings_only() -> pa.Check:
    """Object columns must hold strings (or nulls), not mixed Python objects."""

    def check(s: pd.Series) -> pd.Series:
        if not pd.api.types.is_object_dtype(s.dtype):
            return pd.Series(True, index=s.index)
        return s.map(lambda v: v is None or isinstance(v, str) or v != v).astype(bool)

    return pa.Check(check, name="values_are_strings")


def _col(family: str, *checks: pa.Check, nullable: bool = True, unique: bool = False) -> pa.Column:
    extra = [_finite()] if family in ("integer", "numeric") else []
    if family == "string":
        extra = [_strings_only()]
    return pa.Column(
        None,
        checks=[_dtype_check(family), *extra, *checks],
        nullable=nullable,
        unique=unique,
        required=True,
    )


def _landing_col(column: LandingColumn) -> pa.Column:
    """The pandera column of a kind's scalar payload column."""
    low, high = column.minimum, column.maximum
    if low is not None and high is not None:
        checks = [pa.Check.in_range(low, high)]
    elif low is not None:
        checks = [pa.Check.ge(low)]
    else:
        checks = [pa.Check.le(high)] if high is not None else []
    return _col(column.family, *checks, nullable=column.nullable)


# ------------------------------------------------------------- file schemas
@dataclass(frozen=True)
class FileSchema:
    """Everything ingest checks for one landing file."""

    table: str  # raw table name: "patients", "oracle" or the modality name
    frame: pa.DataFrameSchema  # scalar columns, validated with pandera
    lists: tuple[ListColumnRule, ...] = field(default_factory=tuple)
    modality: ModalitySpec | None = None
    raw_types: dict[str, str] = field(default_factory=dict)  # fixed DuckDB types of payload columns

    @property
    def scalar_columns(self) -> list[str]:
        return list(self.frame.columns)


def patients_schema() -> FileSchema:
    """``patients.parquet``: one row per patient with index time and label."""
    frame = pa.DataFrameSchema(
        {
            PATIENT_KEY: _col("string", nullable=False, unique=True),
            "index_time": _col("datetime", nullable=False),
            "label": _col("integer", pa.Check.isin([0, 1]), nullable=False),
            "sex": _col("string", pa.Check.isin(["F", "M"])),
            "age": _col("numeric", pa.Check.in_range(0, 130), _integral()),
            "site": _col("string"),
        },
        name="patients",
    )
    return FileSchema("patients", frame)


def oracle_schema() -> FileSchema:
    """``oracle.parquet`` (synthetic cohorts): Bayes-optimal probabilities."""
    frame = pa.DataFrameSchema(
        {
            PATIENT_KEY: _col("string", nullable=False, unique=True),
            "oracle_prob": _col("numeric", pa.Check.in_range(0.0, 1.0), nullable=False),
        },
        name="oracle",
    )
    return FileSchema("oracle", frame)


def modality_schema(spec: ModalitySpec, arrow_schema: pa_arrow.Schema) -> FileSchema:
    """Schema of ``<modality>.parquet``: the keys, then the kind's payload."""
    cols: dict[str, pa.Column] = {PATIENT_KEY: _col("string", nullable=False)}
    if spec.timed:
        cols[EVENT_TIME] = _col("datetime", nullable=False)
    payload = kind_of(spec).landing_payload(spec, arrow_schema)
    cols.update({name: _landing_col(c) for name, c in payload.columns.items()})
    raw_types = {n: c.raw_type for n, c in payload.columns.items() if c.raw_type}
    frame = pa.DataFrameSchema(cols, name=spec.name)
    return FileSchema(spec.name, frame, payload.lists, spec, raw_types)
