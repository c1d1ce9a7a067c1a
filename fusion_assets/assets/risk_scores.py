"""``risk_scores``: the champion's probability for every patient of one landing batch.

Partitioned by landing batch (as the raw tables and ``batch_evaluation``). The
champion (MLflow alias ``champion``) is resolved once and loaded by version URI; the
rows (pure code in ``fusion_assets.risk_scores``, SQL in ``warehouse.risk_scores``)
replace the batch's rows of ``eval.risk_scores`` in one transaction. The metadata
carries aggregates only (row count, model version, flagged count under the
small-cell rule); patient rows never leave the warehouse.
"""

import dagster as dg

from fusion_assets.assets.metadata import table_metadata
from fusion_assets.disclosure import count_text, suppressed_count
from fusion_assets.location.cohort import Cohort
from fusion_assets.risk_scores import (
    RiskScoreSettings,
    ScoringModel,
    champion_probabilities,
    pattern_evidence,
    pattern_support,
    risk_scores,
    support_counts,
)
from fusion_assets.warehouse.risk_scores import (
    RISK_TABLE,
    read_pattern_metrics,
    read_scoring_batch,
    read_training_patterns,
    write_risk_scores,
)
from resources import ModelStore, ModelStoreResource, WarehouseResource


class RiskScoresConfig(dg.Config, RiskScoreSettings):
    """When a pattern counts as rare in training (launchpad)."""


def scoring_model(store: ModelStore) -> ScoringModel:
    """The champion, pinned in ``store``; a clear failure when there is none."""
    champion = store.champion()
    if champion is None:
        raise dg.Failure(
            f"Cohort {store.cohort!r} has no champion model in {store.tracking_uri}: nothing "
            "to score with. Run the pipeline (its promotion step, after subgroup_report, "
            "promotes a version on evidence: `fusion-assets demo` / `fusion-assets run`), or "
            "name one by hand: `fusion-assets promote --version N --model STRATEGY`.",
            allow_retries=False,
        )
    store.pin(*champion)
    return ScoringModel(champion[0], champion[1], store.name(champion[0]))


def _published(count: int) -> dg.MetadataValue:
    """A patient count as it may leave the warehouse (small cells suppressed)."""
    shown = suppressed_count(count)
    return (
        dg.MetadataValue.int(shown)
        if shown is not None
        else dg.MetadataValue.text(count_text(count))
    )


def build_risk_scores(
    cohort: Cohort, partitions_def: dg.PartitionsDefinition
) -> dg.AssetsDefinition:
    """The asset for the cohort, partitioned like the raw tables."""
    spec = cohort.spec
    config_type = cohort.config_class("risk_scores", RiskScoresConfig)

    @dg.asset(
        key=cohort.key("risk_scores"),
        partitions_def=partitions_def,
        deps=[
            cohort.key("raw_patients"),  # same partitions: this batch's ingest
            *cohort.keys("aligned_patients", *(f"aligned_{m}" for m in spec.modality_names)),
            # The champion and the evidence beside each score.
            *cohort.keys("splits", "promotion", "subgroup_metrics"),
        ],
        pool=cohort.writer_pool,
        kinds={"duckdb", "mlflow"},
        description=(
            f"{RISK_TABLE} for one landing batch (partition): one row per patient of the batch "
            "with the champion's probability, the registered model and version, the patient's "
            "availability pattern, a flag where that pattern was rare or unseen in training, and "
            "the pattern's held-out AUROC with its interval."
        ),
        **cohort.asset_attributes("evaluation"),
    )
    def risk_scores_asset(
        context: dg.AssetExecutionContext,
        config: config_type,
        warehouse: WarehouseResource,
        model_store: ModelStoreResource,
    ) -> dg.MaterializeResult:
        batch_id = context.partition_key
        db, store = warehouse.for_cohort(cohort.name), model_store.for_cohort(cohort.name)
        model = scoring_model(store)
        with db.connect() as con:
            patients, frames = read_scoring_batch(con, spec, batch_id)
            training, metrics = read_training_patterns(con, spec), read_pattern_metrics(con)
        if patients.empty:
            raise dg.Failure(
                f"Batch {batch_id!r} has no aligned patients: ingest the batch and materialize "
                f"the align group first (the {cohort.job('reevaluate_batch')} job does both).",
                allow_retries=False,
            )
        if training.empty:
            context.log.warning("profile.splits is empty: every pattern counts as unseen.")
        probs = champion_probabilities(
            store.version_dir(model.strategy, model.version),
            frames,
            patients["patient_id"].tolist(),
        )
        table = risk_scores(
            batch_id,
            patients,
            probs,
            model,
            pattern_support(training, patients["pattern"], config.rare_pattern_below),
            pattern_evidence(metrics, model.strategy, patients["pattern"]),
        )
        with db.connect() as con:
            write_risk_scores(con, table, batch_id, context.run.run_id)
            schema = table_metadata(con, RISK_TABLE)["dagster/column_schema"]
        counts = support_counts(table)
        context.log.info(
            f"Scored {len(table)} patients of batch {batch_id} with {model} into {RISK_TABLE}."
        )
        return dg.MaterializeResult(
            metadata={
                "table": dg.MetadataValue.text(RISK_TABLE),
                "dagster/row_count": dg.MetadataValue.int(len(table)),
                "dagster/column_schema": schema,
                "model": dg.MetadataValue.text(str(model)),
                "model_name": dg.MetadataValue.text(model.registered_name),
                "model_version": dg.MetadataValue.int(model.version),
                "model_uri": dg.MetadataValue.text(store.uri(model.strategy, model.version)),
                "flagged": _published(int(table["flagged"].sum())),
                "patients_rare_pattern": _published(counts["rare"]),
                "patients_unseen_pattern": _published(counts["unseen"]),
                "rare_pattern_below": dg.MetadataValue.int(config.rare_pattern_below),
            }
        )

    return risk_scores_asset
