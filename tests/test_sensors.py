"""The landing, re-evaluation and retraining-chain sensors, on real instances and folders."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from fusion_assets.jobs import RETRAIN_STAGES
from fusion_assets.sensors import (
    BATCH_TAG,
    LANDING_PARTITIONS,
    MAX_BATCHES_PER_TICK,
    RETRAIN_STAGE_TAG,
    RETRAIN_TAG,
    decode_known_batches,
    encode_known_batches,
    landing_sensor,
    reevaluation_sensor,
    retraining_chain_sensor,
)
from resources import LandingZoneResource


def _land(root: Path, batch_id: str, ready: bool = True) -> Path:
    batch = root / batch_id
    batch.mkdir(parents=True)
    (batch / "patients.parquet").write_bytes(b"not read by the sensor")
    if ready:
        (batch / "_READY").touch()
    return batch


def _tick(instance, landing: Path, cursor: str | None):
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"landing": LandingZoneResource(path=str(landing))},
    )
    return landing_sensor(context)


def _apply_partitions(instance, result: dg.SensorResult) -> None:
    """What the daemon does with the result's dynamic partition requests."""
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)


def test_cursor_round_trip_is_compact():
    ids = [f"batch-2025{i:06d}T120000" for i in range(5000)]
    cursor = encode_known_batches(reversed(ids))
    assert decode_known_batches(cursor) == set(ids)
    assert cursor == encode_known_batches(ids)  # deterministic, order independent
    assert len(cursor) < 20_000, len(cursor)  # ~25 bytes per id raw, a few compressed
    assert decode_known_batches(None) == set()
    with pytest.raises(ValueError, match="Set cursor value"):
        decode_known_batches("v0:abc")


def test_new_batch_adds_partition_and_requests_ingest(dagster_instance, tmp_path):
    _land(tmp_path, "b-001")
    result = _tick(dagster_instance, tmp_path, None)
    assert isinstance(result, dg.SensorResult)
    [request] = result.dynamic_partitions_requests
    assert request.partitions_def_name == LANDING_PARTITIONS
    assert list(request.partition_keys) == ["b-001"]
    [run] = result.run_requests
    assert run.run_key == "b-001"
    assert run.partition_key == "b-001"
    assert run.tags[BATCH_TAG] == "b-001"
    assert decode_known_batches(result.cursor) == {"b-001"}


def test_cursor_survives_a_restart_and_nothing_is_requested_twice(dagster_instance, tmp_path):
    _land(tmp_path, "b-001")
    first = _tick(dagster_instance, tmp_path, None)
    _apply_partitions(dagster_instance, first)

    # A restarted daemon rebuilds the context from the stored cursor string.
    again = _tick(dagster_instance, tmp_path, first.cursor)
    assert isinstance(again, dg.SkipReason)
    assert "No new complete batch" in again.skip_message

    _land(tmp_path, "b-002")
    second = _tick(dagster_instance, tmp_path, first.cursor)
    assert [r.run_key for r in second.run_requests] == ["b-002"]
    assert [list(r.partition_keys) for r in second.dynamic_partitions_requests] == [["b-002"]]
    assert decode_known_batches(second.cursor) == {"b-001", "b-002"}


def test_run_keys_are_stable_across_a_lost_cursor(dagster_instance, tmp_path):
    """Without a cursor the same run keys come back, so the daemon's run-key check dedupes."""
    for name in ("b-2", "b-1", "b-3"):
        _land(tmp_path, name)
    first = _tick(dagster_instance, tmp_path, None)
    _apply_partitions(dagster_instance, first)
    replay = _tick(dagster_instance, tmp_path, None)
    assert [r.run_key for r in first.run_requests] == ["b-1", "b-2", "b-3"]
    assert [r.run_key for r in replay.run_requests] == ["b-1", "b-2", "b-3"]
    # The partitions exist already: not requested again.
    assert replay.dynamic_partitions_requests == []


def test_half_copied_batch_is_ignored_until_ready(dagster_instance, tmp_path):
    copying = _land(tmp_path, "b-copying", ready=False)
    result = _tick(dagster_instance, tmp_path, None)
    assert isinstance(result, dg.SkipReason)
    assert "1 folder(s) still without _READY" in result.skip_message

    (copying / "_READY").touch()
    result = _tick(dagster_instance, tmp_path, None)
    assert [r.run_key for r in result.run_requests] == ["b-copying"]


def test_quarantine_hidden_folders_and_files_are_not_batches(dagster_instance, tmp_path):
    _land(tmp_path / "_quarantine", "b-bad")
    (tmp_path / "_quarantine" / "_READY").touch()
    _land(tmp_path, ".b-hidden")
    (tmp_path / "notes.txt").write_text("a stray file")
    assert isinstance(_tick(dagster_instance, tmp_path, None), dg.SkipReason)


def test_missing_landing_root_skips(dagster_instance, tmp_path):
    result = _tick(dagster_instance, tmp_path / "not-there", None)
    assert isinstance(result, dg.SkipReason)


def test_one_tick_is_bounded_and_the_rest_comes_next(dagster_instance, tmp_path):
    for i in range(MAX_BATCHES_PER_TICK + 5):
        _land(tmp_path, f"b-{i:04d}")
    first = _tick(dagster_instance, tmp_path, None)
    assert len(first.run_requests) == MAX_BATCHES_PER_TICK
    _apply_partitions(dagster_instance, first)
    second = _tick(dagster_instance, tmp_path, first.cursor)
    assert len(second.run_requests) == 5


def test_thousand_empty_folders_tick_quickly(dagster_instance, tmp_path):
    """Reports the time of a tick over 1,000 known batches plus one new one (not asserted)."""
    for i in range(1000):
        (tmp_path / f"batch-{i:05d}").mkdir()
        (tmp_path / f"batch-{i:05d}" / "_READY").touch()
    t0 = time.perf_counter()
    first = _tick(dagster_instance, tmp_path, None)
    cold = time.perf_counter() - t0
    assert len(first.run_requests) == MAX_BATCHES_PER_TICK
    cursor = encode_known_batches(f"batch-{i:05d}" for i in range(1000))
    _land(tmp_path, "batch-new")
    t0 = time.perf_counter()
    warm = _tick(dagster_instance, tmp_path, cursor)
    steady = time.perf_counter() - t0
    assert [r.run_key for r in warm.run_requests] == ["batch-new"]
    print(
        f"\n[landing_sensor] 1,000 unknown folders: {cold * 1000:.1f} ms; "
        f"1,000 known + 1 new: {steady * 1000:.1f} ms; cursor {len(cursor)} bytes"
    )


def test_sensors_module_imports_no_torch_or_mlflow():
    code = (
        "import sys, fusion_assets.sensors, fusion_assets.schedules, fusion_assets.jobs;"
        "heavy = sorted(m for m in ('torch', 'mlflow') if m in sys.modules);"
        "print(','.join(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "", f"sensors.py imports {out.stdout.strip()}"


# --- re-evaluation sensor -----------------------------------------------------------------


def _report_ingest(instance, batch_id: str) -> None:
    instance.report_runless_asset_event(
        dg.AssetMaterialization(asset_key="raw_patients", partition=batch_id)
    )


def test_batch_ingested_outside_the_sensor_is_not_ingested_again(dagster_instance, tmp_path):
    """`fusion-assets demo` ingests through materialize; the sensor must not redo it."""
    _land(tmp_path, "demo-batch")
    _land(tmp_path, "new-batch")
    dagster_instance.add_dynamic_partitions(LANDING_PARTITIONS, ["demo-batch"])
    _report_ingest(dagster_instance, "demo-batch")
    result = _tick(dagster_instance, tmp_path, None)
    assert [r.partition_key for r in result.run_requests] == ["new-batch"]
    assert decode_known_batches(result.cursor) == {"demo-batch", "new-batch"}


def test_reevaluation_follows_ingests_once(dagster_instance):
    context = dg.build_sensor_context(instance=dagster_instance)
    assert isinstance(reevaluation_sensor(context), dg.SkipReason)

    _report_ingest(dagster_instance, "b-1")
    _report_ingest(dagster_instance, "b-2")
    _report_ingest(dagster_instance, "b-1")  # re-ingested before the tick: evaluated once
    result = reevaluation_sensor(dg.build_sensor_context(instance=dagster_instance))
    assert [r.partition_key for r in result.run_requests] == ["b-2", "b-1"]
    keys = [r.run_key for r in result.run_requests]
    assert len(set(keys)) == 2 and all(":" in k for k in keys)

    # A restart from the stored cursor sees nothing new.
    again = reevaluation_sensor(
        dg.build_sensor_context(instance=dagster_instance, cursor=result.cursor)
    )
    assert isinstance(again, dg.SkipReason)

    _report_ingest(dagster_instance, "b-1")  # a later re-ingest is re-evaluated again
    later = reevaluation_sensor(
        dg.build_sensor_context(instance=dagster_instance, cursor=result.cursor)
    )
    assert [r.partition_key for r in later.run_requests] == ["b-1"]
    assert later.run_requests[0].run_key not in keys


# --- retraining chain ---------------------------------------------------------------------


def _stage_defs() -> dg.Definitions:
    """Stand-in assets in the stage groups, partitioned like the real ones."""
    modalities = dg.StaticPartitionsDefinition(["ehr", "notes"])
    strategies = dg.StaticPartitionsDefinition(["early", "late"])

    @dg.asset(group_name="profile")
    def splits() -> None: ...

    @dg.asset(group_name="encoders", partitions_def=modalities, deps=[splits])
    def modality_encoder() -> None: ...

    @dg.asset(group_name="fusion", partitions_def=strategies, deps=[modality_encoder])
    def fused_model() -> None: ...

    @dg.asset(group_name="evaluation", deps=[fused_model])
    def predictions() -> None: ...

    return dg.Definitions(
        assets=[splits, modality_encoder, fused_model, predictions],
        jobs=[job for _, job in RETRAIN_STAGES],
        sensors=[retraining_chain_sensor],
    )


def _record_run(instance, job_name: str, stage: str, partition: str | None, status) -> None:
    tags = {RETRAIN_TAG: "r1", RETRAIN_STAGE_TAG: stage}
    if partition:
        tags["dagster/partition"] = partition
    run = instance.create_run_for_job(dg.GraphDefinition("noop").to_job(name=job_name), tags=tags)
    instance.run_storage.handle_run_event(
        run.run_id,
        dg.DagsterEvent(
            event_type_value="PIPELINE_SUCCESS"
            if status == dg.DagsterRunStatus.SUCCESS
            else "PIPELINE_FAILURE",
            job_name=job_name,
        ),
    )


def _chain_tick(instance, defs):
    return retraining_chain_sensor(dg.build_sensor_context(instance=instance, definitions=defs))


def test_retraining_chain_walks_the_stages(dagster_instance):
    defs = _stage_defs()
    assert isinstance(_chain_tick(dagster_instance, defs), dg.SkipReason)

    ok = dg.DagsterRunStatus.SUCCESS
    _record_run(dagster_instance, "retrain_prepare", "prepare", None, ok)
    encoders = _chain_tick(dagster_instance, defs)
    assert [(r.job_name, r.partition_key) for r in encoders.run_requests] == [
        ("retrain_encoders", "ehr"),
        ("retrain_encoders", "notes"),
    ]
    assert encoders.run_requests[0].run_key == "r1:encoders:ehr"

    _record_run(dagster_instance, "retrain_encoders", "encoders", "ehr", ok)
    _record_run(
        dagster_instance, "retrain_encoders", "encoders", "notes", dg.DagsterRunStatus.FAILURE
    )
    blocked = _chain_tick(dagster_instance, defs)
    assert isinstance(blocked, dg.SkipReason)
    assert "failed for ['notes']" in blocked.skip_message

    _record_run(dagster_instance, "retrain_encoders", "encoders", "notes", ok)  # the re-execution
    fusion = _chain_tick(dagster_instance, defs)
    assert [r.partition_key for r in fusion.run_requests] == ["early", "late"]

    _record_run(dagster_instance, "retrain_fusion", "fusion", "early", ok)
    _record_run(dagster_instance, "retrain_fusion", "fusion", "late", ok)
    evaluation = _chain_tick(dagster_instance, defs)
    assert [(r.job_name, r.partition_key) for r in evaluation.run_requests] == [
        ("retrain_evaluation", None)
    ]
    _record_run(dagster_instance, "retrain_evaluation", "evaluation", None, ok)
    done = _chain_tick(dagster_instance, defs)
    assert "complete" in done.skip_message


def test_retraining_schedule_starts_stage_one():
    from fusion_assets.schedules import retraining_schedule

    context = dg.build_schedule_context(
        scheduled_execution_time=__import__("datetime").datetime(2025, 1, 5, 3, 0)
    )
    request = retraining_schedule(context)
    assert request.run_key == "20250105T0300:prepare:-"
    assert request.tags[RETRAIN_TAG] == "20250105T0300"
    assert request.tags[RETRAIN_STAGE_TAG] == "prepare"
    assert retraining_schedule.default_status == dg.DefaultScheduleStatus.STOPPED
