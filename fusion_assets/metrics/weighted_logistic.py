"""Calibration intercept and slope under every resample of a count matrix at once.

A resample's calibration intercept and slope are weighted maximum-likelihood
logistic fits (a patient drawn c times has weight c). The B resamples of a
count matrix ``W`` (patients x resamples, see ``bootstrap``) are B fits on the
same patients that differ only in their weights, so they run together:

1. **Start.** Every column starts from the fit on all patients, theta0, where
   the linear predictor eta0 is one vector. Column b's score equations are a
   power series in its distance from theta0 whose coefficients are weighted
   moments sum_i W_ib g^(k)(eta0_i) x_i^m of the sigmoid's derivatives: all of
   them come from one matrix product with W. The series truncated at order
   ``TAYLOR_ORDER`` is solved by Newton steps on vectors of length B (no sigmoid
   per cell), and Lagrange's remainder bounds how far that root can be from the
   column's maximum: a column within ``CERTIFIED_TOL`` is done.
2. **Newton-Raphson**, exact, for the other columns: the sigmoid over every
   patient x column, until no parameter of a column moves by more than
   ``NEWTON_TOL``; Newton converges quadratically, so a column is then within
   about ``NEWTON_TOL**2`` of its maximum. Small problems (under
   ``SERIES_MIN_CELLS`` patients x columns, where an exact step is cheap) skip
   the series and start from one Newton step from theta0. A column that does
   not converge, or whose events and non-events do not overlap (separation:
   the slope's maximum is at infinity), is NaN, as the single fit of
   ``classification`` is.

Either way a column's result is its maximum-likelihood fit to about 1e-7 or
better; ``tests/test_metrics_classification.py`` checks it against one fit per
resample and against scikit-learn.
"""

from __future__ import annotations

from math import comb, factorial

import numpy as np
from numpy.polynomial import polynomial as P

from fusion_assets.metrics.bootstrap import as_weights
from fusion_assets.metrics.classification import logit, newton_logistic

TAYLOR_ORDER = 6
NEWTON_TOL = 1e-5
NEWTON_MAX_ITER = 50
_START_STEPS = 5
# A column whose series root is provably (see _ScoreSeries.error_bound) this close to its
# maximum takes no exact step.
CERTIFIED_TOL = 1e-7
# Below this many patients x columns an exact step costs less than the series' set-up:
# columns start from one Newton step from theta0 instead.
SERIES_MIN_CELLS = 1_000_000


def weighted_calibration(
    y: np.ndarray, p: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Calibration intercept and slope under each column of ``weights``.

    The fits of :func:`~fusion_assets.metrics.classification.calibration_intercept_slope`
    (intercept: a in logit P(y) = a + logit p; slope: b in logit P(y) = a + b logit p),
    one per column. Returns two arrays of shape (B,), NaN where a column has one
    class only or its fit does not converge.
    """
    y = np.asarray(y, dtype=np.float64).ravel()
    x = logit(np.asarray(p, dtype=np.float64).ravel())
    w = as_weights(weights, y.size)
    events = rows_times(y[None, :], w)[0]
    two_classes = (events > 0) & (w.sum(axis=0) - events > 0)
    # Patients with weight in some column (the others: no prediction) give the start.
    present = (w > 0).any(axis=1).astype(np.float64)
    # Both fits write their (patients x columns) intermediates into the same two buffers.
    buffers = (np.empty(w.size), np.empty(w.size))
    intercept = _fit(_Logistic(offset=x), y, w, present, buffers, ~two_classes)[0]
    # Separated columns have no finite slope: known beforehand, they take no Newton steps.
    slope = _fit(
        _Logistic(covariate=x), y, w, present, buffers, ~two_classes | _separated(y, x, w)
    )[1]
    return intercept, slope


def _separated(y: np.ndarray, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Columns whose drawn events and non-events do not overlap in x (ties count as no overlap).

    There the slope's maximum likelihood is at infinity, but far out the score falls
    below rounding, so Newton could stop on a large finite slope: these are NaN by
    definition, as the single fit (which does not converge there) makes them.
    """
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y != 1)
    pos, neg = pos[np.argsort(x[pos], kind="stable")], neg[np.argsort(x[neg], kind="stable")]
    low_pos, high_pos = _first_drawn(x, w, pos), _first_drawn(x, w, pos[::-1])
    low_neg, high_neg = _first_drawn(x, w, neg), _first_drawn(x, w, neg[::-1])
    with np.errstate(invalid="ignore"):
        return (high_neg <= low_pos) | (high_pos <= low_neg)


def _first_drawn(x: np.ndarray, w: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Per column, x of the first of ``rows`` (in that order) with weight; NaN if none.

    Most columns draw one of the first few rows, so rows are read in growing blocks.
    """
    out = np.full(w.shape[1], np.nan)
    todo, start, size = np.arange(w.shape[1]), 0, 8
    while todo.size and start < rows.size:
        block = w[rows[start : start + size]][:, todo] > 0
        hit = block.any(axis=0)
        out[todo[hit]] = x[rows[start + block.argmax(axis=0)[hit]]]
        todo, start, size = todo[~hit], start + size, 2 * size
    return out


class _Logistic:
    """logit P(y) = a + offset (intercept model) or a + b * covariate (slope model)."""

    def __init__(self, offset: np.ndarray | None = None, covariate: np.ndarray | None = None):
        self.offset, self.covariate = offset, covariate
        self.n_params = 1 if covariate is None else 2
        # Powers x^0 .. x^(K+1) of the covariate the scores and the series need (x^0 alone
        # without a covariate).
        if covariate is None:
            self.x_powers = np.ones((1, offset.size))
        else:
            self.x_powers = np.vstack([covariate**m for m in range(TAYLOR_ORDER + 2)])
        self.design = self.x_powers[: self.n_params]  # (k, n): 1 [, x]
        self._exp_neg_offset = None if offset is None else np.exp(-offset)

    def eta(self, theta: np.ndarray) -> np.ndarray:
        """The linear predictor at one parameter vector (n,)."""
        if self.covariate is None:
            return self.offset + theta[0]
        return theta[0] + theta[1] * self.covariate

    def means(self, theta: np.ndarray, out: np.ndarray) -> np.ndarray:
        """sigmoid(eta) for every patient (rows) and column of ``theta`` (k, m), into ``out``.

        1 / (1 + exp(-eta)) in place; for the intercept model exp(-eta) is the outer
        product exp(-offset) exp(-a), so no exponential per cell at all.
        """
        with np.errstate(over="ignore", invalid="ignore"):
            if self.covariate is None:
                np.multiply.outer(self._exp_neg_offset, np.exp(-theta[0]), out=out)
            else:
                np.multiply.outer(self.covariate, -theta[1], out=out)
                out -= theta[0]
                np.exp(out, out=out)
        out += 1.0
        return np.reciprocal(out, out=out)

    def information_rows(self) -> np.ndarray:
        """Rows r of the information sum_i w_i mu_i (1 - mu_i) r_i: 1 [, x, x^2]."""
        return self.x_powers[: 2 * self.n_params - 1]

    def start(self, y: np.ndarray, present: np.ndarray) -> np.ndarray:
        """The fit on the ``present`` patients (0/1 weights); zeros where it does not converge."""
        offset = np.zeros_like(y) if self.offset is None else self.offset
        beta = newton_logistic(self.design.T, y, offset, weights=present)
        return np.zeros(self.n_params) if beta is None else beta


def rows_times(rows: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``rows @ matrix`` for a few rows (k, n) and a weight-shaped matrix (n, B).

    With up to three rows, or a small matrix, numpy's own loop (einsum): BLAS's
    threaded matrix-matrix product is no faster there and, on a busy machine, often
    far slower. Many rows over a large matrix (the series' moments) are real
    matrix-matrix work, where BLAS is the faster.
    """
    if rows.shape[0] <= 3 or matrix.size < 1_000_000:
        return np.einsum("rn,nb->rb", rows, matrix)
    return (matrix.T @ np.ascontiguousarray(rows.T)).T


Buffers = tuple[np.ndarray, np.ndarray]


def _fit(
    model: _Logistic,
    y: np.ndarray,
    w: np.ndarray,
    present: np.ndarray,
    buffers: Buffers,
    no_fit: np.ndarray,
) -> np.ndarray:
    """Per-column maximum-likelihood parameters (k, B) of one model; NaN where not converged
    and in the ``no_fit`` columns (no finite maximum)."""
    target = rows_times(model.design * y, w)  # weighted sums of y (and y x) per column
    theta0 = model.start(y, present)
    if w.size >= SERIES_MIN_CELLS:
        delta, bound = _series_start(model, w, theta0, target)
    else:
        delta, bound = _first_step(model, w, theta0, target), np.full(w.shape[1], np.inf)
    theta = theta0[:, None] + delta
    theta[:, no_fit] = np.nan
    # Columns the series already places within CERTIFIED_TOL of their maximum are done.
    certified = bound < CERTIFIED_TOL
    fitted = _newton(model, target, w, np.where(certified, np.nan, theta), buffers)
    return np.where(certified, theta, fitted)


def _first_step(
    model: _Logistic, w: np.ndarray, theta0: np.ndarray, target: np.ndarray
) -> np.ndarray:
    """Every column's Newton step from the shared theta0 (two products with the weights)."""
    mu = 1.0 / (1.0 + np.exp(-model.eta(theta0)))
    gradient = target - rows_times(model.design * mu, w)
    information = rows_times(model.information_rows() * (mu * (1.0 - mu)), w)
    return newton_step(information, gradient)


def _derivative_polynomials(order: int) -> list[np.ndarray]:
    """g, g', ..., g^(order) of the sigmoid as polynomials in g: d/deta P(g) = P'(g) g (1 - g)."""
    polys = [np.array([0.0, 1.0])]
    for _ in range(order):
        polys.append(P.polymul(P.polyder(polys[-1]), [0.0, 1.0, -1.0]))
    return polys


_SIGMOID_DERIVATIVES = _derivative_polynomials(TAYLOR_ORDER)


def _sup_on_unit_interval(poly: np.ndarray) -> float:
    """max |poly(g)| over g in [0, 1]: at an end or a root of its derivative."""
    roots = P.polyroots(P.polyder(poly))
    g = np.r_[
        0.0, 1.0, roots.real[(np.abs(roots.imag) < 1e-12) & (roots.real >= 0) & (roots.real <= 1)]
    ]
    return float(np.abs(P.polyval(g, poly)).max())


# sup over eta of |g^(K+1)|, the constant of the series' remainder.
_SIGMOID_SUP_NEXT = _sup_on_unit_interval(_derivative_polynomials(TAYLOR_ORDER + 1)[-1])


def _sigmoid_derivatives(g: np.ndarray) -> np.ndarray:
    """g, g', ..., g^(TAYLOR_ORDER) of the sigmoid where it equals ``g`` ((K + 1, n))."""
    return np.vstack([P.polyval(g, poly) for poly in _SIGMOID_DERIVATIVES])


def _series_start(
    model: _Logistic, w: np.ndarray, theta0: np.ndarray, target: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each column's offset from theta0 (k, B), a root of its truncated score series, and a
    bound on that root's distance from the column's maximum (inf where there is none).

    Where the series' Newton steps do not settle, the column keeps the first step,
    which is exactly a Newton step from theta0, with no bound.
    """
    series = _ScoreSeries(model, w, theta0, target)
    delta = np.zeros((model.n_params, w.shape[1]))
    first = settled = information = None
    with np.errstate(all="ignore"):
        for _ in range(_START_STEPS):
            score, information = series.score(delta)
            step = newton_step(information, score)
            delta = delta + step
            first = delta.copy() if first is None else first
            settled = np.isfinite(delta).all(axis=0) & (np.abs(step).max(axis=0) < 1e-10)
            if (settled | ~np.isfinite(delta).all(axis=0)).all():
                break
        bound = np.where(settled, series.error_bound(delta, information), np.inf)
    return np.where(settled, delta, first), bound


class _ScoreSeries:
    """The score equations of every column as a power series around theta0, truncated.

    With d_i = da + ds x_i the offset of column b's linear predictor from eta0:
    S_r = target_r - sum_(k, j) da^(k-j) ds^j M[k, j + r] / ((k - j)! j!), where
    M[k, m] = sum_i W_i g^(k)(eta0_i) x_i^m (j = 0 only in the one-parameter model).
    Truncated at K = ``TAYLOR_ORDER``, the score is off by at most (Lagrange)
    sup|g^(K+1)| / (K+1)! sum_i W_i |x_i|^r |d_i|^(K+1), bounded through the moments
    A[m] = sum_i W_i |x_i|^m: :meth:`error_bound`.
    """

    def __init__(self, model: _Logistic, w: np.ndarray, theta0: np.ndarray, target: np.ndarray):
        order, self.k = TAYLOR_ORDER, model.n_params
        g = 1.0 / (1.0 + np.exp(-model.eta(theta0)))
        derivs = _sigmoid_derivatives(g)
        n_m = order + 2 if self.k == 2 else 1
        abs_powers = (
            np.abs(model.x_powers[1]) ** np.arange(order + 3)[:, None]
            if self.k == 2
            else model.x_powers[:1]
        )
        rows = [derivs[k] * model.x_powers[m] for k in range(order + 1) for m in range(n_m)]
        products = rows_times(np.vstack([*rows, abs_powers]), w)
        self.moments = products[: len(rows)].reshape(order + 1, n_m, -1)  # [k, m, column]
        self.abs_moments = products[len(rows) :]  # A[m], m = 0 .. K + 2 (0 alone: k = 1)
        self.target = target
        k_, j_ = np.meshgrid(np.arange(order + 1), np.arange(order + 1), indexing="ij")
        valid = (j_ <= k_) & ((j_ == 0) | (self.k == 2))
        factorials = np.array([factorial(i) for i in range(order + 1)], dtype=np.float64)
        self.coef = np.where(
            valid, 1.0 / (factorials[np.maximum(k_ - j_, 0)] * factorials[j_]), 0.0
        )
        self.e_a, self.e_s = np.maximum(k_ - j_, 0), j_  # exponents of da and ds
        self._m = [self._shifted(r) for r in range(self.k)]  # M[k, j + r] per score row r

    def error_bound(self, delta: np.ndarray, information: np.ndarray) -> np.ndarray:
        """max over parameters of |theta - theta_hat| implied by the truncation bound (B,).

        The score at the series' root is at most E off zero, so the root is within
        |H^-1| E of the maximum, H the information there (first order in E).
        """
        order = TAYLOR_ORDER + 1
        da, ds = np.abs(delta[0]), (np.abs(delta[1]) if self.k == 2 else 0.0)
        n_j = order + 1 if self.k == 2 else 1
        scale = _SIGMOID_SUP_NEXT / factorial(order)
        e = [
            scale
            * sum(
                comb(order, j) * da ** (order - j) * ds**j * self.abs_moments[j + r]
                for j in range(n_j)
            )
            for r in range(self.k)
        ]
        if self.k == 1:
            return e[0] / np.abs(information[0])
        h00, h01, h11 = information
        det = np.abs(h00 * h11 - h01 * h01)
        return (
            np.maximum(
                np.abs(h11) * e[0] + np.abs(h01) * e[1], np.abs(h01) * e[0] + np.abs(h00) * e[1]
            )
            / det
        )

    def _shifted(self, r: int) -> np.ndarray:
        """M[k, j + r] for every (k, j) ((K+1, K+1, B); zero beyond the moments kept)."""
        order = self.coef.shape[0]
        out = np.zeros((order, order, self.moments.shape[2]))
        n_j = min(order, self.moments.shape[1] - r)
        out[:, :n_j] = self.moments[:, r : r + n_j]
        return out

    def score(self, delta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The truncated score at ``delta`` and minus its Jacobian as (h00[, h01, h11])."""
        da = delta[0]
        ds = delta[1] if self.k == 2 else np.zeros_like(da)
        pa = da[None, :] ** np.arange(self.coef.shape[0])[:, None]  # da^p, p = 0..K
        ps = ds[None, :] ** np.arange(self.coef.shape[0])[:, None]
        c = self.coef[:, :, None]
        terms = c * pa[self.e_a] * ps[self.e_s]
        score = self.target - np.stack([(terms * m).sum(axis=(0, 1)) for m in self._m])
        # d/d(da) and d/d(ds) of the terms (exponent 0 terms have derivative 0).
        d_a = c * self.e_a[:, :, None] * pa[np.maximum(self.e_a - 1, 0)] * ps[self.e_s]
        h = [(d_a * self._m[0]).sum(axis=(0, 1))]
        if self.k == 2:
            d_s = c * self.e_s[:, :, None] * pa[self.e_a] * ps[np.maximum(self.e_s - 1, 0)]
            h += [(d_a * self._m[1]).sum(axis=(0, 1)), (d_s * self._m[1]).sum(axis=(0, 1))]
        return score, np.stack(h)


def newton_step(information: np.ndarray, gradient: np.ndarray) -> np.ndarray:
    """Solve information @ step = gradient per column; information holds (h00[, h01, h11])."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if gradient.shape[0] == 1:
            return gradient / information
        h00, h01, h11 = information
        det = h00 * h11 - h01 * h01
        return np.vstack(
            [
                (h11 * gradient[0] - h01 * gradient[1]) / det,
                (h00 * gradient[1] - h01 * gradient[0]) / det,
            ]
        )


def _newton(
    model: _Logistic, target: np.ndarray, w: np.ndarray, theta: np.ndarray, buffers: Buffers
) -> np.ndarray:
    """Exact Newton steps on every unconverged column at once, until each converges or fails.

    The weights are copied down to the unconverged columns only when at most half
    are left (a copy costs about as much as a step), so a few slow columns stay cheap.
    """
    n = w.shape[0]
    out = np.full_like(theta, np.nan)
    block = np.arange(w.shape[1])  # the columns of w_block, by index into theta
    live = np.isfinite(theta).all(axis=0)
    w_block, rows = w, model.information_rows()
    flat_mu, flat_wmu = buffers
    # A column that diverged stays in its block (inf, NaN) until the next copy-down.
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(NEWTON_MAX_ITER):
            if not live.any():
                break
            if 2 * live.sum() <= block.size:
                w_block, block, live = w_block[:, live], block[live], live[live]
            m = block.size
            mu = model.means(theta[:, block], flat_mu[: n * m].reshape(n, m))
            wmu = np.multiply(w_block, mu, out=flat_wmu[: n * m].reshape(n, m))
            gradient = target[:, block] - rows_times(model.design, wmu)
            mu -= 1.0
            wmu *= mu  # -w mu (1 - mu)
            step = newton_step(-rows_times(rows, wmu), gradient)
            theta[:, block[live]] += step[:, live]
            finite = np.isfinite(theta[:, block]).all(axis=0)
            done = live & finite & (np.abs(step).max(axis=0) < NEWTON_TOL)
            out[:, block[done]] = theta[:, block[done]]
            live &= finite & ~done
    return out
