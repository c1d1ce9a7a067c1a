"""``fusion-assets demo``: land the default synthetic cohort and materialize every asset.

Runs in one process with Dagster's in-process executor (importing torch, mlflow
and dagster costs seconds per process) against the local instance, so every run
shows up in ``dagster dev`` afterwards. Stages run in dependency order; a
partitioned stage runs once per partition.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import dagster as dg

from fusion_assets.assets.ingest import landing_batches


def _instance() -> dg.DagsterInstance:
    if os.environ.get("DAGSTER_HOME"):
        return dg.DagsterInstance.get()
    print(
        "DAGSTER_HOME is not set: runs go to a temporary instance (set it to see them in the UI)."
    )
    return dg.DagsterInstance.ephemeral()


def _stages(defs: dg.Definitions) -> list[tuple[str, str, list[str | None]]]:
    """(title, group, partition keys) in dependency order, for the groups that exist."""
    from fusion_assets.definitions import MODALITIES, STRATEGIES

    groups = {spec.group_name for spec in defs.resolve_all_asset_specs()}
    ordered = [
        ("align the modalities as of index time", "align", [None]),
        ("profile availability, recommend, split", "profile", [None]),
        ("fit one encoder per modality", "encoders", list(MODALITIES)),
        ("fit the fusion strategies", "fusion", list(STRATEGIES)),
        ("predict, stress-test and report", "evaluation", [None]),
    ]
    return [stage for stage in ordered if stage[1] in groups]


def run_demo(landing: Path, patients: int = 5000, seed: int = 0) -> None:
    from fusion_assets.cohorts.synthetic import synthesize_batch
    from fusion_assets.definitions import defs
    from resources import LandingZoneResource

    started = time.perf_counter()
    zone = LandingZoneResource(path=str(landing))
    if not zone.ready_batches():
        print(f"[demo] writing the default synthetic cohort ({patients} patients) to {landing}")
        synthesize_batch(landing, n_patients=patients, seed=seed, batch_id="synthetic-default")

    instance = _instance()
    assets = list(defs.assets or []) + list(defs.asset_checks or [])
    resources = dict(defs.resources or {})
    resources["landing"] = zone

    batches = zone.ready_batches()
    known = set(instance.get_dynamic_partitions(landing_batches.name))
    instance.add_dynamic_partitions(landing_batches.name, [b for b in batches if b not in known])
    for batch_id in batches:
        _materialize(f"ingest batch {batch_id}", assets, resources, instance, "ingest", batch_id)

    for title, group, keys in _stages(defs):
        for key in keys:
            _materialize(title, assets, resources, instance, group, key)
    print(f"[demo] done in {time.perf_counter() - started:.0f} s")


def _materialize(title, assets, resources, instance, group: str, partition_key: str | None) -> None:
    label = f"{title}" + (f" [{partition_key}]" if partition_key else "")
    print(f"[demo] {label} ...", flush=True)
    t0 = time.perf_counter()
    result = dg.materialize(
        assets,
        selection=dg.AssetSelection.groups(group),
        partition_key=partition_key,
        resources=resources,
        instance=instance,
        tags={"fusion_assets/source": "demo"},
    )
    if not result.success:
        raise SystemExit(f"[demo] {label} failed; see the run {result.run_id} in the Dagster UI.")
    print(f"[demo] {label} done in {time.perf_counter() - t0:.1f} s (run {result.run_id})")
