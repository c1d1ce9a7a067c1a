"""Sensors of the code location: new data in, re-evaluation out, retraining chained.

- ``landing_sensor``: every complete batch folder (one with ``_READY``) in the
  landing zone becomes a ``landing_batches`` partition and one ingest run.
- ``reevaluation_sensor``: every ingest (a ``raw_patients`` materialization, from
  the landing sensor, the UI or the demo) starts one run that refreshes the
  aligned tables and scores that batch with the current fused models.
- ``retraining_chain_sensor``: moves a retraining started by the retraining
  schedule from one stage to the next (see schedules.py).

The daemon imports this module on every code-server start and evaluates the
ticks in that process, so it must stay light: no torch, no mlflow (a test
checks), and a tick reads a directory listing and run/event records only,
never a batch's files. Default statuses and the reasons are in
docs/operations.md.
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Iterable

import dagster as dg

from fusion_assets.jobs import RETRAIN_STAGES, ingest_batch_job, reevaluate_batch_job
from fusion_assets.landing_zone import READY_MARKER, scan_ready_batches
from resources.landing import LandingZoneResource

LANDING_PARTITIONS = "landing_batches"
# The asset every ingest writes exactly once per batch: its materializations mark "batch ingested".
INGEST_MARKER_ASSET = dg.AssetKey("raw_patients")

RETRAIN_TAG = "fusion_assets/retrain"
RETRAIN_STAGE_TAG = "fusion_assets/retrain_stage"
BATCH_TAG = "fusion_assets/batch"

# A landing tick is a directory listing; 15 s keeps "drop a batch" responsive.
LANDING_INTERVAL_S = 15
REEVALUATION_INTERVAL_S = 15
RETRAIN_CHAIN_INTERVAL_S = 60
# Bounds on the work of one tick; the rest is picked up by the next tick.
MAX_BATCHES_PER_TICK = 100
MAX_INGESTS_PER_TICK = 25

_CURSOR_VERSION = "v1"


# --- the landing sensor's cursor ---------------------------------------------------------


def encode_known_batches(batch_ids: Iterable[str]) -> str:
    """The landing cursor: every batch id already requested, compact and deterministic.

    Sorted ids joined by newlines, zlib-compressed, base64: batch ids share long
    prefixes (``batch-2025…``), so thousands of them take a few kilobytes. A
    high-water mark alone would be smaller but would miss a batch whose copy
    finished after a batch with a later name.
    """
    raw = "\n".join(sorted(set(batch_ids))).encode("utf-8")
    return f"{_CURSOR_VERSION}:" + base64.b64encode(zlib.compress(raw, 9)).decode("ascii")


def decode_known_batches(cursor: str | None) -> set[str]:
    """Inverse of :func:`encode_known_batches`; ``None`` (first tick) is the empty set."""
    if not cursor:
        return set()
    version, _, payload = cursor.partition(":")
    if version != _CURSOR_VERSION:
        raise ValueError(
            f"Landing sensor cursor has version {version!r}, expected {_CURSOR_VERSION!r}. "
            "Reset the cursor in the UI (Sensors > landing_sensor > Set cursor value) to "
            "an empty value: run keys still prevent ingesting a batch twice."
        )
    raw = zlib.decompress(base64.b64decode(payload)).decode("utf-8")
    return set(raw.split("\n")) if raw else set()


@dg.sensor(
    name="landing_sensor",
    job=ingest_batch_job,
    minimum_interval_seconds=LANDING_INTERVAL_S,
    # RUNNING: the product's promise is "drop a batch, it is ingested and re-evaluated
    # without anyone clicking". The tick is a directory listing, so leaving it on is cheap.
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Each new landing batch folder with a _READY marker becomes a landing_batches "
        "partition and one ingest run (run key = batch id)."
    ),
)
def landing_sensor(
    context: dg.SensorEvaluationContext, landing: LandingZoneResource
) -> dg.SensorResult | dg.SkipReason:
    """Add a partition and request one ingest run per new complete batch."""
    known = decode_known_batches(context.cursor)
    ready, incomplete = scan_ready_batches(landing.root, known)
    if not ready:
        waiting = f"; {incomplete} folder(s) still without {READY_MARKER}" if incomplete else ""
        return dg.SkipReason(f"No new complete batch in {landing.root}{waiting}.")
    # Bound the work of one tick; the remaining batches stay unknown and come next tick.
    batch = ready[:MAX_BATCHES_PER_TICK]
    already = set(context.instance.get_dynamic_partitions(LANDING_PARTITIONS))
    to_add = [b for b in batch if b not in already]
    # A batch ingested outside the sensor (`fusion-assets demo`, the UI) is not ingested
    # again: re-loading would change nothing but would trigger a second re-evaluation.
    ingested = context.instance.get_materialized_partitions(INGEST_MARKER_ASSET) & set(batch)
    to_run = [b for b in batch if b not in ingested]
    shown = batch if len(batch) <= 5 else [*batch[:2], "…", batch[-1]]
    context.log.info(
        f"{len(batch)} new landing batch(es) {shown}; {len(to_add)} new partition(s); "
        f"{len(ingested)} already ingested; {len(ready) - len(batch)} left for the next tick"
    )
    return dg.SensorResult(
        dynamic_partitions_requests=(
            [dg.AddDynamicPartitionsRequest(LANDING_PARTITIONS, to_add)] if to_add else []
        ),
        run_requests=[
            # The run key makes the daemon refuse a second run for the same batch,
            # even if the cursor were lost.
            dg.RunRequest(run_key=b, partition_key=b, tags={BATCH_TAG: b})
            for b in to_run
        ],
        cursor=encode_known_batches(known | set(batch)),
    )


# --- re-evaluation after each ingest -----------------------------------------------------


@dg.sensor(
    name="reevaluation_sensor",
    job=reevaluate_batch_job,
    minimum_interval_seconds=REEVALUATION_INTERVAL_S,
    # RUNNING for the same promise; it only reacts to ingests, so it is idle otherwise.
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "After each ingest of a landing batch (raw_patients materialization), refresh the "
        "aligned tables and re-evaluate the current fused models on that batch."
    ),
)
def reevaluation_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    """One re-evaluation run per ingested batch; cursor = last event storage id handled."""
    after = int(context.cursor) if context.cursor else None
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=INGEST_MARKER_ASSET, after_storage_id=after),
        limit=MAX_INGESTS_PER_TICK,
        ascending=True,
    ).records
    if not records:
        return dg.SkipReason("No batch ingested since the last tick.")
    latest: dict[str, int] = {}
    for record in records:
        if record.partition_key:  # unpartitioned materializations are not landing batches
            latest[record.partition_key] = record.storage_id
    # Without batch_evaluation in the code location the job is the align refresh alone,
    # which is unpartitioned: the batch then goes in a tag only.
    repo = context.repository_def
    partitioned = repo is None or repo.get_job(reevaluate_batch_job.name).partitions_def is not None
    return dg.SensorResult(
        run_requests=[
            # The storage id in the key: re-ingesting a batch (a new materialization)
            # re-evaluates it once more, a restarted daemon does not.
            dg.RunRequest(
                run_key=f"{batch}:{storage_id}",
                partition_key=batch if partitioned else None,
                tags={BATCH_TAG: batch},
            )
            for batch, storage_id in sorted(latest.items(), key=lambda item: item[1])
        ],
        cursor=str(records[-1].storage_id),
    )


# --- retraining: stage after stage --------------------------------------------------------


def _stage_partitions(context: dg.SensorEvaluationContext, job_name: str) -> list[str | None]:
    """The partition keys one stage runs over (``[None]`` for an unpartitioned stage)."""
    repo = context.repository_def
    if repo is None:
        raise dg.DagsterInvariantViolationError(
            "retraining_chain_sensor needs the repository to know each stage's partitions."
        )
    job = repo.get_job(job_name)
    if job.partitions_def is None:
        return [None]
    return list(job.partitions_def.get_partition_keys(dynamic_partitions_store=context.instance))


def _stage_is_empty(context: dg.SensorEvaluationContext, job_name: str) -> bool:
    """A stage whose group has no assets yet (a partial code location) is skipped."""
    repo = context.repository_def
    return repo is not None and not repo.get_job(job_name).asset_layer.selected_asset_keys


def retraining_progress(
    runs: Iterable[dg.DagsterRun],
) -> dict[str, dict[str | None, dg.DagsterRunStatus]]:
    """stage -> partition -> status of the newest run (re-executions supersede failures)."""
    progress: dict[str, dict[str | None, dg.DagsterRunStatus]] = {}
    # get_runs returns newest first: the first run seen per (stage, partition) wins.
    for run in runs:
        stage = run.tags.get(RETRAIN_STAGE_TAG)
        if stage is None:
            continue
        partition = run.tags.get("dagster/partition")
        progress.setdefault(stage, {}).setdefault(partition, run.status)
    return progress


def _stage_blocker(
    done: dict[str | None, dg.DagsterRunStatus], wanted: list[str | None]
) -> str | None:
    """Why a stage is not finished (``None`` when every wanted partition succeeded)."""
    failed = sorted(str(p) for p in wanted if done.get(p) == dg.DagsterRunStatus.FAILURE)
    if failed:
        return f"failed for {failed}: re-execute those runs to continue"
    if any(done.get(p) != dg.DagsterRunStatus.SUCCESS for p in wanted):
        return "in progress"
    return None


@dg.sensor(
    name="retraining_chain_sensor",
    jobs=[job for _, job in RETRAIN_STAGES],
    minimum_interval_seconds=RETRAIN_CHAIN_INTERVAL_S,
    # RUNNING: it is inert until the retraining schedule (STOPPED by default) or an
    # operator starts stage 1 with the retrain tag; turning it off would strand a retraining.
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Continues the newest retraining (runs tagged fusion_assets/retrain): once every run "
        "of a stage succeeded, requests the next stage (one run per partition)."
    ),
)
def retraining_chain_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    """Request the next retraining stage when the previous one fully succeeded."""
    first_job = RETRAIN_STAGES[0][1].name
    starts = [
        run
        for run in context.instance.get_runs(dg.RunsFilter(job_name=first_job), limit=20)
        if RETRAIN_TAG in run.tags
    ]
    if not starts:
        return dg.SkipReason("No retraining started (the retraining schedule starts one).")
    retrain_id = starts[0].tags[RETRAIN_TAG]
    runs = context.instance.get_runs(dg.RunsFilter(tags={RETRAIN_TAG: retrain_id}))
    progress = retraining_progress(runs)

    for (stage, job), (next_stage, next_job) in zip(
        RETRAIN_STAGES, RETRAIN_STAGES[1:], strict=False
    ):
        if not _stage_is_empty(context, job.name):
            blocked = _stage_blocker(progress.get(stage, {}), _stage_partitions(context, job.name))
            if blocked:
                return dg.SkipReason(f"Retraining {retrain_id}: stage {stage!r} {blocked}.")
        if next_stage in progress or _stage_is_empty(context, next_job.name):
            continue  # already requested, or nothing to run in that stage yet
        partitions = _stage_partitions(context, next_job.name)
        context.log.info(f"Retraining {retrain_id}: starting stage {next_stage!r} {partitions}")
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    run_key=f"{retrain_id}:{next_stage}:{p or '-'}",
                    job_name=next_job.name,
                    partition_key=p,
                    tags={RETRAIN_TAG: retrain_id, RETRAIN_STAGE_TAG: next_stage},
                )
                for p in partitions
            ]
        )
    return dg.SkipReason(f"Retraining {retrain_id} is complete.")


SENSORS: list[dg.SensorDefinition] = [landing_sensor, reevaluation_sensor, retraining_chain_sensor]
