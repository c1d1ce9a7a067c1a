"""The code location itself: what it holds, and that loading it stays cheap."""

from __future__ import annotations

import subprocess
import sys

import dagster as dg

from fusion_assets.assets.fusion import STRATEGIES
from fusion_assets.cohorts import synthetic_spec
from fusion_assets.definitions import build_definitions


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


def test_fusion_partitions_are_the_trainable_strategies():
    from fusion_assets.models.training import STRATEGY_NAMES

    assert tuple(STRATEGIES) == tuple(STRATEGY_NAMES)


def test_assets_follow_the_cohort_spec():
    defs = build_definitions(synthetic_spec())
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    for modality in synthetic_spec().modality_names:
        assert {f"raw_{modality}", f"aligned_{modality}"} <= keys
    encoder = defs.resolve_assets_def("modality_encoder")
    assert isinstance(encoder.partitions_def, dg.StaticPartitionsDefinition)
    assert encoder.partitions_def.get_partition_keys() == synthetic_spec().modality_names
