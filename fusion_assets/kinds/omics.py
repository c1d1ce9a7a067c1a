"""``omics``: one high-dimensional vector per patient, dense or sparse (``format``).

- dense: landing ``expression`` (a list of ``n_features`` floats), aligned
  ``values FLOAT[]``; log1p (non-negative data) and standardization; a narrow,
  L1-penalized bottleneck encoder.
- sparse: landing long format (``variant_id``, ``dosage``, one row per
  non-zero), aligned ``indices``/``values``; never densified: recurrent
  variants get an ``EmbeddingBag`` row, the rest share one OOV bucket.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, cast

import numpy as np
import pandas as pd
from pydantic import BeforeValidator, model_validator

from fusion_assets.kinds.arrays import log, log_dropped, safe_mean, safe_std, stack_lists
from fusion_assets.kinds.base import (
    Arrays,
    ImportContext,
    LandingColumn,
    LandingPayload,
    ListColumnRule,
    ModalityKind,
    State,
)
from fusion_assets.kinds.limits import MAX_DENSE_FEATURES, MAX_OMICS_FEATURES
from fusion_assets.kinds.options import (
    FeatureSelection,
    KindOptions,
    OptionalColumn,
    positive_int_at_most,
    spec_problem,
)
from fusion_assets.kinds.sql import latest_list_sql, max_list_length, scalar
from fusion_assets.warehouse.sql import qident

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa_arrow

    from fusion_assets.cohorts.spec import ModalitySpec
    from fusion_assets.models.config import EncoderConfig, FusionConfig
    from fusion_assets.models.encoders import Encoder

LANDING_LIST = "expression"  # dense landing payload
SPARSE_INDEX_COLUMN = "variant_id"
SPARSE_VALUE_COLUMN = "dosage"
SPARSE_OOV = 0  # sparse: the shared bucket of variants outside the fitted vocabulary
NFeatures = positive_int_at_most(
    MAX_OMICS_FEATURES,
    "a sparse vector of at most 10^7 features; screen the rest out",
    optional=True,
)


def _format(value: Any) -> Any:
    if value not in ("dense", "sparse"):
        raise spec_problem(
            f"{value!r} is not an omics format", "write `format: dense` or `format: sparse`"
        )
    return value


class OmicsOptions(KindOptions):
    """``format`` dense | sparse; ``n_features``; the source columns of each format."""

    format: Annotated[
        Literal["dense", "sparse"], BeforeValidator(_format, json_schema_input_type=str)
    ] = "dense"
    n_features: NFeatures = None
    # dense: wide columns packed into one vector, or a column already holding it
    features: FeatureSelection = None
    list_column: OptionalColumn = None
    # sparse: one row per non-zero
    index_column: OptionalColumn = None
    value_column: OptionalColumn = None

    @model_validator(mode="before")
    @classmethod
    def _count_listed_features(cls, data: Any) -> Any:
        # listed dense features fix n_features (unless the spec says otherwise)
        listed = isinstance(data, dict) and isinstance(data.get("features"), list)
        if listed and data.get("n_features") is None and data.get("format", "dense") == "dense":
            return {**data, "n_features": len(data["features"])}
        return data

    @model_validator(mode="after")
    def _dense_width(self) -> OmicsOptions:
        if self.format == "dense" and (self.n_features or 0) > MAX_DENSE_FEATURES:
            raise spec_problem(
                f"a dense omics vector of {self.n_features:,} features is over the limit of "
                f"{MAX_DENSE_FEATURES:,}",
                "screen the features (e.g. the most variable genes), or use `format: sparse`",
                "n_features",
            )
        return self


class OmicsFileOptions(OmicsOptions):
    """A spec file must say where each format's data are."""

    @model_validator(mode="after")
    def _source_columns(self) -> OmicsFileOptions:
        if self.format == "dense" and (self.features is None) == (self.list_column is None):
            raise spec_problem(
                "a dense omics modality needs exactly one of `features` (columns to pack into "
                "one vector) or `list_column` (a column already holding the vector)",
                "add `features: 'regex:...'` or `list_column: <column>`",
            )
        if self.format == "sparse":
            missing = [k for k in ("index_column", "value_column") if getattr(self, k) is None]
            if len(missing) == 1:
                raise spec_problem(
                    "missing", "name the column of the source that holds it", missing[0]
                )
            if missing:
                raise spec_problem(
                    "a sparse omics modality needs `index_column` and `value_column`",
                    "name the source columns holding each non-zero's feature index and value",
                )
        return self


def _options(modality: ModalitySpec) -> OmicsOptions:
    return cast(OmicsOptions, modality.options)


class _Omics(ModalityKind):
    """What both formats share: the name, the options, the choice of format."""

    name = "omics"
    Options = OmicsOptions
    FileOptions = OmicsFileOptions
    format_name: ClassVar[str]

    def for_modality(self, modality: ModalitySpec) -> ModalityKind:
        return SPARSE if _options(modality).format == "sparse" else DENSE

    def formats(self) -> tuple[ModalityKind, ...]:
        return (DENSE, SPARSE)

    @property
    def preprocessing_tag(self) -> str:
        return f"omics_{self.format_name}"


class DenseOmicsKind(_Omics):
    format_name = "dense"
    transform_columns = ("values",)

    def import_payload(self, ctx: ImportContext, modality: ModalitySpec) -> dict[str, str] | None:
        options = _options(modality)
        if options.list_column:
            return ctx.list_payload(
                options.list_column,
                "list_column",
                LANDING_LIST,
                options.n_features,
                "fix those vectors or `n_features`",
                max_length=MAX_DENSE_FEATURES,
            )
        names = ctx.features(options.features)
        if names is None or not ctx.numeric_only(names, "omics features"):
            return None
        if len(names) > MAX_DENSE_FEATURES:
            ctx.problem(
                f"`{ctx.key('features')}` selects {len(names):,} columns, over the limit of "
                f"{MAX_DENSE_FEATURES:,} for a dense omics vector",
                "screen the features before import, or use `format: sparse`",
            )
            return None
        n_features = options.n_features
        if n_features and n_features != len(names):
            ctx.problem(
                f"`{ctx.key('features')}` selects {len(names)} columns but `n_features` is {n_features}",
                "make them agree (or drop `n_features`)",
            )
        # empty columns, infinities and missing cells in one scan, whatever the width
        ctx.numeric_block(names, "features", "packed omics features")
        ctx.log(f"packing {len(names):,} columns into one vector per row")
        return {LANDING_LIST: "CAST([" + ", ".join(qident(c) for c in names) + "] AS FLOAT[])"}

    def landing_payload(
        self, modality: ModalitySpec, arrow_schema: pa_arrow.Schema
    ) -> LandingPayload:
        return LandingPayload(lists=(ListColumnRule(LANDING_LIST, _options(modality).n_features),))

    def aligned_sql(self, con: duckdb.DuckDBPyConnection, modality: ModalitySpec) -> str:
        return latest_list_sql(modality, LANDING_LIST, '"values"', with_days=False)

    def empty_aligned_columns(self, modality: ModalitySpec) -> str:
        return 'patient_id VARCHAR, "values" FLOAT[]'

    def dimensionality(
        self, con: duckdb.DuckDBPyConnection, modality: ModalitySpec, table: str | None
    ) -> int:
        return _options(modality).n_features or max_list_length(con, table, '"values"')

    def drift_summaries(self, modality: ModalitySpec, columns: dict[str, str]) -> dict[str, str]:
        return {"mean_value": 'list_avg("values")'}

    def fit(self, modality: ModalitySpec, rows: pd.DataFrame, config: EncoderConfig) -> State:
        values = stack_lists(rows["values"], _options(modality).n_features, modality.name, "values")
        # a feature no training patient has a value for is dropped for this fit
        observed = np.isfinite(values).any(axis=0)
        state: State = {}
        if not observed.all():
            log_dropped(modality.name, "features", np.flatnonzero(~observed), len(rows))
            state = {"source_width": int(values.shape[1]), "kept": np.flatnonzero(observed)}
            values = values[:, observed]
        # expression-like non-negative data is heavy tailed: log1p before standardizing
        log1p = bool(values.size and np.nanmin(values) >= 0)
        if log1p:
            values = np.log1p(values)
        return {
            "n_features": int(values.shape[1]),
            "log1p": log1p,
            "mean": safe_mean(values),
            "std": safe_std(values),
            **state,
        }

    def transform_rows(self, modality: ModalitySpec, state: State, rows: pd.DataFrame) -> Arrays:
        width = state.get("source_width", state["n_features"])
        values = stack_lists(rows["values"], width, modality.name, "values")
        if "kept" in state:
            values = values[:, state["kept"]]
        if state["log1p"]:
            values = np.log1p(np.maximum(values, 0.0))
        x = (values - state["mean"]) / state["std"]
        return {"x": np.nan_to_num(x, nan=0.0).astype(np.float32)}

    def fit_screen(
        self,
        modality: ModalitySpec,
        state: State,
        arrays: Arrays,
        labels: np.ndarray,
        config: EncoderConfig,
    ) -> State:
        k = config.omics_screen_top_k
        if k is None or state["n_features"] <= k:
            return state
        top = top_correlated(arrays["x"], labels.astype(float), k)
        kept = np.asarray(state.get("kept", np.arange(state["n_features"])))[top]
        width = state.get("source_width", state["n_features"])
        log.info(
            "%s: %d of %d features kept by |correlation| with the label in the %d training "
            "patients (screened inside this fold)",
            modality.name, k, state["n_features"], len(labels),
        )  # fmt: skip
        return {
            **state,
            "n_features": len(kept),
            "mean": state["mean"][top],
            "std": state["std"][top],
            "source_width": int(width),
            "kept": kept.astype(np.int64),
        }

    def build_encoder(self, modality: ModalitySpec, state: State, config: EncoderConfig) -> Encoder:
        from fusion_assets.models.encoders import DenseOmicsEncoder

        return DenseOmicsEncoder(state["n_features"], config)

    def flat_width(self, modality: ModalitySpec, state: State) -> int:
        return state["n_features"]

    def fit_reference_screen(
        self,
        state: State,
        arrays: Arrays,
        rows: np.ndarray,
        labels: np.ndarray,
        config: FusionConfig,
    ) -> np.ndarray | None:
        # the weighted quantile binning that class_weight triggers in scikit-learn costs
        # ~20 ms per feature: keep the columns most correlated with the label
        x = arrays["x"][rows]
        return top_correlated(x, labels[rows].astype(float), config.reference_dense_top_k)

    def reference_features(
        self, state: State, arrays: Arrays, config: FusionConfig, screen: np.ndarray | None
    ) -> np.ndarray:
        return arrays["x"] if screen is None else arrays["x"][:, screen]


def top_correlated(x: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` columns most correlated (in absolute value) with the labels."""
    if len(labels) < 2 or x.shape[1] <= k:
        return np.arange(min(k, x.shape[1]))
    xc = x - x.mean(0)
    yc = labels - labels.mean()
    score = np.abs(yc @ xc) / (np.sqrt((xc**2).sum(0)) + 1e-8)
    return np.sort(np.argsort(-score, kind="stable")[:k])


def _check_indices(ctx: ImportContext, idx: str, n_features: int | None) -> None:
    """Feature indices are whole numbers in 0 .. n_features - 1 (never rounded, never wrapped)."""
    col = qident(idx)
    checks = [
        (f"{col} IS NULL", "are empty", "give every row its feature index, or drop those rows"),
        (f"{col} <> round({col})", "are not whole numbers", "write whole feature indices"),
        (f"{col} < 0", "are negative", "count feature indices from 0"),
    ]
    if n_features:
        checks.append(
            (
                f"{col} >= {n_features}",
                f"are >= n_features ({n_features})",
                "fix them or `n_features`",
            )
        )
    for condition, what, fix in checks:
        n, rows, values = ctx.bad_rows(condition, col)
        if n:
            ctx.problem(
                f"index column {idx!r}: {n} of {ctx.n_rows} indices {what} (values {values}, data rows {rows})",
                fix,
            )


def _check_pairs(ctx: ImportContext, idx: str) -> None:
    """One value per (patient, feature) (and time, when timed): a repeat would be dropped silently."""
    keys = [ctx.id_column, idx] + ([ctx.time_column] if ctx.time_column else [])
    n_pairs, n_rows, examples = ctx.duplicates(keys)
    if n_pairs:
        ctx.problem(
            f"{n_pairs} (patient, index{', time' if ctx.time_column else ''}) pairs appear more than "
            f"once ({n_rows} rows; e.g. {examples})",
            "keep one value per patient and feature (sum or average the repeats in a `query`)",
        )


class SparseOmicsKind(_Omics):
    format_name = "sparse"

    def import_payload(self, ctx: ImportContext, modality: ModalitySpec) -> dict[str, str] | None:
        idx, val = _options(modality).index_column, _options(modality).value_column
        if not (ctx.need("index_column", idx) & ctx.need("value_column", val)):
            return None
        assert idx is not None and val is not None
        if not ctx.numeric_only([idx, val], "sparse omics index and value columns"):
            return None
        ctx.infinite_values([val])
        _check_indices(ctx, idx, _options(modality).n_features)
        _check_pairs(ctx, idx)
        return {
            SPARSE_INDEX_COLUMN: f"CAST({qident(idx)} AS INTEGER)",
            SPARSE_VALUE_COLUMN: f"CAST({qident(val)} AS DOUBLE)",
        }

    def landing_payload(
        self, modality: ModalitySpec, arrow_schema: pa_arrow.Schema
    ) -> LandingPayload:
        n = _options(modality).n_features
        index = LandingColumn(
            "integer", nullable=False, minimum=0, maximum=n - 1 if n else None, raw_type="INTEGER"
        )
        value = LandingColumn("numeric", nullable=False, raw_type="FLOAT")
        return LandingPayload({SPARSE_INDEX_COLUMN: index, SPARSE_VALUE_COLUMN: value})

    def aligned_sql(self, con: duckdb.DuckDBPyConnection, modality: ModalitySpec) -> str:
        idx, val = qident(SPARSE_INDEX_COLUMN), qident(SPARSE_VALUE_COLUMN)
        pick = f"arg_max({val}, event_time)" if modality.timed else f"first({val})"
        return f""",
        per_variant AS (  -- one dosage per variant (the latest when timed)
            SELECT patient_id, {idx} AS variant, {pick} AS dosage
            FROM used
            GROUP BY patient_id, {idx}
        )
        SELECT patient_id,
               CAST(list(variant ORDER BY variant) AS INTEGER[]) AS indices,
               CAST(list(dosage ORDER BY variant) AS FLOAT[]) AS "values"
        FROM per_variant
        GROUP BY patient_id"""

    def empty_aligned_columns(self, modality: ModalitySpec) -> str:
        return 'patient_id VARCHAR, indices INTEGER[], "values" FLOAT[]'

    def dimensionality(
        self, con: duckdb.DuckDBPyConnection, modality: ModalitySpec, table: str | None
    ) -> int:
        declared = _options(modality).n_features
        if declared or table is None:
            return declared or 0
        return int(scalar(con, f"SELECT coalesce(max(list_max(indices)) + 1, 0) FROM {table}"))

    def drift_summaries(self, modality: ModalitySpec, columns: dict[str, str]) -> dict[str, str]:
        return {"n_nonzero": "len(indices)", "mean_value": 'list_avg("values")'}

    def fit(self, modality: ModalitySpec, rows: pd.DataFrame, config: EncoderConfig) -> State:
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
            "n_features": int(_options(modality).n_features or 0),
            "kept_sorted": kept[sort].astype(np.int64),
            "kept_rank": sort.astype(np.int64),
            "vocab_size": int(len(kept) + 1),
            "scale": scale if scale > 0 else 1.0,
        }

    def transform(
        self, modality: ModalitySpec, state: State, rows: pd.DataFrame, present: np.ndarray
    ) -> Arrays:
        """Flat ``index``/``weight`` [nnz] with ``offsets``/``counts`` [n]: an EmbeddingBag input."""
        counts = np.zeros(len(present), dtype=np.int64)
        index_parts, weight_parts = [], []
        bags = zip(rows["indices"], rows["values"], strict=True) if present.any() else ()
        for i, (idx, val) in zip(np.flatnonzero(present), bags, strict=True):
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
        return _bags(state, raw, weight, counts)

    def build_encoder(self, modality: ModalitySpec, state: State, config: EncoderConfig) -> Encoder:
        from fusion_assets.models.encoders import SparseOmicsEncoder

        return SparseOmicsEncoder(state["vocab_size"], config)

    def flat_width(self, modality: ModalitySpec, state: State) -> int:
        return 0  # early fusion reads the bag (flat_bag_size), never a dense vector

    def flat_bag_size(self, state: State) -> int | None:
        return state["vocab_size"]

    def reference_features(
        self, state: State, arrays: Arrays, config: FusionConfig, screen: np.ndarray | None
    ) -> np.ndarray:
        k = min(config.reference_sparse_top_k, state["vocab_size"] - 1)
        return _sparse_top(arrays, k)


def _bags(state: State, raw: np.ndarray, weight: np.ndarray, counts: np.ndarray) -> Arrays:
    """Variant ids -> embedding rows (OOV bucket 0), per-patient offsets, scaled weights."""
    n = len(counts)
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


def _sparse_top(arrays: Arrays, k: int) -> np.ndarray:
    """Dense [n, k] of the k most frequent training variants (embedding rows 1..k)."""
    counts = arrays["counts"]
    rows = np.repeat(np.arange(len(counts)), counts)
    keep = (arrays["index"] >= 1) & (arrays["index"] <= k)
    out = np.zeros((len(counts), k), dtype=np.float32)
    np.add.at(out, (rows[keep], arrays["index"][keep] - 1), arrays["weight"][keep])
    return out


DENSE = DenseOmicsKind()
SPARSE = SparseOmicsKind()
