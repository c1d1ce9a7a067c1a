"""Killed runs recover, under ``dagster dev``: two runs holding the cohort's DuckDB writer
pool are killed with SIGKILL; run monitoring fails them, the daemon frees their pool slot,
and a batch landed afterwards is ingested.

The instance is the repository's run-monitoring setup (``fusion_assets.run_launcher``,
``run_monitoring`` with ``free_slots_after_run_end_seconds``) with intervals of seconds
instead of the shipped 30 s, so the test waits as little as the daemon allows, and the
pools block exactly as ``dagster.yaml`` and ``deploy/dagster.yaml`` ship it (op
granularity): the second run's step waits for the slot inside a started run.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import dagster as dg
import pytest
import yaml

from fusion_assets.run_launcher import recorded_worker
from tests.fixtures.dagster_dev import (
    DaemonSession,
    land,
    wait_for,
    wait_for_runs,
    write_instance_yaml,
)

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
POOL = "duckdb_writer_synthetic"
HOLD_JOB = "synthetic_hold_writer"
MONITORING_S = 2  # poll interval and slot-release delay of the test's instance

# A step that takes the cohort's writer slot and keeps it until killed.
HOLD_WRITER = f"""
import time

import dagster as dg


@dg.asset(key=["synthetic", "hold_writer"], pool={POOL!r})
def hold_writer() -> None:
    time.sleep(3600)


defs = dg.Definitions.merge(
    defs,
    dg.Definitions(
        assets=[hold_writer], jobs=[dg.define_asset_job({HOLD_JOB!r}, [hold_writer])]
    ),
)
"""


def write_monitored_instance(home: Path) -> None:
    write_instance_yaml(home)
    path = home / "dagster.yaml"
    pools = "  pools:\n    default_limit: 1\n"
    assert pools in path.read_text()
    shipped = [
        yaml.safe_load((REPO / name).read_text())["concurrency"]["pools"]
        for name in ("dagster.yaml", "deploy/dagster.yaml")
    ]
    assert shipped[0] == shipped[1], "the local and the production pools differ"
    block = yaml.safe_dump({"pools": shipped[0]}, default_flow_style=False)
    path.write_text(
        path.read_text().replace(pools, "".join(f"  {line}\n" for line in block.splitlines()))
    )
    with path.open("a") as out:
        out.write(
            f"""
run_launcher:
  module: fusion_assets.run_launcher
  class: LocalMonitoredRunLauncher
run_monitoring:
  enabled: true
  start_timeout_seconds: 180
  poll_interval_seconds: {MONITORING_S}
  max_resume_run_attempts: 0
  free_slots_after_run_end_seconds: {MONITORING_S}
"""
        )


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    with DaemonSession.start(
        tmp_path_factory.mktemp("killed"),
        write_instance=write_monitored_instance,
        retraining=False,
        extra_defs=HOLD_WRITER,
    ) as started:
        yield started


def test_killed_runs_are_failed_their_slot_freed_and_the_queue_proceeds(
    session: DaemonSession,
):
    from dagster_graphql import DagsterGraphQLClient

    client = DagsterGraphQLClient("127.0.0.1", port_number=session.port)
    run_ids = [client.submit_job_execution(HOLD_JOB) for _ in range(2)]
    instance = session.instance

    # Kill each hold run once it runs (the pool admits one run at a time: the second starts
    # only after the first is failed).
    killed_at = {}
    while len(killed_at) < len(run_ids):
        run_id = wait_for("a hold run holding the writer slot", lambda: _holder(instance), 240)
        pid, _ = recorded_worker(instance, run_id)
        os.kill(pid, signal.SIGKILL)
        killed_at[run_id] = time.time()
        print(f"\n[e2e] SIGKILLed run {run_id[:8]} (pid {pid})")
        wait_for(f"run {run_id[:8]} failed", lambda run_id=run_id: _failed(instance, run_id), 120)
        print(
            f"[e2e] failed after {time.time() - killed_at[run_id]:.1f} s: {_why(instance, run_id)}"
        )
    assert set(killed_at) == set(run_ids)

    landed_at = time.time()
    land(session, "after-kill", n_patients=60, seed=3)
    wait_for_runs(session, "synthetic_ingest", ["after-kill"])
    print(f"[e2e] batch landed after the kills ingested in {time.time() - landed_at:.1f} s")
    assert set(instance.get_dynamic_partitions("synthetic_landing_batches")) == {"after-kill"}


def _holder(instance: dg.DagsterInstance) -> str | None:
    """The hold run whose step is executing, once its worker pid is recorded."""
    running = instance.get_runs(
        dg.RunsFilter(job_name=HOLD_JOB, statuses=[dg.DagsterRunStatus.STARTED])
    )
    for run in running:
        started = instance.get_records_for_run(
            run.run_id, of_type=dg.DagsterEventType.STEP_START
        ).records
        if started and recorded_worker(instance, run.run_id):
            return run.run_id
    return None


def _failed(instance: dg.DagsterInstance, run_id: str) -> bool:
    return instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.FAILURE


def _why(instance: dg.DagsterInstance, run_id: str) -> str:
    """The message of the run's failure (who noticed the dead worker)."""
    records = instance.get_records_for_run(
        run_id, of_type={dg.DagsterEventType.RUN_FAILURE, dg.DagsterEventType.ENGINE_EVENT}
    ).records
    return " | ".join(r.event_log_entry.message for r in records[-3:])
