"""``batch_evaluation``: the champion (and every strategy), re-evaluated on one new landing batch.

No retraining. The batch's patients are scored with the champion's version (alias
``champion``) and every other strategy's newest registered version, each version
recorded; on the labelled patients that are new to the models (not in
``profile.splits``), performance is measured per availability-pattern subgroup, each
AUROC with the batch's own bootstrap interval; drift against the training split is
measured once per batch. A batch whose patients are all in the training cohort is a
training batch: it is not re-evaluated as if it were new (no performance rows; the
metadata says so). The measurements are pure code in ``fusion_assets.reevaluation``
(and their SQL in ``warehouse.batch_inputs``/``batch_metrics``); this asset reads,
calls them, writes ``eval.batch_metrics`` and logs to MLflow. The asset check
``batch_evaluation_within_reference`` warns when a strategy's AUROC interval on the
batch lies entirely below its reference interval (``eval.subgroup_metrics``, subgroup
``all``) or a drift measure passes its threshold.
"""

import dagster as dg
import pandas as pd

from fusion_assets.assets.metadata import frame_table, rounded
from fusion_assets.automation import batch_evaluation_freshness
from fusion_assets.disclosure import count_text, rate_publishable, suppressed_count
from fusion_assets.location.cohort import Cohort
from fusion_assets.reevaluation import summary
from fusion_assets.reevaluation.drift import data_drift
from fusion_assets.reevaluation.performance import strategy_rows
from fusion_assets.reevaluation.rows import DATA_STRATEGY, TRAINING_OVERLAP, ResultRows
from fusion_assets.reevaluation.score import missing_models, score_batch
from fusion_assets.reevaluation.settings import BatchEvaluationSettings
from fusion_assets.warehouse.batch_inputs import read_batch_inputs
from fusion_assets.warehouse.batch_metrics import RESULT_TABLE, write_batch_metrics
from resources import ModelStoreResource, Tracking, TrackingResource, WarehouseResource

CHECK_NAME = "batch_evaluation_within_reference"


class BatchEvaluationConfig(dg.Config, BatchEvaluationSettings):
    """Thresholds of the re-evaluation and its check."""


def _versions(store) -> str:
    return ", ".join(f"{name} v{v}" for name, v in sorted(store.versions_used.items())) or "none"


def _check_result(
    table: pd.DataFrame, scored: list[str], batch_id: str, status: str
) -> dg.AssetCheckResult:
    problems = summary.check_problems(table)
    within = (
        f"AUROC interval not below the reference for {scored or 'no scored strategy'}"
        if not status.startswith(summary.TRAINING_BATCH)
        else status
    )
    return dg.AssetCheckResult(
        check_name=CHECK_NAME,
        passed=not problems,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"Batch {batch_id}: "
        + ("; ".join(problems) if problems else f"{within}; no drift over threshold."),
        metadata={
            "batch_id": dg.MetadataValue.text(batch_id),
            **{k: dg.MetadataValue.int(v) for k, v in summary.flag_counts(table).items()},
        },
    )


def _log_mlflow(
    tracking: Tracking, context: dg.AssetExecutionContext, table: pd.DataFrame, params: dict
) -> str:
    import mlflow

    batch_id = params["batch_id"]
    tags = {"batch_id": batch_id, "fusion_assets/stage": "batch_evaluation"}
    # the context: the run id, its URL, the asset key and the partition, as on every fit run
    with tracking.run(name=f"batch_evaluation {batch_id}", tags=tags, context=context) as run:
        mlflow.log_params(params)
        mlflow.log_metrics(summary.mlflow_metrics(table))
        # Aggregates only (suppressed cells are empty): no patient identifier leaves the warehouse.
        mlflow.log_text(table.to_csv(index=False), "batch_metrics.csv")
        return tracking.run_url(run)


def _metadata(table: pd.DataFrame, params: dict, mlflow_url: str) -> dict:
    metadata = {
        # small-cell rule: a small batch size, or a labelled count (or its complement, the
        # unlabelled) under the limit, is published as "<11"
        "n_patients": dg.MetadataValue.text(count_text(params["n_patients"])),
        "n_labelled": dg.MetadataValue.text(
            count_text(
                params["n_labelled"],
                hidden=params["n_labelled"] not in (0, params["n_patients"])
                and not rate_publishable(params["n_labelled"], params["n_patients"]),
            )
        ),
        "strategies_scored": dg.MetadataValue.text(params["strategies_scored"]),
        "model_versions": dg.MetadataValue.text(params["model_versions"]),
        "champion": dg.MetadataValue.text(params["champion"]),
        "evaluation": dg.MetadataValue.text(params["evaluation"]),
        "flagged": dg.MetadataValue.int(int(table["flagged"].sum())),
        "table": dg.MetadataValue.text(RESULT_TABLE),
        "dagster/row_count": dg.MetadataValue.int(len(table)),
        "auroc_by_pattern": frame_table(summary.performance_frame(table)),
        "largest_drift": frame_table(summary.drift_frame(table)),
        **{k: rounded(v) for k, v in summary.headline_numbers(table).items()},
    }
    if mlflow_url:
        metadata["mlflow_run"] = dg.MetadataValue.url(mlflow_url)
    return metadata


_DESCRIPTION = (
    "eval.batch_metrics for one landing batch (partition): one row per strategy x metric x "
    "subgroup. The champion and every strategy's newest version scored on the batch's new "
    "patients (no retraining; versions recorded): AUROC with the batch's interval per "
    "availability pattern, and drift against the training split."
)


def _deps(cohort: Cohort) -> list:
    return [
        cohort.key("raw_patients"),  # same partitions: this batch's ingest
        *cohort.keys("aligned_patients", *(f"aligned_{m}" for m in cohort.spec.modality_names)),
        # The references it compares against: the training split, the fused models,
        # their test-split predictions and reference intervals, and the champion.
        cohort.key("splits"),
        dg.AssetDep(cohort.key("fused_model"), partition_mapping=dg.AllPartitionMapping()),
        *cohort.keys("predictions", "subgroup_metrics"),
        cohort.key("promotion"),  # the champion alias it scores
    ]


def _check_spec(cohort: Cohort) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        CHECK_NAME,
        asset=cohort.key("batch_evaluation"),
        description=(
            "WARN when a strategy's AUROC interval on the batch lies entirely below its "
            "reference interval, or a drift measure passes its threshold."
        ),
    )


def build_batch_evaluation(
    cohort: Cohort, partitions_def: dg.PartitionsDefinition
) -> dg.AssetsDefinition:
    """The asset (with its check) for the cohort's modalities, partitioned like the raw tables."""
    spec = cohort.spec
    config_type = cohort.config_class("batch_evaluation", BatchEvaluationConfig)

    @dg.asset(
        key=cohort.key("batch_evaluation"),
        partitions_def=partitions_def,
        deps=_deps(cohort),
        check_specs=[_check_spec(cohort)],
        pool=cohort.writer_pool,
        kinds={"duckdb", "mlflow"},
        freshness_policy=batch_evaluation_freshness(),
        description=_DESCRIPTION,
        **cohort.asset_attributes("evaluation"),
    )
    def batch_evaluation(
        context: dg.AssetExecutionContext,
        config: config_type,
        warehouse: WarehouseResource,
        model_store: ModelStoreResource,
        tracking: TrackingResource,
    ) -> dg.MaterializeResult:
        batch_id = context.partition_key
        db, store = warehouse.for_cohort(cohort.name), model_store.for_cohort(cohort.name)
        with db.connect() as con:
            inputs = read_batch_inputs(con, spec, batch_id, config.strategies)
        if inputs.batch.empty:
            raise dg.Failure(
                f"Batch {batch_id!r} has no aligned patients: ingest the batch and materialize "
                f"the align group first (the {cohort.job('reevaluate_batch')} job does both).",
                allow_retries=False,
            )
        if inputs.reference is None:
            context.log.warning("profile.splits does not exist yet: no drift reference.")
        champion = store.champion()
        strategies = list(config.strategies)
        if champion is None:
            context.log.warning(
                "No champion yet: every strategy is scored at its newest version. Promotion "
                "(the evaluation job) or `fusion-assets promote` sets one."
            )
        else:
            store.pin(*champion)  # the champion's strategy is read at the champion's version
            strategies += [] if champion[0] in strategies else [champion[0]]
        if missing := missing_models(store, strategies):
            context.log.warning(
                f"No registered fused model for {missing} ({store.tracking_uri}): not scored. "
                "Materialize fused_model for those strategies (or run the retraining)."
            )
        status = summary.evaluation_status(inputs)
        context.log.info(f"Batch {batch_id}: {status}.")
        rows = ResultRows(batch_id)
        data_drift(inputs, spec.modality_names, config, rows)
        if inputs.n_in_training:
            rows.add(
                DATA_STRATEGY,
                *TRAINING_OVERLAP,
                "all",
                suppressed_count(inputs.n_in_training),
                suppressed=suppressed_count(inputs.n_in_training) is None,
            )
        scores = score_batch(store, strategies, inputs)
        versions = store.versions_used
        for strategy, probs in scores.items():
            strategy_rows(strategy, probs, inputs, config, rows, versions.get(strategy))
        table = rows.frame()
        with db.connect() as con:
            write_batch_metrics(con, table, batch_id, context.run.run_id)
        params = {
            "batch_id": batch_id,
            "n_patients": len(inputs.batch),
            "n_labelled": inputs.n_labelled,
            "strategies_scored": ",".join(scores) or "none",
            # The registered versions scored: which model generation these numbers are about.
            "model_versions": _versions(store),
            "champion": f"{champion[0]} v{champion[1]}" if champion else "none",
            "evaluation": status,
            "psi_threshold": config.psi_threshold,
        }
        mlflow_url = _log_mlflow(tracking.for_cohort(cohort.name), context, table, params)
        return dg.MaterializeResult(
            metadata=_metadata(table, params, mlflow_url),
            check_results=[_check_result(table, list(scores), batch_id, status)],
        )

    return batch_evaluation
