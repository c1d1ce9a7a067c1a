"""Group ``<cohort>_4_encoders``: one fitted encoder + unimodal head per modality (static partitions)."""

from dataclasses import replace

import dagster as dg

from fusion_assets.assets.design import DESIGN_ASSETS, DeployedFit, read_design
from fusion_assets.assets.training_run import (
    TRAINING_RETRY,
    TrainingConfig,
    fit_check_specs,
    fit_save_track,
    profile_preset,
)
from fusion_assets.automation import retraining_condition
from fusion_assets.cohorts import CohortSpec
from fusion_assets.disclosure import count_text
from fusion_assets.evaluation.refit import refit_train_config
from fusion_assets.fit_checks import ENCODER_CHECKS, check_fit
from fusion_assets.location.cohort import Cohort
from fusion_assets.names import ENCODER_STORE, unimodal_name
from fusion_assets.pyfunc_io import input_example
from fusion_assets.warehouse.cohort import TrainingData, load_training_data
from resources import ModelStoreResource, TrackingResource, WarehouseResource


def _describe_fit(
    context: dg.AssetExecutionContext, spec: CohortSpec, modality: str, data: TrainingData
):
    """Refuse a modality without rows, log the fit, and pick the MLflow input example."""
    if modality not in data.frames or data.frames[modality].empty:
        raise dg.Failure(
            f"Modality {modality!r} has no aligned rows (aligned.{modality} is empty or "
            "missing): ingest a batch that contains it, or drop it from the cohort spec.",
            allow_retries=False,
        )
    context.log.info(
        f"Fitting the {spec.modality(modality).kind} encoder for {modality!r}: "
        f"{count_text(len(data.frames[modality]))} patients have it; splits "
        f"{len(data.train_ids)} train / "
        f"{len(data.val_ids)} validation"
    )
    has_it = set(data.frames[modality]["patient_id"])
    return input_example(data.frames, [p for p in data.val_ids if p in has_it][:2])


_DESCRIPTION = (
    "One fitted model per modality (partition): preprocessing fitted on the training "
    "split, a torch encoder to the "
    "shared embedding size and a unimodal head, trained on the patients that have the "
    "modality. The head is the single-modality baseline and late fusion's component. "
    "Small cohorts (cross-validation mode): also one model per repeat x fold, trained "
    "without that fold, with its out-of-fold predictions. Blocking fit checks (finite "
    "held-out AUROC, at least one epoch): a fit that fails one is not registered."
)


def build_encoder_asset(cohort: Cohort) -> dg.AssetsDefinition:
    spec = cohort.spec
    config_type = cohort.config_class("modality_encoder", TrainingConfig)
    partitions = dg.StaticPartitionsDefinition(spec.modality_names)

    @dg.asset(
        key=cohort.key("modality_encoder"),
        partitions_def=partitions,
        deps=cohort.keys(*DESIGN_ASSETS, *(f"aligned_{m}" for m in spec.modality_names)),
        kinds={"pytorch", "mlflow"},
        retry_policy=TRAINING_RETRY,
        check_specs=fit_check_specs(cohort.key("modality_encoder"), ENCODER_CHECKS),
        automation_condition=retraining_condition(cohort),
        description=_DESCRIPTION,
        **cohort.asset_attributes("encoders"),
    )
    def modality_encoder(
        context: dg.AssetExecutionContext,
        config: config_type,
        warehouse: WarehouseResource,
        model_store: ModelStoreResource,
        tracking: TrackingResource,
    ) -> dg.MaterializeResult:
        from fusion_assets.models.training import train_unimodal

        modality, name = context.partition_key, unimodal_name(context.partition_key)
        store, db = model_store.for_cohort(cohort.name), warehouse.for_cohort(cohort.name)
        with db.connect() as con:
            data = load_training_data(con, spec, [modality])
        example = _describe_fit(context, spec, modality, data)
        preset = profile_preset(context, config, db, spec)
        encoder_config = config.encoder_config(preset)

        def train(train_ids, val_ids, on_epoch=None, fit_config=encoder_config):
            return train_unimodal(
                spec, modality, data.frames, data.labels, train_ids, val_ids, fit_config,
                on_epoch,
            )  # fmt: skip

        design = read_design(db)
        deployed = DeployedFit(design, name)
        every_patient = data.train_ids + data.val_ids

        def refit(epochs, on_epoch):
            train_config = refit_train_config(encoder_config.train, epochs)
            return train(every_patient, [], on_epoch, replace(encoder_config, train=train_config))

        return fit_save_track(
            context,
            tracking=tracking.for_cohort(cohort.name),
            model_store=store,
            store_kind=ENCODER_STORE,
            name=name,
            params={"modality": modality, "kind": spec.modality(modality).kind, "preset": preset},
            fit=deployed.fit(
                lambda on_epoch: train(data.train_ids, data.val_ids, on_epoch),
                refit,
                data.labels,
                encoder_config.train.recalibration,
                data.frames,
            ),
            example=example,
            fit_folds=deployed.fit_folds(
                context,
                lambda _repeat, _fold, train_ids, val_ids: train(train_ids, val_ids),
                data.frames,
                data.labels,
            ),
            describe_fit=lambda directory: deployed.describe(context, directory),
            check_fit=lambda result: check_fit(deployed.evidence(result, data.labels)),
        )

    return modality_encoder
