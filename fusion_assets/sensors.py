"""Sensors of a cohort: new data in, re-evaluation out (both RUNNING by default).

- ``<cohort>_landing_sensor``: every complete batch folder (one with ``_READY``)
  in the cohort's landing zone becomes a ``<cohort>_landing_batches`` partition
  and one ingest run; a batch moved to ``_quarantine/`` has its partition removed.
- ``<cohort>_reevaluation_sensor``: every ingest (a ``raw_patients``
  materialization, from the landing sensor, the UI or the demo) starts one run
  that refreshes the aligned tables, scores that batch with the current fused
  models (``batch_evaluation``) and, when the last promotion step left a champion,
  writes the champion's risk scores of the batch's patients (``risk_scores``).

Retraining is declarative (automation.py), not a sensor of its own. The daemon
imports this module on every code-server start and evaluates the ticks in that
process, so it must stay light: no torch, no mlflow (a test checks), and a tick
reads a directory listing and run/event records only, never a batch's files.
Default statuses and the reasons are in docs/operations.md.
"""

from __future__ import annotations

import base64
import os
import zlib
from collections.abc import Iterable
from pathlib import Path

import dagster as dg

from fusion_assets.landing_zone import QUARANTINE_DIR, READY_MARKER, scan_ready_batches
from fusion_assets.location.cohort import Cohort
from resources.landing import LandingZoneResource

BATCH_TAG = "fusion_assets/batch"

# A landing tick is a directory listing; 15 s keeps "drop a batch" responsive.
LANDING_INTERVAL_S = 15
REEVALUATION_INTERVAL_S = 15
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


def quarantined_batches(root: Path) -> set[str]:
    """Batch ids under ``<root>/_quarantine`` (one listing)."""
    folder = root / QUARANTINE_DIR
    if not folder.is_dir():
        return set()
    with os.scandir(folder) as entries:
        return {e.name for e in entries if e.is_dir(follow_symlinks=False)}


def _landing_result(
    context: dg.SensorEvaluationContext,
    cohort: Cohort,
    known: set[str],
    batch: list[str],
    quarantined: list[str],
) -> dg.SensorResult:
    partitions = cohort.landing_partitions
    already = set(context.instance.get_dynamic_partitions(partitions))
    to_add = [b for b in batch if b not in already and b not in quarantined]
    # A batch ingested outside the sensor (`fusion-assets demo`, the UI) is not ingested
    # again: re-loading would change nothing but would trigger a second re-evaluation.
    ingested = context.instance.get_materialized_partitions(cohort.key("raw_patients"))
    to_run = [b for b in batch if b not in ingested and b not in quarantined]
    requests: list = [dg.AddDynamicPartitionsRequest(partitions, to_add)] if to_add else []
    if quarantined:
        # A rejected batch never gets a materialization: its partition would stay missing
        # forever and block every asset that waits for all raw partitions.
        requests.append(dg.DeleteDynamicPartitionsRequest(partitions, quarantined))
    shown = batch if len(batch) <= 5 else [*batch[:2], "…", batch[-1]]
    context.log.info(
        f"{len(batch)} new landing batch(es) {shown}; {len(to_add)} new partition(s); "
        f"{len(batch) - len(to_run)} already ingested; quarantined partitions removed: "
        f"{quarantined}"
    )
    return dg.SensorResult(
        dynamic_partitions_requests=requests,
        run_requests=[
            # The run key makes the daemon refuse a second run for the same batch,
            # even if the cursor were lost.
            dg.RunRequest(run_key=b, partition_key=b, tags={BATCH_TAG: b})
            for b in to_run
        ],
        cursor=encode_known_batches(known | set(batch)),
    )


def build_landing_sensor(
    cohort: Cohort, job: dg.UnresolvedAssetJobDefinition
) -> dg.SensorDefinition:
    @dg.sensor(
        name=cohort.sensor("landing_sensor"),
        job=job,
        minimum_interval_seconds=LANDING_INTERVAL_S,
        # RUNNING: the product's promise is "drop a batch, it is ingested and re-evaluated
        # without anyone clicking". The tick is a directory listing, so leaving it on is cheap.
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            f"Each new batch folder with a _READY marker in {cohort.name}'s landing zone becomes "
            f"a {cohort.landing_partitions} partition and one ingest run (run key = batch id); "
            "a quarantined batch's partition is removed."
        ),
    )
    def landing_sensor(
        context: dg.SensorEvaluationContext, landing: LandingZoneResource
    ) -> dg.SensorResult | dg.SkipReason:
        """Add a partition and request one ingest run per new complete batch."""
        root = landing.for_cohort(cohort.name).root
        known = decode_known_batches(context.cursor)
        ready, incomplete = scan_ready_batches(root, known)
        partitions = set(context.instance.get_dynamic_partitions(cohort.landing_partitions))
        quarantined = sorted(quarantined_batches(root) & partitions)
        if not ready and not quarantined:
            waiting = f"; {incomplete} folder(s) still without {READY_MARKER}" if incomplete else ""
            return dg.SkipReason(f"No new complete batch in {root}{waiting}.")
        # Bound the work of one tick; the remaining batches stay unknown and come next tick.
        return _landing_result(context, cohort, known, ready[:MAX_BATCHES_PER_TICK], quarantined)

    return landing_sensor


# --- re-evaluation after each ingest -----------------------------------------------------


def _has_champion(instance: dg.DagsterInstance, promotion: dg.AssetKey) -> bool:
    """Whether the latest promotion step left a champion (its metadata; one indexed
    event-log query, no MLflow in a tick). risk_scores itself reads the alias."""
    event = instance.get_latest_materialization_event(promotion)
    if event is None or event.asset_materialization is None:
        return False
    champion = event.asset_materialization.metadata.get("champion")
    return champion is not None and champion.value not in ("", "none")


def build_reevaluation_sensor(
    cohort: Cohort, job: dg.UnresolvedAssetJobDefinition
) -> dg.SensorDefinition:
    marker = cohort.key("raw_patients")  # every ingest writes it exactly once per batch
    # Without a champion there is nothing to score with: the run leaves risk_scores out
    # instead of failing on every batch of a fresh install (or of a cohort whose candidates
    # have not cleared the promotion rules yet).
    promotion = cohort.key("promotion")
    without_scores = [
        *cohort.keys("aligned_patients", *(f"aligned_{m}" for m in cohort.spec.modality_names)),
        cohort.key("batch_evaluation"),
    ]

    @dg.sensor(
        name=cohort.sensor("reevaluation_sensor"),
        job=job,
        minimum_interval_seconds=REEVALUATION_INTERVAL_S,
        # RUNNING for the same promise; it only reacts to ingests, so it is idle otherwise.
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            f"After each ingest of a {cohort.name} landing batch (raw_patients materialization), "
            "refresh the aligned tables, re-evaluate the current fused models on that batch and "
            "write the champion's risk scores of its patients (when there is a champion)."
        ),
    )
    def reevaluation_sensor(
        context: dg.SensorEvaluationContext,
    ) -> dg.SensorResult | dg.SkipReason:
        """One re-evaluation run per ingested batch; cursor = last event storage id handled."""
        after = int(context.cursor) if context.cursor else None
        records = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=marker, after_storage_id=after),
            limit=MAX_INGESTS_PER_TICK,
            ascending=True,
        ).records
        if not records:
            return dg.SkipReason("No batch ingested since the last tick.")
        latest: dict[str, int] = {}
        for record in records:
            if record.partition_key:  # unpartitioned materializations are not landing batches
                latest[record.partition_key] = record.storage_id
        selection = None if _has_champion(context.instance, promotion) else without_scores
        return dg.SensorResult(
            run_requests=[
                # The storage id in the key: re-ingesting a batch (a new materialization)
                # re-evaluates it once more, a restarted daemon does not.
                dg.RunRequest(
                    run_key=f"{batch}:{storage_id}",
                    partition_key=batch,
                    tags={BATCH_TAG: batch},
                    asset_selection=selection,
                )
                for batch, storage_id in sorted(latest.items(), key=lambda item: item[1])
            ],
            cursor=str(records[-1].storage_id),
        )

    return reevaluation_sensor
