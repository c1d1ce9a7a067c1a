"""Group ``profile``: availability profile, fusion recommendation and patient splits."""

import json

import dagster as dg
import pandas as pd
from pydantic import Field

from fusion_assets.assets.metadata import table_metadata, table_version
from fusion_assets.cohorts import CohortSpec
from fusion_assets.crossval import CV, CrossValSettings, fold_summary
from fusion_assets.metrics.plots import pattern_chart_png, png_markdown
from fusion_assets.warehouse.folds import write_evaluation_plan
from fusion_assets.warehouse.profile import build_availability, summarize_profile
from fusion_assets.warehouse.recommend import (
    RecommendationThresholds,
    recommend_strategies,
    write_recommendation,
)
from resources import WarehouseResource

_DEFAULTS = RecommendationThresholds()


class RecommendationConfig(dg.Config):
    """The decision matrix's thresholds (defaults documented in warehouse/recommend.py)."""

    min_availability: float = _DEFAULTS.min_availability
    min_complete_case: float = _DEFAULTS.min_complete_case
    dim_ratio: float = _DEFAULTS.dim_ratio
    temporal_min_availability: float = _DEFAULTS.temporal_min_availability
    irregular_gap_cv: float = _DEFAULTS.irregular_gap_cv
    small_cohort: int = _DEFAULTS.small_cohort
    early_min_complete_case: float = _DEFAULTS.early_min_complete_case
    controlled_max_sites: int = _DEFAULTS.controlled_max_sites


_CV = CrossValSettings()


class SplitConfig(dg.Config):
    seed: int = 0
    train: float = Field(default=0.6, description="Share of each label x pattern stratum")
    validation: float = 0.2
    test: float = 0.2
    small_cohort_size: int = Field(
        default=_CV.small_cohort_size,
        description="Cohorts with fewer patients are evaluated by repeated stratified k-fold "
        "(0: always a held-out split)",
    )
    folds: int = Field(default=_CV.folds, description="k of the repeated k-fold (small cohorts)")
    repeats: int = Field(default=_CV.repeats, description="Repeats of the k-fold (small cohorts)")
    inner_validation: float = Field(
        default=_CV.inner_validation,
        description="Small cohorts: share of each fold model's training folds (and of the final "
        "model's patients) kept for early stopping, stacking and thresholds",
    )

    def cross_validation(self) -> CrossValSettings:
        return CrossValSettings(
            small_cohort_size=self.small_cohort_size,
            folds=self.folds,
            repeats=self.repeats,
            seed=self.seed,
            inner_validation=self.inner_validation,
        )


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


def build_profile_assets(spec: CohortSpec) -> list[dg.AssetsDefinition]:
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
        metadata.update(
            {
                "n_patients": dg.MetadataValue.int(summary["n_patients"]),
                "label_prevalence": dg.MetadataValue.float(summary["label_prevalence"] or 0.0),
                "complete_case_fraction": dg.MetadataValue.float(summary["complete_case_fraction"]),
                "availability": dg.MetadataValue.json(summary["availability"]),
                "dimensionality": dg.MetadataValue.json(summary["dimensionality"]),
                "cadence": dg.MetadataValue.json(summary["cadence"]),
                "summary": dg.MetadataValue.md(_summary_tables(summary)),
                "pattern_counts": dg.MetadataValue.md(
                    png_markdown(pattern_chart_png(summary), "availability patterns")
                ),
            }
        )
        return dg.MaterializeResult(metadata=metadata, data_version=version)

    @dg.asset(
        group_name="profile",
        deps=[availability_profile],
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
        lines = []
        for r in ranked:
            lines.append(f"{r['rank']}. **{r['strategy']}** (score {r['score']:.1f})")
            lines += [f"   - {reason}" for reason in r["reasons"]]
        context.log.info(f"Recommended: {[r['strategy'] for r in ranked]}")
        return dg.MaterializeResult(
            metadata={
                "recommended": dg.MetadataValue.text(ranked[0]["strategy"]),
                "ranking": dg.MetadataValue.md("\n".join(lines)),
                "thresholds": dg.MetadataValue.json(json.loads(json.dumps(config.model_dump()))),
            }
        )

    @dg.asset(
        group_name="profile",
        deps=[availability_profile],
        kinds={"duckdb"},
        pool="duckdb_writer",
        description=(
            "profile.splits: patient-level train/validation/test, stratified by label x "
            "availability pattern, seeded; a patient keeps its split when the cohort grows. "
            "Cohorts under small_cohort_size patients are evaluated by repeated stratified "
            "k-fold instead: profile.folds holds the fold plan, profile.splits the final "
            "model's train/validation, profile.evaluation_mode the mode."
        ),
    )
    def splits(
        context: dg.AssetExecutionContext, config: SplitConfig, warehouse: WarehouseResource
    ) -> dg.MaterializeResult:
        with warehouse.connect() as con:
            try:
                settings = config.cross_validation()
                counts = write_evaluation_plan(
                    con,
                    settings,
                    (config.train, config.validation, config.test),
                    split_seed=config.seed,
                )
            except ValueError as exc:
                raise dg.Failure(f"Cannot split the cohort: {exc}") from exc
            metadata = table_metadata(con, "profile.splits")
            # The fold plan is part of what downstream fits depend on (empty in holdout mode).
            version = dg.DataVersion(
                f"{table_version(con, 'profile.splits').value}"
                f"/{table_version(con, 'profile.folds').value}"
            )
            by_split = con.sql(
                "SELECT split, count(*) AS patients, round(avg(a.label), 3) AS prevalence "
                "FROM profile.splits s JOIN profile.availability a USING (patient_id) "
                "GROUP BY split ORDER BY split"
            ).df()
            if counts["mode"] == CV:
                plan = con.sql("SELECT * FROM profile.folds").df()
                cohort = con.sql("SELECT patient_id, label FROM profile.availability").df()
                metadata["folds"] = dg.MetadataValue.md(
                    fold_summary(plan, cohort).to_markdown(index=False)
                )
        mode = counts["mode"]
        described = settings.describe() if mode == CV else "a held-out test split"
        context.log.info(
            f"{counts['n_patients']} patients (small_cohort_size {settings.small_cohort_size}): "
            f"evaluation by {described}. Splits: {counts['splits']}"
        )
        metadata["evaluation_mode"] = dg.MetadataValue.text(mode)
        metadata["evaluation"] = dg.MetadataValue.text(described)
        metadata["by_split"] = dg.MetadataValue.md(by_split.to_markdown(index=False))
        metadata["assignment"] = dg.MetadataValue.json(json.loads(json.dumps(counts, default=str)))
        return dg.MaterializeResult(metadata=metadata, data_version=version)

    return [availability_profile, fusion_recommendation, splits]
