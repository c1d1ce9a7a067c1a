"""Materialize the whole pipeline in dependency order: ``fusion-assets demo`` and the tests.

Runs in one process with Dagster's in-process executor (importing torch, mlflow
and dagster costs seconds per process) against the local instance, so every run
shows up in ``dagster dev`` afterwards. The stages and their order are the
jobs' (``fusion_assets.jobs.STAGES``); a partitioned stage runs once per partition.
"""

import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import dagster as dg

from fusion_assets.assets.ingest import landing_batches
from fusion_assets.jobs import INGEST, STAGES
from fusion_assets.report_folders import LATEST, latest_report
from resources.paths import default_path

# Settings for a smoke run in about a minute: tiny networks, fewer resamples and masks.
FAST_RUN_CONFIG: dict[str, Any] = {
    "modality_encoder": {"config": {"preset": "tiny"}},
    "fused_model": {"config": {"preset": "tiny"}},
    "predictions": {"config": {"mask_seeds": 2}},
    "subgroup_report": {"config": {"n_boot": 200}},
}


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
    """Ingest ``batches`` then run every stage of ``jobs.STAGES``; stops at the first failed run.

    The selections and their order are the jobs' own; the partitions of a stage
    come from ``defs`` (the modalities and strategies of its static partitions),
    so any cohort's definitions can be run.
    """
    assets = list(defs.assets or []) + list(defs.asset_checks or [])
    known = set(instance.get_dynamic_partitions(landing_batches.name))
    instance.add_dynamic_partitions(landing_batches.name, [b for b in batches if b not in known])
    graph = defs.resolve_asset_graph()
    results = []
    for stage in (INGEST, *STAGES):
        keys = stage.selection.resolve(graph)
        if not keys:
            continue  # a partial code location: nothing in this stage yet
        ops = _stage_config(assets, keys, run_config)
        for key in _partition_keys(graph, keys, batches):
            label = f"{stage.name}: {stage.title}" + (f" [{key}]" if key else "")
            log(f"[pipeline] {label} ...")
            started = time.perf_counter()
            result = dg.materialize(
                assets,
                selection=stage.selection,
                partition_key=key,
                resources=dict(resources),
                instance=instance,
                run_config={"ops": ops} if ops else None,
                tags={"fusion_assets/source": "pipeline"},
            )
            log(
                f"[pipeline] {label} done in {time.perf_counter() - started:.1f} s (run {result.run_id})"
            )
            results.append(result)
    return results


def _partition_keys(graph, keys: set[dg.AssetKey], batches: list[str]) -> list[str | None]:
    """The partitions one stage runs over: every static key, the given batches, or none."""
    partitions = {graph.get(k).partitions_def for k in keys} - {None}
    if not partitions:
        return [None]
    (definition,) = partitions  # a run has one partition, so a stage has one partitioning
    if isinstance(definition, dg.DynamicPartitionsDefinition):
        return list(batches)
    return list(definition.get_partition_keys())


def _stage_config(
    assets: list, keys: set[dg.AssetKey], run_config: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The run config of the ops in one stage (run config is keyed by op)."""
    in_stage = {
        asset.op.name
        for asset in assets
        if isinstance(asset, dg.AssetsDefinition) and set(asset.keys) & keys
    }
    return {op: cfg for op, cfg in (run_config or {}).items() if op in in_stage}


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
    reports = Path(default_path("reports"))
    print(f"[demo] done in {time.perf_counter() - started:.0f} s")
    print(f"[demo] report: {latest_report(reports) / 'report.html'}")
    print(f"[demo] latest: {reports / LATEST / 'report.html'} (the newest report, also report.md)")
    print("[demo] browse it all: make ui (Dagster) and make mlflow-ui (MLflow)")
