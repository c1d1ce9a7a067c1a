"""Benchmark: synthetic cohort generation + landing-batch write.

Each case runs in a fresh subprocess (so imports, allocations and peak RSS are
its own); the parent reads the child's wall time and peak RSS with
``os.wait4``. Writes ``benchmarks/results/synth.json`` and ``synth.md``.

    python benchmarks/synth.py            # all cases
    python benchmarks/synth.py --quick    # 5k cases only
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
CASES = [
    {"name": "dense-5k", "n_patients": 5_000, "genomics_format": "dense"},
    {"name": "dense-100k", "n_patients": 100_000, "genomics_format": "dense"},
    {"name": "sparse-5k", "n_patients": 5_000, "genomics_format": "sparse"},
    {"name": "sparse-20k", "n_patients": 20_000, "genomics_format": "sparse"},
]
CHILD = """
import json, sys, time
from pathlib import Path
t0 = time.perf_counter()
from fusion_assets.cohorts.synthetic import SynthConfig, generate_cohort, write_batch
t1 = time.perf_counter()
n, fmt, out = int(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
cohort = generate_cohort(SynthConfig(n_patients=n, genomics_format=fmt))
t2 = time.perf_counter()
folder = write_batch(cohort, out, "bench")
t3 = time.perf_counter()
rows = {k: len(v) for k, v in cohort.modalities.items()}
size = sum(p.stat().st_size for p in folder.iterdir())
print(json.dumps({"import_s": t1 - t0, "generate_s": t2 - t1, "write_s": t3 - t2,
                  "rows": rows, "batch_mb": size / 2**20}))
"""


def run_case(case: dict) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(case["n_patients"]), case["genomics_format"], tmp],
            stdout=subprocess.PIPE,
            cwd=Path(__file__).resolve().parents[1],
        )
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    if status != 0:
        raise RuntimeError(f"case {case['name']} failed with status {status}")
    # ru_maxrss is KiB on Linux
    cpu = usage.ru_utime + usage.ru_stime
    return (
        case
        | json.loads(out)
        | {"wall_s": wall, "cpu_s": cpu, "peak_rss_mb": usage.ru_maxrss / 1024}
    )


def difficulty() -> list[dict]:
    """Oracle difficulty figures of the default-size cohort, per regime (MAR)."""
    from fusion_assets.cohorts.synthetic import SynthConfig, difficulty_report, generate_cohort

    return [
        difficulty_report(generate_cohort(SynthConfig(n_patients=5_000, regime=regime)))
        for regime in ("correlated", "independent", "synergy")
    ]


def markdown(report: dict) -> str:
    lines = [
        "# Synthetic cohort benchmark",
        "",
        f"{report['date']}, {report['cpu_count']} cores ({report['machine']}), python {report['python']},",
        f"load average {report['load_avg_1_5_15']} at the end (shared machine: wall times are pessimistic).",
        "Generation + write of one landing batch (correlated regime, MAR), each case in a fresh",
        "process; wall time includes interpreter start and imports; CPU = user + system time of",
        "the child (what the case costs without contention from other jobs).",
        "",
        "| case | patients | genomics | wall s | CPU s | generate s | write s | peak RSS MiB | batch MiB |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["cases"]:
        lines.append(
            f"| {r['name']} | {r['n_patients']:,} | {r['genomics_format']} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} "
            f"| {r['generate_s']:.1f} | {r['write_s']:.1f} | {r['peak_rss_mb']:.0f} | {r['batch_mb']:.0f} |"
        )
    lines += ["", "Target: 100k default patients in < 30 s and < 4 GiB peak RSS on 2 cores.", ""]
    mods = list(report["difficulty"][0]["oracle_auroc_single"])
    lines += [
        "## Oracle difficulty (5,000 patients, MAR, seed 0)",
        "",
        "`actual`: each patient with the modalities it has (`late actual`: the best late",
        "fusion can do on them); `all`: everyone given every modality (`late all`: sum of the",
        "single-modality LLRs, the best late fusion can do);",
        "single-modality columns: everyone given only that modality; `max frac`: the",
        "largest single-modality share of the all-modality lift over 0.5.",
        "",
        "| regime | actual | late actual | all | late all | " + " | ".join(mods) + " | max frac |",
        "|---|" + "---:|" * (len(mods) + 5),
    ]
    for d in report["difficulty"]:
        single = " | ".join(f"{d['oracle_auroc_single'][m]:.3f}" for m in mods)
        lines.append(
            f"| {d['regime']} | {d['oracle_auroc_actual']:.3f} "
            f"| {d['oracle_auroc_late_fusion_actual']:.3f} | {d['oracle_auroc_all']:.3f} "
            f"| {d['oracle_auroc_late_fusion_all']:.3f} | {single} | {d['max_single_lift_fraction']:.2f} |"
        )
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5k cases only, no files written")
    args = parser.parse_args()
    cases = [c for c in CASES if not args.quick or c["n_patients"] <= 5_000]
    results = []
    for case in cases:
        r = run_case(case)
        results.append(r)
        print(
            f"{r['name']:>12}  wall {r['wall_s']:6.1f} s  cpu {r['cpu_s']:6.1f} s  "
            f"generate {r['generate_s']:5.1f} s  "
            f"write {r['write_s']:5.1f} s  peak RSS {r['peak_rss_mb']:7.0f} MiB",
            flush=True,
        )
    report = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "affinity_cores": len(os.sched_getaffinity(0)),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "load_avg_1_5_15": [round(x, 2) for x in os.getloadavg()],  # the machine is shared
        "cases": results,
        "difficulty": difficulty(),
    }
    if not args.quick:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "synth.json").write_text(json.dumps(report, indent=2) + "\n")
        (RESULTS / "synth.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
