"""Materialize a cohort's pipeline in dependency order: ``fusion-assets demo``/``run`` and the tests.

Runs in one process with Dagster's in-process executor (importing torch, mlflow
and dagster costs seconds per process) against the local instance, so every run
shows up in ``dagster dev`` afterwards. The work is the cohort's group jobs
(jobs.py), ordered by the asset graph (a group runs after every group it
depends on), one run per partition of a partitioned group; each run is named
after its job (``synthetic_encoders`` …).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import dagster as dg

from fusion_assets.location import Cohort
from fusion_assets.location.cohort import GROUP_NUMBERS
from fusion_assets.report_folders import LATEST, latest_report

# Settings for a smoke run in about a minute: tiny networks, fewer resamples and masks.
FAST_RUN_CONFIG: dict[str, Any] = {
    "modality_encoder": {"config": {"preset": "tiny"}},
    # A smoke run checks the plumbing, not model quality: tiny networks on a few hundred
    # patients land far below a single modality by chance, so the fit check's margin is open
    # (the other two fit checks still apply).
    "fused_model": {"config": {"preset": "tiny", "max_auroc_below_best_single": 1.0}},
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


def stage_order(defs: dg.Definitions, cohort: Cohort) -> list[str]:
    """The cohort's groups (stage names) in the asset graph's topological order."""
    graph = defs.resolve_asset_graph()
    first: dict[str, int] = {}
    for index, key in enumerate(graph.toposorted_asset_keys):
        group = graph.get(key).group_name
        stage = next((s for s in GROUP_NUMBERS if cohort.group(s) == group), None)
        if stage is not None:
            first.setdefault(stage, index)
    return sorted(first, key=first.__getitem__)


def _partition_keys(
    job: dg.JobDefinition, batches: list[str], instance: dg.DagsterInstance
) -> list[str | None]:
    partitions = job.partitions_def
    if partitions is None:
        return [None]
    if isinstance(partitions, dg.DynamicPartitionsDefinition):
        return list(batches)
    return list(partitions.get_partition_keys(dynamic_partitions_store=instance))


def materialize_cohort(
    defs: dg.Definitions,
    cohort: Cohort,
    instance: dg.DagsterInstance,
    batches: list[str],
    run_config: Mapping[str, Any] | None = None,
    log: Callable[[str], None] = print,
) -> list[dg.ExecuteInProcessResult]:
    """Ingest ``batches``, then every group of the cohort; stops at the first failed run.

    ``run_config`` is keyed by asset name (``{"fused_model": {"config": …}}``).
    """
    known = set(instance.get_dynamic_partitions(cohort.landing_partitions))
    instance.add_dynamic_partitions(
        cohort.landing_partitions, [b for b in batches if b not in known]
    )
    results = []
    for stage in stage_order(defs, cohort):
        job = defs.resolve_job_def(cohort.job(stage))
        ops = {op.name for op in job.graph.node_defs}
        config = {k: v for k, v in (run_config or {}).items() if cohort.op(k) in ops}
        for key in _partition_keys(job, batches, instance):
            label = f"{job.name}" + (f" [{key}]" if key else "")
            log(f"[pipeline] {label} ...")
            started = time.perf_counter()
            result = job.execute_in_process(
                partition_key=key,
                instance=instance,
                run_config=cohort.run_config(config),
                tags={"fusion_assets/source": "pipeline"},
            )
            log(
                f"[pipeline] {label} done in {time.perf_counter() - started:.1f} s (run {result.run_id})"
            )
            results.append(result)
    return results


def print_report_location(reports: Path, prefix: str) -> Path:
    report = latest_report(reports) / "report.html"
    print(f"[{prefix}] report: {report} (and report.md beside it)")
    print(f"[{prefix}] latest: {reports / LATEST / 'report.html'} (the newest report)")
    return report


# New patients landing after the models are trained: the demo's re-evaluation batch.
ARRIVALS_PATIENTS = 500


def score_arrivals(
    defs: dg.Definitions,
    cohort: Cohort,
    instance: dg.DagsterInstance,
    batch_id: str,
    has_champion: bool,
    log: Callable[[str], None] = print,
) -> list[dg.ExecuteInProcessResult]:
    """What the landing and re-evaluation sensors do for a new batch, run in process:
    ingest it, then re-align, re-evaluate (``batch_evaluation``) and, with a champion,
    risk-score it (``risk_scores``), as the re-evaluation job for that partition."""
    instance.add_dynamic_partitions(cohort.landing_partitions, [batch_id])
    results = []
    for stage in ("ingest", "reevaluate_batch"):
        job = defs.resolve_job_def(cohort.job(stage))
        selection = None
        if stage == "reevaluate_batch" and not has_champion:  # as the sensor does
            selection = [
                k for k in job.asset_layer.executable_asset_keys if k != cohort.key("risk_scores")
            ]
        log(f"[pipeline] {job.name} [{batch_id}] ...")
        started = time.perf_counter()
        result = job.execute_in_process(
            partition_key=batch_id,
            instance=instance,
            asset_selection=selection,
            tags={"fusion_assets/source": "pipeline"},
        )
        log(
            f"[pipeline] {job.name} [{batch_id}] done in {time.perf_counter() - started:.1f} s "
            f"(run {result.run_id})"
        )
        results.append(result)
    return results


def run_demo(data_dir: Path, cohort_name: str = "synthetic", fast: bool = False) -> Path:
    """Land the cohort's synthetic data (if its landing zone is empty) and materialize it all."""
    from fusion_assets.cohorts.synthetic import synthesize_batch
    from fusion_assets.location.build import build_location, location_resources
    from fusion_assets.location.component import declared_cohorts

    started = time.perf_counter()
    cohort = declared_cohorts()[cohort_name]
    if cohort.synthetic is None:
        raise ValueError(f"Cohort {cohort_name!r} is not synthetic: use `fusion-assets run`.")
    resources = location_resources(data_dir=str(data_dir))
    zone = resources["landing"].for_cohort(cohort.name)
    if not zone.ready_batches():
        source = cohort.synthetic
        print(f"[demo] writing the synthetic cohort ({source.patients} patients) to {zone.root}")
        synthesize_batch(
            zone.root,
            n_patients=source.patients,
            seed=source.seed,
            batch_id=f"{cohort.name}-default",
            **source.generator_settings(),
        )
    defs = build_location([cohort], resources)
    instance = default_instance()
    arrivals = f"{cohort.name}-arrivals"
    training = [b for b in zone.ready_batches() if b != arrivals]
    materialize_cohort(defs, cohort, instance, training, FAST_RUN_CONFIG if fast else None)
    # Then new patients arrive: the re-evaluation and the champion's risk scores for them.
    if arrivals not in zone.ready_batches():
        source = cohort.synthetic
        synthesize_batch(
            zone.root,
            n_patients=ARRIVALS_PATIENTS,
            seed=source.seed + 1,
            batch_id=arrivals,
            **source.generator_settings(),
        )
    champion = resources["model_store"].for_cohort(cohort.name).champion()
    score_arrivals(defs, cohort, instance, arrivals, champion is not None)
    if champion is not None:
        print(
            f"[demo] {ARRIVALS_PATIENTS} new patients ({arrivals}) re-evaluated and risk-scored "
            f"with the champion {champion[0]} v{champion[1]}: eval.batch_metrics, eval.risk_scores"
        )
    else:
        print(f"[demo] {arrivals} re-evaluated (no champion: no risk scores)")
    print(f"[demo] cohort {cohort.name!r} done in {time.perf_counter() - started:.0f} s")
    report = print_report_location(resources["reports"].for_cohort(cohort.name), "demo")
    print("[demo] browse it all: make ui (Dagster) and make mlflow-ui (MLflow)")
    return report
