"""Run the study: each cell's whole pipeline in a fresh process, one DuckDB row per finished cell.

``fusion-assets study`` and ``benchmarks/study.py`` call :func:`run_study`. Each cell is a
synthetic cohort of its own (``study/grid.py``) under ``<out>/cells/<cell_id>/``: its landing
zone, warehouse, MLflow store and report, materialized with the same code location and
jobs as ``fusion-assets demo`` (``demo.materialize_cohort``), held out (never k-fold) so
every cell's test split is the same 20 %. ``study/measure.py`` reads the cell's tables; the
parent process alone writes ``<out>/results.duckdb`` (DuckDB allows one writer), so the
study resumes where it stopped: a cell with a row in ``study.cells`` is not run again,
and a failed cell (``study.failures``) is retried on the next run.

Cells run in separate processes, ``workers`` at a time, each with ``cores // workers``
torch threads: the models are small, so two single-threaded cells on two cores finish
sooner than one two-threaded cell after another.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from fusion_assets.report_folders import latest_report
from fusion_assets.study.grid import StudyCell

STUDY_DB = "results.duckdb"
COHORT = "study"
# Every cell is evaluated on a held-out split (small_cohort_size 0: never k-fold), so
# each has a test split and the study's numbers come from one design.
BASE_RUN_CONFIG: dict[str, Any] = {"splits": {"config": {"small_cohort_size": 0}}}

_SCHEMA = """
CREATE SCHEMA IF NOT EXISTS study;
CREATE TABLE IF NOT EXISTS study.cells (
    cell_id VARCHAR PRIMARY KEY, block VARCHAR, name VARCHAR, seed INTEGER,
    settings VARCHAR, summary VARCHAR, wall_seconds DOUBLE, peak_rss_mib DOUBLE,
    finished_at TIMESTAMP);
CREATE TABLE IF NOT EXISTS study.strategy_metrics (
    cell_id VARCHAR, strategy VARCHAR, auroc DOUBLE, ci_low DOUBLE, ci_high DOUBLE);
CREATE TABLE IF NOT EXISTS study.replicates (
    cell_id VARCHAR, quantity VARCHAR, point DOUBLE, n INTEGER, "values" DOUBLE[]);
CREATE TABLE IF NOT EXISTS study.failures (
    cell_id VARCHAR, error VARCHAR, failed_at TIMESTAMP);
"""


def open_study(out_dir: Path) -> duckdb.DuckDBPyConnection:
    """The study's DuckDB (created with its tables when new). The runner opens it only to
    write a finished cell, so ``read_study`` can follow a running study from elsewhere."""
    out_dir.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(out_dir / STUDY_DB))
    con.execute(_SCHEMA)
    return con


def finished_cells(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {row[0] for row in con.execute("SELECT cell_id FROM study.cells").fetchall()}


def _peak_rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def run_cell(
    cell: StudyCell, out_dir: Path, run_config: dict[str, Any], threads: int, keep: bool
) -> dict[str, Any]:
    """Generate, materialize and measure one cell (in the calling process); returns a
    JSON-able record for :func:`_record`. Raises if a pipeline run failed."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import dagster as dg
    import torch

    from fusion_assets.cohorts.synthetic import synthesize_batch
    from fusion_assets.demo import materialize_cohort
    from fusion_assets.location.build import build_location, location_resources
    from fusion_assets.location.component import SyntheticSettings, cohort_from_source
    from fusion_assets.study.measure import measure_cell
    from fusion_assets.warehouse.profile import summarize_profile

    torch.set_num_threads(threads)
    started = time.perf_counter()
    cell_dir = out_dir / "cells" / cell.cell_id
    if cell_dir.exists():  # a cell interrupted earlier starts again from nothing
        shutil.rmtree(cell_dir)
    data_dir = cell_dir / "data"
    settings = cell.generator_settings()
    cohort = cohort_from_source(
        name=COHORT,
        synthetic=SyntheticSettings(patients=cell.n_patients, seed=cell.seed, **settings),
    )
    resources = location_resources(data_dir=str(data_dir))
    batch = f"{COHORT}-{cell.cell_id}".replace("_", "-")
    synthesize_batch(
        resources["landing"].for_cohort(COHORT).root,
        n_patients=cell.n_patients,
        seed=cell.seed,
        batch_id=batch,
        **settings,
    )
    defs = build_location([cohort], resources)
    lines: list[str] = []
    results = materialize_cohort(
        defs, cohort, dg.DagsterInstance.ephemeral(), [batch], run_config, log=lines.append
    )
    failed = [r for r in results if not r.success]
    if failed:
        steps = [
            f"{e.step_key}: {e.step_failure_data.error.message.strip()}"
            for e in failed[0].all_events
            if e.event_type == dg.DagsterEventType.STEP_FAILURE
        ]
        raise RuntimeError(f"cell {cell.cell_id}: pipeline run {failed[0].run_id} failed: {steps}")
    with resources["warehouse"].for_cohort(COHORT).connect(read_only=True) as con:
        measured = measure_cell(con, cell.cell_id)
        # The profile the decision matrix read: kept so the analysis can ask what other
        # thresholds would have recommended for the same cells (no retraining needed).
        measured.summary["profile"] = summarize_profile(con, cohort.spec)
    latest = latest_report(resources["reports"].for_cohort(COHORT)) / "report.md"
    if latest.exists():
        shutil.copy(latest, cell_dir / "report.md")
    (cell_dir / "pipeline.log").write_text("\n".join(lines) + "\n")
    if not keep:
        shutil.rmtree(data_dir)
    return {
        "cell": cell.model_dump(),
        "cell_id": cell.cell_id,
        "summary": measured.summary,
        "strategies": measured.strategies.to_dict("records"),
        "replicates": {
            k: [point, reps.tolist(), n] for k, (point, reps, n) in measured.replicates.items()
        },
        "wall_seconds": time.perf_counter() - started,
        "peak_rss_mib": _peak_rss_mib(),
    }


def _record(con: duckdb.DuckDBPyConnection, record: dict[str, Any]) -> None:
    """Write one finished cell in one transaction (a crash leaves no half cell)."""
    cell, cid = record["cell"], record["cell_id"]
    con.execute("BEGIN TRANSACTION")
    try:
        for table in ("cells", "strategy_metrics", "replicates", "failures"):
            con.execute(f"DELETE FROM study.{table} WHERE cell_id = ?", [cid])
        con.execute(
            "INSERT INTO study.cells VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                cid,
                cell["block"],
                cell["name"],
                cell["seed"],
                json.dumps(cell, sort_keys=True),
                json.dumps(record["summary"], sort_keys=True),
                record["wall_seconds"],
                record["peak_rss_mib"],
                datetime.now(UTC).replace(tzinfo=None),
            ],
        )
        con.executemany(
            "INSERT INTO study.strategy_metrics VALUES (?, ?, ?, ?, ?)",
            [
                [cid, s["strategy"], s["auroc"], s["ci_low"], s["ci_high"]]
                for s in record["strategies"]
            ],
        )
        con.executemany(
            "INSERT INTO study.replicates VALUES (?, ?, ?, ?, ?)",
            [[cid, q, point, n, values] for q, (point, values, n) in record["replicates"].items()],
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def _record_failure(con: duckdb.DuckDBPyConnection, cell_id: str, error: str) -> None:
    con.execute("DELETE FROM study.failures WHERE cell_id = ?", [cell_id])
    con.execute(
        "INSERT INTO study.failures VALUES (?, ?, ?)",
        [cell_id, error, datetime.now(UTC).replace(tzinfo=None)],
    )


def _describe(record: dict[str, Any]) -> str:
    s = record["summary"]
    verdict = "agrees" if s["agrees"] else "disagrees"
    return (
        f"winner {s['winner']} {s['winner_auroc']:.3f}, recommended {s['recommended']} "
        f"{s['recommended_auroc']:.3f} ({verdict}; Δ {s['delta_winner_minus_recommended']:+.3f} "
        f"[{s['delta_ci_low']:+.3f}, {s['delta_ci_high']:+.3f}]), oracle {s['oracle_auroc']:.3f}"
    )


def _cell_job(args: tuple) -> dict[str, Any]:
    """A worker process's task: the record, or the failure as text (never raises)."""
    cell, out_dir, run_config, threads, keep = args
    # The worker's own output (Dagster's event log, training progress) goes to the cell's
    # worker.log; the parent prints one line per cell.
    log_path = Path(out_dir) / "cells" / f"{cell.cell_id}.worker.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
    try:
        return run_cell(cell, out_dir, run_config, threads, keep)
    except Exception:  # noqa: BLE001 - one failed cell must not stop the study
        return {"cell_id": cell.cell_id, "error": traceback.format_exc()}


def run_study(
    cells: Sequence[StudyCell],
    out_dir: Path,
    workers: int = 1,
    run_config: dict[str, Any] | None = None,
    keep_cells: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run every cell not yet in ``<out_dir>/results.duckdb``; returns counts and wall time.

    ``run_config`` (keyed by asset name, as ``demo.materialize_cohort`` takes it) is merged
    over :data:`BASE_RUN_CONFIG`; ``keep_cells`` keeps each cell's data folder (warehouse,
    MLflow store, landing batch) instead of only its report and pipeline log.
    """
    out_dir = Path(out_dir)
    ids = [c.cell_id for c in cells]
    if len(set(ids)) != len(ids):
        raise ValueError("the study's cells must have distinct cell ids")
    with open_study(out_dir) as con:
        done = finished_cells(con)
    pending = [c for c in cells if c.cell_id not in done]
    config = {**BASE_RUN_CONFIG, **(run_config or {})}
    cores = os.cpu_count() or 1
    workers = max(1, min(workers, len(pending) or 1))
    threads = max(1, cores // workers)
    log(
        f"[study] {len(cells)} cells: {len(done & set(ids))} already finished, "
        f"{len(pending)} to run, {workers} at a time with {threads} torch thread(s) each "
        f"(results: {out_dir / STUDY_DB})"
    )
    started = time.perf_counter()
    failures = 0
    finished = 0
    context = multiprocessing.get_context("spawn")  # no forked torch/dagster state
    with ProcessPoolExecutor(workers, mp_context=context, max_tasks_per_child=1) as pool:
        queue = list(pending)
        running = {}
        while queue or running:
            while queue and len(running) < workers:
                cell = queue.pop(0)
                job = pool.submit(_cell_job, (cell, out_dir, config, threads, keep_cells))
                running[job] = cell
                log(f"[study] {cell.cell_id} ({cell.n_patients:,} patients) started")
            completed, _ = wait(running, return_when=FIRST_COMPLETED)
            for job in completed:
                cell = running.pop(job)
                record = job.result()
                if "error" in record:
                    failures += 1
                    with open_study(out_dir) as con:
                        _record_failure(con, cell.cell_id, record["error"])
                    last = record["error"].strip().splitlines()[-1]
                    log(f"[study] {cell.cell_id} FAILED: {last} (study.failures has the traceback)")
                    continue
                with open_study(out_dir) as con:
                    _record(con, record)
                finished += 1
                log(
                    f"[study] {cell.cell_id} done in {record['wall_seconds']:.0f} s "
                    f"({finished + failures}/{len(pending)}): {_describe(record)}"
                )
    wall = time.perf_counter() - started
    log(f"[study] {finished} cells finished, {failures} failed, in {wall:.0f} s")
    return {"finished": finished, "failed": failures, "wall_seconds": wall, "pending": len(pending)}


def read_study(out_dir: Path) -> dict[str, pd.DataFrame]:
    """The study's tables as frames (cells with their settings and summary decoded)."""
    with duckdb.connect(str(Path(out_dir) / STUDY_DB), read_only=True) as con:
        cells = con.sql("SELECT * FROM study.cells ORDER BY cell_id").df()
        metrics = con.sql("SELECT * FROM study.strategy_metrics").df()
        replicates = con.sql("SELECT * FROM study.replicates").df()
        failures = con.sql("SELECT * FROM study.failures").df()
    cells["settings"] = cells["settings"].map(json.loads)
    cells["summary"] = cells["summary"].map(json.loads)
    replicates["values"] = replicates["values"].map(lambda v: np.asarray(v, dtype=float))
    return {"cells": cells, "metrics": metrics, "replicates": replicates, "failures": failures}
