"""Materialize the whole pipeline in dependency order: ``fusion-assets demo`` and the tests.

Runs in one process with Dagster's in-process executor (importing torch, mlflow
and dagster costs seconds per process) against the local instance, so every run
shows up in ``dagster dev`` afterwards. A stage is one asset group; a
partitioned stage runs once per partition.
"""

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg

from fusion_assets.assets.ingest import landing_batches
from resources.paths import default_path

# Settings for a smoke run in about a minute: tiny networks, fewer resamples and masks.
FAST_RUN_CONFIG: dict[str, Any] = {
    "modality_encoder": {"config": {"preset": "tiny"}},
    "fused_model": {"config": {"preset": "tiny"}},
    "predictions": {"config": {"mask_seeds": 2}},
    "subgroup_report": {"config": {"n_boot": 200}},
}


@dataclass(frozen=True)
class Stage:
    title: str
    group: str
    partition_keys: tuple[str | None, ...] = (None,)


def pipeline_stages(modalities: list[str], strategies: list[str]) -> list[Stage]:
    """Every stage after ingest, in dependency order."""
    return [
        Stage("align the modalities as of index time", "align"),
        Stage("profile availability, recommend, split", "profile"),
        Stage("fit one encoder per modality", "encoders", tuple(modalities)),
        Stage("fit the fusion strategies", "fusion", tuple(strategies)),
        Stage("predict, stress-test and report", "evaluation"),
    ]


def default_instance() -> dg.DagsterInstance:
    if os.environ.get("DAGSTER_HOME"):
        return dg.DagsterInstance.get()
    print(
        "DAGSTER_HOME is not set: runs go to a temporary instance (set it to see them in the UI)."
    )
    return dg.DagsterInstance.ephemeral()


def materialize_pipeline(
    defs: dg.Definitions,
    resources: Mapping[str, Any],
    instance: dg.DagsterInstance,
    batches: list[str],
    run_config: Mapping[str, Any] | None = None,
    log: Callable[[str], None] = print,
) -> list[dg.ExecuteInProcessResult]:
    """Ingest ``batches`` then run every stage; stops at the first failed run (raises).

    Modalities and strategies are read from ``defs`` (the static partitions of
    the encoder and fusion assets), so any cohort's definitions can be run.
    """
    assets = list(defs.assets or []) + list(defs.asset_checks or [])
    known = set(instance.get_dynamic_partitions(landing_batches.name))
    instance.add_dynamic_partitions(landing_batches.name, [b for b in batches if b not in known])
    # Batch evaluation is driven by the landing sensor, not by this sequence.
    groups = {spec.group_name for spec in defs.resolve_all_asset_specs()}
    stages = [Stage(f"ingest batch {b}", "ingest", (b,)) for b in batches] + [
        s
        for s in pipeline_stages(
            _static_partition_keys(assets, "encoders"), _static_partition_keys(assets, "fusion")
        )
        if s.group in groups
    ]
    results = []
    for stage in stages:
        selection = dg.AssetSelection.groups(stage.group)
        if stage.group == "evaluation":
            selection = selection - dg.AssetSelection.key_prefixes(["batch_evaluation"])
        for key in stage.partition_keys:
            results.append(
                _materialize(stage, key, selection, assets, resources, instance, run_config, log)
            )
    return results


def _materialize(stage, key, selection, assets, resources, instance, run_config, log):
    label = stage.title + (f" [{key}]" if key else "")
    log(f"[pipeline] {label} ...")
    started = time.perf_counter()
    in_stage = _op_names(stage.group, assets)
    ops = {op: cfg for op, cfg in (run_config or {}).items() if op in in_stage}
    result = dg.materialize(
        assets,
        selection=selection,
        partition_key=key,
        resources=dict(resources),
        instance=instance,
        run_config={"ops": ops} if ops else None,
        tags={"fusion_assets/source": "pipeline"},
    )
    log(f"[pipeline] {label} done in {time.perf_counter() - started:.1f} s (run {result.run_id})")
    return result


def _static_partition_keys(assets: list, group: str) -> list[str]:
    """Keys of the static partitions of the assets in ``group``, in definition order."""
    keys: dict[str, None] = {}
    for asset in assets:
        if not isinstance(asset, dg.AssetsDefinition) or not asset.keys:
            continue
        partitions = asset.partitions_def
        if group in asset.group_names_by_key.values() and isinstance(
            partitions, dg.StaticPartitionsDefinition
        ):
            keys.update(dict.fromkeys(partitions.get_partition_keys()))
    return list(keys)


def _op_names(group: str, assets: list) -> set[str]:
    """Op names of the assets in ``group`` (run config is keyed by op)."""
    return {
        asset.op.name
        for asset in assets
        if isinstance(asset, dg.AssetsDefinition)
        and asset.keys
        and group in asset.group_names_by_key.values()
    }


def run_demo(landing: Path, patients: int = 5000, seed: int = 0, fast: bool = False) -> None:
    """Land the default synthetic cohort (if the landing zone is empty) and materialize it all."""
    from fusion_assets.cohorts.synthetic import synthesize_batch
    from fusion_assets.definitions import defs
    from resources import LandingZoneResource

    started = time.perf_counter()
    zone = LandingZoneResource(path=str(landing))
    if not zone.ready_batches():
        print(f"[demo] writing the default synthetic cohort ({patients} patients) to {landing}")
        synthesize_batch(landing, n_patients=patients, seed=seed, batch_id="synthetic-default")
    resources = {**(defs.resources or {}), "landing": zone}
    materialize_pipeline(
        defs,
        resources,
        default_instance(),
        zone.ready_batches(),
        FAST_RUN_CONFIG if fast else None,
    )
    report = Path(default_path("reports")) / "latest" / "report.html"
    print(f"[demo] done in {time.perf_counter() - started:.0f} s")
    print(f"[demo] report: {report}")
    print("[demo] browse it all: make ui (Dagster) and make mlflow-ui (MLflow)")
