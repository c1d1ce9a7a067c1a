"""The registry is the one model store (issue 12 items 1 and 4), after a real tiny pipeline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from fusion_assets.models.strategies import STRATEGIES
from tests.fixtures.pipeline import SYNTHETIC, PipelineRun, run_tiny_pipeline

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> PipelineRun:
    return run_tiny_pipeline(tmp_path_factory.mktemp("registry"))


def test_every_fit_is_a_registered_version_with_its_provenance(run: PipelineRun) -> None:
    store = run.stores["model_store"]
    names = [*STRATEGIES, *(f"single:{m}" for m in SYNTHETIC.spec.modality_names)]
    assert all(store.versions(name) == [1] for name in names)
    tags = store.version_tags("late", 1)
    assert (
        tags["dagster.asset_key"] == "synthetic/fused_model" and tags["dagster.partition"] == "late"
    )
    assert tags["dagster.run_id"] and tags["fusion.code_version"]
    inputs = json.loads(tags["fusion.input_data_versions"])
    assert "synthetic/splits" in inputs and all(inputs.values())
    assert set(json.loads(tags["fusion.models_used"])) >= {"single:ehr"}  # late reads the encoders
    assert not list(run.root.rglob("mlflow_run.json"))  # the side file is gone
    event = run.instance.get_latest_materialization_event(run.key("predictions"))
    assert event.asset_materialization.metadata["model_versions"].value["late"] == 1


def test_the_champion_is_promoted_and_named_in_the_report(run: PipelineRun) -> None:
    champion = run.stores["model_store"].champion()
    assert champion is not None and champion[0] in STRATEGIES
    text = (run.report_dir / "report.md").read_text()
    assert f"champion now: **{champion[0]} v{champion[1]}**" in text


def test_champion_loads_in_a_fresh_process_outside_the_repository(
    run: PipelineRun, tmp_path
) -> None:
    store = run.stores["model_store"]
    name, _ = store.champion()
    script = (
        "import sys, mlflow\n"
        f"mlflow.set_tracking_uri({store.tracking_uri!r})\n"
        f"model = mlflow.pyfunc.load_model('models:/{store.name(name)}@champion')\n"
        "prob = model.predict(model.input_example)\n"
        "import fusion_assets\n"
        "print(len(prob), float(min(prob)), float(max(prob)), fusion_assets.__file__)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    n, low, high, source = out.stdout.split()[-4:]
    assert int(n) == 2 and 0 < float(low) <= float(high) < 1
    # The code came with the model, not from this checkout.
    assert "/code/fusion_assets/" in source and not source.startswith(str(REPO))
    requirements = (store.local_version(name) / "requirements.txt").read_text()
    assert "fusion_assets" not in requirements and "torch==" in requirements


def test_each_fit_of_a_report_attached_its_numbers(run: PipelineRun) -> None:
    store, tracking = run.stores["model_store"], run.stores["tracking"]
    fit_run = MlflowClient(tracking.tracking_uri).get_run(store.run_id("late"))
    assert "test_auroc" in fit_run.data.metrics
