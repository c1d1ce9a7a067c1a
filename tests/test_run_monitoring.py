"""Killed runs recover: the run launcher's worker health check and the instance settings
that let run monitoring fail a dead run and free its pool slots (the end-to-end kill test:
tests/test_e2e_killed_runs.py)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import dagster as dg
import pytest
import yaml

from fusion_assets.run_launcher import LocalMonitoredRunLauncher, worker_alive

REPO = Path(__file__).resolve().parents[1]


def test_a_live_worker_is_alive_a_killed_or_reused_pid_is_not():
    proc = subprocess.Popen(["sleep", "30"])
    try:
        time.sleep(0.2)
        assert worker_alive(proc.pid, time.time())
        # A process created long after the pid was recorded is another process.
        assert not worker_alive(proc.pid, time.time() - 600)
        proc.kill()
        time.sleep(0.2)
        assert not worker_alive(proc.pid, time.time())  # a zombie until reaped
    finally:
        proc.kill()
        proc.wait()
    assert not worker_alive(proc.pid, time.time())


@pytest.mark.parametrize("path", ["dagster.yaml", "deploy/dagster.yaml"])
def test_instances_monitor_started_runs_and_free_their_slots(path):
    config = yaml.safe_load((REPO / path).read_text())
    assert config["run_launcher"] == {
        "module": "fusion_assets.run_launcher",
        "class": "LocalMonitoredRunLauncher",
    }
    monitoring = config["run_monitoring"]
    assert monitoring["enabled"] is True
    assert monitoring["max_resume_run_attempts"] == 0
    assert monitoring["free_slots_after_run_end_seconds"] > 0


def test_the_local_instance_loads_the_launcher(tmp_path):
    (tmp_path / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert isinstance(instance.run_launcher, LocalMonitoredRunLauncher)
        assert instance.run_launcher.supports_check_run_worker_health
        assert instance.run_monitoring_enabled
