"""Risk scores and batch re-evaluation on a real pipeline: the sensor path, the champion's
version, a training batch, and a re-evaluation while new versions are being registered.

Real DuckDB, real MLflow sqlite registry, real Dagster materializations (the tiny
pipeline of tests/fixtures/pipeline.py, then the sensors' ticks and the runs they
request, executed in process as the daemon would launch them).
"""

from __future__ import annotations

import threading

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from fusion_assets.cli import main
from fusion_assets.cohorts.synthetic import synthesize_batch
from fusion_assets.demo import FAST_RUN_CONFIG
from fusion_assets.jobs import build_jobs
from fusion_assets.models.api import load_model
from fusion_assets.reevaluation.summary import TRAINING_BATCH
from fusion_assets.sensors import build_landing_sensor, build_reevaluation_sensor
from fusion_assets.warehouse.risk_scores import read_scoring_batch
from resources import LandingZoneResource
from tests.fixtures.pipeline import SYNTHETIC, PipelineRun, run_tiny_pipeline

pytestmark = pytest.mark.slow
NEW_BATCH = "landed-new"
TRAINING_BATCH_ID = "batch-1"  # the batch the tiny pipeline trained on


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> PipelineRun:
    return run_tiny_pipeline(tmp_path_factory.mktemp("scoring"))


def _execute(run: PipelineRun, request: dg.RunRequest, job: str) -> dg.ExecuteInProcessResult:
    """What the daemon does with a sensor's run request, in process."""
    selection = request.asset_selection
    return run.defs.resolve_job_def(job).execute_in_process(
        partition_key=request.partition_key,
        instance=run.instance,
        asset_selection=list(selection) if selection else None,
        tags=request.tags,
    )


def _apply(run: PipelineRun, result: dg.SensorResult) -> None:
    for request in result.dynamic_partitions_requests or []:
        if isinstance(request, dg.AddDynamicPartitionsRequest):
            run.instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)


@pytest.fixture(scope="module")
def landed(run: PipelineRun) -> dict[str, dg.ExecuteInProcessResult]:
    """A new batch landed after training, taken through both sensors' runs."""
    jobs = build_jobs(SYNTHETIC)
    synthesize_batch(
        run.stores["landing"].root, n_patients=150, seed=11, batch_id=NEW_BATCH, missingness="mnar"
    )
    landing = build_landing_sensor(SYNTHETIC, jobs["ingest"])
    tick = landing(
        dg.build_sensor_context(
            instance=run.instance,
            resources={"landing": LandingZoneResource(data_dir=str(run.root))},
        )
    )
    _apply(run, tick)
    (request,) = tick.run_requests
    ingest = _execute(run, request, SYNTHETIC.job("ingest"))
    # The running daemon's cursor would be past the pipeline's own ingest of batch-1:
    # start just before this batch's ingest.
    (latest,) = run.instance.fetch_materializations(SYNTHETIC.key("raw_patients"), limit=1).records
    reevaluation = build_reevaluation_sensor(SYNTHETIC, jobs["reevaluate_batch"])
    tick = reevaluation(
        dg.build_sensor_context(instance=run.instance, cursor=str(latest.storage_id - 1))
    )
    (request,) = tick.run_requests
    assert request.partition_key == NEW_BATCH
    assert request.asset_selection is None  # a promotion step has run: risk_scores included
    return {
        "ingest": ingest,
        "reevaluate": _execute(run, request, SYNTHETIC.job("reevaluate_batch")),
    }


def _materialization(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    return result.asset_materializations_for_node(SYNTHETIC.op(asset))[0].metadata


def test_the_sensor_path_writes_the_champions_risk_scores(run, landed) -> None:
    assert all(r.success for r in landed.values())
    champion = run.stores["model_store"].champion()
    with run.warehouse.connect() as con:
        scores = con.execute("SELECT * FROM eval.risk_scores WHERE batch_id = ?", [NEW_BATCH]).df()
        n_batch = con.execute(
            "SELECT count(*) FROM raw.patients WHERE batch_id = ?", [NEW_BATCH]
        ).fetchone()[0]
    assert len(scores) == n_batch == 150 and scores["patient_id"].is_unique
    assert set(scores["model_name"]) == {f"synthetic.{champion[0]}"}
    assert set(scores["model_version"]) == {champion[1]}
    assert scores["prob"].between(0, 1).all() and scores["index_time"].notna().all()
    assert set(scores["pattern_support"]) <= {"seen", "rare", "unseen"}
    assert (scores["flagged"] == (scores["pattern_support"] != "seen")).all()
    seen = scores[scores["auroc_subgroup"].notna()]
    assert not seen.empty and seen["pattern_auroc"].between(0, 1).all()

    metadata = _materialization(landed["reevaluate"], "risk_scores")
    assert metadata["model_version"].value == champion[1]
    assert metadata["dagster/row_count"].value == 150
    assert metadata["table"].value == "eval.risk_scores"
    assert "preview" not in metadata  # aggregates only

    evaluation = _materialization(landed["reevaluate"], "batch_evaluation")
    assert evaluation["champion"].value == f"{champion[0]} v{champion[1]}"
    assert evaluation["evaluation"].value == "re-evaluation on 150 new patients"
    with run.warehouse.connect() as con:
        versions = con.execute(
            "SELECT DISTINCT model_version FROM eval.batch_metrics "
            "WHERE batch_id = ? AND strategy = ?",
            [NEW_BATCH, champion[0]],
        ).fetchall()
    assert versions == [(champion[1],)]


def test_the_training_batch_is_not_re_evaluated_as_new(run, landed) -> None:
    job = run.defs.resolve_job_def(SYNTHETIC.job("reevaluate_batch"))
    result = job.execute_in_process(
        partition_key=TRAINING_BATCH_ID,
        instance=run.instance,
        asset_selection=[SYNTHETIC.key("batch_evaluation")],
    )
    metadata = _materialization(result, "batch_evaluation")
    assert metadata["evaluation"].value.startswith(TRAINING_BATCH)
    (check,) = result.get_asset_check_evaluations()
    assert check.passed and TRAINING_BATCH in check.description
    with run.warehouse.connect() as con:
        kinds = con.execute(
            "SELECT DISTINCT kind, metric FROM eval.batch_metrics WHERE batch_id = ?",
            [TRAINING_BATCH_ID],
        ).fetchall()
    assert ("performance", "auroc") not in kinds
    assert ("provenance", "patients_in_training") in kinds


def test_score_command_prints_where_the_scores_went(run, landed, capsys, monkeypatch) -> None:
    # A temporary instance, and the data folder's MLflow store (mlflow.set_tracking_uri in
    # this process sets the variable).
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    main(["--data-dir", str(run.root), "score", "--batch", NEW_BATCH])
    out = capsys.readouterr().out
    champion = run.stores["model_store"].champion()
    assert f"150 patients in eval.risk_scores of {run.warehouse.path}" in out
    assert f"synthetic.{champion[0]} v{champion[1]}" in out


def test_score_without_a_champion_says_what_to_do(tmp_path, capsys, monkeypatch) -> None:
    # A temporary instance, and the data folder's MLflow store (mlflow.set_tracking_uri in
    # this process sets the variable).
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        main(["--data-dir", str(tmp_path), "score", "--batch", NEW_BATCH])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "no champion model" in err, err[-2000:] and "fusion-assets promote --version N" in err


def _rescore(run: PipelineRun, strategy: str, version: int, ids: list[str]) -> np.ndarray:
    store = run.stores["model_store"]
    model = load_model(store.version_dir(strategy, version))
    with run.warehouse.connect() as con:
        _, frames = read_scoring_batch(con, SYNTHETIC.spec, NEW_BATCH)
    return np.asarray(model.predict_proba(model.prepare(frames, ids)), dtype=float)


def test_a_concurrent_re_evaluation_scores_one_complete_version(run, landed) -> None:
    """Two trainings register new versions while the batch is re-evaluated again and again:
    every re-evaluation's numbers are those of the version it recorded."""
    store = run.stores["model_store"]
    champion = store.champion()
    retrained = next(s for s in ("reference_logistic", "late") if s != champion[0])
    before = store.versions(retrained)
    fusion = run.defs.resolve_job_def(SYNTHETIC.job("fusion"))
    reevaluate = run.defs.resolve_job_def(SYNTHETIC.job("reevaluate_batch"))
    config = SYNTHETIC.run_config({"fused_model": FAST_RUN_CONFIG["fused_model"]})
    trained: list[bool] = []

    def train_twice() -> None:
        # Its own (ephemeral) instance: an in-memory sqlite run storage shared by two threads
        # fails with "database table is locked" when both create a run at once; the models,
        # registry and warehouse the two runs share are the ones under test.
        trainer_instance = dg.DagsterInstance.ephemeral()
        for _ in range(2):
            result = fusion.execute_in_process(
                partition_key=retrained, instance=trainer_instance, run_config=config
            )
            trained.append(result.success)

    snapshots = []
    trainer = threading.Thread(target=train_twice)
    trainer.start()
    while trainer.is_alive() or not snapshots:
        result = reevaluate.execute_in_process(
            partition_key=NEW_BATCH,
            instance=run.instance,
            asset_selection=[SYNTHETIC.key("batch_evaluation"), SYNTHETIC.key("risk_scores")],
        )
        with run.warehouse.connect() as con:
            metrics = con.execute(
                "SELECT strategy, metric, value, model_version FROM eval.batch_metrics "
                "WHERE batch_id = ? AND metric = 'mean_prob'",
                [NEW_BATCH],
            ).df()
            scores = con.execute(
                "SELECT patient_id, prob, model_version FROM eval.risk_scores "
                "WHERE batch_id = ? ORDER BY patient_id",
                [NEW_BATCH],
            ).df()
            labelled = con.execute(
                "SELECT patient_id FROM raw.patients WHERE batch_id = ? AND label IS NOT NULL "
                "ORDER BY patient_id",
                [NEW_BATCH],
            ).df()["patient_id"]
        snapshots.append((result.success, metrics.set_index("strategy"), scores, labelled))
    trainer.join()
    seen = [int(m.loc[retrained, "model_version"]) for _, m, _, _ in snapshots]
    print(f"\n[concurrency] {retrained}: versions {before} before; re-evaluations scored {seen}")
    assert trained == [True, True]
    assert store.versions(retrained)[-2:] == [before[-1] + 1, before[-1] + 2]

    for success, metrics, scores, labelled in snapshots:
        assert success
        # The retrained strategy: whichever version was newest when the run resolved it,
        # and its mean probability is that version's, recomputed from the registry.
        version = int(metrics.loc[retrained, "model_version"])
        assert version in store.versions(retrained)
        recomputed = _rescore(run, retrained, version, labelled.tolist())
        assert metrics.loc[retrained, "value"] == pytest.approx(recomputed.mean(), abs=1e-9)
        # The champion's risk scores are the champion version's predictions.
        assert set(scores["model_version"]) == {champion[1]}
        expected = _rescore(run, champion[0], champion[1], scores["patient_id"].tolist())
        np.testing.assert_allclose(scores["prob"].to_numpy(), expected, atol=1e-9)
    assert store.champion() == champion  # trainings register versions; only promotion moves it
    assert pd.Series(
        [int(m.loc[retrained, "model_version"]) for _, m, _, _ in snapshots]
    ).is_monotonic_increasing
