"""Group ``<cohort>_3_profile``: availability profile, fusion recommendation, evaluation design.

``splits`` is one step writing three declared assets: ``splits``
(profile.splits), ``folds`` (profile.folds, the fold plan) and
``evaluation_mode`` (profile.evaluation_mode, the design chosen).
"""

import json

import dagster as dg
import pandas as pd

from fusion_assets.assets.metadata import (
    frame_table,
    png_markdown,
    rounded,
    table_metadata,
    table_version,
)
from fusion_assets.automation import retraining_condition, retraining_root_condition
from fusion_assets.cohorts.deployment_profile import DeploymentSettings, at_deployment
from fusion_assets.decision_matrix import RecommendationThresholds, recommend_strategies
from fusion_assets.disclosure import published_share
from fusion_assets.evaluation import EvaluationDesign, SplitSettings
from fusion_assets.location.cohort import Cohort
from fusion_assets.metrics.plots import pattern_chart_png
from fusion_assets.models.presets import choose_preset
from fusion_assets.warehouse.deployment import resolve_deployment
from fusion_assets.warehouse.folds import read_evaluation_design, write_evaluation_plan
from fusion_assets.warehouse.profile import build_availability, summarize_profile
from fusion_assets.warehouse.recommend import write_recommendation
from fusion_assets.warehouse.splits import read_stratification_cohort, split_prevalence
from resources import WarehouseResource


class RecommendationConfig(dg.Config, RecommendationThresholds, DeploymentSettings):
    """The decision matrix's thresholds (fusion_assets/decision_matrix.py), and the run's
    deployment profile (the same deployment_* fields as the predictions step's) when the
    matrix should judge another deployment than the spec's."""


class SplitConfig(dg.Config, SplitSettings):
    """How the cohort is split and which evaluation design it gets (fusion_assets/evaluation)."""


def _modalities_frame(summary: dict) -> pd.DataFrame:
    names = list(summary["availability"])
    n = summary["n_patients"]
    return pd.DataFrame(
        {
            "modality": names,
            "kind": [summary["modalities"][m] for m in names],
            # a share of the cohort is a count: blank where it would reveal a small one
            "availability": [published_share(summary["availability"][m], n) for m in names],
            "dimensionality": [summary["dimensionality"][m] for m in names],
            "cadence": [
                json.dumps(summary["cadence"].get(m)) if m in summary["cadence"] else None
                for m in names
            ],
        }
    )


def _profile_metadata(summary: dict) -> dict:
    n = summary["n_patients"]
    shares = {
        "label_prevalence": published_share(summary["label_prevalence"] or 0.0, n),
        "complete_case_fraction": published_share(summary["complete_case_fraction"], n),
    }
    return {
        "n_patients": dg.MetadataValue.int(n),
        # A share that would reveal a small count (5 of 600) is left out (disclosure.py).
        **{k: rounded(v) for k, v in shares.items() if v is not None},
        "modalities": frame_table(_modalities_frame(summary)),
        "patterns": frame_table(pd.DataFrame(summary["patterns"]), partition_of=n),
        "pattern_counts": png_markdown(pattern_chart_png(summary), "availability patterns"),
    }


def build_availability_asset(cohort: Cohort) -> dg.AssetsDefinition:
    spec = cohort.spec

    @dg.asset(
        key=cohort.key("availability_profile"),
        deps=cohort.keys("aligned_patients", *(f"aligned_{m}" for m in spec.modality_names)),
        kinds={"duckdb"},
        pool=cohort.writer_pool,
        automation_condition=retraining_root_condition(cohort),
        description=(
            "profile.availability: one row per patient, a presence flag per modality and the "
            "availability pattern; metadata: the cohort summary (rates, patterns, "
            "dimensionality, cadence). The first step of a retraining."
        ),
        **cohort.asset_attributes("profile"),
    )
    def availability_profile(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource
    ) -> dg.MaterializeResult:
        with warehouse.for_cohort(cohort.name).connect() as con:
            build_availability(con, spec)
            summary = summarize_profile(con, spec)
            metadata = table_metadata(con, "profile.availability")
            version = table_version(con, "profile.availability")
        complete = published_share(summary["complete_case_fraction"], summary["n_patients"])
        context.log.info(
            f"{summary['n_patients']} patients, {len(summary['patterns'])} availability patterns, "
            "complete-case fraction "
            + (f"{complete:.2f}" if complete is not None else "not shown (a small cell)")
        )
        metadata.update(_profile_metadata(summary))
        return dg.MaterializeResult(metadata=metadata, data_version=version)

    return availability_profile


def _ranking(ranked: list[dict]) -> dg.MetadataValue:
    return frame_table(
        pd.DataFrame(
            {
                "rank": [r["rank"] for r in ranked],
                "strategy": [r["strategy"] for r in ranked],
                "score": [float(r["score"]) for r in ranked],
                "reasons": ["; ".join(r["reasons"]) for r in ranked],
            }
        ),
        digits=1,
    )


def build_recommendation_asset(cohort: Cohort) -> dg.AssetsDefinition:
    spec = cohort.spec
    config_type = cohort.config_class("fusion_recommendation", RecommendationConfig)

    @dg.asset(
        key=cohort.key("fusion_recommendation"),
        deps=[cohort.key("availability_profile")],
        kinds={"duckdb"},
        pool=cohort.writer_pool,
        automation_condition=retraining_condition(cohort),
        description=(
            "profile.recommendation: one row per strategy, ranked by the decision matrix "
            "(availability, dimensionality balance, temporal dynamics, cohort size) applied to "
            "the profile, each with its measured reasons."
        ),
        **cohort.asset_attributes("profile"),
    )
    def fusion_recommendation(
        context: dg.AssetExecutionContext,
        config: config_type,
        warehouse: WarehouseResource,
    ) -> dg.MaterializeResult:
        thresholds = RecommendationThresholds(
            **config.model_dump(include=set(RecommendationThresholds.model_fields))
        )
        with warehouse.for_cohort(cohort.name).connect() as con:
            summary = summarize_profile(con, spec)
            # the run's override, else the spec's (a batch: measured)
            deployment = resolve_deployment(con, spec, config)
            if deployment is not None:  # the matrix judges the deployment's availability
                summary = at_deployment(summary, deployment, spec.modality_names)
                context.log.info(
                    f"Recommending for the deployment profile {deployment.name!r} "
                    f"({deployment.source()}): availability {summary['availability']}"
                )
            ranked = recommend_strategies(summary, thresholds)
            write_recommendation(con, ranked, thresholds)
            metadata = table_metadata(con, "profile.recommendation")
        context.log.info(f"Recommended: {[r['strategy'] for r in ranked]}")
        metadata.update(
            {
                "recommended": dg.MetadataValue.text(ranked[0]["strategy"]),
                "availability_judged": dg.MetadataValue.text(
                    f"deployment profile {deployment.name!r} ({deployment.source()})"
                    if deployment is not None
                    else "the training cohort's"
                ),
                "ranking": _ranking(ranked),
                "thresholds": frame_table(
                    pd.DataFrame(
                        {
                            "threshold": list(thresholds.model_dump()),
                            "value": [str(v) for v in thresholds.model_dump().values()],
                        }
                    )
                ),
                # what training's preset "auto" resolves to (models.presets.choose_preset)
                "training_preset": dg.MetadataValue.json(choose_preset(summary).as_dict()),
            }
        )
        return dg.MaterializeResult(metadata=metadata)

    return fusion_recommendation


_SPLIT_TABLES = {
    "splits": "profile.splits: one row per patient, its split (train/validation/test), "
    "stratified by label x availability pattern, seeded; a patient keeps its split when the "
    "cohort grows. Cross-validated cohorts: the final model's train/validation carve-out.",
    "folds": "profile.folds: one row per fold model (repeat, fold) and patient with its role, "
    "for cohorts under small_cohort_size patients (repeated stratified k-fold); no rows when "
    "held out.",
    "evaluation_mode": "profile.evaluation_mode: one row per cohort: the evaluation design chosen from the "
    "cohort size (holdout | cv), with its settings and the fold plan's fingerprint.",
}


def _split_specs(cohort: Cohort) -> list[dg.AssetSpec]:
    return [
        dg.AssetSpec(
            cohort.key(name),
            kinds={"duckdb"},
            deps=[cohort.key("availability_profile")],
            description=description,
            automation_condition=retraining_condition(cohort),
            **cohort.asset_attributes("profile"),
        )
        for name, description in _SPLIT_TABLES.items()
    ]


def _split_results(
    con, cohort: Cohort, design: EvaluationDesign, counts: dict
) -> list[dg.MaterializeResult]:
    described = design.describe()
    splits = table_metadata(con, "profile.splits")
    splits["by_split"] = frame_table(split_prevalence(con))
    splits["assignment"] = dg.MetadataValue.json(json.loads(json.dumps(counts, default=str)))
    folds = table_metadata(con, "profile.folds")
    if (summary := design.plan_summary(read_stratification_cohort(con))) is not None:
        folds["folds"] = frame_table(summary)
    mode = table_metadata(con, "profile.evaluation_mode")
    for metadata in (splits, folds, mode):
        metadata["evaluation_mode"] = dg.MetadataValue.text(design.mode)
        metadata["evaluation"] = dg.MetadataValue.text(described)
    return [
        dg.MaterializeResult(
            asset_key=cohort.key(key), metadata=metadata, data_version=table_version(con, table)
        )
        for key, table, metadata in (
            ("splits", "profile.splits", splits),
            ("folds", "profile.folds", folds),
            ("evaluation_mode", "profile.evaluation_mode", mode),
        )
    ]


def build_splits_asset(cohort: Cohort) -> dg.AssetsDefinition:
    config_type = cohort.config_class("splits", SplitConfig)

    @dg.multi_asset(
        name=cohort.op("splits"),
        specs=_split_specs(cohort),
        pool=cohort.writer_pool,
        can_subset=False,
    )
    def splits(
        context: dg.AssetExecutionContext, config: config_type, warehouse: WarehouseResource
    ):
        """Choose the evaluation design; write the split, the fold plan and the design."""
        with warehouse.for_cohort(cohort.name).connect() as con:
            try:
                counts = write_evaluation_plan(
                    con, config.cross_validation(), config.holdout_fractions, split_seed=config.seed
                )
            except ValueError as exc:
                raise dg.Failure(f"Cannot split the cohort: {exc}", allow_retries=False) from exc
            design = read_evaluation_design(con)
            results = _split_results(con, cohort, design, counts)
        context.log.info(
            f"{counts['n_patients']} patients (small_cohort_size {config.small_cohort_size}): "
            f"evaluation by {design.describe()}. Splits: {counts['splits']}"
        )
        yield from results

    return splits


def build_profile_assets(cohort: Cohort) -> list[dg.AssetsDefinition]:
    return [
        build_availability_asset(cohort),
        build_recommendation_asset(cohort),
        build_splits_asset(cohort),
    ]
