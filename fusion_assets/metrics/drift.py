"""Distribution shift between a reference sample (the training split) and a new batch.

Pure numpy/scipy; no dagster. Used by ``batch_evaluation``:
- **PSI** (population stability index) for a numeric feature: reference
  quantile bins, plus one bin for missing values, since a change in how often a
  lab is measured is itself a shift. Rule of thumb: < 0.1 stable, 0.1–0.25
  moderate, > 0.25 major; the default alarm threshold is 0.2.
- **categorical PSI** for strings and for the availability pattern.
- **total variation distance** and a **chi-square test** for the availability
  pattern mix.
List payloads (expression vectors, images, time series) are summarized per
patient by a scalar before PSI (the caller decides which; see
``fusion_assets.assets.batch_evaluation``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

DEFAULT_PSI_THRESHOLD = 0.2
DEFAULT_TV_THRESHOLD = 0.1
# Floor for an empty bin's share: keeps log(q/p) finite, and makes an empty bin in a
# small batch cost a bounded amount instead of infinity.
EPSILON = 1e-4


def _psi_from_shares(expected: np.ndarray, actual: np.ndarray) -> float:
    e = np.clip(expected, EPSILON, None)
    a = np.clip(actual, EPSILON, None)
    return float(np.sum((a - e) * np.log(a / e)))


def psi(
    reference: Sequence[float] | np.ndarray, batch: Sequence[float] | np.ndarray, bins: int = 10
) -> float:
    """Population stability index of a numeric variable; NaN values form their own bin.

    Bin edges are the reference's quantiles (ties collapse, so a variable with
    few distinct values gets fewer bins). ``nan`` when either sample is empty.
    """
    ref = np.asarray(reference, dtype=float)
    new = np.asarray(batch, dtype=float)
    if ref.size == 0 or new.size == 0:
        return float("nan")
    ref_finite = ref[np.isfinite(ref)]
    new_finite = new[np.isfinite(new)]
    # Inner quantiles of the reference as edges; none (one bin) if it has no finite value.
    edges = (
        np.unique(np.quantile(ref_finite, np.linspace(0, 1, bins + 1)[1:-1]))
        if ref_finite.size
        else np.zeros(0)
    )
    n_bins = edges.size + 1
    ref_counts = np.bincount(np.searchsorted(edges, ref_finite, side="right"), minlength=n_bins)
    new_counts = np.bincount(np.searchsorted(edges, new_finite, side="right"), minlength=n_bins)
    ref_shares = np.append(ref_counts, ref.size - ref_finite.size) / ref.size
    new_shares = np.append(new_counts, new.size - new_finite.size) / new.size
    return _psi_from_shares(ref_shares, new_shares)


def _aligned_shares(reference: pd.Series, batch: pd.Series) -> tuple[np.ndarray, np.ndarray, list]:
    ref = reference.astype("object").where(reference.notna(), "<missing>")
    new = batch.astype("object").where(batch.notna(), "<missing>")
    categories = sorted(set(ref.unique()) | set(new.unique()), key=str)
    ref_counts = ref.value_counts().reindex(categories, fill_value=0).to_numpy(dtype=float)
    new_counts = new.value_counts().reindex(categories, fill_value=0).to_numpy(dtype=float)
    return ref_counts, new_counts, categories


def categorical_psi(reference: Sequence | pd.Series, batch: Sequence | pd.Series) -> float:
    """PSI over categories (missing is a category); categories new in the batch count too."""
    ref_counts, new_counts, _ = _aligned_shares(pd.Series(reference), pd.Series(batch))
    if ref_counts.sum() == 0 or new_counts.sum() == 0:
        return float("nan")
    return _psi_from_shares(ref_counts / ref_counts.sum(), new_counts / new_counts.sum())


@dataclass(frozen=True)
class CategoryShift:
    """How a categorical mix (e.g. availability patterns) moved between two samples."""

    total_variation: float  # 0 (identical) … 1 (disjoint)
    psi: float
    chi2: float
    p_value: float  # chi-square test of homogeneity; nan when it is undefined
    n_categories: int


def category_shift(reference: Sequence | pd.Series, batch: Sequence | pd.Series) -> CategoryShift:
    """Total variation distance, PSI and a chi-square homogeneity test between two samples."""
    from scipy.stats import chi2_contingency

    ref_counts, new_counts, categories = _aligned_shares(pd.Series(reference), pd.Series(batch))
    if ref_counts.sum() == 0 or new_counts.sum() == 0:
        nan = float("nan")
        return CategoryShift(nan, nan, nan, nan, len(categories))
    p = ref_counts / ref_counts.sum()
    q = new_counts / new_counts.sum()
    tv = 0.5 * float(np.abs(p - q).sum())
    table = np.vstack([ref_counts, new_counts])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        chi2, p_value = 0.0, 1.0  # a single category: nothing can have shifted
    else:
        chi2, p_value, _, _ = chi2_contingency(table)
    return CategoryShift(tv, _psi_from_shares(p, q), float(chi2), float(p_value), len(categories))
