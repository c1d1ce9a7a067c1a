"""Group ``align``: one row per patient and modality, as of the patient's index time."""

import dagster as dg

from fusion_assets.assets.metadata import table_metadata, table_version
from fusion_assets.cohorts import CohortSpec, ModalitySpec
from fusion_assets.warehouse.align import align_modality, align_patients
from resources import WarehouseResource


@dg.asset(
    group_name="align",
    deps=["raw_patients"],
    kinds={"duckdb"},
    pool="duckdb_writer",
    description="aligned.patients: one row per patient (id, index time, label, demographics).",
)
def aligned_patients(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    with warehouse.connect() as con:
        align_patients(con)
        return dg.MaterializeResult(
            metadata=table_metadata(con, "aligned.patients"),
            data_version=table_version(con, "aligned.patients"),
        )


def _build_aligned_modality(modality: ModalitySpec) -> dg.AssetsDefinition:
    @dg.asset(
        name=f"aligned_{modality.name}",
        group_name="align",
        deps=[f"raw_{modality.name}", aligned_patients],
        kinds={"duckdb"},
        pool="duckdb_writer",
        description=(
            f"aligned.{modality.name}: the {modality.kind} modality {modality.name!r}, one row per "
            "patient, using only rows time-stamped before the patient's index time."
        ),
    )
    def _asset(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
        with warehouse.connect() as con:
            result = align_modality(con, modality)
            context.log.info(
                f"Aligned {modality.name}: {result.patients} patients from {result.rows_used} "
                f"rows; {result.rows_after_index_time} rows after index time excluded"
            )
            metadata = table_metadata(con, f"aligned.{modality.name}")
            metadata["rows_used"] = dg.MetadataValue.int(result.rows_used)
            metadata["rows_excluded_after_index_time"] = dg.MetadataValue.int(
                result.rows_after_index_time
            )
            version = table_version(con, f'aligned."{modality.name}"')
            return dg.MaterializeResult(metadata=metadata, data_version=version)

    return _asset


def build_align_assets(spec: CohortSpec) -> list[dg.AssetsDefinition]:
    return [aligned_patients, *(_build_aligned_modality(m) for m in spec.modalities)]
