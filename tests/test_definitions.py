"""The code location itself: both cohorts side by side, what each holds, and cheap loading."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from fusion_assets.location.build import build_location
from fusion_assets.location.component import DEFS_DIR, declared_cohorts
from fusion_assets.models.strategies import STRATEGIES
from tests.fixtures.pipeline import SYNTHETIC, temp_resources

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def location() -> dg.Definitions:
    from fusion_assets.definitions import defs

    return defs


def _keys(defs: dg.Definitions) -> set[str]:
    return {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}


def test_loading_the_code_location_imports_no_torch_or_mlflow():
    """dagster dev, the daemon and every run process load the definitions: torch (3 s) and
    mlflow are imported only inside the steps that train or log."""
    code = (
        "import sys, fusion_assets.definitions;"
        "print(','.join(m for m in ('torch', 'mlflow', 'sklearn') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == ""


PACKAGE = REPO / "fusion_assets"
# The Dagster layer: assets, automation, checks, the code location and its runners.
DAGSTER_LAYER = {"assets", "checks.py", "cli.py", "definitions.py", "demo.py", "jobs.py"}
DAGSTER_LAYER |= {"automation.py", "defs", "deploy.py", "location", "run_launcher.py", "sensors.py"}
DAGSTER_LAYER |= {"study_runner.py"}  # runs the study's cells through the jobs, as demo.py does


def test_pure_layers_never_import_dagster():
    """docs/architecture.md: everything outside the Dagster layer is usable on its own."""
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path.relative_to(PACKAGE).parts[0] not in DAGSTER_LAYER
        and re.search(r"^\s*(import dagster|from dagster)", path.read_text(), re.M)
    ]
    assert not offenders


def test_fusion_partitions_are_the_registered_strategies(location):
    fused_model = location.resolve_assets_def(dg.AssetKey(["synthetic", "fused_model"]))
    assert fused_model.partitions_def.get_partition_keys() == list(STRATEGIES)
    assert list(STRATEGIES) == [
        "early",
        "intermediate",
        "late",
        "attention",
        "reference",
        "reference_logistic",
        "reference_stacked",
    ]


def test_both_cohorts_side_by_side_each_under_its_own_names(location):
    keys, graph = _keys(location), location.resolve_asset_graph()
    groups = {graph.get(k).group_name for k in graph.get_all_asset_keys()}
    for cohort, modality in (("synthetic", "genomics"), ("breast_cancer", "expression")):
        assert {f"{cohort}/raw_patients", f"{cohort}/aligned_{modality}"} <= keys
        assert {
            f"{cohort}_{n}_{s}"
            for n, s in enumerate(
                ["ingest", "align", "profile", "encoders", "fusion", "evaluation"], start=1
            )
        } <= groups
        raw = graph.get(dg.AssetKey([cohort, "raw_patients"]))
        assert raw.partitions_def.name == f"{cohort}_landing_batches"
        assert location.resolve_assets_def(dg.AssetKey([cohort, "aligned_patients"])).op.pool == (
            f"duckdb_writer_{cohort}"
        )
    assert "synthetic/raw_oracle" in keys and "breast_cancer/raw_oracle" not in keys
    encoder = location.resolve_assets_def(dg.AssetKey(["breast_cancer", "modality_encoder"]))
    assert encoder.partitions_def.get_partition_keys() == ["clinical", "expression"]
    # The resources are shared; each cohort derives its own paths from the data folder.
    assert set(location.resources) == {"warehouse", "landing", "model_store", "reports", "tracking"}


def test_resources_read_the_data_folder_from_the_environment_when_a_run_starts(location):
    warehouse = location.resources["warehouse"]
    assert isinstance(warehouse.data_dir, dg.EnvVar) and warehouse.data_dir.env_var_name == (
        "FUSION_DATA_DIR"
    )
    bound = temp_resources(Path("/data"))["warehouse"].for_cohort("breast_cancer")
    assert bound.path == "/data/breast_cancer/warehouse.duckdb"


def test_adding_a_cohort_is_adding_one_yaml_file(tmp_path):
    defs_dir = tmp_path / "defs"
    shutil.copytree(DEFS_DIR, defs_dir)
    # Relative spec paths resolve from the file's folder: point it at the bundled example.
    (defs_dir / "breast_cancer" / "defs.yaml").write_text(
        "type: fusion_assets.location.component.CohortComponent\n"
        f"attributes:\n  spec: {REPO / 'examples' / 'breast_cancer' / 'cohort.yaml'}\n"
    )
    (defs_dir / "small_synthetic").mkdir()
    (defs_dir / "small_synthetic" / "defs.yaml").write_text(
        "type: fusion_assets.location.component.CohortComponent\n"
        "attributes:\n  synthetic: {patients: 300, seed: 4}\n  retrain_cron: '0 4 * * *'\n"
    )
    cohorts = declared_cohorts(defs_dir)
    assert sorted(cohorts) == ["breast_cancer", "small_synthetic", "synthetic"]
    assert cohorts["small_synthetic"].synthetic.patients == 300
    defs = build_location(cohorts.values(), temp_resources(tmp_path))
    assert "small_synthetic/batch_evaluation" in _keys(defs)
    assert {s.name for s in defs.sensors} >= {
        "small_synthetic_landing_sensor",
        "small_synthetic_retraining",
    }


def test_a_cohort_needs_exactly_one_source(tmp_path):
    from fusion_assets.location.component import cohort_from_source

    with pytest.raises(ValueError, match="exactly one of 'spec'"):
        cohort_from_source("nothing")


def test_dg_check_defs_passes():
    """`dg check defs` validates every defs.yaml and loads the definitions (as CI runs it)."""
    dg_cli = Path(sys.executable).parent / "dg"
    if not dg_cli.exists():
        pytest.skip("dg is in the dev extra (dagster-dg-cli): pip install -e '.[dev]'")
    out = subprocess.run(
        [str(dg_cli), "check", "defs"], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "All definitions loaded successfully" in out.stdout + out.stderr


def test_checks_hang_on_the_asset_they_check():
    defs = build_location([SYNTHETIC], temp_resources(Path("/unused")))
    checks = {(k.asset_key.path[-1], k.name) for k in defs.resolve_asset_graph().asset_check_keys}
    assert {
        ("aligned_patients", "unique_patient_ids"),
        ("aligned_patients", "labels_and_index_times"),
        ("availability_profile", "availability_above_floor"),
        ("availability_profile", "label_prevalence_not_degenerate"),
        ("subgroup_metrics", "no_strategy_beats_oracle"),
        ("raw_patients", "landing_validation"),
        ("raw_oracle", "landing_validation"),
    } <= checks
    for modality in SYNTHETIC.spec.modality_names:
        assert (f"aligned_{modality}", "no_rows_after_index_time") in checks
        assert (f"raw_{modality}", "landing_validation") in checks


def test_every_table_a_step_writes_is_a_declared_asset():
    defs = build_location([SYNTHETIC], temp_resources(Path("/unused")))
    by_op = {}
    for asset in defs.assets or []:
        if isinstance(asset, dg.AssetsDefinition) and asset.keys:
            by_op[asset.op.name] = {k.path[-1] for k in asset.keys}
    assert by_op["synthetic__splits"] == {"splits", "folds", "evaluation_mode"}
    assert by_op["synthetic__predictions"] == {
        "predictions",
        "stress_predictions",
        "oof_predictions",
        "model_cost",
    }
    assert by_op["synthetic__subgroup_report"] == {
        "subgroup_report",
        "subgroup_metrics",
        "degradation",
        "degradation_summary",
        "complete_case",
        "cv_repeat_metrics",
        "net_benefit",
        "deployment_metrics",
        "availability_by_group",
    }


def test_assets_carry_owners_tags_code_references_and_say_what_a_row_is():
    defs = build_location([SYNTHETIC], temp_resources(Path("/unused")))
    for spec in defs.resolve_all_asset_specs():
        name = spec.key.to_user_string()
        assert spec.owners == ["team:ml-platform"], name
        assert spec.tags["cohort"] == "synthetic" and spec.tags["stage"] in spec.group_name, name
        assert "dagster/code_references" in spec.metadata, name
        if "duckdb" in spec.kinds:  # a table: what one row is
            assert " row " in (spec.description or ""), f"{name}: say what a row is"
        else:  # a model per partition, or the report
            assert "per " in (spec.description or "") or "report" in name, name


def test_training_steps_retry_transient_failures_only():
    defs = build_location([SYNTHETIC], temp_resources(Path("/unused")))
    for name in ("modality_encoder", "fused_model"):
        policy = defs.resolve_assets_def(SYNTHETIC.key(name)).op.retry_policy
        assert policy is not None and policy.max_retries >= 1
    assert defs.resolve_assets_def(SYNTHETIC.key("aligned_patients")).op.retry_policy is None


def test_a_spec_name_becomes_a_usable_cohort_name():
    from fusion_assets.location.cohort import cohort_name

    assert cohort_name("breast_cancer") == "breast_cancer"
    assert cohort_name("My cohort-2 ") == "my_cohort_2"
    assert cohort_name("2024 study") == "cohort_2024_study"


def test_the_spec_shortcut_serves_exactly_that_cohort():
    code = (
        "import fusion_assets.definitions as d;"
        "g = d.defs.resolve_asset_graph();"
        "print(sorted({k.path[0] for k in g.get_all_asset_keys()}))"
    )
    spec = REPO / "examples" / "breast_cancer" / "cohort.yaml"
    out = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env={**__import__("os").environ, "FUSION_COHORT_SPEC": str(spec)},
    )
    assert out.stdout.strip() == "['breast_cancer']"
