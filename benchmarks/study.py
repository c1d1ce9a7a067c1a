"""Benchmark: the decision-matrix study over synthetic deployment realities (issue 16).

    nice python benchmarks/study.py [--out data/study] [--workers 2] [--only PREFIX ...]

Runs ``fusion-assets study`` (``fusion_assets/study``: the designed grid, default training
settings, every strategy and reference, 3 seeds per cell; resumable: a finished cell is
not run again) and records its answer: ``benchmarks/results/study.md`` (claims, agreement,
every cell) and ``study.png`` (the winner map), stamped with the commit, the machine and
its load. The study's own tables live in ``<out>/results.duckdb``; recording also copies
them to ``benchmarks/results/study.duckdb`` (per-cell rows and bootstrap replicates, a few
hundred KiB), and a run whose ``<out>`` has no tables yet starts from that copy, so a study
stopped on one machine resumes on another from a clean clone (``--fresh`` starts over).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from measure import load_average

RESULTS = Path(__file__).parent / "results"
RECORDED_DB = RESULTS / "study.duckdb"
ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "data" / "study"))
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 1) // 2))
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument("--no-record", action="store_true", help="do not write benchmarks/results")
    parser.add_argument(
        "--record-only",
        action="store_true",
        help="run no cell: record the answer of the cells finished so far (a stopped study)",
    )
    parser.add_argument(
        "--fresh",
        action="store_true",
        help=f"do not resume from the recorded tables ({RECORDED_DB.relative_to(ROOT)})",
    )
    args = parser.parse_args()

    from fusion_assets.study.analysis import analyze, evidence, what_if, write_answer
    from fusion_assets.study.evidence import EVIDENCE_FILE
    from fusion_assets.study.grid import select_cells
    from fusion_assets.study_runner import STUDY_DB, read_study, run_study

    out = Path(args.out)
    cells = select_cells("designed", args.only)
    study_db = out / STUDY_DB
    if not study_db.exists() and RECORDED_DB.exists() and not args.fresh:
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(RECORDED_DB, study_db)
        print(f"[study] resuming from the recorded tables {RECORDED_DB} (--fresh starts over)")
    load_start = load_average()
    started = time.perf_counter()
    if args.record_only:
        ran = {"finished": 0, "failed": 0, "wall_seconds": 0.0, "pending": 0}
    else:
        ran = run_study(cells, out, workers=args.workers)
    wall = time.perf_counter() - started
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    tables = read_study(out)
    cell_seconds = tables["cells"]["wall_seconds"].sum()
    header = [
        f"`python benchmarks/study.py` at commit {commit} on "
        f"{datetime.now(UTC):%Y-%m-%dT%H:%M%z}, {os.cpu_count()} cores "
        f"({platform.machine()}, Python {platform.python_version()}), {args.workers} cells at a "
        f"time; load average at the start {load_start} and at the end {load_average()} (a "
        "shared machine: read the seconds as pessimistic).",
        "",
        f"{len(tables['cells'])} of {len(cells)} cells finished"
        + (
            " (the study was stopped: rerun the command to finish it)"
            if len(tables["cells"]) < len(cells)
            else ""
        )
        + "; this invocation ran "
        f"{ran['finished']} ({ran['failed']} failed) in {wall:.0f} s wall. The cells' own wall "
        f"times sum to {cell_seconds:.0f} s ({cell_seconds / 60:.1f} min of one worker), "
        f"peak RSS per cell up to {tables['cells']['peak_rss_mib'].max():,.0f} MiB.",
        "",
        "Each cell: a synthetic cohort (`fusion_assets/study/grid.py`), its whole pipeline "
        "with default settings (held out 60/20/20; every strategy, the three references and "
        "the single-modality baselines), measured on its 20 % test split with a paired, "
        "label-stratified bootstrap (1,000 resamples) per cell. The decision matrix ranks "
        "the strategies from the cell's own training profile (no deployment profile).",
    ]
    md = write_answer(out, tables, header)
    print(md.read_text())
    if not args.no_record:
        RESULTS.mkdir(exist_ok=True)
        shutil.copy(md, RESULTS / "study.md")
        if not args.only:  # the designed grid's tables, for a later run to resume from
            shutil.copy(study_db, RECORDED_DB)
        if (out / "study.png").exists():
            shutil.copy(out / "study.png", RESULTS / "study.png")
        if not args.only:  # the report cites the designed grid's evidence (all cells so far)
            record = evidence(analyze(tables), what_if(tables), commit)
            EVIDENCE_FILE.write_text(json.dumps(record, indent=1) + "\n")
        print(f"recorded {RESULTS / 'study.md'}, study.png, {RECORDED_DB.name} and {EVIDENCE_FILE}")
    sys.exit(1 if ran["failed"] else 0)


if __name__ == "__main__":
    main()
