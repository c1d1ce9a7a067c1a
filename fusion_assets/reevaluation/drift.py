"""Drift of one batch against the training split: a property of the data, once per batch.

- the availability-pattern mix (total variation distance, chi-square test, PSI)
  and each modality's availability rate;
- per-modality feature distributions by PSI. Tabular features are compared
  column by column; list payloads are summarized per patient by cheap scalars
  computed inside DuckDB (``warehouse.batch_inputs``). They catch level, scale
  and density shifts, not a rotation inside the vector; that is the price of a
  tick-cheap check.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from fusion_assets.metrics.drift import categorical_psi, category_shift, psi
from fusion_assets.reevaluation.inputs import BatchInputs
from fusion_assets.reevaluation.rows import DATA_STRATEGY, ResultRows
from fusion_assets.reevaluation.settings import BatchEvaluationSettings


def availability_drift(
    inputs: BatchInputs,
    modalities: Sequence[str],
    config: BatchEvaluationSettings,
    rows: ResultRows,
) -> None:
    """The availability-pattern mix and each modality's availability rate."""
    reference = inputs.reference
    shift = category_shift(reference["pattern"], inputs.batch["pattern"])
    flag = shift.total_variation > config.pattern_tv_threshold
    rows.add(
        DATA_STRATEGY,
        "drift",
        "pattern_total_variation",
        "availability",
        shift.total_variation,
        flagged=flag,
    )
    rows.add(DATA_STRATEGY, "drift", "pattern_chi2_p_value", "availability", shift.p_value)
    rows.add(DATA_STRATEGY, "drift", "pattern_psi", "availability", shift.psi)
    for m in modalities:
        rows.add(
            DATA_STRATEGY,
            "drift",
            "availability_rate",
            m,
            float(inputs.batch[m].mean()) if len(inputs.batch) else None,
            reference=float(reference[m].mean()),
        )


def _column_psi(ref_values: pd.Series, new_values: pd.Series, bins: int) -> float:
    if pd.api.types.is_numeric_dtype(ref_values) and pd.api.types.is_numeric_dtype(new_values):
        return psi(ref_values.to_numpy(float), new_values.to_numpy(float), bins=bins)
    return categorical_psi(ref_values, new_values)


def feature_drift(inputs: BatchInputs, config: BatchEvaluationSettings, rows: ResultRows) -> None:
    """PSI of every per-modality summary column, batch against the training split."""
    for name, (batch_summary, train_summary) in inputs.summaries.items():
        if train_summary is None or train_summary.empty or batch_summary.empty:
            continue
        for column in batch_summary.columns:
            ref_values, new_values = train_summary[column], batch_summary[column]
            value = _column_psi(ref_values, new_values, config.psi_bins)
            rows.add(
                DATA_STRATEGY,
                "drift",
                "psi",
                f"{name}:{column}",
                value,
                # PSI is biased upwards in small samples: with no shift at all it is about
                # (bins - 1) * (1/n_ref + 1/n_batch). Shown beside the value, not subtracted.
                reference=(config.psi_bins - 1) * (1 / len(ref_values) + 1 / len(new_values)),
                flagged=bool(np.isfinite(value) and value > config.psi_threshold),
            )


def data_drift(
    inputs: BatchInputs,
    modalities: Sequence[str],
    config: BatchEvaluationSettings,
    rows: ResultRows,
) -> None:
    """Every data drift row; nothing without a reference split."""
    if inputs.reference is None or inputs.reference.empty:
        return
    availability_drift(inputs, modalities, config, rows)
    feature_drift(inputs, config, rows)
