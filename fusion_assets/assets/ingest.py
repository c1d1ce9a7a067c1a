"""Group ``ingest``: a landing batch becomes rows in the ``raw`` schema."""

import dagster as dg

from fusion_assets.assets.metadata import table_metadata, table_version
from fusion_assets.cohorts import CohortSpec
from fusion_assets.warehouse.ingest import ingest_batch
from fusion_assets.warehouse.quarantine import BatchValidationError
from fusion_assets.warehouse.sql import table_exists
from resources import LandingZoneResource, WarehouseResource

landing_batches = dg.DynamicPartitionsDefinition(name="landing_batches")


def raw_asset_keys(spec: CohortSpec) -> list[dg.AssetKey]:
    names = ["patients", *(["oracle"] if spec.has_oracle else []), *spec.modality_names]
    return [dg.AssetKey(f"raw_{name}") for name in names]


def build_ingest_assets(spec: CohortSpec) -> dg.AssetsDefinition:
    """One multi-asset: a batch is validated as a whole and written in one transaction."""
    specs = [
        dg.AssetSpec(
            key,
            group_name="ingest",
            kinds={"duckdb"},
            description=f"DuckDB table raw.{key.path[-1].removeprefix('raw_')}, one partition per landing batch.",
        )
        for key in raw_asset_keys(spec)
    ]

    @dg.multi_asset(
        name="raw_tables",
        specs=specs,
        partitions_def=landing_batches,
        pool="duckdb_writer",
        can_subset=False,
    )
    def raw_tables(
        context: dg.AssetExecutionContext,
        warehouse: WarehouseResource,
        landing: LandingZoneResource,
    ):
        batch_id = context.partition_key
        batch_dir = landing.batch_dir(batch_id)
        context.log.info(f"Validating landing batch {batch_id} in {batch_dir}")
        with warehouse.connect() as con:
            try:
                result = ingest_batch(con, batch_dir, spec, batch_id=batch_id)
            except BatchValidationError as error:
                # A user's bad file is not a bug: fail with the report, not a traceback.
                raise dg.Failure(
                    description=str(error),
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
            for key in raw_asset_keys(spec):
                table = key.path[-1].removeprefix("raw_")
                metadata = (
                    table_metadata(con, f"raw.{table}") if table_exists(con, "raw", table) else {}
                )
                metadata["batch_rows"] = dg.MetadataValue.int(int(result.rows.get(table, 0)))
                metadata["orphan_rows_skipped"] = dg.MetadataValue.int(
                    int(result.orphan_rows.get(table, 0))
                )
                version = (
                    table_version(con, f"raw.{table}", "WHERE batch_id = ?", [batch_id])
                    if table_exists(con, "raw", table)
                    else None
                )
                yield dg.MaterializeResult(asset_key=key, metadata=metadata, data_version=version)

    return raw_tables
