"""Group ``ingest``: a landing batch becomes rows in the ``raw`` schema."""

from __future__ import annotations

import dagster as dg

from fusion_assets.assets.metadata import table_metadata
from fusion_assets.cohorts import CohortSpec
from fusion_assets.warehouse.ingest import BatchValidationError, ingest_batch
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
            context.log.info(f"Ingested batch {batch_id}: {result.rows}")
            for key in raw_asset_keys(spec):
                table = f"raw.{key.path[-1].removeprefix('raw_')}"
                metadata = table_metadata(con, table)
                metadata["batch_rows"] = dg.MetadataValue.int(
                    int(result.rows.get(key.path[-1].removeprefix("raw_"), 0))
                )
                yield dg.MaterializeResult(asset_key=key, metadata=metadata)

    return raw_tables
