"""Helpers of the slow end-to-end tests: a throwaway Dagster home, tiny models, polling."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg

# The tiny preset, fewer and larger steps: the models only have to exist and rank a bit.
TINY = {"config": {"preset": "tiny", "max_epochs": 2, "batch_size": 128}}
# Small but valid: enough bootstrap resamples for an interval, seconds to compute.
TINY_REPORT = {"config": {"n_boot": 50}}
TINY_STRESS = {"config": {"rates": [0.0, 0.5], "mask_seeds": 1}}


def write_instance_yaml(home: Path) -> None:
    """A DAGSTER_HOME of its own: sqlite under ``home``, telemetry off, pools as in the repo."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(
        f"""
storage:
  sqlite:
    base_dir: {home / "storage"}
local_artifact_storage:
  module: dagster._core.storage.root
  class: LocalArtifactStorage
  config:
    base_dir: {home / "artifacts"}
compute_logs:
  module: dagster._core.storage.local_compute_log_manager
  class: LocalComputeLogManager
  config:
    base_dir: {home / "logs"}
telemetry:
  enabled: false
nux:
  enabled: false
concurrency:
  runs:
    max_concurrent_runs: 2
  pools:
    default_limit: 1
sensors:
  use_threads: true
  num_workers: 2
"""
    )


def train_tiny_models(
    instance: dg.DagsterInstance,
    resources: dict,
    batch_ids: list[str],
    strategies: list[str] | None = None,
    evaluate: bool = True,
) -> dict[str, float]:
    """Ingest, align, profile, fit every encoder and some fused models (tiny), evaluate.

    In process (one torch import). Returns seconds per stage.
    """
    from fusion_assets.definitions import MODALITIES, STRATEGIES, defs

    assets = list(defs.assets or []) + list(defs.asset_checks or [])
    timings: dict[str, float] = {}

    def stage(name: str, group: str, keys: list[str | None], run_config: dict | None = None):
        t0 = time.perf_counter()
        for key in keys:
            result = dg.materialize(
                assets,
                selection=dg.AssetSelection.groups(group)
                - dg.AssetSelection.key_prefixes(["batch_evaluation"]),
                partition_key=key,
                resources=resources,
                instance=instance,
                run_config=run_config,
                tags={"fusion_assets/source": "e2e-setup"},
            )
            assert result.success, f"{name} [{key}] failed"
        timings[name] = time.perf_counter() - t0

    instance.add_dynamic_partitions("landing_batches", batch_ids)
    stage("ingest", "ingest", list(batch_ids))
    stage("align", "align", [None])
    stage("profile", "profile", [None])
    stage("encoders", "encoders", list(MODALITIES), {"ops": {"modality_encoder": TINY}})
    stage("fusion", "fusion", list(strategies or STRATEGIES), {"ops": {"fused_model": TINY}})
    if evaluate:
        # The report goes beside the test's warehouse, never into the repository's data/.
        reports = str(Path(resources["warehouse"].path).parent / "reports")
        report = {"config": {**TINY_REPORT["config"], "report_dir": reports}}
        config = {"subgroup_report": report, "predictions": TINY_STRESS}
        stage("evaluation", "evaluation", [None], {"ops": config})
    return timings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_dagster_dev(home: Path, env: dict[str, str], log: Path) -> tuple[subprocess.Popen, int]:
    """``dagster dev`` on a free loopback port, in its own process group."""
    port = free_port()
    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen(
        [
            str(Path(os.sys.executable).parent / "dagster"),
            "dev",
            "-w",
            str(repo / "workspace.yaml"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        cwd=repo,
        env={**os.environ, **env, "DAGSTER_HOME": str(home)},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: killed as a whole
    )
    return proc, port


def stop_process_group(proc: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM the group (dagster dev stops its daemon and code servers), then SIGKILL."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass


def wait_for(
    what: str,
    probe: Callable[[], object],
    timeout: float,
    proc: subprocess.Popen | None = None,
    log: Path | None = None,
    interval: float = 1.0,
) -> object:
    """Poll ``probe`` until it returns something truthy; fail with the server log's tail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(interval)
    tail = log.read_text(errors="replace")[-4000:] if log and log.exists() else ""
    raise AssertionError(f"Timed out after {timeout:.0f} s waiting for {what}.\n{tail}")


def http_ok(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False
