"""Group ``<cohort>_1_ingest``: a landing batch becomes rows in the ``raw`` schema.

The landing validation (pandera schemas, ``warehouse/validate.py``) is shown as
the asset check ``landing_validation`` on every raw asset: a bad batch fails the
checks with the errors naming file, column and rows, is quarantined, and the
step fails without writing anything.
"""

import dagster as dg
import pandas as pd

from fusion_assets.assets.metadata import table_metadata, table_version
from fusion_assets.location.cohort import Cohort
from fusion_assets.warehouse.ingest import ingest_batch
from fusion_assets.warehouse.quarantine import BatchValidationError, format_errors
from fusion_assets.warehouse.sql import table_exists
from resources import LandingZoneResource, WarehouseResource

LANDING_CHECK = "landing_validation"


def raw_tables(cohort: Cohort) -> list[str]:
    """The raw tables of ``cohort``: patients, the oracle (synthetic cohorts), each modality."""
    return [
        "patients",
        *(["oracle"] if cohort.spec.has_oracle else []),
        *cohort.spec.modality_names,
    ]


def _raw_spec(cohort: Cohort, table: str) -> dg.AssetSpec:
    what = (
        "one row per patient of the batch (id, index time, label, demographics)"
        if table == "patients"
        else "one row per patient: the Bayes-optimal probability given the patient's modalities"
        if table == "oracle"
        else f"one row per landed row of modality {table!r} ({cohort.spec.modality(table).kind})"
    )
    return dg.AssetSpec(
        cohort.key(f"raw_{table}"),
        kinds={"duckdb"},
        description=f"DuckDB table raw.{table}: {what}; one partition per landing batch.",
        **cohort.asset_attributes("ingest"),
    )


def _check_specs(cohort: Cohort) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            LANDING_CHECK,
            asset=cohort.key(f"raw_{table}"),
            description=(
                f"The batch's {table} file passes the landing contract (docs/data-contracts.md "
                "section 1): columns, types, ranges, unique ids. A failure quarantines the batch."
            ),
        )
        for table in raw_tables(cohort)
    ]


def _failed_checks(cohort: Cohort, error: BatchValidationError) -> list[dg.AssetCheckResult]:
    """One failed check per raw table, each with the errors of its file."""
    frame = pd.DataFrame(error.errors)
    results = []
    for table in raw_tables(cohort):
        mine = frame[frame["file"].astype(str).str.removesuffix(".parquet") == table]
        results.append(
            dg.AssetCheckResult(
                check_name=LANDING_CHECK,
                asset_key=cohort.key(f"raw_{table}"),
                passed=mine.empty,
                metadata={
                    "errors": dg.MetadataValue.int(len(mine)),
                    "quarantine": dg.MetadataValue.path(str(error.quarantine_dir)),
                },
                description="file valid"
                if mine.empty
                else "; ".join(f"{e['column'] or '-'}: {e['check']}" for _, e in mine.iterrows()),
            )
        )
    return results


def build_ingest_assets(cohort: Cohort, partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    """One multi-asset: a batch is validated as a whole and written in one transaction."""

    @dg.multi_asset(
        name=cohort.op("raw_tables"),
        specs=[_raw_spec(cohort, table) for table in raw_tables(cohort)],
        check_specs=_check_specs(cohort),
        partitions_def=partitions,
        pool=cohort.writer_pool,
        can_subset=False,
    )
    def raw_tables_asset(
        context: dg.AssetExecutionContext,
        warehouse: WarehouseResource,
        landing: LandingZoneResource,
    ):
        batch_id = context.partition_key
        batch_dir = landing.for_cohort(cohort.name).batch_dir(batch_id)
        context.log.info(f"Validating landing batch {batch_id} in {batch_dir}")
        with warehouse.for_cohort(cohort.name).connect() as con:
            try:
                result = ingest_batch(con, batch_dir, cohort.spec, batch_id=batch_id)
            except BatchValidationError as error:
                yield from _failed_checks(cohort, error)
                # A user's bad file is not a bug: fail with the report, not a traceback.
                raise dg.Failure(
                    # The event log is published: no failing values (errors.json has them).
                    description=format_errors(
                        batch_id, error.errors, error.quarantine_dir, examples=False
                    ),
                    metadata={"quarantine": dg.MetadataValue.path(str(error.quarantine_dir))},
                    allow_retries=False,
                ) from None
            context.log.info(
                f"Ingested batch {batch_id} in {result.seconds:.1f} s: rows {result.rows}"
            )
            if result.orphan_rows:
                context.log.warning(
                    f"Batch {batch_id}: rows of patients missing from patients.parquet were "
                    f"skipped: {result.orphan_rows}"
                )
            for table in raw_tables(cohort):
                yield from _raw_results(con, cohort, table, batch_id, result)

    return raw_tables_asset


def _raw_results(con, cohort: Cohort, table: str, batch_id: str, result):
    exists = table_exists(con, "raw", table)
    metadata = table_metadata(con, f"raw.{table}") if exists else {}
    metadata["batch_rows"] = dg.MetadataValue.int(int(result.rows.get(table, 0)))
    metadata["orphan_rows_skipped"] = dg.MetadataValue.int(int(result.orphan_rows.get(table, 0)))
    version = (
        table_version(con, f"raw.{table}", "WHERE batch_id = ?", [batch_id]) if exists else None
    )
    key = cohort.key(f"raw_{table}")
    yield dg.MaterializeResult(asset_key=key, metadata=metadata, data_version=version)
    yield dg.AssetCheckResult(
        check_name=LANDING_CHECK, asset_key=key, passed=True, description="file valid"
    )
