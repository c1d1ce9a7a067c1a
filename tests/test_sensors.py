"""The landing and re-evaluation sensors, on real instances and folders; retraining automation."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from fusion_assets.jobs import build_jobs
from fusion_assets.sensors import (
    BATCH_TAG,
    MAX_BATCHES_PER_TICK,
    build_landing_sensor,
    build_reevaluation_sensor,
    decode_known_batches,
    encode_known_batches,
)
from resources import LandingZoneResource
from tests.fixtures.pipeline import SYNTHETIC

JOBS = build_jobs(SYNTHETIC)
landing_sensor = build_landing_sensor(SYNTHETIC, JOBS["ingest"])
reevaluation_sensor = build_reevaluation_sensor(SYNTHETIC, JOBS["reevaluate_batch"])
LANDING_PARTITIONS = SYNTHETIC.landing_partitions


@pytest.fixture
def landing(tmp_path) -> Path:
    """The synthetic cohort's landing zone under the data folder ``tmp_path`` (not created)."""
    return tmp_path / SYNTHETIC.name / "landing"


def _land(root: Path, batch_id: str, ready: bool = True) -> Path:
    batch = root / batch_id
    batch.mkdir(parents=True)
    (batch / "patients.parquet").write_bytes(b"not read by the sensor")
    if ready:
        (batch / "_READY").touch()
    return batch


def _tick(dagster_instance, landing: Path, cursor: str | None):
    context = dg.build_sensor_context(
        instance=dagster_instance,
        cursor=cursor,
        resources={"landing": LandingZoneResource(data_dir=str(landing.parent.parent))},
    )
    return landing_sensor(context)


def _apply_partitions(dagster_instance, result: dg.SensorResult) -> None:
    """What the daemon does with the result's dynamic partition requests."""
    for request in result.dynamic_partitions_requests or []:
        if isinstance(request, dg.AddDynamicPartitionsRequest):
            dagster_instance.add_dynamic_partitions(
                request.partitions_def_name, request.partition_keys
            )


def test_cursor_round_trip_is_compact():
    ids = [f"batch-2025{i:06d}T120000" for i in range(5000)]
    cursor = encode_known_batches(reversed(ids))
    assert decode_known_batches(cursor) == set(ids)
    assert cursor == encode_known_batches(ids)  # deterministic, order independent
    assert len(cursor) < 20_000, len(cursor)  # ~25 bytes per id raw, a few compressed
    assert decode_known_batches(None) == set()
    with pytest.raises(ValueError, match="Set cursor value"):
        decode_known_batches("v0:abc")


def test_new_batch_adds_partition_and_requests_ingest(dagster_instance, landing):
    _land(landing, "b-001")
    result = _tick(dagster_instance, landing, None)
    assert isinstance(result, dg.SensorResult)
    [request] = result.dynamic_partitions_requests
    assert request.partitions_def_name == LANDING_PARTITIONS
    assert list(request.partition_keys) == ["b-001"]
    [run] = result.run_requests
    assert run.run_key == "b-001"
    assert run.partition_key == "b-001"
    assert run.tags[BATCH_TAG] == "b-001"
    assert decode_known_batches(result.cursor) == {"b-001"}


def test_cursor_survives_a_restart_and_nothing_is_requested_twice(dagster_instance, landing):
    _land(landing, "b-001")
    first = _tick(dagster_instance, landing, None)
    _apply_partitions(dagster_instance, first)

    # A restarted daemon rebuilds the context from the stored cursor string.
    again = _tick(dagster_instance, landing, first.cursor)
    assert isinstance(again, dg.SkipReason)
    assert "No new complete batch" in again.skip_message

    _land(landing, "b-002")
    second = _tick(dagster_instance, landing, first.cursor)
    assert [r.run_key for r in second.run_requests] == ["b-002"]
    assert [list(r.partition_keys) for r in second.dynamic_partitions_requests] == [["b-002"]]
    assert decode_known_batches(second.cursor) == {"b-001", "b-002"}


def test_run_keys_are_stable_across_a_lost_cursor(dagster_instance, landing):
    """Without a cursor the same run keys come back, so the daemon's run-key check dedupes."""
    for name in ("b-2", "b-1", "b-3"):
        _land(landing, name)
    first = _tick(dagster_instance, landing, None)
    _apply_partitions(dagster_instance, first)
    replay = _tick(dagster_instance, landing, None)
    assert [r.run_key for r in first.run_requests] == ["b-1", "b-2", "b-3"]
    assert [r.run_key for r in replay.run_requests] == ["b-1", "b-2", "b-3"]
    # The partitions exist already: not requested again.
    assert replay.dynamic_partitions_requests == []


def test_half_copied_batch_is_ignored_until_ready(dagster_instance, landing):
    copying = _land(landing, "b-copying", ready=False)
    result = _tick(dagster_instance, landing, None)
    assert isinstance(result, dg.SkipReason)
    assert "1 folder(s) still without _READY" in result.skip_message

    (copying / "_READY").touch()
    result = _tick(dagster_instance, landing, None)
    assert [r.run_key for r in result.run_requests] == ["b-copying"]


def test_quarantine_hidden_folders_and_files_are_not_batches(dagster_instance, landing):
    _land(landing / "_quarantine", "b-bad")
    (landing / "_quarantine" / "_READY").touch()
    _land(landing, ".b-hidden")
    (landing / "notes.txt").write_text("a stray file")
    assert isinstance(_tick(dagster_instance, landing, None), dg.SkipReason)


def test_a_quarantined_batch_loses_its_partition(dagster_instance, landing):
    """A rejected batch is never materialized: its partition must not wait forever."""
    _land(landing, "b-good")
    _land(landing / "_quarantine", "b-bad")
    dagster_instance.add_dynamic_partitions(LANDING_PARTITIONS, ["b-bad"])  # added when it landed
    result = _tick(dagster_instance, landing, None)
    adds = [
        r
        for r in result.dynamic_partitions_requests
        if isinstance(r, dg.AddDynamicPartitionsRequest)
    ]
    deletes = [
        r
        for r in result.dynamic_partitions_requests
        if isinstance(r, dg.DeleteDynamicPartitionsRequest)
    ]
    assert [list(r.partition_keys) for r in adds] == [["b-good"]]
    assert [list(r.partition_keys) for r in deletes] == [["b-bad"]]
    assert [r.partition_key for r in result.run_requests] == ["b-good"]
    _apply_partitions(dagster_instance, result)
    for request in deletes:
        for key in request.partition_keys:
            dagster_instance.delete_dynamic_partition(request.partitions_def_name, key)
    assert dagster_instance.get_dynamic_partitions(LANDING_PARTITIONS) == ["b-good"]
    # Nothing left to do next tick.
    assert isinstance(_tick(dagster_instance, landing, result.cursor), dg.SkipReason)


def test_missing_landing_root_skips(dagster_instance, landing):
    result = _tick(dagster_instance, landing, None)
    assert isinstance(result, dg.SkipReason)


def test_one_tick_is_bounded_and_the_rest_comes_next(dagster_instance, landing):
    for i in range(MAX_BATCHES_PER_TICK + 5):
        _land(landing, f"b-{i:04d}")
    first = _tick(dagster_instance, landing, None)
    assert len(first.run_requests) == MAX_BATCHES_PER_TICK
    _apply_partitions(dagster_instance, first)
    second = _tick(dagster_instance, landing, first.cursor)
    assert len(second.run_requests) == 5


def test_thousand_empty_folders_tick_quickly(dagster_instance, landing):
    """Reports the time of a tick over 1,000 known batches plus one new one (not asserted)."""
    for i in range(1000):
        (landing / f"batch-{i:05d}").mkdir(parents=True)
        (landing / f"batch-{i:05d}" / "_READY").touch()
    t0 = time.perf_counter()
    first = _tick(dagster_instance, landing, None)
    cold = time.perf_counter() - t0
    assert len(first.run_requests) == MAX_BATCHES_PER_TICK
    cursor = encode_known_batches(f"batch-{i:05d}" for i in range(1000))
    _land(landing, "batch-new")
    t0 = time.perf_counter()
    warm = _tick(dagster_instance, landing, cursor)
    steady = time.perf_counter() - t0
    assert [r.run_key for r in warm.run_requests] == ["batch-new"]
    print(
        f"\n[landing_sensor] 1,000 unknown folders: {cold * 1000:.1f} ms; "
        f"1,000 known + 1 new: {steady * 1000:.1f} ms; cursor {len(cursor)} bytes"
    )


def test_sensors_module_imports_no_torch_or_mlflow():
    code = (
        "import sys, fusion_assets.sensors, fusion_assets.automation, fusion_assets.jobs;"
        "heavy = sorted(m for m in ('torch', 'mlflow') if m in sys.modules);"
        "print(','.join(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "", f"sensors.py imports {out.stdout.strip()}"


# --- re-evaluation sensor -----------------------------------------------------------------


def _report_ingest(dagster_instance, batch_id: str) -> None:
    dagster_instance.report_runless_asset_event(
        dg.AssetMaterialization(asset_key=SYNTHETIC.key("raw_patients"), partition=batch_id)
    )


def test_batch_ingested_outside_the_sensor_is_not_ingested_again(dagster_instance, landing):
    """`fusion-assets demo` ingests through materialize; the sensor must not redo it."""
    _land(landing, "demo-batch")
    _land(landing, "new-batch")
    dagster_instance.add_dynamic_partitions(LANDING_PARTITIONS, ["demo-batch"])
    _report_ingest(dagster_instance, "demo-batch")
    result = _tick(dagster_instance, landing, None)
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
    # No promotion step has run: no champion to score with, so risk_scores is left out.
    selected = set(result.run_requests[0].asset_selection)
    assert SYNTHETIC.key("batch_evaluation") in selected
    assert SYNTHETIC.key("risk_scores") not in selected

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

    # Once a promotion step has left a champion, the whole job runs, risk_scores included.
    cursor = later.cursor
    for champion, scored in (("none", False), ("late v1", True)):
        dagster_instance.report_runless_asset_event(
            dg.AssetMaterialization(SYNTHETIC.key("promotion"), metadata={"champion": champion})
        )
        _report_ingest(dagster_instance, "b-3")
        tick = reevaluation_sensor(
            dg.build_sensor_context(instance=dagster_instance, cursor=cursor)
        )
        (request,) = tick.run_requests
        assert (request.asset_selection is None) == scored
        cursor = tick.cursor
