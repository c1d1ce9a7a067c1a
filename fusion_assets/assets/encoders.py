"""Group ``encoders``: one fitted encoder + unimodal head per modality (static partitions)."""

import dagster as dg

from fusion_assets.assets.crossval_run import (
    add_metadata,
    evaluation_mode,
    fold_root,
    train_fold_models,
)
from fusion_assets.assets.frames import load_training_data
from fusion_assets.assets.training_run import TrainingConfig, fit_save_track
from fusion_assets.cohorts import CohortSpec
from fusion_assets.pyfunc_io import input_example
from resources import ModelStoreResource, TrackingResource, WarehouseResource

ENCODER_STORE = "encoders"


def build_encoder_asset(spec: CohortSpec) -> dg.AssetsDefinition:
    partitions = dg.StaticPartitionsDefinition(spec.modality_names)

    @dg.asset(
        group_name="encoders",
        partitions_def=partitions,
        deps=["splits", *(f"aligned_{m}" for m in spec.modality_names)],
        kinds={"pytorch", "mlflow"},
        description=(
            "Per modality: preprocessing fitted on the training split, a torch encoder to the "
            "shared embedding size and a unimodal head, trained on the patients that have the "
            "modality. The head is the single-modality baseline and late fusion's component. "
            "Small cohorts (cross-validation mode): also one model per repeat x fold, trained "
            "without that fold, with its out-of-fold predictions."
        ),
    )
    def modality_encoder(
        context: dg.AssetExecutionContext,
        config: TrainingConfig,
        warehouse: WarehouseResource,
        model_store: ModelStoreResource,
        tracking: TrackingResource,
    ) -> dg.MaterializeResult:
        from fusion_assets.models.training import train_unimodal

        modality = context.partition_key
        with warehouse.connect() as con:
            data = load_training_data(con, spec, [modality])
        frames, labels, train_ids, val_ids = (
            data.frames,
            data.labels,
            data.train_ids,
            data.val_ids,
        )
        if modality not in frames or frames[modality].empty:
            raise dg.Failure(
                f"Modality {modality!r} has no aligned rows (aligned.{modality} is empty or "
                "missing): ingest a batch that contains it, or drop it from the cohort spec."
            )
        encoder_config = config.encoder_config()
        context.log.info(
            f"Fitting the {spec.modality(modality).kind} encoder for {modality!r}: "
            f"{len(frames[modality])} patients have it; splits {len(train_ids)} train / "
            f"{len(val_ids)} validation"
        )
        example_ids = [p for p in val_ids if p in set(frames[modality]["patient_id"])][:2]
        example = input_example(frames, example_ids)
        result = fit_save_track(
            context,
            tracking=tracking,
            model_store=model_store,
            store_kind=ENCODER_STORE,
            name=f"single:{modality}",
            params={"modality": modality, "kind": spec.modality(modality).kind},
            fit=lambda on_epoch: train_unimodal(
                spec, modality, frames, labels, train_ids, val_ids, encoder_config, on_epoch
            ),
            example=example,
        )
        mode = evaluation_mode(warehouse)
        if not mode.is_cv:
            return result
        name = f"single:{modality}"
        extra = train_fold_models(
            context,
            mode,
            fold_root(model_store, ENCODER_STORE, name),
            name,
            lambda _repeat, _fold, train, val: train_unimodal(
                spec, modality, frames, labels, train, val, encoder_config
            ),
            frames,
            labels,
        )
        return add_metadata(result, extra)

    return modality_encoder
