"""A run launcher whose runs the daemon's run monitoring can see die.

Dagster's ``DefaultRunLauncher`` starts each run in a process of the code server and does
not support ``check_run_worker_health``: with it, run monitoring only watches runs that
have not started yet. A run worker killed by SIGKILL or the OOM killer is noticed only by
the code server that started it; when that server is gone too (killed with it, restarted,
a reloaded location), the run stays STARTED forever and keeps its run-queue slot and its
``duckdb_writer_<cohort>`` pool slot. This launcher is the default one plus a health check:
the run worker's pid is in the run's "Started process for run" engine event, and a pid that
is gone (or a zombie, or reused by a newer process) is a failed worker, which run
monitoring then marks failed (``run_monitoring`` in dagster.yaml).

The pid is only meaningful on the machine that runs the workers: this launcher is for a
daemon on the same host as its code servers (``dagster dev``, the single-machine
``deploy/``). Container launchers (Docker, Kubernetes, ECS) bring their own health checks.
"""

from __future__ import annotations

import os
from pathlib import Path

from dagster import DagsterEventType, DagsterInstance, DagsterRun, DefaultRunLauncher
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus

from fusion_assets.landing_zone import process_exists

# A worker's process starts a moment before it records its pid; a process created later
# than this after the record is another process that reused the pid.
_PID_REUSE_SLACK_S = 5.0


class LocalMonitoredRunLauncher(DefaultRunLauncher):
    """``DefaultRunLauncher`` that reports a dead local run worker to run monitoring."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        started = recorded_worker(self._instance, run.run_id)
        if started is None:
            # No pid recorded (yet): nothing to judge; the start timeout covers a stuck start.
            return CheckRunHealthResult(WorkerStatus.RUNNING, "no run worker pid recorded")
        pid, recorded_at = started
        if worker_alive(pid, recorded_at):
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"run worker pid {pid} alive")
        return CheckRunHealthResult(WorkerStatus.FAILED, f"run worker pid {pid} is gone")


def recorded_worker(instance: DagsterInstance, run_id: str) -> tuple[int, float] | None:
    """The newest run worker pid recorded for ``run_id`` and when it was recorded."""
    records = instance.get_records_for_run(
        run_id, of_type=DagsterEventType.ENGINE_EVENT, ascending=False
    ).records
    for record in records:
        event = record.event_log_entry
        data = event.dagster_event.engine_event_data if event.dagster_event else None
        pid = data.metadata.get("pid") if data else None
        if pid is not None and event.message.startswith("Started process for run"):
            return int(pid.value), event.timestamp
    return None


def worker_alive(pid: int, recorded_at: float) -> bool:
    """Whether process ``pid`` exists, is not a zombie, and is the one recorded at
    ``recorded_at`` (not a later process that reused the pid). Linux ``/proc``; where there
    is none, a process that exists counts as alive."""
    stat = Path(f"/proc/{pid}/stat")
    if not Path("/proc/self/stat").exists():
        return process_exists(pid)
    try:
        # After the command name (in parentheses, may hold spaces): state, ..., starttime.
        fields = stat.read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return False
    state, start_ticks = fields[0], int(fields[19])
    if state in ("Z", "X"):
        return False
    return _boot_time() + start_ticks / os.sysconf("SC_CLK_TCK") <= recorded_at + _PID_REUSE_SLACK_S


def _boot_time() -> float:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    return 0.0
