"""``batch_evaluation``: the current fused models, re-evaluated on one new landing batch.

No retraining. For every strategy whose fused model is in the model store, the
batch's patients are scored and, on those with a label, performance is
measured per availability-pattern subgroup (n, events, AUROC; cells under 11
patients suppressed). Drift against the training split is measured once per
batch (it does not depend on the model):
- the availability-pattern mix (total variation distance, chi-square test) and
  each modality's availability rate;
- per-modality feature distributions by PSI. Tabular features are compared
  column by column. List payloads are summarized per patient by cheap scalars
  computed inside DuckDB (no 2,000-wide vectors leave the warehouse for the
  training split): the vector mean for omics and images, the number of
  non-zeros for sparse omics, the observed-bin share and the mean observed value
  for time series, the note count and text length for notes. They catch level,
  scale and density shifts, not a rotation inside the vector; that is the
  price of a tick-cheap check;
- per strategy, the predicted-probability distribution against the same
  strategy's predictions on the test split (``eval.predictions``).

Everything goes to ``eval.batch_metrics`` (long format, one transaction,
re-running a batch replaces its rows), the asset metadata and MLflow. The asset
check ``batch_evaluation_within_reference`` warns when a strategy's AUROC on the
batch is below the lower end of its reference interval (``eval.subgroup_metrics``,
subgroup ``all``) or a drift measure passes its threshold.
"""

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import dagster as dg
import duckdb
import numpy as np
import pandas as pd

from fusion_assets.cohorts import CohortSpec, ModalitySpec
from fusion_assets.metrics.classification import auroc
from fusion_assets.metrics.drift import (
    DEFAULT_PSI_THRESHOLD,
    DEFAULT_TV_THRESHOLD,
    categorical_psi,
    category_shift,
    psi,
)
from resources import ModelStoreResource, TrackingResource, WarehouseResource

CHECK_NAME = "batch_evaluation_within_reference"
# Kept in step with fusion_assets.assets.fusion (not imported: it imports torch at load time).
FUSION_STORE = "fusion"
STRATEGIES: tuple[str, ...] = ("early", "intermediate", "late", "attention", "reference")
RESULT_TABLE = "eval.batch_metrics"
DATA_STRATEGY = "data"  # drift rows: a property of the batch, not of a model

_RESULT_DDL = f"""
CREATE SCHEMA IF NOT EXISTS eval;
CREATE TABLE IF NOT EXISTS {RESULT_TABLE} (
    batch_id VARCHAR, strategy VARCHAR, kind VARCHAR, metric VARCHAR, subgroup VARCHAR,
    value DOUBLE, suppressed BOOLEAN, reference DOUBLE, reference_low DOUBLE,
    reference_high DOUBLE, flagged BOOLEAN, evaluated_at TIMESTAMP, dagster_run_id VARCHAR
)"""
_COLUMNS = [
    "batch_id",
    "strategy",
    "kind",
    "metric",
    "subgroup",
    "value",
    "suppressed",
    "reference",
    "reference_low",
    "reference_high",
    "flagged",
]


class BatchEvaluationConfig(dg.Config):
    """Thresholds of the re-evaluation and its check."""

    psi_threshold: float = DEFAULT_PSI_THRESHOLD
    pattern_tv_threshold: float = DEFAULT_TV_THRESHOLD
    suppress_below: int = 11
    psi_bins: int = 10
    strategies: list[str] = list(STRATEGIES)


@dataclass
class _Rows:
    """Accumulates the long-format result rows."""

    batch_id: str
    rows: list[dict] = field(default_factory=list)

    def add(self, strategy: str, kind: str, metric: str, subgroup: str, value: float, **extra):
        row = {
            "batch_id": self.batch_id,
            "strategy": strategy,
            "kind": kind,
            "metric": metric,
            "subgroup": subgroup,
            "value": None if value is None or _nan(value) else float(value),
            "suppressed": False,
            "reference": None,
            "reference_low": None,
            "reference_high": None,
            "flagged": False,
        }
        row.update(extra)
        self.rows.append(row)

    def frame(self) -> pd.DataFrame:
        table = pd.DataFrame(self.rows, columns=_COLUMNS)
        # Explicit dtypes: an empty or all-NULL column must still filter and write cleanly.
        return table.astype(
            {
                "value": "float64",
                "reference": "float64",
                "reference_low": "float64",
                "reference_high": "float64",
                "suppressed": "bool",
                "flagged": "bool",
            }
        )


def _nan(value: float) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
            [schema, table],
        ).fetchone()[0]
    )


# --- reading the batch and the reference -----------------------------------------------


def _summary_sql(modality: ModalitySpec, columns: dict[str, str]) -> dict[str, str]:
    """Scalar summaries (name -> SQL expression) of one aligned modality, by kind."""
    if modality.kind == "tabular":
        return {c: f'"{c}"' for c in columns if c != "patient_id"}
    summaries: dict[str, str] = {}
    if "days_since_last" in columns:
        summaries["days_since_last"] = "days_since_last"
    if modality.kind == "omics" and "indices" in columns:
        summaries["n_nonzero"] = "len(indices)"
        summaries["mean_value"] = 'list_avg("values")'
    elif modality.kind == "omics":
        summaries["mean_value"] = 'list_avg("values")'
    elif modality.kind == "image":
        summaries["mean_pixel"] = "list_avg(pixels)"
        summaries["sd_pixel"] = "list_stddev_samp(pixels)"
    elif modality.kind == "timeseries":
        summaries["n_samples"] = "n_samples"
        summaries["observed_share"] = "list_avg(mask)"
        summaries["mean_observed"] = 'list_sum("values") / nullif(list_sum(mask), 0)'
    elif modality.kind == "text":
        summaries["n_notes"] = "n_notes"
        summaries["text_length"] = "length(text)"
    return summaries


@dataclass
class _Inputs:
    batch: pd.DataFrame  # patient_id, label, pattern, <modality> bools
    reference: pd.DataFrame | None  # the same for the training split, or None
    frames: dict[str, pd.DataFrame]  # aligned.<modality> rows of the batch's patients
    summaries: dict[str, tuple[pd.DataFrame, pd.DataFrame | None]]  # modality -> (batch, train)
    reference_predictions: pd.DataFrame | None  # strategy, prob (test split)
    reference_auroc: pd.DataFrame | None  # strategy, auroc, ci_low, ci_high


def _presence(
    con: duckdb.DuckDBPyConnection, spec: CohortSpec, ids_sql: str, params: list
) -> pd.DataFrame:
    """patient_id, label, one bool per modality and the pattern, for the patients of ids_sql."""
    present = ", ".join(
        f'(patient_id IN (SELECT patient_id FROM aligned."{m}")) AS "{m}"'
        if _exists(con, "aligned", m)
        else f'FALSE AS "{m}"'
        for m in spec.modality_names
    )
    df = con.execute(
        f"SELECT patient_id, label, {present} FROM aligned.patients "
        f"WHERE patient_id IN ({ids_sql}) ORDER BY patient_id",
        params,
    ).df()
    names = spec.modality_names
    df["pattern"] = [
        "+".join(m for m in names if row[m]) or "none" for row in df[names].to_dict("records")
    ]
    return df


def _read_inputs(
    con: duckdb.DuckDBPyConnection, spec: CohortSpec, batch_id: str, strategies: Iterable[str]
) -> _Inputs:
    batch_ids_sql = "SELECT patient_id FROM raw.patients WHERE batch_id = ?"
    batch = _presence(con, spec, batch_ids_sql, [batch_id])
    has_splits = _exists(con, "profile", "splits")
    train_ids_sql = "SELECT patient_id FROM profile.splits WHERE split = 'train'"
    reference = _presence(con, spec, train_ids_sql, []) if has_splits else None

    frames: dict[str, pd.DataFrame] = {}
    summaries: dict[str, tuple[pd.DataFrame, pd.DataFrame | None]] = {}
    for modality in spec.modalities:
        if not _exists(con, "aligned", modality.name):
            continue
        table = f'aligned."{modality.name}"'
        frames[modality.name] = con.execute(
            f"SELECT * FROM {table} WHERE patient_id IN ({batch_ids_sql})", [batch_id]
        ).df()
        columns = dict(
            con.execute(f"SELECT column_name, column_type FROM (DESCRIBE {table})").fetchall()
        )
        select = ", ".join(
            f'{sql} AS "{name}"' for name, sql in _summary_sql(modality, columns).items()
        )
        if not select:
            continue
        batch_summary = con.execute(
            f"SELECT {select} FROM {table} WHERE patient_id IN ({batch_ids_sql})", [batch_id]
        ).df()
        train_summary = (
            con.execute(f"SELECT {select} FROM {table} WHERE patient_id IN ({train_ids_sql})").df()
            if has_splits
            else None
        )
        summaries[modality.name] = (batch_summary, train_summary)

    names = list(strategies)
    reference_predictions = None
    if _exists(con, "eval", "predictions"):
        reference_predictions = con.execute(
            "SELECT strategy, prob FROM eval.predictions WHERE split = 'test' AND strategy IN "
            f"({', '.join('?' for _ in names)})",
            names,
        ).df()
    reference_auroc = None
    if _exists(con, "eval", "subgroup_metrics"):
        # The report names the interval auroc_ci_low/high; older tables ci_low/high.
        columns = {row[0] for row in con.execute("DESCRIBE eval.subgroup_metrics").fetchall()}
        low, high = (
            ("auroc_ci_low", "auroc_ci_high")
            if "auroc_ci_low" in columns
            else ("ci_low", "ci_high")
        )
        reference_auroc = con.execute(
            f"SELECT strategy, auroc, {low} AS ci_low, {high} AS ci_high "
            "FROM eval.subgroup_metrics WHERE subgroup = 'all'"
        ).df()
        reference_auroc = reference_auroc.drop_duplicates("strategy").set_index("strategy")
    return _Inputs(batch, reference, frames, summaries, reference_predictions, reference_auroc)


# --- the measurements ---------------------------------------------------------------------


def _drift(inputs: _Inputs, spec: CohortSpec, config: BatchEvaluationConfig, rows: _Rows) -> None:
    if inputs.reference is None or inputs.reference.empty:
        return
    shift = category_shift(inputs.reference["pattern"], inputs.batch["pattern"])
    flag = shift.total_variation > config.pattern_tv_threshold
    rows.add(
        DATA_STRATEGY,
        "drift",
        "pattern_total_variation",
        "availability",
        shift.total_variation,
        flagged=flag,
    )
    rows.add(DATA_STRATEGY, "drift", "pattern_chi2_p_value", "availability", shift.p_value)
    rows.add(DATA_STRATEGY, "drift", "pattern_psi", "availability", shift.psi)
    for m in spec.modality_names:
        rows.add(
            DATA_STRATEGY,
            "drift",
            "availability_rate",
            m,
            float(inputs.batch[m].mean()) if len(inputs.batch) else None,
            reference=float(inputs.reference[m].mean()),
        )
    for name, (batch_summary, train_summary) in inputs.summaries.items():
        if train_summary is None or train_summary.empty or batch_summary.empty:
            continue
        for column in batch_summary.columns:
            ref_values, new_values = train_summary[column], batch_summary[column]
            if pd.api.types.is_numeric_dtype(ref_values) and pd.api.types.is_numeric_dtype(
                new_values
            ):
                value = psi(
                    ref_values.to_numpy(float), new_values.to_numpy(float), bins=config.psi_bins
                )
            else:
                value = categorical_psi(ref_values, new_values)
            rows.add(
                DATA_STRATEGY,
                "drift",
                "psi",
                f"{name}:{column}",
                value,
                # PSI is biased upwards in small samples: with no shift at all it is about
                # (bins - 1) * (1/n_ref + 1/n_batch). Shown beside the value, not subtracted.
                reference=(config.psi_bins - 1) * (1 / len(ref_values) + 1 / len(new_values)),
                flagged=bool(np.isfinite(value) and value > config.psi_threshold),
            )


def _performance(
    strategy: str,
    probs: np.ndarray,
    inputs: _Inputs,
    config: BatchEvaluationConfig,
    rows: _Rows,
) -> None:
    batch = inputs.batch
    labelled = batch["label"].notna().to_numpy()
    y_all = batch["label"].to_numpy(dtype=float)
    reference = None
    if inputs.reference_auroc is not None and strategy in inputs.reference_auroc.index:
        reference = inputs.reference_auroc.loc[strategy]
    groups = [("all", labelled)] + [
        (pattern, labelled & (batch["pattern"] == pattern).to_numpy())
        for pattern in sorted(batch["pattern"].unique())
    ]
    for subgroup, mask in groups:
        n = int(mask.sum())
        y, p = y_all[mask], probs[mask]
        if n < config.suppress_below:
            for metric in ("n", "events", "auroc"):
                rows.add(strategy, "performance", metric, subgroup, None, suppressed=True)
            continue
        rows.add(strategy, "performance", "n", subgroup, n)
        events = int(y.sum())
        # An event count (or its complement) under the limit is itself a small cell.
        small = min(events, n - events) < config.suppress_below
        rows.add(
            strategy,
            "performance",
            "events",
            subgroup,
            None if small else float(events),
            suppressed=small,
        )
        value = auroc(y, p)
        extra: dict = {}
        if subgroup == "all" and reference is not None:
            low = float(reference["ci_low"])
            extra = {
                "reference": float(reference["auroc"]),
                "reference_low": low,
                "reference_high": float(reference["ci_high"]),
                "flagged": bool(np.isfinite(value) and np.isfinite(low) and value < low),
            }
        rows.add(strategy, "performance", "auroc", subgroup, value, **extra)
    if labelled.any():
        rows.add(strategy, "performance", "mean_prob", "all", float(probs[labelled].mean()))
        rows.add(strategy, "performance", "event_rate", "all", float(y_all[labelled].mean()))
    if inputs.reference_predictions is not None:
        ref = inputs.reference_predictions
        ref_probs = ref.loc[ref["strategy"] == strategy, "prob"].to_numpy(float)
        if ref_probs.size:
            value = psi(ref_probs, probs, bins=config.psi_bins)
            rows.add(
                strategy,
                "drift",
                "prediction_psi",
                "all",
                value,
                flagged=bool(np.isfinite(value) and value > config.psi_threshold),
            )


def _score(
    context: dg.AssetExecutionContext,
    model_store: ModelStoreResource,
    strategies: list[str],
    inputs: _Inputs,
) -> dict[str, np.ndarray]:
    """P(label) per strategy for the batch's patients, for the models that exist."""
    available = [s for s in strategies if model_store.exists(FUSION_STORE, s)]
    missing = sorted(set(strategies) - set(available))
    if missing:
        context.log.warning(
            f"No fused model for {missing} in {model_store.path}/{FUSION_STORE}: not scored. "
            "Materialize fused_model for those strategies (or run the retraining)."
        )
    if not available or inputs.batch.empty:
        return {}
    # Imported here: torch costs seconds, and the sensors import this package.
    from fusion_assets.models.api import load_model

    ids = inputs.batch["patient_id"].tolist()
    scores: dict[str, np.ndarray] = {}
    for strategy in available:
        fitted = load_model(model_store.model_dir(FUSION_STORE, strategy))
        prepared = fitted.prepare(inputs.frames, ids)
        scores[strategy] = np.asarray(fitted.predict_proba(prepared), dtype=float)
    return scores


# --- writing ------------------------------------------------------------------------------


def _write(con: duckdb.DuckDBPyConnection, table: pd.DataFrame, batch_id: str, run_id: str) -> None:
    """Replace the batch's rows in one transaction (re-running a batch is idempotent)."""
    out = table.assign(
        evaluated_at=pd.Timestamp.now("UTC").tz_localize(None), dagster_run_id=run_id
    )
    con.execute(_RESULT_DDL)
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"DELETE FROM {RESULT_TABLE} WHERE batch_id = ?", [batch_id])
        con.register("batch_metrics_new", out)
        con.execute(f"INSERT INTO {RESULT_TABLE} BY NAME SELECT * FROM batch_metrics_new")
        con.unregister("batch_metrics_new")
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise


def _mlflow_key(*parts: str) -> str:
    """MLflow metric names allow letters, digits and ``_-. /`` only."""
    text = ".".join(parts)
    return "".join(c if c.isalnum() or c in "_-./" else "_" for c in text)


def _log_mlflow(
    tracking: TrackingResource, batch_id: str, run_id: str, table: pd.DataFrame, params: dict
) -> str | None:
    import mlflow

    with tracking.run(
        name=f"batch_evaluation {batch_id}",
        tags={
            "batch_id": batch_id,
            "dagster_run_id": run_id,
            "fusion_assets/stage": "batch_evaluation",
        },
    ) as run:
        mlflow.log_params(params)
        logged = table[table["value"].notna() & ~table["suppressed"]]
        logged = logged[(logged["subgroup"] == "all") | (logged["kind"] == "drift")]
        mlflow.log_metrics(
            {
                _mlflow_key(r.strategy, r.metric, r.subgroup): float(r.value)
                for r in logged.itertuples()
            }
        )
        # Aggregates only (suppressed cells are empty): no patient identifier leaves the warehouse.
        mlflow.log_text(table.to_csv(index=False), "batch_metrics.csv")
        return tracking.run_url(run)


# --- the asset ----------------------------------------------------------------------------


def _check_result(table: pd.DataFrame, scored: list[str]) -> dg.AssetCheckResult:
    flagged = table.loc[table["flagged"]]
    below = flagged[flagged["metric"] == "auroc"]
    drift = flagged[flagged["kind"] == "drift"]
    problems = [
        f"{r.strategy}: AUROC {r.value:.3f} < reference low {r.reference_low:.3f}"
        for r in below.itertuples()
    ] + [
        f"{r.strategy if r.strategy != DATA_STRATEGY else 'data'} {r.metric} {r.subgroup} = {r.value:.3f}"
        for r in drift.sort_values("value", ascending=False).head(10).itertuples()
    ]
    return dg.AssetCheckResult(
        check_name=CHECK_NAME,
        passed=not problems,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            "; ".join(problems)
            if problems
            else f"AUROC within reference for {scored or 'no scored strategy'}; no drift over threshold."
        ),
        metadata={
            "auroc_below_reference": dg.MetadataValue.int(len(below)),
            "drift_over_threshold": dg.MetadataValue.int(len(drift)),
        },
    )


def _summary_markdown(table: pd.DataFrame) -> str:
    perf = table[(table["kind"] == "performance") & (table["metric"] == "auroc")]
    perf = perf[
        [
            "strategy",
            "subgroup",
            "value",
            "reference_low",
            "reference_high",
            "suppressed",
            "flagged",
        ]
    ]
    drift = table[table["kind"] == "drift"].sort_values("value", ascending=False).head(15)
    drift = drift[["strategy", "metric", "subgroup", "value", "reference", "flagged"]]
    return (
        "### AUROC per strategy and availability pattern\n\n"
        + (perf.to_markdown(index=False, floatfmt=".3f") if not perf.empty else "_no model scored_")
        + "\n\n### Largest drift measures\n\n"
        + (
            drift.to_markdown(index=False, floatfmt=".3f")
            if not drift.empty
            else "_no reference split_"
        )
    )


def build_batch_evaluation(
    spec: CohortSpec, partitions_def: dg.PartitionsDefinition
) -> dg.AssetsDefinition:
    """The asset (with its check) for ``spec``'s modalities, partitioned like the raw tables."""

    @dg.asset(
        name="batch_evaluation",
        group_name="evaluation",
        partitions_def=partitions_def,
        deps=[
            "raw_patients",  # same partitions: this batch's ingest
            "aligned_patients",
            *(f"aligned_{m}" for m in spec.modality_names),
        ],
        check_specs=[
            dg.AssetCheckSpec(
                CHECK_NAME,
                asset="batch_evaluation",
                description=(
                    "WARN when a strategy's AUROC on the batch is below its reference interval "
                    "or a drift measure passes its threshold."
                ),
            )
        ],
        pool="duckdb_writer",
        kinds={"duckdb", "mlflow"},
        description=(
            "The current fused models scored on one landing batch (no retraining): AUROC per "
            "availability pattern, and drift against the training split, in eval.batch_metrics."
        ),
    )
    def batch_evaluation(
        context: dg.AssetExecutionContext,
        config: BatchEvaluationConfig,
        warehouse: WarehouseResource,
        model_store: ModelStoreResource,
        tracking: TrackingResource,
    ) -> dg.MaterializeResult:
        batch_id = context.partition_key
        with warehouse.connect() as con:
            inputs = _read_inputs(con, spec, batch_id, config.strategies)
        if inputs.batch.empty:
            raise dg.Failure(
                f"Batch {batch_id!r} has no aligned patients: ingest the batch and materialize "
                "the align group first (the reevaluate_batch job does both)."
            )
        rows = _Rows(batch_id)
        _drift(inputs, spec, config, rows)
        if inputs.reference is None:
            context.log.warning("profile.splits does not exist yet: no drift reference.")
        scores = _score(context, model_store, config.strategies, inputs)
        for strategy, probs in scores.items():
            _performance(strategy, probs, inputs, config, rows)
        table = rows.frame()
        with warehouse.connect() as con:
            _write(con, table, batch_id, context.run_id)

        params = {
            "batch_id": batch_id,
            "n_patients": len(inputs.batch),
            "n_labelled": int(inputs.batch["label"].notna().sum()),
            "strategies_scored": ",".join(scores) or "none",
            "psi_threshold": config.psi_threshold,
        }
        mlflow_url = _log_mlflow(tracking, batch_id, context.run_id, table, params)
        auroc_all = table[(table["metric"] == "auroc") & (table["subgroup"] == "all")]
        metadata = {
            "n_patients": dg.MetadataValue.int(len(inputs.batch)),
            "n_labelled": dg.MetadataValue.int(params["n_labelled"]),
            "strategies_scored": dg.MetadataValue.text(params["strategies_scored"]),
            "flagged": dg.MetadataValue.int(int(table["flagged"].sum())),
            "table": dg.MetadataValue.text(RESULT_TABLE),
            "dagster/row_count": dg.MetadataValue.int(len(table)),
            "summary": dg.MetadataValue.md(_summary_markdown(table)),
        }
        for r in auroc_all.itertuples():
            if r.value is not None and not _nan(r.value):
                metadata[f"auroc_{r.strategy}"] = dg.MetadataValue.float(float(r.value))
        tv = table[table["metric"] == "pattern_total_variation"]["value"]
        if not tv.empty and tv.notna().all():
            metadata["pattern_total_variation"] = dg.MetadataValue.float(float(tv.iloc[0]))
        psis = table[table["metric"] == "psi"]["value"].dropna()
        if not psis.empty:
            metadata["max_feature_psi"] = dg.MetadataValue.float(float(psis.max()))
        if mlflow_url:
            metadata["mlflow_run"] = dg.MetadataValue.url(mlflow_url)
        return dg.MaterializeResult(
            metadata=metadata, check_results=[_check_result(table, list(scores))]
        )

    return batch_evaluation
