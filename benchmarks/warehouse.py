"""Benchmark: ingest -> align -> profile for synthetic cohorts of 10k and 100k patients.

Each size runs in a fresh subprocess (so peak RSS is that size's own), with
DuckDB limited to 2 threads and 3 GB.  The synthetic batch is generated first
and not timed.  Results go to benchmarks/results/warehouse.json and .md.

    python benchmarks/warehouse.py              # 10k and 100k
    python benchmarks/warehouse.py --sizes 2000  # quick run
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def run_one(n_patients: int, threads: int, memory_limit: str) -> dict:
    """One size, in this process: generate (untimed), then time each stage."""
    from fusion_assets.cohorts.spec import synthetic_spec
    from fusion_assets.cohorts.synthetic import synthesize_batch
    from fusion_assets.decision_matrix import recommend_strategies
    from fusion_assets.warehouse.align import align_all, count_future_rows
    from fusion_assets.warehouse.ingest import ingest_batch
    from fusion_assets.warehouse.profile import build_availability, summarize_profile
    from fusion_assets.warehouse.recommend import write_recommendation
    from fusion_assets.warehouse.splits import assign_splits
    from resources import Warehouse

    spec = synthetic_spec()
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        batch = synthesize_batch(Path(tmp) / "landing", n_patients=n_patients, seed=0)
        generate_s = time.perf_counter() - t
        rss_after_generate = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        landing_mb = sum(f.stat().st_size for f in batch.glob("*.parquet")) / 2**20
        # The production resource and settings: what the assets open.
        warehouse = Warehouse(
            path=str(Path(tmp) / "warehouse.duckdb"), threads=threads, memory_limit=memory_limit
        )
        stages = {}
        with warehouse.connect() as con:
            t = time.perf_counter()
            ingested = ingest_batch(con, batch, spec)
            stages["ingest"] = time.perf_counter() - t

            t = time.perf_counter()
            aligned = align_all(con, spec.modalities)
            future = sum(count_future_rows(con, m) for m in spec.modalities)
            stages["align"] = time.perf_counter() - t

            t = time.perf_counter()
            build_availability(con, spec)
            summary = summarize_profile(con, spec)
            write_recommendation(con, recommend_strategies(summary))
            assign_splits(con)
            stages["profile"] = time.perf_counter() - t
        db_mb = (Path(tmp) / "warehouse.duckdb").stat().st_size / 2**20

    return {
        "n_patients": n_patients,
        "seconds": {k: round(v, 2) for k, v in stages.items()},
        "total_seconds": round(sum(stages.values()), 2),
        "generate_seconds_untimed": round(generate_s, 2),
        # ru_maxrss is KiB on Linux; the process peak includes the generator's.
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "rss_after_generate_mib": round(rss_after_generate, 1),
        "raw_rows": ingested.rows,
        "aligned_patients": {k: v.patients for k, v in aligned.items()},
        "future_rows": future,
        "landing_mib": round(landing_mb, 1),
        "warehouse_mib": round(db_mb, 1),
        "recommended": recommend_strategies(summary)[0]["strategy"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--memory-limit", default="3GB")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # child mode
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.threads, args.memory_limit)))
        return

    runs = []
    for n in args.sizes:
        cmd = [
            sys.executable,
            __file__,
            "--one",
            str(n),
            "--threads",
            str(args.threads),
            "--memory-limit",
            args.memory_limit,
        ]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
        print(json.dumps(runs[-1]), flush=True)
    result = {
        "benchmark": "warehouse ingest -> align -> profile (synthetic, correlated, MAR, dense genomics)",
        "command": "python benchmarks/warehouse.py --sizes " + " ".join(map(str, args.sizes)),
        "machine": {
            "cpus_used_by_duckdb": args.threads,
            "memory_limit": args.memory_limit,
            "python": platform.python_version(),
        },
        "runs": runs,
    }
    if len(runs) >= 2:
        small, big = runs[0], runs[-1]
        result["time_ratio"] = round(big["total_seconds"] / small["total_seconds"], 2)
        result["size_ratio"] = big["n_patients"] / small["n_patients"]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "warehouse.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Warehouse benchmark",
        "",
        f"`{result['command']}` — DuckDB {args.threads} threads, memory_limit {args.memory_limit}; "
        "each size in a fresh process; generation not timed (its RSS is included in the peak).",
        "",
        "| patients | ingest s | align s | profile s | total s | peak RSS MiB | landing MiB |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        s = r["seconds"]
        lines.append(
            f"| {r['n_patients']:,} | {s['ingest']} | {s['align']} | {s['profile']} | {r['total_seconds']} "
            f"| {r['peak_rss_mib']} | {r['landing_mib']} |"
        )
    if "time_ratio" in result:
        lines += [
            "",
            f"Time ratio {result['time_ratio']} for a size ratio of {result['size_ratio']:.0f}.",
        ]
    (RESULTS / "warehouse.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
