"""A bad fit cannot become a model; MLflow a user can read; the device setting (issue 12
items 5, 6 and 8), on real Dagster materializations and a real MLflow sqlite store."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import numpy as np
import pytest
import torch
from dagster._core.errors import DagsterAssetCheckFailedError
from mlflow.tracking import MlflowClient
from pydantic import ValidationError

from fusion_assets.cohorts.synthetic import synthesize_batch
from fusion_assets.demo import FAST_RUN_CONFIG
from fusion_assets.fit_checks import (
    AT_LEAST_ONE_EPOCH,
    FINITE_AUROC,
    NOT_WORSE_THAN_SINGLE,
    FitEvidence,
    check_fit,
)
from fusion_assets.location.build import cohort_assets
from fusion_assets.models.config import EncoderConfig, FusionConfig, TrainConfig
from fusion_assets.models.device import resolve_device
from fusion_assets.training_settings import FusionTrainingSettings, TrainingSettings
from resources.tracking import EXPERIMENT_KIND_TAG, MODEL_DEVELOPMENT
from tests.fixtures.pipeline import SYNTHETIC, cohort_stores, run_cohort, temp_resources

MODALITIES = SYNTHETIC.spec.modality_names


# --------------------------------------------------------------------------- pure rules


def _evidence(auroc: float = 0.7, iterative: bool = True, epochs: int = 3) -> FitEvidence:
    return FitEvidence(auroc, "validation AUROC (80 patients)", iterative, epochs, "how")


def test_the_rules_of_a_fit() -> None:
    passed = {c.name: c.passed for c in check_fit(_evidence(), {"ehr": 0.72}, 0.05)}
    assert passed == {FINITE_AUROC: True, AT_LEAST_ONE_EPOCH: True, NOT_WORSE_THAN_SINGLE: True}
    nan = {c.name: c for c in check_fit(_evidence(auroc=float("nan")), {"ehr": 0.7}, 0.05)}
    assert not nan[FINITE_AUROC].passed and not nan[NOT_WORSE_THAN_SINGLE].passed
    assert "not registered" in nan[FINITE_AUROC].description
    untrained = {c.name: c.passed for c in check_fit(_evidence(epochs=0))}
    assert untrained == {FINITE_AUROC: True, AT_LEAST_ONE_EPOCH: False}
    # A model fitted in one call (stacking, boosting) has no epochs and needs none.
    assert all(c.passed for c in check_fit(_evidence(iterative=False, epochs=0)))
    below = {c.name: c for c in check_fit(_evidence(0.64), {"ehr": 0.70, "notes": 0.5}, 0.05)}
    assert not below[NOT_WORSE_THAN_SINGLE].passed
    assert below[NOT_WORSE_THAN_SINGLE].metadata["best_single"] == "ehr"
    # On few held-out patients a gap within the noise of the comparison is no evidence of a
    # broken fit (a weak strategy is the report's finding); on many the margin decides.
    few = FitEvidence(0.546, "out-of-fold AUROC", True, 3, "how", n_events=54, n_non_events=126)
    (small,) = [c for c in check_fit(few, {"notes": 0.66}, 0.05) if c.name == NOT_WORSE_THAN_SINGLE]
    assert small.passed and small.metadata["noise_allowance"] > 0.05
    many = FitEvidence(0.546, "validation AUROC", True, 3, "how", n_events=540, n_non_events=1260)
    (large,) = [
        c for c in check_fit(many, {"notes": 0.66}, 0.05) if c.name == NOT_WORSE_THAN_SINGLE
    ]
    assert not large.passed and large.metadata["floor"] == pytest.approx(0.61)
    # A negative margin demands a gain, whatever the noise.
    (gain,) = [c for c in check_fit(few, {"notes": 0.5}, -0.1) if c.name == NOT_WORSE_THAN_SINGLE]
    assert not gain.passed and gain.metadata["floor"] == pytest.approx(0.6)
    # Nothing finite to compare with: the margin rule has nothing to say.
    assert check_fit(_evidence(), {"ehr": float("nan")}, 0.05)[-1].passed


@pytest.mark.parametrize("epochs", [0, -1])
def test_max_epochs_below_one_is_refused_everywhere(epochs: int) -> None:
    with pytest.raises(ValidationError, match="max_epochs"):
        TrainingSettings(max_epochs=epochs)
    with pytest.raises(ValueError, match="max_epochs must be at least 1"):
        TrainConfig(max_epochs=epochs)


def test_device_and_margin_settings() -> None:
    assert TrainingSettings().fusion_config().train.device == "auto"
    settings = TrainingSettings(device="cpu", mixed_precision=True)
    assert settings.encoder_config().train.device == "cpu"
    assert settings.fusion_config().train.mixed_precision
    with pytest.raises(ValidationError, match="device"):
        TrainingSettings(device="gpu")
    assert FusionTrainingSettings().max_auroc_below_best_single == 0.05
    with pytest.raises(ValidationError, match="max_auroc_below_best_single"):
        FusionTrainingSettings(max_auroc_below_best_single=2.0)
    assert resolve_device("cpu").type == "cpu"
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_gpu_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="no CUDA device.*'auto'"):
        resolve_device("cuda")


# --------------------------------------------------------------------------- how it was fitted


@pytest.fixture(scope="module")
def signal():
    from tests.fixtures.cohort import signal_cohort

    return signal_cohort(n=200, seed=1)


def _unimodal(cohort, config: EncoderConfig):
    from fusion_assets.models.training import train_unimodal

    return {
        m: train_unimodal(
            cohort.spec, m, cohort.frames, cohort.labels, cohort.train_ids, cohort.val_ids, config
        )
        for m in cohort.spec.modality_names[:2]
    }


def test_each_fit_says_truly_how_it_was_fitted(signal) -> None:
    from fusion_assets.models.training import train_fusion

    unimodal = _unimodal(signal, EncoderConfig.tiny())
    _, result = next(iter(unimodal.values()))
    assert result.iterative and result.device == "cpu" and len(result.history) >= 1
    assert f"{len(result.history)} epoch(s)" in result.fitted_by
    assert result.best_epoch_val_auroc == result.val_auroc  # the kept epoch's is the headline
    models = {m: f for m, (f, _) in unimodal.items()}
    described = {}
    for strategy in ("late", "reference", "reference_logistic", "reference_stacked"):
        _, fit = train_fusion(
            strategy, signal.spec, signal.frames, signal.labels, signal.train_ids,
            signal.val_ids, models, FusionConfig.tiny(),
        )  # fmt: skip
        assert not fit.iterative and not fit.history
        described[strategy] = fit.fitted_by
    assert all("closed form" not in text for text in described.values())
    assert described["reference"].startswith("gradient boosting (histogram trees), ")
    assert " iterations of at most 30 " in described["reference"]
    assert described["reference_logistic"].startswith("L2 logistic regression (lbfgs)")
    assert "no epochs" in described["late"]
    assert "gradient boosting per modality" in described["reference_stacked"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_trains_predicts_and_saves_for_the_cpu(signal, tmp_path) -> None:
    from dataclasses import replace

    from fusion_assets.models.api import load_model, save_model

    base = EncoderConfig.tiny()
    for mixed in (False, True):
        config = replace(base, train=replace(base.train, device="cuda", mixed_precision=mixed))
        fitted, result = next(iter(_unimodal(signal, config).values()))
        assert result.device == "cuda" and "on cuda" in result.fitted_by
        assert np.isfinite(result.val_auroc)
        assert all(p.device.type == "cpu" for p in fitted.predictor.parameters())
        prepared = fitted.prepare(dict(signal.frames), signal.val_ids)
        on_cpu = fitted.predict_proba(prepared)
        on_gpu = fitted.predict_proba(prepared, device="cuda")
        np.testing.assert_allclose(on_gpu, on_cpu, atol=1e-5)
        loaded = load_model(save_model(fitted, tmp_path / f"m{mixed}"))
        np.testing.assert_allclose(loaded.predict_proba(prepared), on_cpu, atol=1e-7)


# --------------------------------------------------------------------------- in Dagster


class Pipeline:
    def __init__(self, root: Path, instance: dg.DagsterInstance, error: Exception) -> None:
        self.root, self.instance, self.error = root, instance, error

    @property
    def stores(self) -> dict:
        return cohort_stores(self.root, SYNTHETIC)


@pytest.fixture(scope="module")
def bad_margin(tmp_path_factory) -> Pipeline:
    """The demo's path up to the fused models, with a margin no fusion can meet (it must beat
    the best single modality by a whole AUROC unit): the first fused fit fails its check."""
    root = tmp_path_factory.mktemp("fitchecks")
    synthesize_batch(
        cohort_stores(root, SYNTHETIC)["landing"].root, n_patients=300, seed=3, batch_id="b1"
    )
    config = {
        **FAST_RUN_CONFIG,
        "splits": {"config": {"small_cohort_size": 0}},  # the held-out design
        "fused_model": {"config": {"preset": "tiny", "max_auroc_below_best_single": -1.0}},
    }
    instance = dg.DagsterInstance.ephemeral()
    with pytest.raises(DagsterAssetCheckFailedError, match=NOT_WORSE_THAN_SINGLE) as raised:
        run_cohort(root, SYNTHETIC, ["b1"], config, instance)
    return Pipeline(root, instance, raised.value)


def _check_evaluations(instance: dg.DagsterInstance, asset: str) -> list:
    evaluations = [
        entry.dagster_event.event_specific_data
        for run in instance.get_runs()
        for entry in instance.all_logs(
            run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
        )
    ]
    return [e for e in evaluations if e.asset_key == SYNTHETIC.key(asset)]


def test_a_fit_that_fails_its_check_is_not_a_model_and_blocks_downstream(
    bad_margin: Pipeline,
) -> None:
    store, tracking = bad_margin.stores["model_store"], bad_margin.stores["tracking"]
    fused = {e.check_name: e for e in _check_evaluations(bad_margin.instance, "fused_model")}
    assert {FINITE_AUROC, AT_LEAST_ONE_EPOCH, NOT_WORSE_THAN_SINGLE} <= set(fused)
    assert fused[FINITE_AUROC].passed and fused[AT_LEAST_ONE_EPOCH].passed
    failed = fused[NOT_WORSE_THAN_SINGLE]
    assert not failed.passed and failed.blocking and "not registered" in failed.description
    # No registered version, so nothing downstream can read it; the chain stopped there.
    assert store.versions("early") == [] and store.champion() is None
    for downstream in ("predictions", "subgroup_report", "promotion"):
        assert (
            bad_margin.instance.get_latest_materialization_event(SYNTHETIC.key(downstream)) is None
        )
    # The fit is still in MLflow for a look, marked as failed.
    client = MlflowClient(tracking.tracking_uri)
    experiment = client.get_experiment_by_name(tracking.experiment)
    (run,) = client.search_runs(
        [experiment.experiment_id], filter_string="attributes.run_name = 'early'"
    )
    assert run.info.status == "FAILED"
    assert run.data.tags["fusion.fit_checks"] == "failed"
    assert run.data.tags["fusion.fit_checks.failed"] == NOT_WORSE_THAN_SINGLE
    assert not client.search_model_versions(f"run_id = '{run.info.run_id}'")


def test_encoders_pass_their_checks_and_mlflow_reads_as_model_development(
    bad_margin: Pipeline,
) -> None:
    store, tracking = bad_margin.stores["model_store"], bad_margin.stores["tracking"]
    fit_checks = {FINITE_AUROC, AT_LEAST_ONE_EPOCH}
    encoders = [
        e
        for e in _check_evaluations(bad_margin.instance, "modality_encoder")
        if e.check_name in fit_checks  # besides the deployed-refit check (checks.py)
    ]
    assert {e.check_name for e in encoders} == fit_checks
    assert len(encoders) == 2 * len(MODALITIES) and all(e.passed for e in encoders)
    assert all(store.versions(f"single:{m}") == [1] for m in MODALITIES)

    client = MlflowClient(tracking.tracking_uri)
    experiment = client.get_experiment_by_name(tracking.experiment)
    assert experiment.tags[EXPERIMENT_KIND_TAG] == MODEL_DEVELOPMENT
    modality = MODALITIES[0]
    (run,) = client.search_runs(
        [experiment.experiment_id], filter_string=f"attributes.run_name = 'single:{modality}'"
    )
    tags, metrics = run.data.tags, run.data.metrics
    dagster_run = tags["dagster.run_id"]
    assert tags["dagster.run_url"] == f"http://127.0.0.1:3000/runs/{dagster_run}"
    assert tags["dagster.asset_key"] == "synthetic/modality_encoder"
    assert tags["dagster.partition"] == modality and "mlflow.parentRunId" in tags
    assert run.data.params["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    assert "epoch(s)" in tags["fusion.fitted_by"]
    # The headline is the kept (best) epoch's validation AUROC, not the last epoch's.
    series = {
        m.step: m.value for m in client.get_metric_history(run.info.run_id, "epoch_val_auroc")
    }
    assert metrics["val_auroc"] == pytest.approx(series[int(metrics["best_epoch"])])
    assert metrics["best_val_auroc"] == metrics["val_auroc"] and "final_val_auroc" not in metrics
    # The logged model is named after the cohort and the modality, and the version carries
    # the same Dagster tags.
    version = client.get_model_version(store.name(f"single:{modality}"), "1")
    assert (
        client.get_logged_model(version.source.removeprefix("models:/")).name
        == f"synthetic-single_{modality}"
    )
    assert version.tags["dagster.run_url"] == tags["dagster.run_url"]
    event = bad_margin.instance.get_latest_materialization_event(SYNTHETIC.key("modality_encoder"))
    metadata = event.asset_materialization.metadata
    assert metadata["device"].value == run.data.params["device"]
    assert metadata["mlflow_run_url"].value.startswith("http://127.0.0.1:5000/#/experiments/")


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in folder.rglob("*")
        if p.is_file()
    }


def test_a_copied_data_folder_keeps_to_itself(bad_margin: Pipeline, tmp_path, monkeypatch) -> None:
    """Copy the data folder, fit and register in the copy, load from the copy: the original
    is never read or written (it is moved away meanwhile)."""
    copy = tmp_path / "copy"
    shutil.copytree(bad_margin.root, copy)
    shutil.rmtree(copy / "synthetic" / "models")  # no cached download: load from the registry
    before = _snapshot(bad_margin.root)
    away = bad_margin.root.with_name(bad_margin.root.name + "-away")
    monkeypatch.setenv("FUSION_MLFLOW_URL", "http://mlflow.example:8080")
    bad_margin.root.rename(away)
    try:
        result = dg.materialize(
            cohort_assets(SYNTHETIC),
            selection=dg.AssetSelection.assets(SYNTHETIC.key("fused_model")),
            partition_key="late",
            resources=temp_resources(copy),
            instance=dg.DagsterInstance.ephemeral(),
            run_config=SYNTHETIC.run_config({"fused_model": {"config": {"preset": "tiny"}}}),
        )
        assert result.success
        assert all(e.passed for e in result.get_asset_check_evaluations())
        store = cohort_stores(copy, SYNTHETIC)["model_store"]
        assert store.versions("late") == [1]
        loaded = store.local_version("late", 1)
        assert loaded.is_relative_to(copy)
        client = MlflowClient(store.tracking_uri)
        version = client.get_model_version(store.name("late"), "1")
        assert (
            str(copy)
            in client.get_logged_model(version.source.removeprefix("models:/")).artifact_location
        )
        experiment = client.get_experiment_by_name("fusion_assets/synthetic")
        assert str(copy) in experiment.artifact_location
        metadata = result.asset_materializations_for_node(SYNTHETIC.op("fused_model"))[0].metadata
        assert metadata["mlflow_run_url"].value.startswith("http://mlflow.example:8080/#/")
    finally:
        away.rename(bad_margin.root)
    assert _snapshot(bad_margin.root) == before


def test_the_predictions_step_scores_on_the_configured_device() -> None:
    from pydantic import ValidationError

    from fusion_assets.evaluation.settings import StressSettings

    assert StressSettings().device == "auto"
    assert StressSettings(device="cpu").device == "cpu"
    with pytest.raises(ValidationError):
        StressSettings(device="tpu")
