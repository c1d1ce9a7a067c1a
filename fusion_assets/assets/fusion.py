"""Group ``fusion``: one fused model per strategy (static partitions), plus the reference."""

import dagster as dg

from fusion_assets.assets.crossval_run import (
    add_metadata,
    evaluation_mode,
    fold_root,
    train_fold_models,
)
from fusion_assets.assets.encoders import ENCODER_STORE
from fusion_assets.assets.frames import load_training_data
from fusion_assets.assets.training_run import TrainingConfig, fit_save_track
from fusion_assets.cohorts import CohortSpec
from fusion_assets.pyfunc_io import input_example
from resources import ModelStoreResource, TrackingResource, WarehouseResource

FUSION_STORE = "fusion"
# The partitions of fused_model; equal to models.training.STRATEGY_NAMES (a test checks),
# spelled out here so that loading the code location does not import torch.
STRATEGIES: tuple[str, ...] = ("early", "intermediate", "late", "attention", "reference")


def load_encoders(model_store: ModelStoreResource, spec: CohortSpec) -> dict:
    """The fitted unimodal models, by modality; a missing one is a clear error."""
    from fusion_assets.models.api import load_model

    missing = [
        m for m in spec.modality_names if not model_store.exists(ENCODER_STORE, f"single:{m}")
    ]
    if missing:
        raise dg.Failure(
            f"No fitted encoder for modalities {missing} in {model_store.path}: "
            "materialize modality_encoder for those partitions first."
        )
    return {
        m: load_model(model_store.model_dir(ENCODER_STORE, f"single:{m}"))
        for m in spec.modality_names
    }


def load_fold_encoders(model_store: ModelStoreResource, spec: CohortSpec, mode) -> dict:
    """(repeat, fold) -> {modality: fold encoder}; refuses encoders of another fold plan."""
    from fusion_assets.crossval import fold_keys
    from fusion_assets.crossval_training import StaleFoldModels, load_fold_models

    keys = fold_keys(mode.plan)
    try:
        by_modality = {
            m: load_fold_models(
                fold_root(model_store, ENCODER_STORE, f"single:{m}"), mode.plan_id, m, keys
            )
            for m in spec.modality_names
        }
    except StaleFoldModels as exc:
        raise dg.Failure(f"{exc} (modality_encoder partition)") from exc
    return {key: {m: models[key] for m, models in by_modality.items()} for key in keys}


def build_fusion_asset(spec: CohortSpec, encoder_asset: dg.AssetsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        group_name="fusion",
        partitions_def=dg.StaticPartitionsDefinition(list(STRATEGIES)),
        deps=[
            dg.AssetDep(encoder_asset, partition_mapping=dg.AllPartitionMapping()),
            "splits",
        ],
        kinds={"pytorch", "mlflow"},
        description=(
            "A fused model per strategy: early (zero-filled concatenation), intermediate (merged "
            "encoder embeddings with learned missing-embeddings), late (stacked unimodal heads "
            "over the modalities a patient has), attention (modality and time-step tokens with "
            "key-padding masks) and reference (gradient boosting with native missing values). "
            "Small cohorts (cross-validation mode): also one model per repeat x fold, built on "
            "that fold's encoders, with its out-of-fold predictions."
        ),
    )
    def fused_model(
        context: dg.AssetExecutionContext,
        config: TrainingConfig,
        warehouse: WarehouseResource,
        model_store: ModelStoreResource,
        tracking: TrackingResource,
    ) -> dg.MaterializeResult:
        from fusion_assets.models.training import train_fusion

        strategy = context.partition_key
        encoders = load_encoders(model_store, spec)
        with warehouse.connect() as con:
            data = load_training_data(con, spec)
        frames, labels, train_ids, val_ids = (
            data.frames,
            data.labels,
            data.train_ids,
            data.val_ids,
        )
        fusion_config = config.fusion_config()
        context.log.info(
            f"Training {strategy} fusion on {len(train_ids)} train / {len(val_ids)} validation "
            f"patients, modality dropout {fusion_config.modality_dropout}"
        )
        example = input_example(frames, val_ids[:2])
        result = fit_save_track(
            context,
            tracking=tracking,
            model_store=model_store,
            store_kind=FUSION_STORE,
            name=strategy,
            params={"strategy": strategy, "modalities": ",".join(spec.modality_names)},
            fit=lambda on_epoch: train_fusion(
                strategy,
                spec,
                frames,
                labels,
                train_ids,
                val_ids,
                encoders,
                fusion_config,
                on_epoch,
            ),
            example=example,
        )
        mode = evaluation_mode(warehouse)
        if not mode.is_cv:
            return result
        fold_encoders = load_fold_encoders(model_store, spec, mode)
        extra = train_fold_models(
            context,
            mode,
            fold_root(model_store, FUSION_STORE, strategy),
            strategy,
            lambda repeat, fold, train, val: train_fusion(
                strategy,
                spec,
                frames,
                labels,
                train,
                val,
                fold_encoders[(repeat, fold)],
                fusion_config,
            ),
            frames,
            labels,
        )
        return add_metadata(result, extra)

    return fused_model
