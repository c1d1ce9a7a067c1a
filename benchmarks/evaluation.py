"""Time the evaluation maths on a deployment-sized synthetic test set.

    python benchmarks/evaluation.py [--n-test 5000] [--n-boot 1000] [--seeds 5]

Synthetic predictions (tests/fixtures/simulate.py) for 5 strategies and 5
single-modality baselines on ``--n-test`` test patients, stress-test
predictions for the 5 strategies (6 rates × ``--seeds`` mask seeds × global and
per-modality scenarios, plus leave-one-out / single-modality on complete cases),
then: subgroup table with ``--n-boot`` paired resamples (AUROC, AUPRC, Brier,
and the calibration intercept and slope refitted in every resample), degradation
tables, verdict, and report rendering. Prints the timings and writes
benchmarks/results/evaluation.json and .md. Target: < 60 s on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from fusion_assets.metrics.config import EvaluationConfig
from fusion_assets.metrics.degradation import (
    complete_case_table,
    degradation_curves,
    degradation_summary,
)
from fusion_assets.metrics.evaluate import EvaluationResult, pattern_counts, reliability_table
from fusion_assets.metrics.leakage import leakage_flags
from fusion_assets.metrics.report import render_report
from fusion_assets.metrics.subgroups import subgroup_table
from fusion_assets.metrics.verdict import build_verdict

# The synthetic predictions are a test fixture; run as a script, the repository root is not on
# the path.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.fixtures.simulate import simulate_inputs  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def _peak_rss_mib() -> float:
    # ru_maxrss is KiB on Linux, bytes on macOS.
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / (1024 * 1024) if sys.platform == "darwin" else r / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-test", type=int, default=5000)
    ap.add_argument("--n-validation", type=int, default=2000)
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--no-record", action="store_true", help="print only; do not write results")
    args = ap.parse_args()

    t0 = time.perf_counter()
    inp = simulate_inputs(
        n_test=args.n_test, n_validation=args.n_validation, seed=0, n_mask_seeds=args.seeds
    )
    t_sim = time.perf_counter() - t0
    cfg = EvaluationConfig(n_boot=args.n_boot, seed=0)

    timings = {}
    t = time.perf_counter()
    res = subgroup_table(inp.predictions, inp.patients, cfg)
    timings["subgroup_table_s"] = time.perf_counter() - t

    t = time.perf_counter()
    curves = degradation_curves(inp.degradation_predictions, inp.patients)
    summary = degradation_summary(curves)
    cc = complete_case_table(inp.degradation_predictions, inp.patients, inp.predictions)
    timings["degradation_s"] = time.perf_counter() - t

    t = time.perf_counter()
    verdict = build_verdict(res, inp.recommendation, summary, cfg, modalities=list(inp.modalities))
    all_row = res.table[res.table["subgroup_type"] == "all"].iloc[0]
    result = EvaluationResult(
        config=cfg,
        subgroups=res,
        reliability=reliability_table(inp.predictions, inp.patients, cfg),
        pattern_counts=pattern_counts(inp.predictions, inp.patients, cfg),
        curves=curves,
        summary=summary,
        complete_case=cc,
        verdict=verdict,
        leaks=leakage_flags(res.table),
        recommendation=inp.recommendation,
        cohort={
            "n_test": int(all_row["n"]),
            "events": int(all_row["events"]),
            "prevalence": float(all_row["prevalence"]),
            "n_validation": args.n_validation,
        },
    )
    timings["verdict_s"] = time.perf_counter() - t

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        files = render_report(result, tmp)
        timings["report_s"] = time.perf_counter() - t
        html_kib = files.html_path.stat().st_size / 1024
    total = sum(timings.values())

    t = res.table
    record = {
        "benchmark": "evaluation",
        "n_test": args.n_test,
        "n_validation": args.n_validation,
        "n_boot": args.n_boot,
        "mask_seeds": args.seeds,
        "strategies": len(res.strategies),
        "subgroups": int(t.groupby(["subgroup_type", "subgroup"]).ngroups),
        "subgroup_rows": len(t),
        "prediction_rows": len(inp.predictions),
        "degradation_rows": len(inp.degradation_predictions),
        "simulate_inputs_s": round(t_sim, 2),
        **{k: round(v, 2) for k, v in timings.items()},
        "total_s": round(total, 2),
        "target_s": 60,
        "peak_rss_mib": round(_peak_rss_mib(), 1),
        "html_kib": round(html_kib, 1),
        "cpu_count": os.cpu_count(),
        # Shared machine: the 1-minute load average says how contended the run was.
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "affinity_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
    }
    print(json.dumps(record, indent=2))
    if args.no_record:
        return
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "evaluation.json").write_text(json.dumps(record, indent=2) + "\n")
    md = [
        "# Evaluation benchmark",
        "",
        "Produced by `python benchmarks/evaluation.py` (synthetic predictions; "
        f"{record['n_test']} test patients, {record['strategies']} strategies, "
        f"{record['subgroups']} subgroups, {record['n_boot']} paired bootstrap resamples, "
        f"{record['degradation_rows']:,} stress-test prediction rows).",
        "",
        "| step | seconds |",
        "|---|---|",
        *[f"| {k.removesuffix('_s')} | {record[k]} |" for k in timings],
        f"| **total** | **{record['total_s']}** (target < {record['target_s']}) |",
        "",
        f"Peak RSS {record['peak_rss_mib']} MiB (includes the simulated inputs); "
        f"HTML report {record['html_kib']} KiB; {record['cpu_count']} CPUs visible "
        f"(1-min load average {record['load_avg_1m']} during the run), "
        f"Python {record['python']}, numpy {record['numpy']}.",
        "",
    ]
    (RESULTS / "evaluation.md").write_text("\n".join(md))


if __name__ == "__main__":
    main()
