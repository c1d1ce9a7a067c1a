"""Benchmark: training time, throughput, memory and test AUROC per fusion strategy.

For each cohort size (default 5k and 50k synthetic patients, correlated regime,
MAR) a fresh subprocess generates the cohort, builds the warehouse (untimed),
fits the five encoders and the five strategies with the default configs, and
scores the test split against the Bayes oracle. A third case trains
intermediate fusion with 10^6-feature sparse genomics. Results go to
benchmarks/results/training.json and .md.

    python benchmarks/training.py                  # 5k, 50k and the sparse case
    python benchmarks/training.py --sizes 5000 --no-sparse
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fusion_assets.names import STRATEGIES

RESULTS = Path(__file__).parent / "results"


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _prepare(tmp: Path, n_patients: int, genomics_format: str, batch_id: str):
    """Synthetic batch → DuckDB raw → aligned → availability and splits; the frames to train on."""
    from fusion_assets.cohorts.spec import synthetic_spec
    from fusion_assets.cohorts.synthetic import synthesize_batch
    from fusion_assets.warehouse.align import align_all
    from fusion_assets.warehouse.cohort import load_cohort, load_frames
    from fusion_assets.warehouse.ingest import ingest_batch
    from fusion_assets.warehouse.profile import build_availability
    from fusion_assets.warehouse.splits import assign_splits
    from resources import Warehouse

    spec = synthetic_spec(genomics_format)
    batch = synthesize_batch(
        tmp / "landing",
        n_patients=n_patients,
        seed=0,
        genomics_format=genomics_format,
        batch_id=batch_id,
    )
    # The production resource and settings: what the assets open.
    with Warehouse(path=str(tmp / "warehouse.duckdb")).connect() as con:
        ingest_batch(con, batch, spec)
        align_all(con, spec.modalities)
        build_availability(con, spec)
        assign_splits(con, seed=0)
        frames = load_frames(con, spec)
        cohort = load_cohort(con)
    return spec, frames, cohort


def run_case(
    n_patients: int, genomics_format: str, strategies: tuple[str, ...], batch_id: str
) -> dict:
    """One cohort, in this process."""
    from fusion_assets.metrics.classification import auroc
    from fusion_assets.models.training import train_fusion, train_unimodal

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        spec, frames, cohort = _prepare(Path(tmp), n_patients, genomics_format, batch_id)
        prepare_s = time.perf_counter() - t
    labels = cohort.set_index("patient_id")["label"]
    ids = {
        s: cohort.loc[cohort["split"] == s, "patient_id"].tolist()
        for s in ("train", "validation", "test")
    }
    test = cohort[cohort["split"] == "test"].reset_index(drop=True)
    y = test["label"].to_numpy()
    oracle_auroc = auroc(y, test["oracle_prob"].to_numpy())
    missing_some = (test["n_modalities"] < len(spec.modalities)).to_numpy()

    encoders, encoder_rows = {}, []
    for modality in spec.modality_names:
        t = time.perf_counter()
        fitted, result = train_unimodal(
            spec, modality, frames, labels, ids["train"], ids["validation"]
        )
        seconds = time.perf_counter() - t
        encoders[modality] = fitted
        prob = fitted.predict_proba(fitted.prepare(frames, test["patient_id"].tolist()))
        has = test["pattern"].str.split("+").apply(lambda p, m=modality: m in p).to_numpy()
        encoder_rows.append(
            {
                "modality": modality,
                "seconds": round(seconds, 2),
                "epochs": result.best_epoch,
                "n_train": result.n_train,
                "test_auroc_on_patients_with_it": round(auroc(y[has], prob[has]), 4),
                "peak_rss_mib_so_far": round(_rss_mib()),
            }
        )
        print(f"  encoder {modality}: {seconds:.1f} s", flush=True)

    rows = []
    for strategy in strategies:
        t = time.perf_counter()
        fitted, result = train_fusion(
            strategy, spec, frames, labels, ids["train"], ids["validation"], encoders
        )
        seconds = time.perf_counter() - t
        prob = fitted.predict_proba(fitted.prepare(frames, test["patient_id"].tolist()))
        test_auc = auroc(y, prob)
        # Bagged strategies train several members; the history is the first member's.
        members = len(getattr(fitted.predictor, "members", [None]))
        epochs = max(len(result.history), 1) * members
        rows.append(
            {
                "strategy": strategy,
                "train_seconds": round(seconds, 2),
                "epochs_run": len(result.history),
                "samples_per_second": round(result.n_train * epochs / seconds),
                "n_parameters": result.n_parameters,
                "peak_rss_mib_so_far": round(_rss_mib()),
                "test_auroc": round(test_auc, 4),
                "oracle_auroc": round(oracle_auroc, 4),
                "lift_captured": round((test_auc - 0.5) / (oracle_auroc - 0.5), 3),
                "test_auroc_missing_some": round(auroc(y[missing_some], prob[missing_some]), 4),
                "oracle_auroc_missing_some": round(
                    auroc(y[missing_some], test["oracle_prob"].to_numpy()[missing_some]), 4
                ),
            }
        )
        print(f"  {strategy}: {seconds:.1f} s, test AUROC {test_auc:.3f}", flush=True)
    return {
        "n_patients": n_patients,
        "batch_id": batch_id,
        "genomics_format": genomics_format,
        "n_train": len(ids["train"]),
        "n_test": len(test),
        "prepare_seconds_untimed": round(prepare_s, 1),
        "encoders": encoder_rows,
        "encoder_seconds_total": round(sum(r["seconds"] for r in encoder_rows), 1),
        "strategies": rows,
        "strategy_seconds_total": round(sum(r["train_seconds"] for r in rows), 1),
        "oracle_auroc": round(oracle_auroc, 4),
        "peak_rss_mib": round(_rss_mib()),
    }


def _subprocess(n: int, genomics_format: str, strategies: tuple[str, ...], batch_id: str) -> dict:
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            str(n),
            genomics_format,
            ",".join(strategies),
            batch_id,
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    sys.stderr.write(out.stderr[-2000:])
    print(out.stdout.rsplit("RESULT ", 1)[0], end="")
    return json.loads(out.stdout.rsplit("RESULT ", 1)[1])


def _markdown(record: dict) -> str:
    lines = [
        "# Training benchmark",
        "",
        f"`python benchmarks/training.py` on {record['date']}, {record['cores']} cores, "
        f"load average at the end {record['load_average']} (shared machine: wall times are "
        "pessimistic). Default configs, correlated regime, MAR; test AUROC against the Bayes "
        "oracle on the same test patients.",
    ]
    for case in record["cases"]:
        lines += [
            "",
            f"## {case['n_patients']:,} patients, {case['genomics_format']} genomics, "
            f"batch id `{case.get('batch_id', 'synthetic-default')}` "
            f"({case['n_train']:,} train, {case['n_test']:,} test; peak RSS {case['peak_rss_mib']:,} MiB)",
            "",
            f"Encoders: {case['encoder_seconds_total']} s in total; strategies: "
            f"{case['strategy_seconds_total']} s in total.",
            "",
            "| strategy | train s | epochs | samples/s | parameters | test AUROC | oracle | lift captured "
            "| AUROC, patients missing ≥1 modality | oracle there | peak RSS MiB so far |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in case["strategies"]:
            lines.append(
                f"| {r['strategy']} | {r['train_seconds']} | {r['epochs_run']} | "
                f"{r['samples_per_second']:,} | {r['n_parameters']:,} | {r['test_auroc']:.3f} | "
                f"{r['oracle_auroc']:.3f} | {r['lift_captured']:.2f} | "
                f"{r['test_auroc_missing_some']:.3f} | {r['oracle_auroc_missing_some']:.3f} | "
                f"{r['peak_rss_mib_so_far']:,} |"
            )
        lines += [
            "",
            "| encoder | s | best epoch | train patients with it | test AUROC (patients with it) |",
            "|---|---:|---:|---:|---:|",
        ]
        for r in case["encoders"]:
            lines.append(
                f"| {r['modality']} | {r['seconds']} | {r['epochs']} | {r['n_train']:,} | "
                f"{r['test_auroc_on_patients_with_it']:.3f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 50000])
    parser.add_argument("--no-sparse", action="store_true")
    parser.add_argument("--sparse-patients", type=int, default=5000)
    parser.add_argument(
        "--batch-id",
        default="synthetic-default",
        help="patient ids, and so the split, derive from it; the default is the demo's cohort",
    )
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        n, fmt, strategies, batch_id = args.child
        result = run_case(int(n), fmt, tuple(strategies.split(",")), batch_id)
        print("RESULT " + json.dumps(result))
        return

    cases = []
    for n in args.sizes:
        print(f"{n:,} patients, dense genomics", flush=True)
        cases.append(_subprocess(n, "dense", STRATEGIES, args.batch_id))
    if not args.no_sparse:
        print(f"{args.sparse_patients:,} patients, 10^6-feature sparse genomics", flush=True)
        cases.append(_subprocess(args.sparse_patients, "sparse", ("intermediate",), args.batch_id))
    record = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "cases": cases,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    (RESULTS / "training.md").write_text(_markdown(record))
    print(_markdown(record))


if __name__ == "__main__":
    main()
