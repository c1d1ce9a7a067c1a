"""Group ``<cohort>_6_evaluation``: predictions and stress tests, then the subgroup report.

Two steps, each writing several declared assets:

* ``predictions`` -> ``predictions`` (eval.predictions), ``stress_predictions``
  (eval.stress_predictions) and ``oof_predictions`` (eval.oof_predictions);
* ``subgroup_report`` -> ``subgroup_report`` (the report folder) and the tables
  ``subgroup_metrics``, ``degradation``, ``degradation_summary``,
  ``complete_case`` and ``cv_repeat_metrics`` (schema ``eval``).

How predictions are assembled and metrics averaged is the evaluation design's
(``fusion_assets.evaluation``); a table the design leaves empty is still
written, with its columns and zero rows.
"""

import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import dagster as dg
import pandas as pd

from fusion_assets.assets.design import DESIGN_ASSETS, models_ready, read_design
from fusion_assets.assets.metadata import (
    STRESS_PROFILE,
    frame_table,
    png_markdown,
    rounded,
    scored_versions,
    stress_profile,
    stress_profile_metadata,
    table_metadata,
    table_version,
)
from fusion_assets.automation import report_freshness, retraining_condition
from fusion_assets.cohorts.deployment_profile import DeploymentProfile, evaluation_profile
from fusion_assets.evaluation import StressSettings
from fusion_assets.location.cohort import Cohort
from fusion_assets.metrics.config import EvaluationConfig, ReportSettings
from fusion_assets.metrics.deployment import DEPLOYMENT_COLUMNS
from fusion_assets.metrics.tripod import AVAILABILITY_COLUMNS
from fusion_assets.models.strategies import STRATEGIES
from fusion_assets.report_folders import point_latest, versioned_report_dir
from fusion_assets.warehouse.cohort import load_cohort, load_frames
from fusion_assets.warehouse.deployment import measured, resolve_deployment
from fusion_assets.warehouse.eval_tables import (
    has_eval_table,
    qualified,
    read_eval_table,
    write_eval_tables,
)
from fusion_assets.warehouse.recommend import read_recommendation
from resources import (
    ModelStoreResource,
    ReportsResource,
    Tracking,
    TrackingResource,
    WarehouseResource,
)


class StressTestConfig(dg.Config, StressSettings):
    """The stress tests of the predictions step."""


class ReportConfig(dg.Config, ReportSettings):
    """The subgroup report's knobs (its folders: the reports resource)."""


def report_deployment(
    context: dg.AssetExecutionContext, cohort: Cohort, warehouse, config: ReportSettings
) -> DeploymentProfile | None:
    """The report's deployment profile: the one the predictions step's stress tests ran toward
    (recorded in its metadata, resolved again here); the report's own deployment_* fields,
    when given, must give that one (``evaluation_profile``). Predictions from before the
    profile was recorded: the report's fields or the spec's, resolved."""
    recorded = stress_profile(context, cohort.key("predictions"))
    with warehouse.connect() as con:
        if recorded is None:
            return resolve_deployment(con, cohort.spec, config)
        stressed = measured(con, cohort.spec, recorded.given)
        own = (
            resolve_deployment(con, cohort.spec, config)
            if config.deployment_override() is not None
            else None
        )
    return evaluation_profile(stressed, recorded.fingerprint, own, cohort.spec.modality_names)


def _model_deps(cohort: Cohort) -> list:
    return [
        dg.AssetDep(cohort.key("fused_model"), partition_mapping=dg.AllPartitionMapping()),
        dg.AssetDep(cohort.key("modality_encoder"), partition_mapping=dg.AllPartitionMapping()),
        *cohort.keys(*DESIGN_ASSETS),
    ]


def _spec(cohort: Cohort, key: str, description: str, deps: list, kind: str = "duckdb", **extra):
    return dg.AssetSpec(
        cohort.key(key),
        kinds={kind},
        deps=deps,
        description=description,
        automation_condition=retraining_condition(cohort),
        **cohort.asset_attributes("evaluation"),
        **extra,
    )


_PREDICTION_TABLES = {
    "predictions": (
        "eval.predictions: one row per strategy (or single-modality baseline) and validation or "
        "test patient. Cross-validation mode (small cohorts): test rows are every patient's "
        "out-of-fold predictions averaged over repeats, validation rows the fold models' inner "
        "validation predictions."
    ),
    "stress_predictions": (
        "eval.stress_predictions: one row per scenario, rate, seed, strategy and test patient: "
        "test patients with whole modalities removed at random, "
        "leave-one-modality-out and single-modality on complete cases (cross-validation: the "
        "first repeat's fold models, each patient scored by the model that never saw it)."
    ),
    "oof_predictions": (
        "eval.oof_predictions: one row per fold model and patient it scored, on its held-out "
        "fold and inner validation part (cross-validation mode); no rows for a held-out split."
    ),
    "model_cost": (
        "eval.model_cost: one row per deployed model (strategy or single-modality baseline): "
        "the fit's seconds, peak memory and parameters (measured when it was fitted) and its "
        "inference time per 1,000 patients, measured in this step."
    ),
}


def _table_results(
    con,
    cohort: Cohort,
    names: list[str],
    extra: Mapping[str, Mapping[str, dg.MetadataValue]] | None = None,
) -> list[dg.MaterializeResult]:
    """One result per written eval table: row count, column schema, data version."""
    return [
        dg.MaterializeResult(
            asset_key=cohort.key(name),
            metadata={**table_metadata(con, qualified(name)), **(extra or {}).get(name, {})},
            data_version=table_version(con, qualified(name)),
        )
        for name in names
    ]


def build_predictions_asset(cohort: Cohort) -> dg.AssetsDefinition:
    spec = cohort.spec
    config_type = cohort.config_class("predictions", StressTestConfig)
    deps = _model_deps(cohort)

    @dg.multi_asset(
        name=cohort.op("predictions"),
        specs=[_spec(cohort, k, d, deps) for k, d in _PREDICTION_TABLES.items()],
        pool=cohort.writer_pool,
        can_subset=False,
    )
    def predictions(
        context: dg.AssetExecutionContext,
        config: config_type,
        warehouse: WarehouseResource,
        model_store: ModelStoreResource,
    ) -> Iterator[dg.MaterializeResult]:
        """Score every strategy and baseline as the evaluation design says; stress-test them."""
        db, store = warehouse.for_cohort(cohort.name), model_store.for_cohort(cohort.name)
        design = read_design(db)
        with db.connect() as con:
            frames, patients = load_frames(con, spec), load_cohort(con)
            # the run's override or the spec's; the report follows it (report_deployment)
            deployment = resolve_deployment(con, spec, config)
        if deployment is not None:
            context.log.info(
                f"Pattern-shift stress tests toward {deployment.name!r}: {deployment.source()}"
            )
        with models_ready():
            tables = design.predictions(
                store, spec.modality_names, frames, patients, config, deployment
            )
            cost = _model_cost(store, spec.modality_names, frames, patients)
        context.log.info(tables.summary)
        written = {
            "predictions": tables.predictions,
            "stress_predictions": tables.stress,
            "oof_predictions": tables.oof,
            "model_cost": cost,
        }
        mode = {"evaluation_mode": dg.MetadataValue.text(design.mode)}
        extra = {name: mode for name in written}
        extra["predictions"] = {
            **mode,
            "stress_rows": dg.MetadataValue.int(len(tables.stress)),
            "strategies": dg.MetadataValue.text(", ".join(tables.predictions["strategy"].unique())),
            # The registered version of each model scored (promotion compares these).
            "model_versions": dg.MetadataValue.json(store.versions_used),
            STRESS_PROFILE: stress_profile_metadata(deployment, spec.modality_names),
        }
        with db.connect() as con:
            write_eval_tables(con, written)
            yield from _table_results(con, cohort, list(written), extra)

    return predictions


def _model_cost(store, modalities, frames, patients):
    """The deployed models' costs, inference timed on the test patients (all without a test
    split)."""
    from fusion_assets.evaluation.models import load_deployed_models
    from fusion_assets.models.cost import cost_table

    test = patients.loc[patients["split"] == "test", "patient_id"]
    ids = (test if len(test) else patients["patient_id"]).tolist()
    return cost_table(load_deployed_models(store, modalities), frames, ids)


REPORT_TABLES = {
    "subgroup_metrics": "eval.subgroup_metrics: one row per strategy x subgroup (availability pattern, "
    "sex, age band, site, all): n, events, AUROC, AUPRC, Brier, calibration, ECE, "
    "sensitivity/specificity, with paired bootstrap CIs (small cells suppressed).",
    "degradation": "eval.degradation: one row per strategy x stress scenario x missingness "
    "rate, with its AUROC.",
    "degradation_summary": "eval.degradation_summary: one row per strategy x scenario: the area under "
    "the degradation curve, the drop and the share retained, also relative to late fusion.",
    "complete_case": "eval.complete_case: one row per strategy and scenario: leave-one-modality-out and single-modality AUROCs on "
    "the complete cases, beside each strategy's full-data AUROC.",
    "cv_repeat_metrics": "eval.cv_repeat_metrics: one row per strategy, the all-patients AUROC "
    "per cross-validation repeat (spread over fold assignments); no rows for a held-out split.",
    "net_benefit": "eval.net_benefit: one row per strategy (and treat all) x named risk threshold "
    "x subgroup (all patients with paired bootstrap CIs, availability patterns as points).",
    "deployment_metrics": "eval.deployment_metrics: one row per strategy under the deployment "
    "availability profile (held-out patients reweighted by pattern): AUROC and Brier with CIs; "
    "no rows without a profile.",
    "availability_by_group": "eval.availability_by_group: one row per demographic subgroup "
    "(all, sex, age band, site) x modality: test patients, how many have the modality and the "
    "share (TRIPOD+AI 20b; NaN where the small-cell rule hides it).",
}
_REPORT_INPUTS = (
    "predictions",
    "stress_predictions",
    "oof_predictions",
    "model_cost",
    "fusion_recommendation",
)
_REPORT_DESCRIPTION = (
    "The subgroup report (Markdown + HTML with plots, the verdict, a model card per strategy) in "
    "a run-versioned folder, reports/latest linking to the newest; logged to MLflow with the "
    "headline metrics."
)


def _report_specs(cohort: Cohort) -> list[dg.AssetSpec]:
    deps = cohort.keys(*_REPORT_INPUTS, *DESIGN_ASSETS)
    return [
        _spec(
            cohort,
            "subgroup_report",
            _REPORT_DESCRIPTION,
            deps,
            kind="mlflow",
            freshness_policy=report_freshness(),
        ),
        *(_spec(cohort, name, text, deps) for name, text in REPORT_TABLES.items()),
    ]


def _report_inputs(warehouse) -> dict:
    with warehouse.connect() as con:
        return {
            "predictions": read_eval_table(con, "predictions"),
            "stress": read_eval_table(con, "stress_predictions"),
            "oof": read_eval_table(con, "oof_predictions"),
            # predictions materialized before costs were measured: the report says so
            "cost": read_eval_table(con, "model_cost")
            if has_eval_table(con, "model_cost")
            else pd.DataFrame(),
            "patients": load_cohort(con),
            "recommendation": read_recommendation(con),
        }


def build_report_asset(cohort: Cohort) -> dg.AssetsDefinition:
    spec = cohort.spec
    config_type = cohort.config_class("subgroup_report", ReportConfig)

    @dg.multi_asset(
        name=cohort.op("subgroup_report"),
        specs=_report_specs(cohort),
        pool=cohort.writer_pool,
        can_subset=False,
    )
    def subgroup_report(
        context: dg.AssetExecutionContext,
        config: config_type,
        warehouse: WarehouseResource,
        tracking: TrackingResource,
        model_store: ModelStoreResource,
        reports: ReportsResource,
    ) -> Iterator[dg.MaterializeResult]:
        """Evaluate, write the tables, render the report in a new folder, log it, link latest."""
        from fusion_assets.metrics.evaluate import evaluate
        from fusion_assets.metrics.report import render_report

        db = warehouse.for_cohort(cohort.name)
        design, inputs = read_design(db), _report_inputs(db)
        t0 = time.perf_counter()
        result = evaluate(
            inputs["predictions"],
            inputs["patients"],
            inputs["stress"],
            inputs["recommendation"],
            EvaluationConfig(**config.model_dump(include=set(ReportSettings.model_fields))),
            spec.modality_names,
            repeats=design.repeats(inputs["oof"]),
            deployment=report_deployment(context, cohort, db, config),
        )
        repeat_metrics = design.repeat_metrics(inputs["oof"], inputs["patients"])
        result.cohort["design"] = design.notes(repeat_metrics)
        result.cost = inputs["cost"]
        out_dir = versioned_report_dir(reports.for_cohort(cohort.name), context.run.run_id)
        files = render_report(
            result,
            out_dir,
            title=f"Fusion strategy evaluation: {spec.name}",
            provenance=_provenance(context, cohort, db),
        )
        seconds = time.perf_counter() - t0
        context.log.info(f"Evaluation and report in {seconds:.1f} s: {files.html_path}")
        tables = {
            "subgroup_metrics": result.table,
            "degradation": result.curves,
            "degradation_summary": result.summary,
            "complete_case": result.complete_case,
            "cv_repeat_metrics": repeat_metrics,
            "net_benefit": result.utility.table,
            "availability_by_group": (
                result.availability
                if len(result.availability)
                else pd.DataFrame(columns=AVAILABILITY_COLUMNS)
            ),
            "deployment_metrics": (
                result.deployment.table
                if result.deployment is not None
                else pd.DataFrame(columns=DEPLOYMENT_COLUMNS)
            ),
        }
        with db.connect() as con:
            write_eval_tables(con, tables)
            table_results = _table_results(con, cohort, list(tables))
        run_id = _log_report(
            context,
            tracking.for_cohort(cohort.name),
            model_store.for_cohort(cohort.name),
            files,
            result,
        )
        latest = point_latest(out_dir)  # last: a failed run never moves latest
        metadata = _report_metadata(files, result, seconds, run_id, latest)
        metadata["evaluation_mode"] = dg.MetadataValue.text(design.mode)
        yield dg.MaterializeResult(asset_key=cohort.key("subgroup_report"), metadata=metadata)
        yield from table_results

    return subgroup_report


def _provenance(context: dg.AssetExecutionContext, cohort: Cohort, warehouse) -> dict[str, str]:
    """What the report is about: when, which run, which model versions, which batches."""
    from datetime import UTC, datetime

    versions = scored_versions(context, cohort.key("predictions"))
    with warehouse.connect() as con:
        batches = [r[0] for r in con.sql("SELECT batch_id FROM raw.batches ORDER BY 1").fetchall()]
    return {
        "generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "Dagster run": context.run.run_id,
        "model versions scored": ", ".join(f"{k} v{v}" for k, v in sorted(versions.items()))
        or "unknown (no predictions materialization recorded)",
        "landing batches": ", ".join(batches) or "none",
    }


def _report_metadata(files, result, seconds: float, run_id: str, latest: Path) -> dict:
    metadata = {
        # A file:// URL is a link the UI opens; the paths are there to copy.
        "report": dg.MetadataValue.url(Path(files.html_path).resolve().as_uri()),
        "report_html": dg.MetadataValue.path(str(files.html_path)),
        "report_markdown": dg.MetadataValue.path(str(files.markdown_path)),
        "report_latest": dg.MetadataValue.path(str(latest / files.html_path.name)),
        "headline": frame_table(files.headline),
        "auroc_estimate": dg.MetadataValue.text(files.estimate),
        "verdict": dg.MetadataValue.md(_verdict_md(result.verdict)),
        "leaks_flagged": dg.MetadataValue.int(len(result.leaks)),
        "evaluation_seconds": rounded(seconds, 1),
        "mlflow_run_id": dg.MetadataValue.text(run_id),
    }
    if result.deployment is not None:
        best = result.deployment.table.iloc[0]
        metadata["deployment_profile"] = dg.MetadataValue.text(result.deployment.profile.name)
        metadata["deployment_source"] = dg.MetadataValue.text(result.deployment.profile.source())
        metadata["deployment_best"] = dg.MetadataValue.text(
            f"{best['strategy']}: AUROC {best['auroc']:.3f} "
            f"[{best['auroc_ci_low']:.3f}, {best['auroc_ci_high']:.3f}]"
        )
        metadata["deployment_effective_n"] = rounded(result.deployment.reweighting.ess, 0)
        if result.deployment.warnings:
            metadata["deployment_warnings"] = dg.MetadataValue.text(
                "; ".join(result.deployment.warnings)
            )
    if files.metadata_plot is not None:
        metadata["forest_plot"] = png_markdown(files.metadata_plot.read_bytes(), "forest plot")
    return metadata


def build_evaluation_assets(cohort: Cohort) -> list[dg.AssetsDefinition]:
    return [build_predictions_asset(cohort), build_report_asset(cohort)]


def _log_report(context, tracking: Tracking, model_store, files, result) -> str:
    """The report and headline metrics in an evaluation run, and on each strategy's fit run."""
    import mlflow
    from mlflow.tracking import MlflowClient

    headline = files.headline.set_index("strategy")
    with tracking.run("subgroup_report", context=context) as run:
        mlflow.log_artifacts(str(files.markdown_path.parent), artifact_path="report")
        for strategy, row in headline.iterrows():
            key = strategy.replace(":", "_")
            mlflow.log_metric(f"test_auroc_{key}", float(row["auroc"]))
        run_id = run.info.run_id
    client = MlflowClient(tracking.tracking_uri)
    for strategy in STRATEGIES:
        fit_run = model_store.run_id(strategy)  # the registered version the report scored
        if fit_run is None or strategy not in headline.index:
            continue
        client.log_artifacts(fit_run, str(files.markdown_path.parent), artifact_path="evaluation")
        client.log_metric(fit_run, "test_auroc", float(headline.loc[strategy, "auroc"]))
    return run_id


def _verdict_md(verdict) -> str:
    lines = [
        f"- recommended: **{verdict.recommended}**; stress-test winner: **{verdict.stress_winner}**"
    ]
    lines += [f"- {sentence}" for sentence in verdict.disagreements]
    lines += [f"- claim '{c.claim}': {c.status} ({c.evidence})" for c in verdict.claims]
    lines += [f"- {sentence}" for sentence in verdict.calibration]
    return "\n".join(lines)
