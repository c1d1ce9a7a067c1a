"""What a model costs: fit seconds, peak memory of the fit, parameters, inference time.

Measured during the pipeline's own run, not in a benchmark:

- **fit** (``measure_fit`` around the deployed model's fit, in ``fit_save_track``): wall
  seconds; memory as the process's resident set size (RSS) sampled every
  ``SAMPLE_SECONDS`` on a background thread, reported as its peak during the fit and
  that peak's increase over the RSS when the fit started (torch allocates outside
  Python's allocator, so ``tracemalloc`` would miss most of it, and it slows every
  allocation down). Where ``/proc/self/statm`` does not exist (not Linux) the process's
  lifetime peak (``ru_maxrss``) stands in, and the increase is a lower bound.
  Saved as ``cost`` in the model's ``model.json`` (``FittedModel.cost``).
- **parameters**: what each model counts is named with it (``parameters_counted``):
  torch parameters for the neural models, tree nodes for gradient boosting,
  coefficients for logistic regression.
- **inference** (``inference_ms_per_1000`` in the predictions step): wall time of
  ``prepare`` + ``predict_proba`` (preprocessing included, recalibration included) of
  up to ``INFERENCE_PATIENTS`` patients, one pass, per 1,000 patients.

Pure code: no dagster, no torch import here.
"""

from __future__ import annotations

import math
import os
import resource
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pandas as pd

SAMPLE_SECONDS = 0.02
INFERENCE_PATIENTS = 2000
MEMORY_MEASURE = (
    f"process resident set size (RSS), sampled every {int(SAMPLE_SECONDS * 1000)} ms during "
    "the fit: its peak, and that peak above the RSS when the fit started"
)

# The report's definition of its cost table.
COST_NOTE = (
    "Measured during this run. Training s: wall seconds of the deployed model's fit "
    "(preprocessing, training, stacking, recalibration); late, intermediate and attention "
    "fusion start from the single-modality models, whose fits are their own rows. "
    "Inference: wall milliseconds per 1,000 patients of preprocessing and scoring "
    f"(one pass over up to {INFERENCE_PATIENTS:,} patients, in the predictions step). "
    "Parameters: what each model counts is named beside it. Peak memory: "
    + MEMORY_MEASURE
    + " (in brackets). The machine may be shared: compare strategies, not machines."
)

# eval.model_cost, one row per model (columns described in warehouse/contracts.py)
COST_COLUMNS = [
    "strategy",
    "train_seconds",
    "fold_models_seconds",
    "inference_ms_per_1000",
    "inference_patients",
    "n_parameters",
    "parameters_counted",
    "peak_rss_increase_mib",
    "peak_rss_mib",
]


def _rss_mib() -> float:
    """Current RSS in MiB (Linux), else the lifetime peak (``ru_maxrss``)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 1024


@dataclass
class FitMeasure:
    """Filled in when ``measure_fit`` exits."""

    seconds: float = 0.0
    peak_rss_mib: float = float("nan")
    peak_rss_increase_mib: float = float("nan")


@contextmanager
def measure_fit() -> Iterator[FitMeasure]:
    """Wall seconds and peak RSS (with its increase over the start) of the block."""
    measure = FitMeasure()
    start_rss = _rss_mib()
    peak = [start_rss]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(SAMPLE_SECONDS):
            peak[0] = max(peak[0], _rss_mib())

    sampler = threading.Thread(target=sample, name="fit-memory", daemon=True)
    started = time.perf_counter()
    sampler.start()
    try:
        yield measure
    finally:
        measure.seconds = time.perf_counter() - started
        stop.set()
        sampler.join()
        top = max(peak[0], _rss_mib())
        measure.peak_rss_mib = top
        measure.peak_rss_increase_mib = max(top - start_rss, 0.0)


def parameters_counted(predictor: Any) -> str:
    """What a model's ``n_parameters`` counts (the model class says, else torch parameters)."""
    return str(getattr(predictor, "parameters_counted", "torch parameters"))


def fit_cost(
    measure: FitMeasure, predictor: Any, n_parameters: int, fold_models_seconds: float = 0.0
) -> dict[str, Any]:
    """The ``cost`` saved with a fitted model (``model.json``)."""
    return {
        "train_seconds": round(measure.seconds, 3),
        "fold_models_seconds": round(fold_models_seconds, 3),
        "n_parameters": int(n_parameters),
        "parameters_counted": parameters_counted(predictor),
        "peak_rss_mib": round(measure.peak_rss_mib, 1),
        "peak_rss_increase_mib": round(measure.peak_rss_increase_mib, 1),
    }


def inference_ms_per_1000(
    fitted: Any, frames: Mapping[str, pd.DataFrame], patient_ids: Sequence[str]
) -> float:
    """Milliseconds per 1,000 patients of ``prepare`` + ``predict_proba`` on ``patient_ids``."""
    ids = list(patient_ids)
    if not ids:
        return float("nan")
    started = time.perf_counter()
    fitted.predict_proba(fitted.prepare(dict(frames), ids))
    return (time.perf_counter() - started) * 1000.0 * 1000.0 / len(ids)


def cost_table(
    models: Mapping[str, Any],
    frames: Mapping[str, pd.DataFrame],
    patient_ids: Sequence[str],
) -> pd.DataFrame:
    """``eval.model_cost``: each model's fit cost (from its ``model.json``) and its inference
    time measured now on up to ``INFERENCE_PATIENTS`` of ``patient_ids``."""
    ids = list(patient_ids)[:INFERENCE_PATIENTS]
    rows = []
    for name, fitted in models.items():
        cost = dict(getattr(fitted, "cost", None) or {})
        rows.append(
            {
                "strategy": name,
                "train_seconds": cost.get("train_seconds", math.nan),
                "fold_models_seconds": cost.get("fold_models_seconds", math.nan),
                "inference_ms_per_1000": inference_ms_per_1000(fitted, frames, ids),
                "inference_patients": len(ids),
                "n_parameters": cost.get("n_parameters", math.nan),
                "parameters_counted": cost.get(
                    "parameters_counted", parameters_counted(fitted.predictor)
                ),
                "peak_rss_increase_mib": cost.get("peak_rss_increase_mib", math.nan),
                "peak_rss_mib": cost.get("peak_rss_mib", math.nan),
            }
        )
    return pd.DataFrame(rows, columns=COST_COLUMNS)
