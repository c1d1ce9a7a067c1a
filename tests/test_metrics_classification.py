"""Point metrics and the vectorised bootstrap against scikit-learn and closed forms."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from fusion_assets.metrics.bootstrap import (
    percentile_ci,
    stratified_bootstrap_counts,
    weighted_auroc,
    weighted_average_precision,
    weighted_brier,
)
from fusion_assets.metrics.classification import (
    ThresholdRule,
    auroc,
    average_precision,
    brier,
    calibration_intercept_slope,
    choose_threshold,
    ece,
    logit,
    scaled_brier,
    sensitivity_specificity,
    undefined_reason,
)
from fusion_assets.metrics.weighted_logistic import weighted_calibration


def _data(seed: int, n: int = 400, ties: bool = False) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(int)
    p = 1 / (1 + np.exp(-(rng.normal(0, 1, n) + 1.2 * y - 1)))
    if ties:
        p = np.round(p, 1)
    return y, p


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ranking_metrics_match_sklearn(seed: int, ties: bool) -> None:
    y, p = _data(seed, ties=ties)
    assert auroc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert average_precision(y, p) == pytest.approx(average_precision_score(y, p), abs=1e-12)
    assert brier(y, p) == pytest.approx(brier_score_loss(y, p), abs=1e-12)


def test_closed_forms_with_ties() -> None:
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.5, 0.5, 0.9])
    # Pairs (pos, neg): (0.5,0.1)=1, (0.5,0.5)=0.5, (0.9,*)=1,1 -> 3.5/4.
    assert auroc(y, p) == pytest.approx(0.875)
    # Thresholds 0.9: P=1/1, R=1/2; 0.5: P=2/3, R=1 -> AP = 0.5*1 + 0.5*2/3.
    assert average_precision(y, p) == pytest.approx(0.5 + 1 / 3)
    prev = 0.5
    assert scaled_brier(y, p) == pytest.approx(1 - brier(y, p) / (prev * (1 - prev)))
    assert auroc(y, np.full(4, 0.3)) == pytest.approx(0.5)


def test_calibration_slope_matches_unpenalised_logistic_regression() -> None:
    y, p = _data(3, n=2000)
    intercept, slope = calibration_intercept_slope(y, p)
    lr = LogisticRegression(C=np.inf, tol=1e-10, max_iter=1000).fit(logit(p)[:, None], y)
    assert slope == pytest.approx(lr.coef_[0, 0], abs=1e-4)
    # Calibration-in-the-large: score equation sum(y - sigmoid(a + logit p)) = 0.
    mu = 1 / (1 + np.exp(-(intercept + logit(p))))
    assert np.sum(y - mu) == pytest.approx(0.0, abs=1e-6)


def test_perfectly_calibrated_probabilities_have_slope_one_intercept_zero() -> None:
    rng = np.random.default_rng(4)
    p = rng.uniform(0.02, 0.98, 200_000)
    y = (rng.random(p.size) < p).astype(int)
    intercept, slope = calibration_intercept_slope(y, p)
    assert slope == pytest.approx(1.0, abs=0.03)
    assert intercept == pytest.approx(0.0, abs=0.03)
    assert ece(y, p) < 0.01


def test_ece_closed_form() -> None:
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.2, 0.6, 0.8])
    # Two equal-mass bins: |0 - 0.15| and |1 - 0.7| -> mean 0.225.
    assert ece(y, p, n_bins=2) == pytest.approx(0.225)


def test_degenerate_inputs_are_nan_with_reason() -> None:
    y = np.zeros(5, dtype=int)
    p = np.linspace(0, 1, 5)
    assert np.isnan(auroc(y, p))
    assert np.isnan(average_precision(y, p))
    assert np.isnan(scaled_brier(y, p))
    assert all(np.isnan(calibration_intercept_slope(y, p)))
    assert undefined_reason(y) == "no events (one class only)"
    assert undefined_reason(np.array([])) == "no patients"
    # p exactly 0 or 1 is clipped, so calibration stays finite.
    y2 = np.array([0, 1, 0, 1, 1, 0])
    p2 = np.array([0.0, 1.0, 0.3, 0.6, 0.2, 0.9])
    assert all(np.isfinite(calibration_intercept_slope(y2, p2)))


def test_thresholds() -> None:
    y = np.array([0, 0, 0, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.6, 0.4, 0.7, 0.9])
    t = choose_threshold(y, p, ThresholdRule("youden"))
    sens, spec = sensitivity_specificity(y, p, t)
    # Best J is 2/3 at t=0.4 (sens 1, spec 2/3) and at t=0.7 (sens 2/3, spec 1): lowest wins.
    assert t == pytest.approx(0.4)
    assert (sens, spec) == pytest.approx((1.0, 2 / 3))
    assert choose_threshold(y, p, ThresholdRule("target_sensitivity", 0.6)) == pytest.approx(0.7)
    assert choose_threshold(y, p, ThresholdRule("fixed", 0.25)) == 0.25


def test_bootstrap_counts_are_stratified_and_seeded() -> None:
    y, _ = _data(5, n=301)
    c = stratified_bootstrap_counts(y, 200, seed=7)
    assert c.shape == (301, 200)
    assert (c[y == 1].sum(axis=0) == (y == 1).sum()).all()
    assert (c[y == 0].sum(axis=0) == (y == 0).sum()).all()
    assert np.array_equal(c, stratified_bootstrap_counts(y, 200, seed=7))
    assert not np.array_equal(c, stratified_bootstrap_counts(y, 200, seed=8))


def bootstrap_indices(counts: np.ndarray) -> list[np.ndarray]:
    """Expand an ``(n, B)`` count matrix to explicit resample index arrays."""
    return [np.repeat(np.arange(counts.shape[0]), col) for col in counts.T]


@pytest.mark.parametrize("ties", [False, True])
def test_vectorised_bootstrap_equals_naive_loop(ties: bool) -> None:
    y, p = _data(6, n=150, ties=ties)
    counts = stratified_bootstrap_counts(y, 40, seed=1)
    naive = [
        (
            roc_auc_score(y[i], p[i]),
            average_precision_score(y[i], p[i]),
            np.mean((p[i] - y[i]) ** 2),
        )
        for i in bootstrap_indices(counts)
    ]
    naive = np.array(naive)
    np.testing.assert_allclose(weighted_auroc(y, p, counts), naive[:, 0], atol=1e-12)
    np.testing.assert_allclose(weighted_average_precision(y, p, counts), naive[:, 1], atol=1e-12)
    np.testing.assert_allclose(weighted_brier(y, p, counts), naive[:, 2], atol=1e-12)
    # Unit weights reproduce the point estimates; real-valued weights work too.
    assert weighted_auroc(y, p, np.ones(y.size))[0] == pytest.approx(auroc(y, p))
    assert np.isfinite(weighted_auroc(y, p, counts * 0.5)).all()


@pytest.mark.parametrize("n", [40, 150, 2000])
def test_vectorised_calibration_equals_one_fit_per_resample(n: int) -> None:
    # Miscalibrated on purpose (slope about 0.6), and from small (many Newton steps,
    # the series start often refused) to large (one exact step).
    rng = np.random.default_rng(n)
    y = (rng.random(n) < 0.35).astype(int)
    y[:2] = [0, 1]
    p = 1 / (1 + np.exp(-(1.7 * rng.normal(0, 1, n) + 2.0 * y - 1.2)))
    counts = stratified_bootstrap_counts(y, 60, seed=2)
    intercepts, slopes = weighted_calibration(y, p, counts)
    loop = np.array([calibration_intercept_slope(y[i], p[i]) for i in bootstrap_indices(counts)])
    np.testing.assert_array_equal(np.isnan(slopes), np.isnan(loop[:, 1]))
    np.testing.assert_allclose(intercepts, loop[:, 0], atol=1e-7, equal_nan=True)
    np.testing.assert_allclose(slopes, loop[:, 1], atol=1e-7, equal_nan=True)
    assert np.isfinite(slopes).mean() > 0.9
    # Unit weights reproduce the point estimates.
    one = weighted_calibration(y, p, np.ones(n))
    assert (one[0][0], one[1][0]) == pytest.approx(calibration_intercept_slope(y, p), abs=1e-9)


def test_vectorised_calibration_on_large_resample_matrices_uses_a_sound_certificate() -> None:
    """Above SERIES_MIN_CELLS most columns are settled by the series with a bound, the rest
    by Newton: both agree with one fit per resample, and every bound holds."""
    from fusion_assets.metrics import weighted_logistic as wl

    rng = np.random.default_rng(7)
    n, n_boot = 2500, 420
    y = (rng.random(n) < 0.3).astype(int)
    p = 1 / (1 + np.exp(-(1.4 * rng.normal(0, 1, n) + 1.8 * y - 1.0)))
    counts = stratified_bootstrap_counts(y, n_boot, seed=3)
    assert counts.size >= wl.SERIES_MIN_CELLS
    intercepts, slopes = weighted_calibration(y, p, counts)
    picked = rng.choice(n_boot, 40, replace=False)
    resamples = bootstrap_indices(counts)
    loop = np.array([calibration_intercept_slope(y[resamples[b]], p[resamples[b]]) for b in picked])
    np.testing.assert_allclose(intercepts[picked], loop[:, 0], atol=1e-7)
    np.testing.assert_allclose(slopes[picked], loop[:, 1], atol=1e-7)
    # The slope's certificate: which columns it settles, and that its bounds hold.
    model = wl._Logistic(covariate=logit(p))
    w = counts.astype(np.float64)
    theta0 = model.start(y.astype(np.float64), np.ones(n))
    target = wl.rows_times(model.design * y, w)
    delta, bound = wl._series_start(model, w, theta0, target)
    certified = bound < wl.CERTIFIED_TOL
    assert 0.3 < certified.mean() < 1.0  # both paths are taken here
    error = np.abs(theta0[1] + delta[1] - slopes)
    assert (error[certified] <= bound[certified]).all()


def test_vectorised_calibration_matches_scikit_learn_on_a_few_resamples() -> None:
    y, p = _data(8, n=500)
    counts = stratified_bootstrap_counts(y, 5, seed=4)
    intercepts, slopes = weighted_calibration(y, p, counts)
    x = logit(p)
    for b, idx in enumerate(bootstrap_indices(counts)):
        lr = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000).fit(x[idx, None], y[idx])
        assert slopes[b] == pytest.approx(lr.coef_[0, 0], abs=1e-5)
        # Calibration-in-the-large: the score equation of logit P(y) = a + logit p.
        mu = 1 / (1 + np.exp(-(intercepts[b] + x[idx])))
        assert np.sum(y[idx] - mu) == pytest.approx(0.0, abs=1e-7)


def test_vectorised_calibration_is_nan_without_a_finite_fit() -> None:
    y = np.array([0, 0, 0, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.8])
    weights = np.column_stack(
        [
            [1, 1, 1, 1, 1, 1],  # separable: the slope's maximum is at infinity
            [2, 2, 2, 0, 0, 0],  # no events
            [1, 2, 0, 2, 1, 1],  # separable too
        ]
    )
    intercepts, slopes = weighted_calibration(y, p, weights)
    assert np.isnan(slopes).all()
    assert np.isnan(intercepts[1]) and np.isfinite(intercepts[[0, 2]]).all()
    # Overlapping scores: finite again, and equal to the single fit.
    p2 = np.array([0.1, 0.7, 0.3, 0.2, 0.7, 0.8])
    i2, s2 = weighted_calibration(y, p2, weights[:, :1])
    assert (i2[0], s2[0]) == pytest.approx(calibration_intercept_slope(y, p2), abs=1e-9)


def test_bootstrap_ci_covers_true_auroc_at_nominal_rate() -> None:
    # Binormal: scores N(0,1) for negatives, N(d,1) for positives -> AUROC = Phi(d / sqrt 2).
    from scipy.stats import norm

    d = 1.0
    true_auc = norm.cdf(d / np.sqrt(2))
    rng = np.random.default_rng(11)
    n_sims, hits = 200, 0
    for i in range(n_sims):
        y = np.r_[np.ones(60, dtype=int), np.zeros(140, dtype=int)]
        s = rng.normal(d * y, 1.0)
        lo, hi = percentile_ci(weighted_auroc(y, s, stratified_bootstrap_counts(y, 300, i)))
        hits += lo <= true_auc <= hi
    # Nominal 95%; the percentile bootstrap undercovers slightly at this n.
    assert 0.88 <= hits / n_sims <= 0.99
