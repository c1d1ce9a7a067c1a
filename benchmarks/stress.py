"""Benchmark: predict + stress tests + report, scoring each masked copy vs encoding once.

    nice python benchmarks/stress.py [--patients 5000] [--epochs 2] [--no-record]

Generates the default synthetic cohort (5,000 patients, correlated regime, MAR), builds
the warehouse, fits the five encoders and every registered strategy with the default
architectures (``--epochs`` caps training: inference cost depends on the architecture,
not on how long it trained; bagged strategies keep their three members), then runs the
evaluation step twice in this process on the same models and patients:

* **old**: ``stress_test(..., per_copy=True)``: each scenario's masked copies through the
  whole model (how the stress tests were scored before);
* **new**: ``stress_test(...)``: ``FittedModel.predict_proba_masks`` (encoders once per
  patient, only changed and distinct (patient, mask) pairs, references' features once).

Each path is timed as scoring (every model on validation + test), stress tests, and
evaluation + report (``evaluate`` + ``render_report``), in wall and process CPU seconds;
the two stress tables are compared (largest absolute probability difference). The
machine is shared: read the ratios (CPU time above all), not the seconds. Results go to
benchmarks/results/stress.json and .md. Target: new at most 1/4 of old.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from measure import load_average, rss_mib, timed

RESULTS = Path(__file__).parent / "results"
TARGET_RATIO = 0.25


def _prepare(tmp: Path, n_patients: int):
    """Synthetic batch → DuckDB raw → aligned → profile, splits, recommendation."""
    from fusion_assets.cohorts.spec import synthetic_spec
    from fusion_assets.cohorts.synthetic import synthesize_batch
    from fusion_assets.decision_matrix import recommend_strategies
    from fusion_assets.warehouse.align import align_all
    from fusion_assets.warehouse.cohort import load_cohort, load_frames
    from fusion_assets.warehouse.ingest import ingest_batch
    from fusion_assets.warehouse.profile import build_availability, summarize_profile
    from fusion_assets.warehouse.splits import assign_splits
    from resources import Warehouse

    spec = synthetic_spec("dense")
    batch = synthesize_batch(tmp / "landing", n_patients=n_patients, seed=0)
    with Warehouse(path=str(tmp / "warehouse.duckdb")).connect() as con:
        ingest_batch(con, batch, spec)
        align_all(con, spec.modalities)
        build_availability(con, spec)
        assign_splits(con, seed=0)
        frames, cohort = load_frames(con, spec), load_cohort(con)
        recommendation = recommend_strategies(summarize_profile(con, spec))
    return spec, frames, cohort, recommendation


def _fit_all(spec, frames, cohort, epochs: int) -> dict:
    """Every single-modality model and registered strategy, default architectures."""
    from fusion_assets.models.config import EncoderConfig, FusionConfig
    from fusion_assets.models.strategies import STRATEGIES
    from fusion_assets.models.training import train_fusion, train_unimodal
    from fusion_assets.names import unimodal_name

    labels = cohort.set_index("patient_id")["label"]
    ids = {
        s: cohort.loc[cohort["split"] == s, "patient_id"].tolist() for s in ("train", "validation")
    }
    encoder = EncoderConfig()
    encoder = replace(encoder, train=replace(encoder.train, max_epochs=epochs))
    fusion = FusionConfig(encoder=encoder)
    fusion = replace(fusion, train=replace(fusion.train, max_epochs=epochs))
    models, unimodal = {}, {}
    for m in spec.modality_names:
        fitted, _ = train_unimodal(
            spec, m, frames, labels, ids["train"], ids["validation"], encoder
        )
        unimodal[m] = models[unimodal_name(m)] = fitted
        print(f"  fitted {unimodal_name(m)}", flush=True)
    for s in STRATEGIES:
        models[s], _ = train_fusion(
            s, spec, frames, labels, ids["train"], ids["validation"], unimodal, fusion
        )
        print(f"  fitted {s}", flush=True)
    return models


def _evaluation_step(models, spec, frames, cohort, recommendation, per_copy: bool) -> dict:
    """The predictions + report steps of the held-out design, timed per part."""
    from fusion_assets.metrics.evaluate import evaluate
    from fusion_assets.metrics.report import render_report
    from fusion_assets.models.strategies import STRATEGIES
    from fusion_assets.scoring import score, stress_test

    scored = cohort[cohort["split"].isin(["validation", "test"])]
    test_ids = scored.loc[scored["split"] == "test", "patient_id"].tolist()
    fused = {s: models[s] for s in STRATEGIES}
    predict = timed(lambda: score(models, frames, scored))
    stress = timed(lambda: stress_test(fused, frames, test_ids, per_copy=per_copy))
    with tempfile.TemporaryDirectory() as out:
        report = timed(
            lambda: render_report(
                evaluate(
                    predict.value,
                    cohort,
                    stress.value,
                    recommendation,
                    modalities=spec.modality_names,
                ),
                out,
            )
        )
    parts = {"predict": predict, "stress": stress, "report": report}
    row = {
        f"{k}_{unit}": round(getattr(t, f"{unit}_s"), 2)
        for k, t in parts.items()
        for unit in ("wall", "cpu")
    }
    row["total_wall"] = round(sum(t.wall_s for t in parts.values()), 2)
    row["total_cpu"] = round(sum(t.cpu_s for t in parts.values()), 2)
    row["stress_rows"] = len(stress.value)
    row["load_avg_after"] = load_average()
    return row, stress.value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--patients", type=int, default=5000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--no-record", action="store_true", help="print only; do not write results")
    args = ap.parse_args()

    load_before = load_average()
    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        spec, frames, cohort, recommendation = _prepare(Path(tmp), args.patients)
    prepare_s = time.perf_counter() - t
    t = time.perf_counter()
    models = _fit_all(spec, frames, cohort, args.epochs)
    fit_s = time.perf_counter() - t
    print(
        f"prepared in {prepare_s:.0f} s, fitted {len(models)} models in {fit_s:.0f} s", flush=True
    )

    old, old_stress = _evaluation_step(models, spec, frames, cohort, recommendation, True)
    print(f"old: {old}", flush=True)
    new, new_stress = _evaluation_step(models, spec, frames, cohort, recommendation, False)
    print(f"new: {new}", flush=True)
    same = old_stress.drop(columns="prob").equals(new_stress.drop(columns="prob"))
    max_diff = float(np.abs(old_stress["prob"].to_numpy() - new_stress["prob"].to_numpy()).max())

    record = {
        "benchmark": "stress",
        "n_patients": args.patients,
        "n_test": int((cohort["split"] == "test").sum()),
        "n_scored": int(cohort["split"].isin(["validation", "test"]).sum()),
        "models_scored": len(models),
        "models_stress_tested": sum(1 for k in models if ":" not in k),
        "max_epochs": args.epochs,
        "old": old,
        "new": new,
        "ratio_total_wall": round(new["total_wall"] / old["total_wall"], 3),
        "ratio_total_cpu": round(new["total_cpu"] / old["total_cpu"], 3),
        "ratio_stress_wall": round(new["stress_wall"] / old["stress_wall"], 3),
        "ratio_stress_cpu": round(new["stress_cpu"] / old["stress_cpu"], 3),
        "target_ratio": TARGET_RATIO,
        "same_rows": bool(same),
        "max_abs_prob_difference": max_diff,
        "prepare_s_untimed": round(prepare_s, 1),
        "fit_s_untimed": round(fit_s, 1),
        "rss_mib_at_end": round(rss_mib(), 1),
        "cpu_count": os.cpu_count(),
        "load_avg_before": load_before,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    print(json.dumps(record, indent=2))
    if args.no_record:
        return
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "stress.json").write_text(json.dumps(record, indent=2) + "\n")
    rows = [
        f"| {part} | {old[f'{part}_wall']} | {new[f'{part}_wall']} | {old[f'{part}_cpu']} "
        f"| {new[f'{part}_cpu']} | {round(new[f'{part}_cpu'] / max(old[f'{part}_cpu'], 1e-9), 3)} |"
        for part in ("predict", "stress", "report")
    ]
    md = [
        "# Stress tests at the cost of one pass",
        "",
        f"Produced by `nice python benchmarks/stress.py` (synthetic cohort of {args.patients:,} "
        f"patients, {record['n_test']} test patients; {record['models_stress_tested']} strategies "
        f"stress-tested, {record['models_scored']} models scored; {old['stress_rows']:,} stress "
        f"rows; models trained at most {args.epochs} epochs, default architectures). Old: each "
        "masked copy through the whole model (`stress_test(per_copy=True)`); new: "
        "`FittedModel.predict_proba_masks` (encoders once per patient, distinct changed "
        "(patient, mask) pairs only, reference features once).",
        "",
        "| part | old wall s | new wall s | old CPU s | new CPU s | CPU ratio new/old |",
        "|---|---|---|---|---|---|",
        *rows,
        f"| **predict + stress + report** | {old['total_wall']} | {new['total_wall']} "
        f"| {old['total_cpu']} | {new['total_cpu']} | **{record['ratio_total_cpu']}** |",
        "",
        f"Ratio new/old, predict + stress + report: {record['ratio_total_cpu']} of CPU time, "
        f"{record['ratio_total_wall']} of wall time (target at most {TARGET_RATIO}); stress tests "
        f"alone {record['ratio_stress_cpu']} (CPU), {record['ratio_stress_wall']} (wall). "
        f"Same rows: {same}; largest probability difference {max_diff:.1e}.",
        "",
        f"Machine shared with other work: 1/5/15-min load average {load_before} before, "
        f"{old['load_avg_after']} after the old path, {new['load_avg_after']} after the new one; "
        f"{record['cpu_count']} CPUs visible, Python {record['python']}. Read the ratios, "
        "not the seconds.",
        "",
    ]
    (RESULTS / "stress.md").write_text("\n".join(md))


if __name__ == "__main__":
    sys.exit(main())
