"""``tabular``: a table of numeric and categorical features (labs, vitals, demographics).

Landing: one column per feature (numbers as double, categories as text), several
rows per patient when timed.  Aligned: each feature's last non-empty value
before the index time (untimed: any one row) plus ``days_since_last``.
Preprocessing: standardized numerics with missing indicators and one-hot
categories; encoder: an MLP.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import numpy as np
import pandas as pd
import pyarrow as pa_arrow
from pydantic import model_validator

from fusion_assets.identifiers import reserved_problem
from fusion_assets.kinds.arrays import log_dropped, safe_mean, safe_std
from fusion_assets.kinds.base import (
    Arrays,
    ImportContext,
    LandingColumn,
    LandingPayload,
    ModalityKind,
    State,
    listed_or_all,
)
from fusion_assets.kinds.limits import MAX_TABULAR_FEATURES
from fusion_assets.kinds.options import (
    FeatureSelection,
    KindOptions,
    listed,
    refuse_reserved,
    spec_problem,
)
from fusion_assets.kinds.sql import days_since_last, is_numeric_type, raw_payload
from fusion_assets.warehouse.sql import qident, table_columns

if TYPE_CHECKING:
    import duckdb

    from fusion_assets.cohorts.spec import ModalitySpec
    from fusion_assets.models.config import EncoderConfig, FusionConfig
    from fusion_assets.models.encoders import Encoder

DAYS_SINCE_LAST = "days_since_last"


class TabularOptions(KindOptions):
    """``features``: a list of columns, a glob or ``regex:...``; absent: every column but the keys."""

    features: FeatureSelection = None

    @model_validator(mode="after")
    def _usable_features(self) -> TabularOptions:
        names = listed(self.features)
        refuse_reserved(names, RENAME, "features")
        if names and len(names) > MAX_TABULAR_FEATURES:
            raise spec_problem(*_too_many(len(names)), "features")
        return self


RENAME = "rename the column in the source or with a `query`"


def _too_many(n: int) -> tuple[str, str]:
    return (
        f"{n:,} tabular features, over the limit of {MAX_TABULAR_FEATURES:,} (alignment "
        "computes one aggregate per feature)",
        "select fewer features, or pack a wide numeric block as `kind: omics`",
    )


def _features(modality: ModalitySpec) -> list[str] | None:
    return listed(cast(TabularOptions, modality.options).features)


class TabularKind(ModalityKind):
    name = "tabular"
    Options = TabularOptions
    transform_columns = ("patient_id",)

    # ------------------------------------------------------------ import and landing
    def import_payload(self, ctx: ImportContext, modality: ModalitySpec) -> dict[str, str] | None:
        names = ctx.features(cast(TabularOptions, modality.options).features)
        if names is None:
            return None
        for c in names:  # a pattern may select what a list could not name (spec load checks lists)
            problem = reserved_problem(c, "column", RENAME)
            if problem:
                ctx.problem(f"feature column {problem[0]}", problem[1])
        if len(names) > MAX_TABULAR_FEATURES:
            ctx.problem(*_too_many(len(names)))
        if not ctx.flat_columns(names, "features"):
            return None
        ctx.empty_columns(names, "features")
        ctx.infinite_values(names)
        ctx.numbers_as_text(names)
        ctx.text_lengths(names)
        out = {}
        for c in names:
            typ = ctx.column_type(c)
            cast_to = "DOUBLE" if is_numeric_type(typ) or typ == "BOOLEAN" else "VARCHAR"
            out[c] = f"CAST({qident(c)} AS {cast_to})"
        return out

    def landing_payload(
        self, modality: ModalitySpec, arrow_schema: pa_arrow.Schema
    ) -> LandingPayload:
        columns = {}
        for name in listed_or_all(_features(modality), arrow_schema.names):
            typ = arrow_schema.field(name).type if name in arrow_schema.names else None
            is_text = typ is not None and (
                pa_arrow.types.is_string(typ) or pa_arrow.types.is_large_string(typ)
            )
            # Categorical features are text, everything else must be numeric.
            columns[name] = LandingColumn("string" if is_text else "numeric")
        return LandingPayload(columns)

    # ------------------------------------------------------------ alignment
    def aligned_sql(self, con: duckdb.DuckDBPyConnection, modality: ModalitySpec) -> str:
        feats = []
        for name, typ in raw_payload(con, modality, _features(modality)).items():
            col = qident(name)
            usable = f"{col} IS NOT NULL" + (f" AND NOT isnan({col})" if typ == "DOUBLE" else "")
            # NULL where unusable instead of FILTER (WHERE ...): DuckDB plans a filter per
            # aggregate, 72 s for 1,000 features against 2 s (both skip NULLs alike)
            if modality.timed:
                pick = f"arg_max({col}, CASE WHEN {usable} THEN event_time END)"
            else:
                pick = f"any_value(CASE WHEN {usable} THEN {col} END)"
            feats.append(f"{pick} AS {col}")
        feat_sql = "".join(f",\n               {f}" for f in feats)
        return f"""
        SELECT patient_id,
               {days_since_last(modality)}{feat_sql}
        FROM used
        GROUP BY patient_id"""

    def empty_aligned_columns(self, modality: ModalitySpec) -> str:
        return "patient_id VARCHAR, days_since_last DOUBLE"

    def has_days_since_last(self, modality: ModalitySpec) -> bool:
        return True

    # ------------------------------------------------------------ profile and drift
    def dimensionality(
        self, con: duckdb.DuckDBPyConnection, modality: ModalitySpec, table: str | None
    ) -> int:
        cols = table_columns(con, "aligned", modality.name) if table else {}
        return len([c for c in cols if c not in ("patient_id", DAYS_SINCE_LAST)])

    def drift_summaries(self, modality: ModalitySpec, columns: dict[str, str]) -> dict[str, str]:
        # every feature (and days_since_last) compared column by column
        return {c: qident(c) for c in columns if c != "patient_id"}

    # ------------------------------------------------------------ preprocessing
    def _columns(self, modality: ModalitySpec, frame: pd.DataFrame) -> list[str]:
        features = _features(modality)
        if features:
            if DAYS_SINCE_LAST in frame.columns and DAYS_SINCE_LAST not in features:
                features.append(DAYS_SINCE_LAST)
            return features
        return [c for c in frame.columns if c != "patient_id"]

    def fit(self, modality: ModalitySpec, rows: pd.DataFrame, config: EncoderConfig) -> State:
        numeric, categorical = [], []
        for column in self._columns(modality, rows):
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
        # a numeric column no training patient has a value in carries nothing (its missing
        # indicator is constant): dropped for this fit, e.g. a lab never measured in a fold
        observed = np.isfinite(values).any(axis=0)
        empty = [c for c, o in zip(numeric, observed, strict=True) if not o]
        log_dropped(modality.name, "numeric columns", empty, len(rows))
        numeric, values = [c for c in numeric if c not in empty], values[:, observed]
        categories = {}
        for column in categorical:
            counts = rows[column].dropna().astype(str).value_counts()
            top = counts.sort_index().sort_values(ascending=False, kind="stable")
            categories[column] = sorted(top.index[: config.tabular_max_categories].tolist())
        return {
            "numeric": numeric,
            "mean": safe_mean(values),
            "std": safe_std(values),
            "categories": categories,
        }

    def transform_rows(self, modality: ModalitySpec, state: State, rows: pd.DataFrame) -> Arrays:
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
                codes = pd.Index(cats).get_indexer(rows[column].astype("string"))
                known = codes >= 0  # unknown or missing category (-1) → all zeros
                onehot[np.flatnonzero(known), codes[known]] = 1.0
            blocks.append(onehot)
        # the un-imputed standardized values, for the reference model's native NaN handling
        raw_std = (raw - state["mean"]) / state["std"]
        return {
            "x": np.concatenate(blocks, axis=1).astype(np.float32),
            "x_nan": np.concatenate([raw_std, *blocks[2:]], axis=1).astype(np.float32),
        }

    # ------------------------------------------------------------ torch and reference
    def flat_width(self, modality: ModalitySpec, state: State) -> int:
        return 2 * len(state["numeric"]) + sum(len(c) for c in state["categories"].values())

    def build_encoder(self, modality: ModalitySpec, state: State, config: EncoderConfig) -> Encoder:
        from fusion_assets.models.encoders import TabularEncoder

        return TabularEncoder(self.flat_width(modality, state), config)

    def reference_features(
        self, state: State, arrays: Arrays, config: FusionConfig, screen: np.ndarray | None
    ) -> np.ndarray:
        return arrays["x_nan"]
