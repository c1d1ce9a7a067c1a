"""Helpers of the slow end-to-end tests: a throwaway Dagster home, tiny models, polling."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

RETRAIN_TAG = "fusion_assets/retrain"

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


# Run-config defaults of the end-to-end cohort: tiny fits and a quick report, so the runs the
# daemon launches (which carry no run config) take seconds.
TINY_DEFAULTS = {
    "modality_encoder": TINY["config"],
    "fused_model": TINY["config"],
    "splits": {"small_cohort_size": 0},  # one held-out split, no fold models
    "predictions": TINY_STRESS["config"],
    "subgroup_report": TINY_REPORT["config"],
}


# The modalities of the end-to-end cohort: two kinds, so each retraining stage has few runs.
E2E_MODALITIES = ("ehr", "notes")


def e2e_spec():
    """The synthetic cohort's spec with two of its modalities (the batches keep all five)."""
    from fusion_assets.cohorts import synthetic_spec

    spec = synthetic_spec()
    return spec.model_copy(
        update={"modalities": tuple(m for m in spec.modalities if m.name in E2E_MODALITIES)}
    )


def write_location(
    root: Path, retrain_cron: str, deploy: bool = False, tracking_uri: str | None = None
) -> Path:
    """A workspace serving the synthetic cohort with tiny defaults; returns its workspace.yaml.

    ``deploy``: the production location's settings (multiprocess executor, MLflow at
    ``MLFLOW_TRACKING_URI``); otherwise the laptop's, MLflow at ``tracking_uri`` (default
    sqlite under the data folder).
    """
    root.mkdir(parents=True, exist_ok=True)
    build = (
        "deploy_location([COHORT])"  # the production location's settings (fusion_assets/deploy.py)
        if deploy
        else f"build_location([COHORT], location_resources(tracking_uri={tracking_uri!r}))"
    )
    (root / "e2e_location.py").write_text(
        f"""from fusion_assets.cohorts import synthetic_spec
from fusion_assets.deploy import deploy_location
from fusion_assets.location import Cohort
from fusion_assets.location.build import build_location, location_resources

FULL = synthetic_spec()
SPEC = FULL.model_copy(
    update={{"modalities": tuple(m for m in FULL.modalities if m.name in {E2E_MODALITIES!r})}}
)
COHORT = Cohort(
    "synthetic",
    SPEC,
    retrain_cron={retrain_cron!r},
    config_defaults={TINY_DEFAULTS!r},
)
defs = {build}
"""
    )
    workspace = root / "workspace.yaml"
    workspace.write_text(
        f"load_from:\n  - python_file:\n      relative_path: {root / 'e2e_location.py'}\n"
        "      location_name: fusion_assets\n"
    )
    return workspace


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


REPO = Path(__file__).resolve().parents[1]


def start_dagster_dev(
    home: Path, env: dict[str, str], log: Path, workspace: Path = REPO / "workspace.yaml"
) -> tuple[subprocess.Popen, int]:
    """``dagster dev`` on a free loopback port, in its own process group."""
    port = free_port()
    repo = REPO
    proc = subprocess.Popen(
        [
            str(Path(os.sys.executable).parent / "dagster"),
            "dev",
            "-w",
            str(workspace),
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


def stop_leftovers(marker: str) -> None:
    """Kill this session's processes that left dagster dev's process group (a code server
    the daemon started in a session of its own): every process whose command line names
    ``marker``, a folder only this test uses."""
    for proc_dir in Path("/proc").glob("[0-9]*"):
        try:
            if marker in (proc_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode():
                os.kill(int(proc_dir.name), signal.SIGKILL)
        except (OSError, ValueError):
            continue


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


def start_sensor(home: Path, env: dict[str, str], workspace: Path, name: str) -> None:
    """What an operator does to turn on a STOPPED sensor: ``dagster sensor start``."""
    subprocess.run(
        [
            str(Path(os.sys.executable).parent / "dagster"),
            "sensor",
            "start",
            "-w",
            str(workspace),
            name,
        ],
        cwd=REPO,
        env={**os.environ, **env, "DAGSTER_HOME": str(home)},
        check=True,
        capture_output=True,
        timeout=180,
    )


def next_minute_cron(lead_s: float = 45.0) -> tuple[str, float]:
    """A daily cron whose next tick is the first minute boundary at least ``lead_s`` away."""
    import datetime as dt

    now = dt.datetime.now(dt.UTC)
    tick = (now + dt.timedelta(seconds=lead_s + 60)).replace(second=0, microsecond=0)
    return f"{tick.minute} {tick.hour} * * *", tick.timestamp()


# --- a daemon-driven session: dagster dev on a throwaway home ---------------------------

COHORT = "synthetic"
RETRAIN_SENSOR = f"{COHORT}_retraining"
RETRAINED = (
    "availability_profile",
    "splits",
    "modality_encoder",
    "fused_model",
    "predictions",
    "subgroup_report",
    "subgroup_metrics",
)
TIMEOUT_S = 900  # generous: CI machines are small and may be shared


@dataclass
class DaemonSession:
    root: Path
    home: Path
    data: Path
    workspace: Path
    log: Path
    port: int
    env: dict[str, str]
    tick_at: float

    @property
    def instance(self) -> dg.DagsterInstance:
        return dg.DagsterInstance.from_config(str(self.home))

    @property
    def cohort_dir(self) -> Path:
        return self.data / COHORT

    @classmethod
    @contextmanager
    def start(
        cls,
        root: Path,
        write_instance: Callable[[Path], None] = write_instance_yaml,
        deploy: bool = False,
        env: dict[str, str] | None = None,
    ) -> Iterator[DaemonSession]:
        """dagster dev up, the retraining sensor on; the cron ticks 2.5 to 3.5 minutes later."""
        home, data = root / "home", root / "data"
        write_instance(home)
        # Room for dagster dev and the sensor start on a loaded 2-core machine (measured up
        # to 80 s during a full suite run); the first batch is ingested meanwhile.
        cron, tick_at = next_minute_cron(lead_s=150)
        workspace = write_location(root / "location", cron, deploy)
        env = {"FUSION_DATA_DIR": str(data), **(env or {})}
        log = root / "dagster-dev.log"
        t0 = time.perf_counter()
        proc, port = start_dagster_dev(home, env, log, workspace)
        try:
            url = f"http://127.0.0.1:{port}/server_info"
            wait_for("the Dagster webserver", lambda: http_ok(url), 180, proc, log)
            print(f"\n[e2e] dagster dev answered after {time.perf_counter() - t0:.0f} s")
            start_sensor(home, env, workspace, RETRAIN_SENSOR)
            # The sensor's first evaluation (within its 30 s interval) must come before the
            # tick: a tick before it is not seen, and the test would wait a day.
            assert time.time() + 30 < tick_at, "dagster dev started too slowly for the cron tick"
            session = cls(root, home, data, workspace, log, port, env, tick_at)
            yield session
        finally:
            stop_process_group(proc)
            stop_leftovers(str(home))

    def retrain_and_wait(self) -> dict[str, dg.DagsterRun]:
        """Wait for the retraining the cron tick starts: until the new report is materialized."""
        report = dg.AssetKey([COHORT, "subgroup_report"])

        def done():
            event = self.instance.get_latest_materialization_event(report)
            if event is None:
                failed = [
                    r
                    for r in self.instance.get_runs(dg.RunsFilter(tags={RETRAIN_TAG: COHORT}))
                    if r.status == dg.DagsterRunStatus.FAILURE
                ]
                assert not failed, f"retraining run {failed[0].run_id} failed"
            return event

        wait_for("the retrained report", done, TIMEOUT_S, None, self.log, 3)
        assert time.time() >= self.tick_at, "a retraining started before its cron tick"

    def assert_retrained_by_the_daemon(self) -> None:
        """Every retrained asset was materialized by a run of the automation sensor, and the
        daemon recorded why (the evaluations the UI's automation view shows)."""
        instance = self.instance
        for name in RETRAINED:
            key = dg.AssetKey([COHORT, name])
            event = instance.get_latest_materialization_event(key)
            assert event is not None, f"{name} was not retrained"
            run = instance.get_run_by_id(event.run_id)
            assert run.tags.get(RETRAIN_TAG) == COHORT, f"{name}: run {run.run_id} {run.tags}"
            evaluations = instance.schedule_storage.get_auto_materialize_asset_evaluations(
                key=key, limit=50
            )
            launched = [e for e in evaluations if e.get_evaluation_with_run_ids().run_ids]
            assert launched, f"no automation evaluation launched {name}"
        assert_partitions_overlapped(instance, dg.AssetKey([COHORT, "modality_encoder"]))


def assert_partitions_overlapped(instance: dg.DagsterInstance, key: dg.AssetKey) -> None:
    """At least two partition runs of ``key`` were executing at the same time."""
    runs = [
        r
        for r in instance.get_runs(dg.RunsFilter(tags={RETRAIN_TAG: COHORT}))
        if r.asset_selection and key in r.asset_selection
    ]
    windows = sorted(
        (instance.get_run_stats(r.run_id).start_time, instance.get_run_stats(r.run_id).end_time)
        for r in runs
    )
    overlapping = any(b[0] < a[1] for a, b in zip(windows, windows[1:], strict=False))
    print(f"[e2e] {key.to_user_string()}: {len(runs)} runs, windows {windows}")
    assert len(runs) >= 2 and overlapping, "the partitions did not train in parallel"


def land(session: DaemonSession, batch: str, **settings) -> Path:
    from fusion_assets.cohorts.synthetic import synthesize_batch

    return synthesize_batch(session.cohort_dir / "landing", batch_id=batch, **settings)


def runs_of(instance: dg.DagsterInstance, job: str) -> list[dg.DagsterRun]:
    return list(instance.get_runs(dg.RunsFilter(job_name=job)))


def wait_for_runs(session: DaemonSession, job: str, batches) -> dict[str, dg.DagsterRun]:
    """The successful run of ``job`` per batch, once every batch has one; fails on a failure."""

    def done():
        finished = {}
        for run in runs_of(session.instance, job):
            partition = run.tags.get("dagster/partition")
            if run.status == dg.DagsterRunStatus.FAILURE:
                raise AssertionError(f"{job} run {run.run_id} for {partition} failed")
            if run.status == dg.DagsterRunStatus.SUCCESS:
                finished[partition] = run
        return finished if set(batches) <= set(finished) else None

    return wait_for(f"{job} for {list(batches)}", done, TIMEOUT_S, None, session.log, 2)
