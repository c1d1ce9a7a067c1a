"""Group ``evaluation``: predictions and stress tests, then the subgroup report."""

import json
import time
from pathlib import Path

import dagster as dg
import pandas as pd
from pydantic import Field

from fusion_assets.assets.crossval_run import evaluation_mode, fold_root
from fusion_assets.assets.encoders import ENCODER_STORE
from fusion_assets.assets.frames import load_cohort, load_frames
from fusion_assets.assets.fusion import FUSION_STORE, STRATEGIES
from fusion_assets.assets.metadata import png_markdown, table_metadata
from fusion_assets.cohorts import CohortSpec
from fusion_assets.metrics.degradation import STRESS_RATES, STRESS_SEEDS
from fusion_assets.warehouse.sql import table_exists
from resources import ModelStoreResource, TrackingResource, WarehouseResource
from resources.paths import default_path


def load_strategy_models(model_store: ModelStoreResource, spec: CohortSpec) -> dict:
    """Every fitted fusion strategy and single-modality baseline in the model store."""
    from fusion_assets.models.api import load_model

    wanted = [(FUSION_STORE, s) for s in STRATEGIES] + [
        (ENCODER_STORE, f"single:{m}") for m in spec.modality_names
    ]
    missing = [name for kind, name in wanted if not model_store.exists(kind, name)]
    if missing:
        raise dg.Failure(
            f"No fitted model for {missing} in {model_store.path}: materialize "
            "modality_encoder and fused_model (all partitions) first."
        )
    return {name: load_model(model_store.model_dir(kind, name)) for kind, name in wanted}


def _strategy_stores(spec: CohortSpec) -> list[tuple[str, str]]:
    return [(FUSION_STORE, s) for s in STRATEGIES] + [
        (ENCODER_STORE, f"single:{m}") for m in spec.modality_names
    ]


def cross_validated_predictions(
    spec: CohortSpec, model_store: ModelStoreResource, mode, frames: dict, stress_kwargs: dict
) -> tuple:
    """Cross-validation mode: (eval.predictions, eval.oof_predictions, eval.stress_predictions).

    Predictions come from the fold models' out-of-fold files (see crossval_training);
    stress tests run on the first repeat's fold models, each patient scored by the
    model that never saw it.
    """
    from fusion_assets.crossval import fold_keys
    from fusion_assets.crossval_training import (
        StaleFoldModels,
        average_repeats,
        load_fold_models,
        load_oof,
        stress_by_fold,
    )
    from fusion_assets.scoring import stress_test

    try:
        oof = pd.concat(
            [
                load_oof(fold_root(model_store, kind, name), mode.plan_id, name).assign(
                    strategy=name
                )
                for kind, name in _strategy_stores(spec)
            ],
            ignore_index=True,
        )
        first = [k for k in fold_keys(mode.plan) if k[0] == 0]
        fused = {
            s: load_fold_models(fold_root(model_store, FUSION_STORE, s), mode.plan_id, s, first)
            for s in STRATEGIES
        }
    except StaleFoldModels as exc:
        raise dg.Failure(str(exc)) from exc
    oof = oof[["strategy", "repeat", "fold", "patient_id", "role", "prob"]]
    stress = stress_by_fold(fused, frames, mode.plan, 0, stress_test, **stress_kwargs)
    return average_repeats(oof), oof, stress


class StressTestConfig(dg.Config):
    rates: list[float] = Field(
        default=list(STRESS_RATES),
        description="Fractions of present modalities removed at random",
    )
    mask_seeds: int = Field(default=STRESS_SEEDS, description="Random masks per rate")


def build_evaluation_assets(spec: CohortSpec) -> list[dg.AssetsDefinition]:
    @dg.asset(
        group_name="evaluation",
        deps=[
            dg.AssetDep("fused_model", partition_mapping=dg.AllPartitionMapping()),
            dg.AssetDep("modality_encoder", partition_mapping=dg.AllPartitionMapping()),
        ],
        kinds={"duckdb", "pytorch"},
        pool="duckdb_writer",
        description=(
            "eval.predictions (every strategy and single-modality baseline on every validation "
            "and test patient) and eval.stress_predictions (test patients with whole modalities "
            "removed at random, leave-one-modality-out and single-modality on complete cases). "
            "Cross-validation mode (small cohorts): test rows are every patient's out-of-fold "
            "predictions averaged over repeats, validation rows the fold models' inner "
            "validation predictions; per-fold rows in eval.oof_predictions."
        ),
    )
    def predictions(
        context: dg.AssetExecutionContext,
        config: StressTestConfig,
        warehouse: WarehouseResource,
        model_store: ModelStoreResource,
    ) -> dg.MaterializeResult:
        from fusion_assets.scoring import score, stress_test

        mode = evaluation_mode(warehouse)
        with warehouse.connect() as con:
            frames = load_frames(con, spec)
            cohort = load_cohort(con)
        t0 = time.perf_counter()
        oof = None
        if mode.is_cv:
            stress_kwargs = {"rates": config.rates, "n_seeds": config.mask_seeds}
            preds, oof, stress = cross_validated_predictions(
                spec, model_store, mode, frames, stress_kwargs
            )
            names = list(preds["strategy"].unique())
            context.log.info(
                f"Cross-validation: {len(oof):,} out-of-fold rows from {len(names)} models; "
                f"stress tests on the first repeat's fold models in {time.perf_counter() - t0:.1f} s"
            )
        else:
            models = load_strategy_models(model_store, spec)
            names = list(models)
            scored = cohort[cohort["split"].isin(["validation", "test"])]
            preds = score(models, frames, scored)
            context.log.info(
                f"Scored {len(scored)} validation/test patients with {len(models)} models "
                f"in {time.perf_counter() - t0:.1f} s"
            )
            test_ids = scored.loc[scored["split"] == "test", "patient_id"].tolist()
            fused = {s: models[s] for s in STRATEGIES}
            t0 = time.perf_counter()
            stress = stress_test(fused, frames, test_ids, config.rates, config.mask_seeds)
            context.log.info(
                f"Stress tests: {len(stress):,} predictions in {time.perf_counter() - t0:.1f} s"
            )
        with warehouse.connect() as con:
            con.execute("CREATE SCHEMA IF NOT EXISTS eval")
            con.register("preds_df", preds)
            con.register("stress_df", stress)
            con.execute("CREATE OR REPLACE TABLE eval.predictions AS SELECT * FROM preds_df")
            con.execute(
                "CREATE OR REPLACE TABLE eval.stress_predictions AS SELECT * FROM stress_df"
            )
            if oof is not None:
                con.register("oof_df", oof)
                con.execute("CREATE OR REPLACE TABLE eval.oof_predictions AS SELECT * FROM oof_df")
            else:
                # A stale table from an earlier cross-validated run must not be mistaken
                # for this run's predictions.
                con.execute("DROP TABLE IF EXISTS eval.oof_predictions")
            metadata = table_metadata(con, "eval.predictions")
            metadata["stress_rows"] = dg.MetadataValue.int(len(stress))
        metadata["evaluation_mode"] = dg.MetadataValue.text(mode.mode)
        metadata["strategies"] = dg.MetadataValue.text(", ".join(names))
        return dg.MaterializeResult(metadata=metadata)

    return [predictions, build_report_asset(spec)]


class ReportConfig(dg.Config):
    n_boot: int = Field(default=1000, description="Paired stratified bootstrap resamples")
    min_pattern_size: int = Field(
        default=30, description="Availability patterns with fewer test patients pool into 'other'"
    )
    suppress_below: int = Field(
        default=11, description="Cells under this many patients are suppressed"
    )
    report_dir: str = Field(
        default_factory=lambda: default_path("reports"), description="Where report files go"
    )


def _recommendation(con) -> list[dict]:
    if not table_exists(con, "profile", "recommendation"):
        return []
    frame = con.sql("SELECT * FROM profile.recommendation ORDER BY rank").df()
    return frame.to_dict("records")


def build_report_asset(spec: CohortSpec) -> dg.AssetsDefinition:
    @dg.asset(
        group_name="evaluation",
        deps=["predictions", "fusion_recommendation"],
        kinds={"duckdb", "mlflow"},
        pool="duckdb_writer",
        description=(
            "Per strategy × subgroup (availability pattern, sex, age band, site, all): n, events, "
            "AUROC, AUPRC, Brier, calibration, ECE, sensitivity/specificity, with paired bootstrap "
            "CIs; degradation curves; the verdict. Markdown + HTML report with plots. "
            "Cross-validation mode: every metric per repeat of eval.oof_predictions, averaged."
        ),
    )
    def subgroup_report(
        context: dg.AssetExecutionContext,
        config: ReportConfig,
        warehouse: WarehouseResource,
        tracking: TrackingResource,
        model_store: ModelStoreResource,
    ) -> dg.MaterializeResult:
        from fusion_assets.metrics.config import EvaluationConfig
        from fusion_assets.metrics.evaluate import evaluate
        from fusion_assets.metrics.report import render_report

        mode = evaluation_mode(warehouse)
        with warehouse.connect() as con:
            predictions = con.sql("SELECT * FROM eval.predictions").df()
            stress = con.sql("SELECT * FROM eval.stress_predictions").df()
            patients = load_cohort(con)
            recommendation = _recommendation(con)
            oof = con.sql("SELECT * FROM eval.oof_predictions").df() if mode.is_cv else None
        eval_config = EvaluationConfig(
            n_boot=config.n_boot,
            min_pattern_size=config.min_pattern_size,
            suppress_below=config.suppress_below,
        )
        t0 = time.perf_counter()
        # In cv mode the metrics are computed per repeat on the out-of-fold rows and
        # averaged (a single-model estimate), not on the repeat-averaged predictions.
        result = evaluate(
            predictions,
            patients,
            stress,
            recommendation,
            eval_config,
            spec.modality_names,
            repeats=oof,
        )
        tables = {}
        if oof is not None:
            from fusion_assets.metrics.crossval import repeat_aurocs

            # The report names the design and shows the per-repeat spread (metrics/crossval.py).
            tables["cv_repeat_metrics"] = repeat_aurocs(oof, patients)
            result.cohort["evaluation"] = {
                **mode.settings,
                "mode": mode.mode,
                "n_patients": mode.n_patients,
            }
            result.cohort["cv_repeats"] = tables["cv_repeat_metrics"]
        out_dir = Path(config.report_dir) / "latest"
        files = render_report(result, out_dir, title=f"Fusion strategy evaluation: {spec.name}")
        seconds = time.perf_counter() - t0
        context.log.info(f"Evaluation and report in {seconds:.1f} s: {files.html_path}")

        with warehouse.connect() as con:
            for table, frame in {
                "subgroup_metrics": result.table,
                "degradation": result.curves,
                "degradation_summary": result.summary,
                "complete_case": result.complete_case,
                **tables,
            }.items():
                con.register("frame_df", frame)
                con.execute(f"CREATE OR REPLACE TABLE eval.{table} AS SELECT * FROM frame_df")
                con.unregister("frame_df")
            if oof is None:
                con.execute("DROP TABLE IF EXISTS eval.cv_repeat_metrics")
            metadata = table_metadata(con, "eval.subgroup_metrics")

        run_id = _log_report(context, tracking, model_store, files, result)
        metadata.update(
            {
                "report_html": dg.MetadataValue.path(str(files.html_path)),
                "report_markdown": dg.MetadataValue.path(str(files.markdown_path)),
                "headline": dg.MetadataValue.md(files.headline.round(3).to_markdown(index=False)),
                "verdict": dg.MetadataValue.md(_verdict_md(result.verdict)),
                "leaks_flagged": dg.MetadataValue.int(len(result.leaks)),
                "evaluation_seconds": dg.MetadataValue.float(round(seconds, 2)),
                "evaluation_mode": dg.MetadataValue.text(mode.mode),
                "mlflow_run_id": dg.MetadataValue.text(run_id),
            }
        )
        if files.metadata_plot is not None:
            metadata["forest_plot"] = png_markdown(files.metadata_plot.read_bytes(), "forest plot")
        return dg.MaterializeResult(metadata=metadata)

    return subgroup_report


def _log_report(context, tracking: TrackingResource, model_store, files, result) -> str:
    """The report and headline metrics in an evaluation run, and on each strategy's fit run."""
    import mlflow
    from mlflow.tracking import MlflowClient

    headline = files.headline.set_index("strategy")
    with tracking.run("subgroup_report", dagster_run_id=context.run_id) as run:
        mlflow.log_artifacts(str(files.markdown_path.parent), artifact_path="report")
        for strategy, row in headline.iterrows():
            key = strategy.replace(":", "_")
            mlflow.log_metric(f"test_auroc_{key}", float(row["auroc"]))
        run_id = run.info.run_id
    client = MlflowClient(tracking.tracking_uri)
    for strategy in STRATEGIES:
        record = model_store.model_dir(FUSION_STORE, strategy) / "mlflow_run.json"
        if not record.exists() or strategy not in headline.index:
            continue
        fit_run = json.loads(record.read_text())["run_id"]
        client.log_artifacts(fit_run, str(files.markdown_path.parent), artifact_path="evaluation")
        client.log_metric(fit_run, "test_auroc", float(headline.loc[strategy, "auroc"]))
    return run_id


def _verdict_md(verdict) -> str:
    lines = [
        f"- recommended: **{verdict.recommended}**; stress-test winner: **{verdict.stress_winner}**"
    ]
    lines += [f"- {sentence}" for sentence in verdict.disagreements]
    lines += [f"- claim '{c.claim}': {c.status} ({c.evidence})" for c in verdict.claims]
    return "\n".join(lines)
