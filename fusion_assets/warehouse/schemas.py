"""Pandera schemas for a landing batch, built from the cohort spec.

The schemas cover the *scalar* columns of every landing file (keys, times,
labels, numeric and categorical payloads).  List payloads (image pixels, dense
omics vectors) are checked for presence and type here too, but their lengths and
element values are checked in :mod:`fusion_assets.warehouse.listchecks` with
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

PATIENT_KEY = "patient_id"
EVENT_TIME = "event_time"
KEY_COLUMNS = frozenset({PATIENT_KEY, EVENT_TIME, "batch_id"})

# Default payload column names per kind (data-contracts §1); a spec can override
# them with the ``column`` option.
DEFAULT_LIST_COLUMN = {"omics": "expression", "image": "pixels"}
SPARSE_INDEX_COLUMN = "variant_id"
SPARSE_VALUE_COLUMN = "dosage"
TEXT_COLUMN = "text"


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


# ------------------------------------------------------------- list columns
@dataclass(frozen=True)
class ListColumnRule:
    """A list payload column and its required length (None: any length)."""

    column: str
    length: int | None


@dataclass(frozen=True)
class FileSchema:
    """Everything ingest checks for one landing file."""

    table: str  # raw table name: "patients", "oracle" or the modality name
    frame: pa.DataFrameSchema  # scalar columns, validated with pandera
    lists: tuple[ListColumnRule, ...] = field(default_factory=tuple)
    modality: ModalitySpec | None = None

    @property
    def scalar_columns(self) -> list[str]:
        return list(self.frame.columns)


# ------------------------------------------------------------ file schemas
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


def list_column(spec: ModalitySpec) -> str:
    """Name of the list payload column of a dense-omics or image modality."""
    return spec.option("column", DEFAULT_LIST_COLUMN[spec.kind])


def list_length(spec: ModalitySpec) -> int | None:
    """Required list length from the spec options (None when unspecified)."""
    if spec.kind == "image":
        h, w, c = spec.option("height"), spec.option("width"), spec.option("channels", 1)
        return int(h) * int(w) * int(c) if h and w else None
    n = spec.option("n_features")
    return int(n) if n else None


def omics_format(spec: ModalitySpec) -> str:
    return spec.option("format", "dense")


def payload_columns(spec: ModalitySpec, arrow_schema: pa_arrow.Schema | None = None) -> list[str]:
    """Payload columns of a tabular or timeseries modality.

    ``features`` / ``channels`` from the spec when given, else every column of
    the file except the keys (so a cohort can add features without a spec edit).
    """
    key = "features" if spec.kind == "tabular" else "channels"
    listed = spec.option(key)
    if listed:
        return list(listed)
    if arrow_schema is None:
        return []
    return [n for n in arrow_schema.names if n not in KEY_COLUMNS]


def modality_schema(spec: ModalitySpec, arrow_schema: pa_arrow.Schema) -> FileSchema:
    """Schema of ``<modality>.parquet`` for the modality's kind and options."""
    cols: dict[str, pa.Column] = {PATIENT_KEY: _col("string", nullable=False)}
    if spec.timed:
        cols[EVENT_TIME] = _col("datetime", nullable=False)
    lists: list[ListColumnRule] = []
    if spec.kind == "tabular":
        for name in payload_columns(spec, arrow_schema):
            typ = arrow_schema.field(name).type if name in arrow_schema.names else None
            is_text = typ is not None and (
                pa_arrow.types.is_string(typ) or pa_arrow.types.is_large_string(typ)
            )
            # Categorical features are text, everything else must be numeric.
            cols[name] = _col("string" if is_text else "numeric")
    elif spec.kind == "timeseries":
        for name in payload_columns(spec, arrow_schema):
            cols[name] = _col("numeric")
    elif spec.kind == "omics" and omics_format(spec) == "sparse":
        n = spec.option("n_features")
        index_checks = [pa.Check.in_range(0, int(n) - 1)] if n else [pa.Check.ge(0)]
        cols[SPARSE_INDEX_COLUMN] = _col("integer", *index_checks, nullable=False)
        cols[SPARSE_VALUE_COLUMN] = _col("numeric", nullable=False)
    elif spec.kind in ("omics", "image"):
        lists.append(ListColumnRule(list_column(spec), list_length(spec)))
    elif spec.kind == "text":
        cols[TEXT_COLUMN] = _col("string")
    frame = pa.DataFrameSchema(cols, name=spec.name)
    return FileSchema(spec.name, frame, tuple(lists), spec)
