"""Group ``<cohort>_5_fusion``: one fused model per strategy (static partitions), plus the reference."""

from dataclasses import replace

import dagster as dg

from fusion_assets.assets.design import (
    DESIGN_ASSETS,
    DeployedFit,
    models_ready,
    read_design,
)
from fusion_assets.assets.training_run import (
    TRAINING_RETRY,
    FusionTrainingConfig,
    fit_check_specs,
    fit_save_track,
    profile_preset,
)
from fusion_assets.automation import retraining_condition
from fusion_assets.cohorts import CohortSpec
from fusion_assets.evaluation import EvaluationDesign, fold_root
from fusion_assets.evaluation.refit import refit_train_config
from fusion_assets.fit_checks import FUSION_CHECKS, check_fit, single_modality_aurocs
from fusion_assets.location.cohort import Cohort
from fusion_assets.models.strategies import STRATEGIES
from fusion_assets.names import ENCODER_STORE, FUSION_STORE, unimodal_name
from fusion_assets.pyfunc_io import input_example
from fusion_assets.warehouse.cohort import TrainingData, load_training_data
from resources import ModelStore, ModelStoreResource, TrackingResource, WarehouseResource


def load_encoders(model_store: ModelStore, spec: CohortSpec) -> dict:
    """The fitted unimodal models, by modality; a missing one is a clear error."""
    from fusion_assets.models.api import load_model

    missing = [
        m for m in spec.modality_names if not model_store.exists(ENCODER_STORE, unimodal_name(m))
    ]
    if missing:
        raise dg.Failure(
            f"No registered encoder for modalities {missing} ({model_store.tracking_uri}): "
            "materialize modality_encoder for those partitions first.",
            allow_retries=False,
        )
    return {
        m: load_model(model_store.model_dir(ENCODER_STORE, unimodal_name(m)))
        for m in spec.modality_names
    }


def load_fold_encoders(model_store: ModelStore, spec: CohortSpec, design: EvaluationDesign) -> dict:
    """(repeat, fold) -> {modality: fold encoder}; refuses encoders of another fold plan."""
    with models_ready(" (modality_encoder partition)"):
        by_modality = {
            m: design.load_fold_models(fold_root(model_store, ENCODER_STORE, unimodal_name(m)), m)
            for m in spec.modality_names
        }
    return {key: {m: models[key] for m, models in by_modality.items()} for key in design.fold_keys}


def best_single_evidence(
    deployed: DeployedFit,
    model_store: ModelStore,
    spec: CohortSpec,
    encoders: dict,
    data: TrainingData,
) -> dict[str, float]:
    """Each single modality's held-out AUROC on the fused model's held-out patients: the
    validation patients, or in cross-validation the encoders' out-of-fold predictions."""
    if deployed.run is None:
        return single_modality_aurocs(encoders, data.frames, data.labels, data.val_ids)
    import pandas as pd

    from fusion_assets.evaluation.fold_models import FoldRun, load_oof

    design = deployed.design
    out = {}
    for m in spec.modality_names:
        name = unimodal_name(m)
        with models_ready(" (modality_encoder partition)"):
            oof = load_oof(
                fold_root(model_store, ENCODER_STORE, name), design.plan, design.plan_id, name
            )
        out[m] = FoldRun(oof, pd.DataFrame(), 0.0).oof_auroc(data.labels)
    return out


_DESCRIPTION = (
    "One fitted model per strategy (partition): early (zero-filled concatenation), intermediate (merged "
    "encoder embeddings with learned missing-embeddings), late (stacked unimodal heads "
    "over the modalities a patient has), attention (modality and time-step tokens with "
    "key-padding masks) and reference (gradient boosting with native missing values). "
    "Small cohorts (cross-validation mode): also one model per repeat x fold, built on "
    "that fold's encoders, with its out-of-fold predictions. Blocking fit checks (finite "
    "held-out AUROC, at least one epoch for torch models, not more than "
    "max_auroc_below_best_single under the best single modality): a fit that fails one is "
    "not registered."
)


def build_fusion_asset(cohort: Cohort, encoder_asset: dg.AssetsDefinition) -> dg.AssetsDefinition:
    spec = cohort.spec
    config_type = cohort.config_class("fused_model", FusionTrainingConfig)

    @dg.asset(
        key=cohort.key("fused_model"),
        partitions_def=dg.StaticPartitionsDefinition(list(STRATEGIES)),
        deps=[
            dg.AssetDep(encoder_asset, partition_mapping=dg.AllPartitionMapping()),
            *cohort.keys(*DESIGN_ASSETS),
        ],
        kinds={"pytorch", "mlflow"},
        retry_policy=TRAINING_RETRY,
        check_specs=fit_check_specs(cohort.key("fused_model"), FUSION_CHECKS),
        automation_condition=retraining_condition(cohort),
        description=_DESCRIPTION,
        **cohort.asset_attributes("fusion"),
    )
    def fused_model(
        context: dg.AssetExecutionContext,
        config: config_type,
        warehouse: WarehouseResource,
        model_store: ModelStoreResource,
        tracking: TrackingResource,
    ) -> dg.MaterializeResult:
        from fusion_assets.models.training import train_fusion

        strategy = context.partition_key
        store, db = model_store.for_cohort(cohort.name), warehouse.for_cohort(cohort.name)
        encoders = load_encoders(store, spec)
        with db.connect() as con:
            data = load_training_data(con, spec)
        preset = profile_preset(context, config, db, spec)
        fusion_config = config.fusion_config(preset)
        context.log.info(
            f"Training {strategy} fusion on {len(data.train_ids)} train / {len(data.val_ids)} "
            f"validation patients, modality dropout {fusion_config.modality_dropout}"
        )

        def train(train_ids, val_ids, unimodal, on_epoch=None, fit_config=fusion_config):
            return train_fusion(
                strategy, spec, data.frames, data.labels, train_ids, val_ids, unimodal,
                fit_config, on_epoch,
            )  # fmt: skip

        design = read_design(db)
        fold_encoders = load_fold_encoders(store, spec, design)
        deployed = DeployedFit(design, strategy)
        every_patient = data.train_ids + data.val_ids

        def refit(epochs, on_epoch):
            train_config = refit_train_config(fusion_config.train, epochs)
            fit_config = replace(fusion_config, train=train_config)
            return train(every_patient, [], encoders, on_epoch, fit_config)

        return fit_save_track(
            context,
            tracking=tracking.for_cohort(cohort.name),
            model_store=store,
            store_kind=FUSION_STORE,
            name=strategy,
            params={
                "strategy": strategy,
                "modalities": ",".join(spec.modality_names),
                "preset": preset,
            },
            fit=deployed.fit(
                lambda on_epoch: train(data.train_ids, data.val_ids, encoders, on_epoch),
                refit,
                data.labels,
                fusion_config.train.recalibration,
                data.frames,
            ),
            example=input_example(data.frames, data.val_ids[:2]),
            fit_folds=deployed.fit_folds(
                context,
                lambda repeat, fold, train_ids, val_ids: train(
                    train_ids, val_ids, fold_encoders[(repeat, fold)]
                ),
                data.frames,
                data.labels,
            ),
            describe_fit=lambda directory: deployed.describe(context, directory),
            check_fit=lambda result: check_fit(
                deployed.evidence(result, data.labels, data.val_ids),
                best_single_evidence(deployed, store, spec, encoders, data),
                config.max_auroc_below_best_single,
            ),
        )

    return fused_model
