"""Group ``<cohort>_2_align``: one row per patient and modality, as of the patient's index time."""

import dagster as dg

from fusion_assets.assets.metadata import table_metadata, table_version
from fusion_assets.cohorts import ModalitySpec
from fusion_assets.disclosure import count_text
from fusion_assets.location.cohort import Cohort
from fusion_assets.warehouse.align import align_modality, align_patients
from resources import WarehouseResource


def _aligned_patients(cohort: Cohort) -> dg.AssetsDefinition:
    @dg.asset(
        key=cohort.key("aligned_patients"),
        deps=[cohort.key("raw_patients")],
        kinds={"duckdb"},
        pool=cohort.writer_pool,
        description=(
            "aligned.patients: one row per patient (id, index time, label, demographics), "
            "the latest batch's row of each patient."
        ),
        **cohort.asset_attributes("align"),
    )
    def aligned_patients(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
        with warehouse.for_cohort(cohort.name).connect() as con:
            align_patients(con)
            return dg.MaterializeResult(
                metadata=table_metadata(con, "aligned.patients"),
                data_version=table_version(con, "aligned.patients"),
            )

    return aligned_patients


def _aligned_modality(cohort: Cohort, modality: ModalitySpec) -> dg.AssetsDefinition:
    @dg.asset(
        key=cohort.key(f"aligned_{modality.name}"),
        deps=cohort.keys(f"raw_{modality.name}", "aligned_patients"),
        kinds={"duckdb"},
        pool=cohort.writer_pool,
        description=(
            f"aligned.{modality.name}: one row per patient that has the {modality.kind} modality "
            f"{modality.name!r}, from rows time-stamped before the patient's index time only."
        ),
        **cohort.asset_attributes("align"),
    )
    def _asset(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
        with warehouse.for_cohort(cohort.name).connect() as con:
            result = align_modality(con, modality)
            context.log.info(
                f"Aligned {modality.name}: {count_text(result.patients)} patients from "
                f"{count_text(result.rows_used)} "
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


def build_align_assets(cohort: Cohort) -> list[dg.AssetsDefinition]:
    return [
        _aligned_patients(cohort),
        *(_aligned_modality(cohort, m) for m in cohort.spec.modalities),
    ]
