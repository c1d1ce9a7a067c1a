"""Drift maths: PSI, categorical PSI, availability-pattern shift."""

from __future__ import annotations

import numpy as np
import pytest

from fusion_assets.metrics.drift import (
    DEFAULT_PSI_THRESHOLD,
    categorical_psi,
    category_shift,
    psi,
)


def test_psi_of_identical_distributions_is_about_zero():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=20_000)
    assert psi(ref, ref) == pytest.approx(0.0, abs=1e-12)
    same = rng.normal(size=5_000)
    assert psi(ref, same) < 0.02


def test_psi_of_a_shifted_distribution_passes_the_threshold():
    rng = np.random.default_rng(1)
    ref = rng.normal(size=20_000)
    assert psi(ref, rng.normal(loc=0.5, size=5_000)) > DEFAULT_PSI_THRESHOLD
    assert psi(ref, rng.normal(scale=2.0, size=5_000)) > DEFAULT_PSI_THRESHOLD
    small = psi(ref, rng.normal(loc=0.1, size=5_000))
    assert 0 < small < DEFAULT_PSI_THRESHOLD


def test_psi_grows_with_the_shift():
    rng = np.random.default_rng(2)
    ref = rng.normal(size=10_000)
    values = [psi(ref, rng.normal(loc=mu, size=5_000)) for mu in (0.0, 0.25, 0.5, 1.0)]
    assert values == sorted(values)


def test_missing_values_are_their_own_bin():
    rng = np.random.default_rng(3)
    ref = rng.normal(size=10_000)
    batch = rng.normal(size=5_000)
    batch[:2_000] = np.nan  # the lab stopped being measured for 40 % of patients
    assert psi(ref, batch) > DEFAULT_PSI_THRESHOLD


def test_psi_degenerate_inputs():
    assert np.isnan(psi([], [1.0]))
    assert psi([1.0] * 100, [1.0] * 50) == pytest.approx(0.0)
    assert psi([np.nan] * 10, [np.nan] * 10) == pytest.approx(0.0)
    assert psi([np.nan] * 10, [1.0] * 10) > DEFAULT_PSI_THRESHOLD


def test_categorical_psi_and_new_categories():
    ref = ["a"] * 500 + ["b"] * 500
    assert categorical_psi(ref, ref) == pytest.approx(0.0)
    assert categorical_psi(ref, ["a"] * 900 + ["b"] * 100) > DEFAULT_PSI_THRESHOLD
    assert categorical_psi(ref, ["a"] * 400 + ["b"] * 400 + ["c"] * 200) > DEFAULT_PSI_THRESHOLD


def test_category_shift_total_variation_and_chi_square():
    rng = np.random.default_rng(4)
    patterns = np.array(["ehr", "ehr+genomics", "ehr+notes", "none"])
    ref = rng.choice(patterns, size=5_000, p=[0.4, 0.3, 0.2, 0.1])
    same = rng.choice(patterns, size=1_000, p=[0.4, 0.3, 0.2, 0.1])
    moved = rng.choice(patterns, size=1_000, p=[0.1, 0.2, 0.3, 0.4])

    stable = category_shift(ref, same)
    assert stable.total_variation < 0.05
    assert stable.p_value > 0.001
    shifted = category_shift(ref, moved)
    assert shifted.total_variation == pytest.approx(0.4, abs=0.05)
    assert shifted.p_value < 1e-6
    assert shifted.n_categories == 4

    assert category_shift(["x"] * 10, ["x"] * 5).total_variation == 0.0
    assert category_shift(["x"], ["y"]).total_variation == 1.0
