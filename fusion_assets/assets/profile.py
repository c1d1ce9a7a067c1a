"""Group ``profile``: availability profile, fusion recommendation and the evaluation design.

``splits`` is one step writing three declared assets: ``splits``
(profile.splits), ``folds`` (profile.folds, the fold plan) and
``evaluation_mode`` (profile.evaluation_mode, the design chosen).
"""

import json

import dagster as dg
import pandas as pd

from fusion_assets.assets.metadata import png_markdown, table_metadata, table_version
from fusion_assets.cohorts import CohortSpec
from fusion_assets.decision_matrix import RecommendationThresholds, recommend_strategies
from fusion_assets.evaluation import EvaluationDesign, SplitSettings
from fusion_assets.metrics.plots import pattern_chart_png
from fusion_assets.models.presets import choose_preset
from fusion_assets.warehouse.folds import read_evaluation_design, write_evaluation_plan
from fusion_assets.warehouse.profile import build_availability, summarize_profile
from fusion_assets.warehouse.recommend import write_recommendation
from fusion_assets.warehouse.splits import read_stratification_cohort, split_prevalence
from resources import WarehouseResource


class RecommendationConfig(dg.Config, RecommendationThresholds):
    """The decision matrix's thresholds (fusion_assets/decision_matrix.py)."""


class SplitConfig(dg.Config, SplitSettings):
    """How the cohort is split and which evaluation design it gets (fusion_assets/evaluation)."""


def _summary_tables(summary: dict) -> str:
    availability = pd.DataFrame(
        {
            "modality": list(summary["availability"]),
            "kind": [summary["modalities"][m] for m in summary["availability"]],
            "availability": [round(v, 3) for v in summary["availability"].values()],
            "dimensionality": [summary["dimensionality"][m] for m in summary["availability"]],
        }
    )
    patterns = pd.DataFrame(summary["patterns"]).round(3)
    return (
        "### Modalities\n\n"
        + availability.to_markdown(index=False)
        + "\n\n### Availability patterns\n\n"
        + patterns.to_markdown(index=False)
    )


def _profile_metadata(summary: dict) -> dict:
    return {
        "n_patients": dg.MetadataValue.int(summary["n_patients"]),
        "label_prevalence": dg.MetadataValue.float(summary["label_prevalence"] or 0.0),
        "complete_case_fraction": dg.MetadataValue.float(summary["complete_case_fraction"]),
        "availability": dg.MetadataValue.json(summary["availability"]),
        "dimensionality": dg.MetadataValue.json(summary["dimensionality"]),
        "cadence": dg.MetadataValue.json(summary["cadence"]),
        "summary": dg.MetadataValue.md(_summary_tables(summary)),
        "pattern_counts": png_markdown(pattern_chart_png(summary), "availability patterns"),
    }


def build_availability_asset(spec: CohortSpec) -> dg.AssetsDefinition:
    @dg.asset(
        group_name="profile",
        deps=["aligned_patients", *(f"aligned_{m}" for m in spec.modality_names)],
        kinds={"duckdb"},
        pool="duckdb_writer",
        description=(
            "profile.availability: a presence flag per modality and the availability pattern per "
            "patient; metadata: the cohort summary (rates, patterns, dimensionality, cadence)."
        ),
    )
    def availability_profile(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource
    ) -> dg.MaterializeResult:
        with warehouse.connect() as con:
            build_availability(con, spec)
            summary = summarize_profile(con, spec)
            metadata = table_metadata(con, "profile.availability")
            version = table_version(con, "profile.availability")
        context.log.info(
            f"{summary['n_patients']} patients, {len(summary['patterns'])} availability patterns, "
            f"complete-case fraction {summary['complete_case_fraction']:.2f}"
        )
        metadata.update(_profile_metadata(summary))
        return dg.MaterializeResult(metadata=metadata, data_version=version)

    return availability_profile


def _ranking_md(ranked: list[dict]) -> str:
    lines = []
    for r in ranked:
        lines.append(f"{r['rank']}. **{r['strategy']}** (score {r['score']:.1f})")
        lines += [f"   - {reason}" for reason in r["reasons"]]
    return "\n".join(lines)


def build_recommendation_asset(spec: CohortSpec) -> dg.AssetsDefinition:
    @dg.asset(
        group_name="profile",
        deps=["availability_profile"],
        kinds={"duckdb"},
        pool="duckdb_writer",
        description=(
            "profile.recommendation: the decision matrix (availability, dimensionality balance, "
            "temporal dynamics, cohort size) applied to the profile: strategies ranked, each with "
            "its measured reasons."
        ),
    )
    def fusion_recommendation(
        context: dg.AssetExecutionContext,
        config: RecommendationConfig,
        warehouse: WarehouseResource,
    ) -> dg.MaterializeResult:
        thresholds = RecommendationThresholds(**config.model_dump())
        with warehouse.connect() as con:
            summary = summarize_profile(con, spec)
            ranked = recommend_strategies(summary, thresholds)
            write_recommendation(con, ranked, thresholds)
            metadata = table_metadata(con, "profile.recommendation")
        context.log.info(f"Recommended: {[r['strategy'] for r in ranked]}")
        metadata.update(
            {
                "recommended": dg.MetadataValue.text(ranked[0]["strategy"]),
                "ranking": dg.MetadataValue.md(_ranking_md(ranked)),
                "thresholds": dg.MetadataValue.json(json.loads(thresholds.model_dump_json())),
                # what training's preset "auto" resolves to (models.presets.choose_preset)
                "training_preset": dg.MetadataValue.json(choose_preset(summary).as_dict()),
            }
        )
        return dg.MaterializeResult(metadata=metadata)

    return fusion_recommendation


def _design_table(key: str, description: str) -> dg.AssetSpec:
    """A profile table the ``splits`` step writes from the availability profile."""
    return dg.AssetSpec(
        key,
        group_name="profile",
        kinds={"duckdb"},
        deps=["availability_profile"],
        description=description,
    )


SPLIT_SPECS = [
    _design_table(
        "splits",
        "profile.splits: patient-level train/validation/test, stratified by label x "
        "availability pattern, seeded; a patient keeps its split when the cohort grows. "
        "Cross-validated cohorts: the final model's train/validation carve-out (no test).",
    ),
    _design_table(
        "folds",
        "profile.folds: the fold plan (repeat, fold, patient_id, role) of a cohort under "
        "small_cohort_size patients (repeated stratified k-fold); no rows when held out.",
    ),
    _design_table(
        "evaluation_mode",
        "profile.evaluation_mode: the evaluation design chosen from the cohort size "
        "(holdout | cv), with its settings and the fold plan's fingerprint.",
    ),
]


def _split_results(con, design: EvaluationDesign, counts: dict) -> list[dg.MaterializeResult]:
    described = design.describe()
    by_split = split_prevalence(con)
    splits = table_metadata(con, "profile.splits")
    splits["by_split"] = dg.MetadataValue.md(by_split.to_markdown(index=False))
    splits["assignment"] = dg.MetadataValue.json(json.loads(json.dumps(counts, default=str)))
    folds = table_metadata(con, "profile.folds")
    if (summary := design.plan_summary(read_stratification_cohort(con))) is not None:
        folds["folds"] = dg.MetadataValue.md(summary.to_markdown(index=False))
    mode = table_metadata(con, "profile.evaluation_mode")
    for metadata in (splits, folds, mode):
        metadata["evaluation_mode"] = dg.MetadataValue.text(design.mode)
        metadata["evaluation"] = dg.MetadataValue.text(described)
    return [
        dg.MaterializeResult(
            asset_key=key, metadata=metadata, data_version=table_version(con, table)
        )
        for key, table, metadata in (
            ("splits", "profile.splits", splits),
            ("folds", "profile.folds", folds),
            ("evaluation_mode", "profile.evaluation_mode", mode),
        )
    ]


@dg.multi_asset(name="splits", specs=SPLIT_SPECS, pool="duckdb_writer", can_subset=False)
def splits(context: dg.AssetExecutionContext, config: SplitConfig, warehouse: WarehouseResource):
    """Choose the evaluation design; write the split, the fold plan and the design."""
    with warehouse.connect() as con:
        try:
            counts = write_evaluation_plan(
                con, config.cross_validation(), config.holdout_fractions, split_seed=config.seed
            )
        except ValueError as exc:
            raise dg.Failure(f"Cannot split the cohort: {exc}") from exc
        design = read_evaluation_design(con)
        results = _split_results(con, design, counts)
    context.log.info(
        f"{counts['n_patients']} patients (small_cohort_size {config.small_cohort_size}): "
        f"evaluation by {design.describe()}. Splits: {counts['splits']}"
    )
    yield from results


def build_profile_assets(spec: CohortSpec) -> list[dg.AssetsDefinition]:
    return [build_availability_asset(spec), build_recommendation_asset(spec), splits]
