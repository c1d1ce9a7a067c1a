"""The code location itself: what it holds, and that loading it stays cheap."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import dagster as dg

from fusion_assets.cohorts import synthetic_spec
from fusion_assets.definitions import build_definitions
from fusion_assets.models.strategies import STRATEGIES


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


PACKAGE = Path(__file__).resolve().parents[1] / "fusion_assets"
# The Dagster layer: assets, automation, checks, the code location and its runners.
DAGSTER_LAYER = {"assets", "checks.py", "cli.py", "definitions.py", "demo.py", "jobs.py"}
DAGSTER_LAYER |= {"schedules.py", "sensors.py"}


def test_pure_layers_never_import_dagster():
    """docs/architecture.md: everything outside the Dagster layer is usable on its own."""
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path.relative_to(PACKAGE).parts[0] not in DAGSTER_LAYER
        and re.search(r"^\s*(import dagster|from dagster)", path.read_text(), re.M)
    ]
    assert not offenders


def test_fusion_partitions_are_the_registered_strategies():
    fused_model = build_definitions(synthetic_spec()).resolve_assets_def("fused_model")
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


def test_assets_follow_the_cohort_spec():
    defs = build_definitions(synthetic_spec())
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    for modality in synthetic_spec().modality_names:
        assert {f"raw_{modality}", f"aligned_{modality}"} <= keys
    encoder = defs.resolve_assets_def("modality_encoder")
    assert isinstance(encoder.partitions_def, dg.StaticPartitionsDefinition)
    assert encoder.partitions_def.get_partition_keys() == synthetic_spec().modality_names


def test_checks_hang_on_the_asset_they_check():
    defs = build_definitions(synthetic_spec())
    checks = {
        (k.asset_key.to_user_string(), k.name) for k in defs.resolve_asset_graph().asset_check_keys
    }
    assert {
        ("aligned_patients", "unique_patient_ids"),
        ("aligned_patients", "labels_and_index_times"),
        ("availability_profile", "availability_above_floor"),
        ("availability_profile", "label_prevalence_not_degenerate"),
        ("subgroup_metrics", "no_strategy_beats_oracle"),
    } <= checks
    for modality in synthetic_spec().modality_names:
        assert (f"aligned_{modality}", "no_rows_after_index_time") in checks


def test_every_table_a_step_writes_is_a_declared_asset():
    defs = build_definitions(synthetic_spec())
    by_op = {}
    for asset in defs.assets or []:
        if isinstance(asset, dg.AssetsDefinition) and asset.keys:
            by_op[asset.op.name] = {k.to_user_string() for k in asset.keys}
    assert by_op["splits"] == {"splits", "folds", "evaluation_mode"}
    assert by_op["predictions"] == {"predictions", "stress_predictions", "oof_predictions"}
    assert by_op["subgroup_report"] == {
        "subgroup_report",
        "subgroup_metrics",
        "degradation",
        "degradation_summary",
        "complete_case",
        "cv_repeat_metrics",
    }


def test_the_retraining_jobs_run_the_pipeline_stages_in_order():
    from fusion_assets.jobs import RETRAIN_STAGES, STAGES

    assert [name for name, _ in RETRAIN_STAGES] == [s.name for s in STAGES]
    assert [job.selection for _, job in RETRAIN_STAGES] == [s.selection for s in STAGES]
