"""The whole asset graph materialized on a tiny synthetic cohort (real parts throughout)."""

from __future__ import annotations

import base64
from pathlib import Path

import dagster as dg
import mlflow
import pytest
from mlflow.tracking import MlflowClient

from fusion_assets.assets.fusion import STRATEGIES
from tests.fixtures.pipeline import SYNTHETIC, PipelineRun, run_tiny_pipeline

pytestmark = pytest.mark.slow
MODALITIES = SYNTHETIC.spec.modality_names


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> PipelineRun:
    return run_tiny_pipeline(tmp_path_factory.mktemp("pipeline"))


def test_every_asset_is_materialized(run: PipelineRun) -> None:
    assert all(r.success for r in run.results)
    # Each run is named after its job: what it does, for which cohort.
    assert {r.dagster_run.job_name for r in run.results} == {
        f"synthetic_{stage}"
        for stage in ("ingest", "align", "profile", "encoders", "fusion", "evaluation")
    }
    for spec in run.defs.resolve_all_asset_specs():
        if spec.key in (run.key("batch_evaluation"), run.key("risk_scores")):
            continue  # driven by the sensors; see tests/test_sensors.py, tests/test_risk_scores.py
        event = run.instance.get_latest_materialization_event(spec.key)
        assert event is not None, f"{spec.key.to_user_string()} was never materialized"


def test_asset_checks_pass(run: PipelineRun) -> None:
    evaluations = [e for r in run.results for e in r.get_asset_check_evaluations()]
    names = {e.check_name for e in evaluations}
    assert {
        "unique_patient_ids",
        "labels_and_index_times",
        "availability_above_floor",
        "label_prevalence_not_degenerate",
        "no_rows_after_index_time",
        "no_strategy_beats_oracle",
        # every fit's own blocking checks (fusion_assets/fit_checks.py)
        "validation_auroc_is_finite",
        "trained_at_least_one_epoch",
        "not_worse_than_best_single_modality",
    } <= names
    failed = [(e.check_name, e.description) for e in evaluations if not e.passed]
    assert not failed


def test_predictions_cover_every_strategy_and_patient(run: PipelineRun) -> None:
    with run.warehouse.connect() as con:
        per_strategy = dict(
            con.sql("SELECT strategy, count(*) FROM eval.predictions GROUP BY 1").fetchall()
        )
        n_scored = con.sql(
            "SELECT count(*) FROM profile.splits WHERE split IN ('validation', 'test')"
        ).fetchone()[0]
        stress = con.sql("SELECT DISTINCT scenario FROM eval.stress_predictions").fetchall()
        probs = con.sql("SELECT min(prob), max(prob) FROM eval.predictions").fetchone()
    expected = set(STRATEGIES) | {f"single:{m}" for m in MODALITIES}
    assert set(per_strategy) == expected
    assert set(per_strategy.values()) == {n_scored}
    assert 0.0 < probs[0] <= probs[1] < 1.0
    scenarios = {s for (s,) in stress}
    assert {"global", "leave_one_out", "single_modality"} <= scenarios
    assert {f"modality:{m}" for m in MODALITIES} <= scenarios


def test_report_tables_and_files(run: PipelineRun) -> None:
    with run.warehouse.connect() as con:
        table = con.sql("SELECT * FROM eval.subgroup_metrics").df()
        degradation = con.sql("SELECT count(*) FROM eval.degradation").fetchone()[0]
    assert {"all", "pattern", "sex", "age_band", "site"} <= set(table["subgroup_type"])
    overall = table[table["subgroup_type"] == "all"].set_index("strategy")
    assert overall.loc["late", "auroc_ci_low"] <= overall.loc["late", "auroc"]
    assert overall["oracle_auroc"].notna().all()
    assert degradation > 0
    html = (run.report_dir / "report.html").read_text()
    markdown = (run.report_dir / "report.md").read_text()
    images = html.count("data:image/png;base64,")
    assert images >= 4
    first = html.split("data:image/png;base64,")[1].split('"')[0]
    assert base64.b64decode(first)[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Headline" in markdown and "Verdict" in markdown
    assert "Clinical utility (decision curves)" in markdown and "decision_curves.png" in markdown
    assert "Expected performance at deployment" not in markdown  # no profile given
    assert "## TRIPOD+AI" in markdown and "(item 20b)" in markdown
    with run.warehouse.connect() as con:
        by_group = con.sql("SELECT * FROM eval.availability_by_group").df()
    assert set(by_group["modality"]) == set(MODALITIES) and "all" in set(by_group["subgroup"])
    provenance = markdown.split("## Provenance", 1)[1].split("\n## ", 1)[0]
    assert "- Dagster run: " in provenance and "- landing batches: " in provenance
    assert "late v1" in provenance  # the registered version predictions scored
    # No patient identifier leaves the warehouse.
    with run.warehouse.connect() as con:
        some_id = con.sql("SELECT patient_id FROM aligned.patients LIMIT 1").fetchone()[0]
    assert some_id not in html and some_id not in markdown


def test_the_report_has_a_cost_table_for_every_strategy(run: PipelineRun) -> None:
    """Training seconds, inference time, parameters and peak memory, measured during the
    run: saved with each fit (model.json, MLflow), in eval.model_cost and the report."""
    from fusion_assets.models.api import load_model
    from fusion_assets.names import FUSION_STORE

    expected = set(STRATEGIES) | {f"single:{m}" for m in MODALITIES}
    with run.warehouse.connect() as con:
        cost = con.sql("SELECT * FROM eval.model_cost").df().set_index("strategy")
    assert set(cost.index) == expected
    for column in ("train_seconds", "inference_ms_per_1000", "n_parameters", "peak_rss_mib"):
        assert (cost[column] > 0).all(), cost[column]
    assert (cost["peak_rss_increase_mib"] >= 0).all()
    assert cost.loc["reference", "parameters_counted"] == "tree nodes"
    assert cost.loc["early", "parameters_counted"] == "torch parameters"

    section = (run.report_dir / "report.md").read_text().split("\n## Cost\n")[1]
    section = section.split("\n## ")[0]
    header = next(line for line in section.splitlines() if line.startswith("| strategy |"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    for strategy in expected:
        line = next(x for x in section.splitlines() if x.startswith(f"| {strategy} |"))
        cells = dict(zip(columns, (c.strip() for c in line.strip("|").split("|")), strict=True))
        for column in ("training s", "inference ms / 1,000 patients", "parameters"):
            assert float(cells[column].replace(",", "")) > 0, (strategy, column, cells)
        memory = cells["peak memory of the fit, MiB (process RSS)"]  # "+12 (845)"
        assert float(memory.split("(")[1].rstrip(")")) > 0, (strategy, memory)

    fitted = load_model(run.stores["model_store"].model_dir(FUSION_STORE, "late"))
    assert fitted.cost["train_seconds"] == cost.loc["late", "train_seconds"]
    client = MlflowClient(run.stores["tracking"].tracking_uri)
    logged = client.get_run(run.stores["model_store"].run_id("late")).data.metrics
    assert logged["fit_peak_rss_mib"] == cost.loc["late", "peak_rss_mib"]


def test_every_fit_is_an_mlflow_run_with_a_loadable_model(run: PipelineRun) -> None:
    tracking = run.stores["tracking"]
    client = MlflowClient(tracking.tracking_uri)
    experiment = client.get_experiment_by_name(tracking.experiment)
    runs = client.search_runs([experiment.experiment_id], max_results=200)
    fits = {r.info.run_name: r for r in runs if "fusion.kind" in r.data.tags}
    expected = set(STRATEGIES) | {f"single:{m}" for m in MODALITIES}
    assert set(fits) == expected
    for fit in fits.values():
        assert "mlflow.parentRunId" in fit.data.tags
        assert {"val_auroc", "best_val_auroc"} <= set(fit.data.metrics)
        assert fit.data.tags["fusion.fit_checks"] == "passed"
    late = fits["late"]
    assert "test_auroc" in late.data.metrics  # the report attached its numbers
    # The logged model scores the input example it was logged with.
    mlflow.set_tracking_uri(tracking.tracking_uri)
    model = mlflow.pyfunc.load_model("models:/synthetic.late/1")
    example = model.input_example
    prob = model.predict(example)
    assert len(prob) == len(example) and ((prob > 0) & (prob < 1)).all()


def test_fit_metadata_links_mlflow(run: PipelineRun) -> None:
    event = run.instance.get_latest_materialization_event(run.key("fused_model"))  # any partition
    metadata = event.asset_materialization.metadata
    for key in ("mlflow_run_id", "mlflow_run_url", "val_auroc", "n_parameters", "train_seconds"):
        assert key in metadata
    # Numbers rounded, the epoch history of a neural fit a native table.
    assert metadata["val_auroc"].value == round(metadata["val_auroc"].value, 3)
    early = run.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=run.key("fused_model"), asset_partitions=["early"]), limit=1
    ).records[0]
    assert isinstance(early.asset_materialization.metadata["history"], dg.TableMetadataValue)


def test_data_versions_track_content(run: PipelineRun) -> None:
    """Re-aligning unchanged data keeps the data version; every fit records one."""
    key = run.key("aligned_ehr")

    def version() -> str:
        record = run.instance.get_latest_data_version_record(key)
        return record.asset_materialization.tags["dagster/data_version"]

    before = version()
    result = dg.materialize(
        list(run.defs.assets or []),
        selection=dg.AssetSelection.assets(key),
        resources=run.defs.resources,
        instance=run.instance,
    )
    assert result.success
    assert version() == before
    fused = run.instance.get_latest_data_version_record(run.key("fused_model"))
    assert fused is not None and fused.asset_materialization.tags.get("dagster/data_version")


def test_a_held_out_run_writes_every_declared_table(run: PipelineRun) -> None:
    """Tables the held-out design has no rows for are still written, with their columns."""
    with run.warehouse.connect() as con:
        oof = con.sql("SELECT * FROM eval.oof_predictions").df()
        repeats = con.sql("SELECT * FROM eval.cv_repeat_metrics").df()
        folds = con.sql("SELECT count(*) FROM profile.folds").fetchone()[0]
    assert oof.empty and list(oof.columns)[:3] == ["strategy", "repeat", "fold"]
    assert repeats.empty and "auroc_mean" in repeats.columns
    assert folds == 0
    for key in ("oof_predictions", "cv_repeat_metrics", "folds", "deployment_metrics"):
        event = run.instance.get_latest_materialization_event(run.key(key))
        metadata = event.asset_materialization.metadata
        assert metadata["dagster/row_count"].value == 0
        assert metadata["dagster/column_schema"].schema.columns


def test_the_report_is_versioned_and_latest_links_to_it(run: PipelineRun) -> None:
    latest = run.root / "synthetic" / "reports" / "latest"
    assert latest.is_symlink()
    event = run.instance.get_latest_materialization_event(run.key("subgroup_report"))
    metadata = event.asset_materialization.metadata
    html = metadata["report_html"].value
    assert latest.resolve() / "report.html" == Path(html).resolve()
    assert Path(html).parent.name.endswith(event.run_id[:8])
    # A link the UI opens, and the headline as a native table.
    assert metadata["report"].value == Path(html).resolve().as_uri()
    assert isinstance(metadata["headline"], dg.TableMetadataValue)


def test_no_patient_row_or_small_cell_in_the_event_log(run: PipelineRun) -> None:
    """Privacy by default: no raw patient id in any event (metadata, logs, check results,
    failures) of any run, and no metadata table publishes a count of 1-10."""
    from dagster._serdes import serialize_value

    from fusion_assets.assets.metadata import COUNT_COLUMNS
    from fusion_assets.disclosure import is_small

    with run.warehouse.connect(read_only=True) as con:
        ids = [r[0] for r in con.execute("SELECT patient_id FROM raw.patients").fetchall()]
    assert len(ids) == 400
    leaked, small = set(), []
    for result in run.results:
        for entry in run.instance.all_logs(result.run_id):
            text = serialize_value(entry)
            leaked |= {pid for pid in ids if pid in text}  # ids like P<tag>-0000001
            event = entry.dagster_event
            metadata = {}
            if event is not None and event.is_step_materialization:
                metadata = event.step_materialization_data.materialization.metadata
            elif (
                event is not None and event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
            ):
                metadata = event.event_specific_data.metadata
            for key, value in metadata.items():
                if isinstance(value, dg.TableMetadataValue):
                    small += [
                        (key, column, record.data[column])
                        for record in value.records
                        for column in COUNT_COLUMNS
                        if is_small(record.data.get(column))
                    ]
                if key == "preview":
                    small.append((key, "row preview", "off by default"))
    assert not leaked, f"raw patient ids in the event log: {sorted(leaked)[:5]}"
    assert not small, f"small cells published: {small[:5]}"
