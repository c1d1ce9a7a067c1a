"""Benchmark: training time, throughput, memory and test AUROC per fusion strategy.

For each cohort size (default 5k and 50k synthetic patients, correlated regime,
MAR) a fresh subprocess generates the cohort, builds the warehouse (untimed),
fits the five encoders and the five strategies with the default configs, and
scores the test split against the Bayes oracle. A third case trains
intermediate fusion with 10^6-feature sparse genomics. Results go to
benchmarks/results/training.json and .md.

``--baseline COMMIT`` also times that commit's code (``git archive`` into a temp
folder, imported by the child process instead of this tree), alternating with this
tree ``--repeats`` times at ``--baseline-sizes`` (default: the first size), and
records the ratio of each fit's CPU time (the machine is shared: wall times move
with the neighbours, one-thread CPU time much less). ``--profile`` adds one run per tree with every fit under cProfile: seconds
per phase (minibatch steps, validation passes, batch building, best-state copies,
preprocessing, the boosting's weighted binning, first-use imports) and the
functions with the most self time.

    python benchmarks/training.py                  # 5k, 50k and the sparse case
    python benchmarks/training.py --sizes 5000 --no-sparse
    python benchmarks/training.py --baseline afb74c0 --repeats 2 --profile
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

from measure import REPO, checkout, load_average, timed

from fusion_assets.models.strategies import STRATEGIES

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
    n_patients: int,
    genomics_format: str,
    strategies: tuple[str, ...],
    batch_id: str,
    profile: bool = False,
) -> dict:
    """One cohort, in this process (``profile``: every fit under cProfile)."""
    from fusion_assets.metrics.classification import auroc

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
    split = (spec, frames, labels, ids, test)
    encoders, encoder_rows = _fit_encoders(split, profile)
    rows = [_fit_strategy(split, s, encoders, oracle_auroc, profile) for s in strategies]
    return {
        "n_patients": n_patients,
        "batch_id": batch_id,
        "genomics_format": genomics_format,
        "profiled": profile,
        "n_train": len(ids["train"]),
        "n_test": len(test),
        "prepare_seconds_untimed": round(prepare_s, 1),
        "encoders": encoder_rows,
        "encoder_seconds_total": round(sum(r["seconds"] for r in encoder_rows), 1),
        "encoder_cpu_seconds_total": round(sum(r["cpu_seconds"] for r in encoder_rows), 1),
        "strategies": rows,
        "strategy_seconds_total": round(sum(r["train_seconds"] for r in rows), 1),
        "strategy_cpu_seconds_total": round(sum(r["cpu_seconds"] for r in rows), 1),
        "oracle_auroc": round(oracle_auroc, 4),
        "peak_rss_mib": round(_rss_mib()),
    }


def _fit_encoders(split: tuple, profile: bool) -> tuple[dict, list[dict]]:
    """Every modality's unimodal model, timed; test AUROC on the patients that have it."""
    from fusion_assets.metrics.classification import auroc
    from fusion_assets.models.training import train_unimodal

    spec, frames, labels, ids, test = split
    y = test["label"].to_numpy()
    encoders, rows = {}, []
    for modality in spec.modality_names:
        fit = timed(
            lambda m=modality: train_unimodal(
                spec, m, frames, labels, ids["train"], ids["validation"]
            ),
            profile,
        )
        fitted, result = fit.value
        encoders[modality] = fitted
        prob = fitted.predict_proba(fitted.prepare(frames, test["patient_id"].tolist()))
        has = test["pattern"].str.split("+").apply(lambda p, m=modality: m in p).to_numpy()
        rows.append(
            {
                "modality": modality,
                "seconds": fit.wall_s,
                "cpu_seconds": fit.cpu_s,
                "epochs": result.best_epoch,
                "n_train": result.n_train,
                "test_auroc_on_patients_with_it": round(auroc(y[has], prob[has]), 4),
                "peak_rss_mib_so_far": round(_rss_mib()),
                "profile": fit.profile,
            }
        )
        print(f"  encoder {modality}: {fit.wall_s:.1f} s ({fit.cpu_s:.1f} s CPU)", flush=True)
    return encoders, rows


def _fit_strategy(
    split: tuple, strategy: str, encoders: dict, oracle_auroc: float, profile: bool
) -> dict:
    """One strategy trained and scored on the test split against the oracle."""
    from fusion_assets.metrics.classification import auroc
    from fusion_assets.models.training import train_fusion

    spec, frames, labels, ids, test = split
    y = test["label"].to_numpy()
    missing_some = (test["n_modalities"] < len(spec.modalities)).to_numpy()
    fit = timed(
        lambda: train_fusion(
            strategy, spec, frames, labels, ids["train"], ids["validation"], encoders
        ),
        profile,
    )
    fitted, result = fit.value
    prob = fitted.predict_proba(fitted.prepare(frames, test["patient_id"].tolist()))
    test_auc = auroc(y, prob)
    # Bagged strategies train several members; the history is the first member's.
    members = len(getattr(fitted.predictor, "members", [None]))
    epochs = max(len(result.history), 1) * members
    oracle = test["oracle_prob"].to_numpy()
    print(f"  {strategy}: {fit.wall_s:.1f} s ({fit.cpu_s:.1f} s CPU), test AUROC {test_auc:.3f}")
    return {
        "strategy": strategy,
        "train_seconds": fit.wall_s,
        "cpu_seconds": fit.cpu_s,
        "epochs_run": len(result.history),
        "samples_per_second": round(result.n_train * epochs / fit.wall_s),
        "n_parameters": result.n_parameters,
        "peak_rss_mib_so_far": round(_rss_mib()),
        "test_auroc": round(test_auc, 4),
        "oracle_auroc": round(oracle_auroc, 4),
        "lift_captured": round((test_auc - 0.5) / (oracle_auroc - 0.5), 3),
        "test_auroc_missing_some": round(auroc(y[missing_some], prob[missing_some]), 4),
        "oracle_auroc_missing_some": round(auroc(y[missing_some], oracle[missing_some]), 4),
        "profile": fit.profile,
    }


def _subprocess(
    root: Path,
    n: int,
    genomics_format: str,
    strategies: tuple[str, ...],
    batch_id: str,
    profile: bool = False,
) -> dict:
    """``run_case`` in a fresh interpreter that imports fusion_assets from ``root``."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    child = [str(n), genomics_format, ",".join(strategies), batch_id, str(int(profile))]
    out = subprocess.run(
        [sys.executable, __file__, "--child", *child],
        check=True,
        capture_output=True,
        text=True,
        cwd=root,
        env=env,
    )
    sys.stderr.write(out.stderr[-2000:])
    print(out.stdout.rsplit("RESULT ", 1)[0], end="")
    return json.loads(out.stdout.rsplit("RESULT ", 1)[1])


BASELINE, NEW = "baseline", "this tree"


def _fit_rows(case: dict) -> dict[str, dict]:
    """Every fit of a case by name: ``encoder <modality>`` and the strategies."""
    rows = {f"encoder {r['modality']}": r for r in case["encoders"]}
    rows.update({r["strategy"]: r for r in case["strategies"]})
    return rows


def _compare(baseline: list[dict], new: list[dict]) -> list[dict]:
    """Per fit: the fastest of the repeats of each tree (wall and CPU), the ratios, AUROCs."""
    rows = []
    for name, first in _fit_rows(new[0]).items():
        old = [_fit_rows(c)[name] for c in baseline if name in _fit_rows(c)]
        if not old:
            continue
        this = [_fit_rows(c)[name] for c in new]

        def best(fits: list[dict], key: str) -> float:
            return min(f.get(key, f.get("seconds", 0.0)) for f in fits)

        auc = "test_auroc" if "test_auroc" in first else "test_auroc_on_patients_with_it"
        old_cpu, new_cpu = best(old, "cpu_seconds"), best(this, "cpu_seconds")
        old_wall, new_wall = best(old, "train_seconds"), best(this, "train_seconds")
        rows.append(
            {
                "fit": name,
                "baseline_wall_s": old_wall,
                "new_wall_s": new_wall,
                "baseline_cpu_s": old_cpu,
                "new_cpu_s": new_cpu,
                "cpu_ratio": round(old_cpu / max(new_cpu, 1e-9), 2),
                "wall_ratio": round(old_wall / max(new_wall, 1e-9), 2),
                "baseline_test_auroc": old[0][auc],
                "new_test_auroc": first[auc],
            }
        )
    return rows


def _run_trees(args: argparse.Namespace, trees: dict[str, Path]) -> dict:
    """Every size for every tree, interleaved per repeat; profiled runs; the sparse case."""
    record: dict = {"trees": {k: str(v) for k, v in trees.items()}, "cases": []}
    record["comparisons"], record["profiles"] = [], []
    compared = set(args.baseline_sizes or args.sizes[:1])
    for n in args.sizes:
        these = trees if n in compared else {NEW: trees[NEW]}
        runs: dict[str, list[dict]] = {label: [] for label in these}
        for repeat in range(args.repeats if n in compared else 1):
            for label, root in these.items():
                print(f"{n:,} patients, dense genomics, {label} (run {repeat + 1})", flush=True)
                runs[label].append(_subprocess(root, n, "dense", STRATEGIES, args.batch_id))
        record["cases"].append(runs[NEW][0])
        if BASELINE in runs:
            rows = _compare(runs[BASELINE], runs[NEW])
            record["comparisons"].append({"n_patients": n, "repeats": args.repeats, "rows": rows})
    if args.profile:
        for label, root in trees.items():
            print(f"{args.sizes[0]:,} patients under cProfile, {label}", flush=True)
            case = _subprocess(root, args.sizes[0], "dense", STRATEGIES, args.batch_id, True)
            record["profiles"].append({"tree": label, **case})
    if not args.no_sparse:
        print(f"{args.sparse_patients:,} patients, 10^6-feature sparse genomics", flush=True)
        sparse = _subprocess(
            trees[NEW], args.sparse_patients, "sparse", ("intermediate",), args.batch_id
        )
        record["cases"].append(sparse)
    return record


def _markdown(record: dict) -> str:
    baseline = record.get("baseline_commit")
    lines = [
        "# Training benchmark",
        "",
        f"`{record.get('command', 'python benchmarks/training.py')}` on {record['date']}, "
        f"{record['cores']} cores, load average at the end {record['load_average']} (shared "
        "machine: wall times are pessimistic; compare code paths by the CPU-time ratio). "
        "Default configs, correlated regime, MAR; test AUROC against the Bayes oracle on the "
        "same test patients.",
    ]
    for comparison in record.get("comparisons", []):
        lines += _comparison_md(comparison, baseline)
    if record.get("profiles"):
        lines += _profiles_md(record["profiles"], baseline)
    for case in record["cases"]:
        lines += _case_md(case)
    return "\n".join(lines) + "\n"


def _comparison_md(comparison: dict, baseline: str | None) -> list[str]:
    rows = comparison["rows"]
    total = {
        k: round(sum(r[k] for r in rows), 1)
        for k in ("baseline_wall_s", "new_wall_s", "baseline_cpu_s", "new_cpu_s")
    }
    lines = [
        "",
        f"## Old code path (`{baseline}`) vs this tree, {comparison['n_patients']:,} patients",
        "",
        f"Both trees trained in fresh processes, alternating, {comparison['repeats']} run(s) "
        "each; the fastest run of each. Ratio = baseline ÷ this tree (> 1: this tree is faster).",
        "",
        "| fit | baseline s | this tree s | baseline CPU s | this tree CPU s | ratio (CPU) "
        "| ratio (wall) | baseline test AUROC | this tree test AUROC |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['fit']} | {r['baseline_wall_s']} | {r['new_wall_s']} | {r['baseline_cpu_s']} "
            f"| {r['new_cpu_s']} | {r['cpu_ratio']:.2f} | {r['wall_ratio']:.2f} "
            f"| {r['baseline_test_auroc']:.4f} | {r['new_test_auroc']:.4f} |"
        )
    cpu_ratio = total["baseline_cpu_s"] / max(total["new_cpu_s"], 1e-9)
    wall_ratio = total["baseline_wall_s"] / max(total["new_wall_s"], 1e-9)
    lines.append(
        f"| **all fits** | {total['baseline_wall_s']} | {total['new_wall_s']} "
        f"| {total['baseline_cpu_s']} | {total['new_cpu_s']} | {cpu_ratio:.2f} "
        f"| {wall_ratio:.2f} | | |"
    )
    return lines


def _profiles_md(profiles: list[dict], baseline: str | None) -> list[str]:
    phases = list(next(iter(_fit_rows(profiles[0]).values()))["profile"]["phases_s"])
    lines = [
        "",
        "## Where the time goes (cProfile)",
        "",
        "Each fit once more under cProfile (which slows Python-heavy code most, e.g. the "
        "reference's binning loop): cumulative seconds per phase and the functions with the "
        "most self time (torch kernels appear as `torch.<op>`; `_EngineBase.run_backward` "
        "is every backward kernel together).",
    ]
    for case in profiles:
        label = f"baseline `{baseline}`" if case["tree"] == BASELINE else case["tree"]
        lines += [
            "",
            f"### {label}",
            "",
            "| fit | profiled s | " + " | ".join(phases) + " | top self time |",
            "|---|---:|" + "---:|" * len(phases) + "---|",
        ]
        for name, row in _fit_rows(case).items():
            prof = row["profile"]
            wall = max(prof["profiled_wall_s"], 1e-9)
            cells = [
                f"{v:.1f} ({v / wall:.0%})" if v >= 0.05 else "–" for v in prof["phases_s"].values()
            ]
            top = ", ".join(f"{t['function']} {t['share']:.0%}" for t in prof["top_self_time"][:4])
            lines.append(
                f"| {name} | {prof['profiled_wall_s']} | " + " | ".join(cells) + f" | {top} |"
            )
    return lines


def _case_md(case: dict) -> list[str]:
    lines = [
        "",
        f"## {case['n_patients']:,} patients, {case['genomics_format']} genomics, "
        f"batch id `{case.get('batch_id', 'synthetic-default')}` "
        f"({case['n_train']:,} train, {case['n_test']:,} test; peak RSS {case['peak_rss_mib']:,} MiB)",
        "",
        f"Encoders: {case['encoder_seconds_total']} s in total "
        f"({case.get('encoder_cpu_seconds_total', '–')} s CPU); strategies: "
        f"{case['strategy_seconds_total']} s in total "
        f"({case.get('strategy_cpu_seconds_total', '–')} s CPU).",
        "",
        "| strategy | train s | CPU s | epochs | samples/s | parameters | test AUROC | oracle "
        "| lift captured | AUROC, patients missing ≥1 modality | oracle there "
        "| peak RSS MiB so far |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in case["strategies"]:
        lines.append(
            f"| {r['strategy']} | {r['train_seconds']} | {r.get('cpu_seconds', '–')} "
            f"| {r['epochs_run']} | {r['samples_per_second']:,} | {r['n_parameters']:,} "
            f"| {r['test_auroc']:.3f} | {r['oracle_auroc']:.3f} | {r['lift_captured']:.2f} | "
            f"{r['test_auroc_missing_some']:.3f} | {r['oracle_auroc_missing_some']:.3f} | "
            f"{r['peak_rss_mib_so_far']:,} |"
        )
    lines += [
        "",
        "| encoder | s | CPU s | best epoch | train patients with it "
        "| test AUROC (patients with it) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in case["encoders"]:
        lines.append(
            f"| {r['modality']} | {r['seconds']} | {r.get('cpu_seconds', '–')} | {r['epochs']} "
            f"| {r['n_train']:,} | {r['test_auroc_on_patients_with_it']:.3f} |"
        )
    return lines


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 50000])
    parser.add_argument("--no-sparse", action="store_true")
    parser.add_argument("--sparse-patients", type=int, default=5000)
    parser.add_argument(
        "--batch-id",
        default="synthetic-default",
        help="patient ids, and so the split, derive from it; the default is the demo's cohort",
    )
    parser.add_argument(
        "--baseline", metavar="COMMIT", help="also time this commit's code, interleaved"
    )
    parser.add_argument(
        "--baseline-sizes",
        type=int,
        nargs="+",
        help="sizes timed against the baseline, --repeats times (default: the first size)",
    )
    parser.add_argument("--tree", type=Path, default=REPO, help="the code to time (default: here)")
    parser.add_argument("--repeats", type=int, default=1, help="runs per tree and size")
    parser.add_argument(
        "--profile", action="store_true", help="one more run per tree, every fit under cProfile"
    )
    parser.add_argument("--no-record", action="store_true", help="print only; write no results")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    return parser


def main() -> None:
    args = _parser().parse_args()
    if args.child:
        n, fmt, strategies, batch_id, profile = args.child
        result = run_case(int(n), fmt, tuple(strategies.split(",")), batch_id, profile == "1")
        print("RESULT " + json.dumps(result))
        return

    with tempfile.TemporaryDirectory() as tmp:
        trees = {NEW: args.tree.resolve()}
        if args.baseline:
            trees = {BASELINE: checkout(args.baseline, Path(tmp) / "baseline"), **trees}
        record = _run_trees(args, trees)
    record.update(
        {
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "load_average": load_average(),
            "command": " ".join(["python", "benchmarks/training.py", *sys.argv[1:]]),
            "baseline_commit": args.baseline,
        }
    )
    print(_markdown(record))
    if not args.no_record:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "training.json").write_text(json.dumps(record, indent=2) + "\n")
        (RESULTS / "training.md").write_text(_markdown(record))


if __name__ == "__main__":
    main()
