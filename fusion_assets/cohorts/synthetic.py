"""Synthetic multimodal cohort with an exact Bayes oracle (pure numpy, no dagster).

Generative model (parameters in ``synthetic_params``; the oracle maths in
``synthetic_oracle``):

* ``y ~ Bernoulli(prevalence)``; sex, age, site and index time independent of y.
* A latent ``g | y ~ N(mu_y, Sigma_y)`` with one block per continuous modality.
  Regimes: ``independent`` (Sigma diagonal, the same for both classes:
  blocks conditionally independent given y, so late fusion is optimal),
  ``correlated`` (a y-free shared nuisance loads on EHR's main signal
  dimension and on a signal-free dimension of each other block: joint models
  can cancel it, late fusion cannot), ``synergy`` (as independent, plus one
  EHR and one imaging dimension with no marginal signal, correlated +rho under
  y=1 and -rho under y=0: only a joint model sees it). Every regime has the
  same per-modality marginals, so single-modality AUROCs match across them.
* ehr: the last encounter before index time has all ``lab_NN`` columns,
  ``lab = mean + sd * (lab_load @ g_ehr + noise)``, and ``smoking`` /
  ``diabetes`` drawn from P(level | y). Earlier encounters are partial and
  drawn independently of y and g, so "last value per feature" keeps everything.
* genomics (dense): 2,000 genes (``genomics_features`` sets another panel size:
  the same 50 signal genes among more or fewer noise genes), 50 of which load on
  ``g_genomics``; all genes get unit Gaussian noise. (sparse): long format over 10^6 variants; 300
  causal variants have carrier frequency P(carrier | y), everything else is
  y-free background.
* imaging: one 32x32 image, three Gaussian blobs at fixed places whose
  intensities are ``g_imaging``, plus pixel noise.
* wearables: irregular samples over the 28 days before index time (count and
  times independent of y); each channel is baseline + a level and a trend over
  the window, both linear in ``g_wearables``, plus noise (``temporal``: ``none``
  keeps the level only, ``strong`` the trend only).
* notes: 1-4 notes of 30-60 words; one topic c per patient with P(c | y);
  words iid from P(word | c). Notes (like smoking/diabetes and the sparse
  causal variants) are conditionally independent of g given y in every
  regime, which keeps their LLR a separate exact term.
* missingness: presence is independent of y (``complete``/``mcar``/``mar``) or
  depends on y only (``mnar``), independently across modalities.
* leakage bait: for ``bait_rate`` of patients, rows time-stamped after the
  index time that reveal y. The oracle ignores them.

Measurement noise is kept small relative to the latent spread, so the oracle's
uncertainty lives in the latent and the data-to-signal maps are easy to learn
(low-dimensional, linear) from a few thousand patients.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fusion_assets.cohorts import synthetic_params as P
from fusion_assets.cohorts.spec import (
    SYNTH_GENOMICS_DENSE_FEATURES,
    SYNTH_GENOMICS_SPARSE_FEATURES,
    SYNTH_IMAGE_SIZE,
    SYNTH_WEARABLE_CHANNELS,
    SYNTH_WEARABLE_WINDOW_DAYS,
)
from fusion_assets.cohorts.synthetic_oracle import (
    OracleState,
    carrier_llr,
    categorical_llr,
    notes_llr,
)
from fusion_assets.cohorts.synthetic_params import MODALITIES, ModelParams
from fusion_assets.landing_zone import publish_batch, staging_dir
from fusion_assets.metrics.classification import auroc

DAY = 86_400  # seconds
WINDOW = SYNTH_WEARABLE_WINDOW_DAYS * DAY
MISSINGNESS: tuple[str, ...] = ("complete", "mcar", "mar", "mnar")
DEFAULT_AVAILABILITY: dict[str, float] = {
    "ehr": 1.0,
    "notes": 0.8,
    "imaging": 0.5,
    "wearables": 0.4,
    "genomics": 0.3,
}
BAIT_NOTE = {
    0: "post index addendum outcome excluded no event occurred",
    1: "post index addendum outcome confirmed event occurred",
}
_STREAMS = (
    "patients",
    "presence",
    "latent",
    "bait",
    "ehr",
    "genomics",
    "imaging",
    "wearables",
    "notes",
)


@dataclass(frozen=True)
class SynthConfig:
    """What to generate. ``seed`` drives sampling only; the model is fixed per regime."""

    n_patients: int = 5000
    regime: str = "correlated"
    missingness: str = "mar"
    seed: int = 0
    genomics_format: str = "dense"
    genomics_features: int = SYNTH_GENOMICS_DENSE_FEATURES  # dense panel size
    temporal: str = "mixed"  # where the wearables' signal lives: P.TEMPORAL_SIGNALS
    sites: int = len(P.SITES)  # recruit from the first this many sites (a controlled cohort: few)
    # Missing keys take DEFAULT_AVAILABILITY's rate; ignored when missingness="complete".
    availability: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_AVAILABILITY))
    id_prefix: str = ""  # ids are P<prefix or s<seed>>-<counter>; distinct prefixes never collide
    prevalence: float = 0.3
    bait_rate: float = 0.15
    start: str = "2022-01-01"
    end: str = "2025-01-01"

    def validate(self) -> None:
        if self.regime not in P.REGIMES:
            raise ValueError(f"regime must be one of {P.REGIMES}, got {self.regime!r}")
        if self.missingness not in MISSINGNESS:
            raise ValueError(f"missingness must be one of {MISSINGNESS}, got {self.missingness!r}")
        if self.genomics_format not in ("dense", "sparse"):
            raise ValueError(
                f"genomics_format must be dense or sparse, got {self.genomics_format!r}"
            )
        if self.temporal not in P.TEMPORAL_SIGNALS:
            raise ValueError(f"temporal must be one of {P.TEMPORAL_SIGNALS}, got {self.temporal!r}")
        if not 1 <= self.sites <= len(P.SITES):
            raise ValueError(f"sites must lie in 1..{len(P.SITES)}, got {self.sites}")
        if self.genomics_features < P.N_SIGNAL_GENES:
            raise ValueError(
                f"genomics_features must be at least {P.N_SIGNAL_GENES}, "
                f"got {self.genomics_features}"
            )
        if not set(self.availability) <= set(MODALITIES):
            raise ValueError(f"availability keys must be among {MODALITIES}")
        if not all(0.0 <= r <= 1.0 for r in self.availability.values()):
            raise ValueError("availability rates must lie in [0, 1]")
        if self.n_patients < 1 or not 0 < self.prevalence < 1:
            raise ValueError("need n_patients >= 1 and 0 < prevalence < 1")


@dataclass
class SyntheticCohort:
    """A generated cohort: landing-format frames plus the oracle.

    ``present`` has ``patient_id`` and one bool column per modality (spec order).
    """

    config: SynthConfig
    patients: pd.DataFrame
    modalities: dict[str, pd.DataFrame]
    oracle: pd.DataFrame
    present: pd.DataFrame
    state: OracleState = field(repr=False)

    @property
    def modality_names(self) -> tuple[str, ...]:
        return MODALITIES

    @property
    def labels(self) -> np.ndarray:
        return self.patients["label"].to_numpy()

    def present_matrix(self) -> np.ndarray:
        """(n_patients, n_modalities) bool, columns in ``modality_names`` order."""
        return self.present[list(MODALITIES)].to_numpy(dtype=bool)

    def oracle_prob_given(self, present: np.ndarray) -> np.ndarray:
        """Bayes P(y=1) if each patient had exactly the modalities ``present[i]``."""
        return _sigmoid(self.state.log_odds(present))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _chol_noise(rng: np.random.Generator, n: int, cov: np.ndarray) -> np.ndarray:
    return rng.standard_normal((n, cov.shape[0])) @ np.linalg.cholesky(cov).T


def _categorical(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One draw per row of ``probs`` (n, K) -> int codes."""
    u = rng.random(probs.shape[0])
    return np.minimum((u[:, None] > np.cumsum(probs, axis=1)).sum(axis=1), probs.shape[1] - 1)


_STR = pd.StringDtype("pyarrow", na_value=np.nan)


def _take(values: pa.Array, rows: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """Rows of an arrow string array as a pandas string array (no Python objects)."""
    return pd.array(values.take(pa.array(rows)), dtype=_STR)


def _timestamps(seconds: np.ndarray) -> np.ndarray:
    return seconds.astype("datetime64[s]").astype("datetime64[us]")


def _list_array(rows: np.ndarray) -> pa.ListArray:
    """list<float> array of the rows of a 2-D array, zero-copy for float32 input."""
    flat = np.ascontiguousarray(rows, dtype=np.float32).ravel()
    if flat.size >= 2**31:
        raise ValueError("too many values for a list<float> column; write fewer patients per batch")
    offsets = np.arange(rows.shape[0] + 1, dtype=np.int32) * np.int32(rows.shape[1])
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat))


def _list_column(array: pa.Array | pa.ChunkedArray) -> pd.Series:
    return pd.Series(pd.arrays.ArrowExtensionArray(array))


# --------------------------------------------------------------------------- sampling


def _site_probs(n_sites: int) -> np.ndarray:
    """Recruitment shares of the first ``n_sites`` sites (renormalised; zero for the rest)."""
    probs = P.SITE_PROBS.copy()
    probs[n_sites:] = 0.0
    return probs / probs.sum()


def _sample_patients(rng: np.random.Generator, cfg: SynthConfig) -> tuple[pd.DataFrame, np.ndarray]:
    n = cfg.n_patients
    y = (rng.random(n) < cfg.prevalence).astype(np.int64)
    start = np.datetime64(cfg.start, "s").astype(np.int64)
    end = np.datetime64(cfg.end, "s").astype(np.int64)
    index_s = rng.integers(start, end, n)
    tag = cfg.id_prefix or f"s{cfg.seed}"
    ids = np.array([f"P{tag}-{i:07d}" for i in range(n)], dtype=object)
    patients = pd.DataFrame(
        {
            "patient_id": ids,
            "index_time": _timestamps(index_s),
            "label": y,
            "sex": np.where(rng.random(n) < 0.5, "F", "M").astype(object),
            "age": np.clip(np.round(rng.normal(55, 15, n)), 18, 90).astype(np.int64),
            "site": np.array(P.SITES, dtype=object)[
                _categorical(rng, np.tile(_site_probs(cfg.sites), (n, 1)))
            ],
        }
    )
    return patients, y


def _solve_intercept(offsets: np.ndarray, rate: float) -> float:
    """Intercept b with mean(sigmoid(b + offsets)) == rate (bisection; monotone in b)."""
    lo, hi = -30.0, 30.0
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if _sigmoid(mid + offsets).mean() < rate else (lo, mid)
    return 0.5 * (lo + hi)


def _mnar_probs(rate: float, prevalence: float) -> tuple[float, float]:
    """(P(present|y=0), P(present|y=1)) with odds ratio MNAR_ODDS_RATIO and mean ``rate``."""
    if rate <= 0 or rate >= 1:
        return rate, rate
    log_or = np.log(P.MNAR_ODDS_RATIO)
    lo, hi = -30.0, 30.0
    for _ in range(80):  # mean over classes, weighted by prevalence
        b = 0.5 * (lo + hi)
        mean = (1 - prevalence) * _sigmoid(b) + prevalence * _sigmoid(b + log_or)
        lo, hi = (b, hi) if mean < rate else (lo, b)
    return float(_sigmoid(b)), float(_sigmoid(b + log_or))


def _sample_presence(
    rng: np.random.Generator, cfg: SynthConfig, patients: pd.DataFrame, y: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None]:
    n = len(y)
    rates = np.array([(DEFAULT_AVAILABILITY | cfg.availability)[m] for m in MODALITIES])
    u = rng.random((n, len(MODALITIES)))
    if cfg.missingness == "complete":
        return np.ones((n, len(MODALITIES)), dtype=bool), None
    if cfg.missingness == "mcar":
        return u < rates, None
    if cfg.missingness == "mar":
        site = patients["site"].map({s: i for i, s in enumerate(P.SITES)}).to_numpy()
        age = (patients["age"].to_numpy() - 55.0) / 15.0
        probs = np.empty((n, len(MODALITIES)))
        for j, rate in enumerate(rates):
            offsets = P.MAR_SITE_EFFECT[site, j] + P.MAR_AGE_EFFECT[j] * age
            if rate <= 0 or rate >= 1:
                probs[:, j] = rate
            else:
                probs[:, j] = _sigmoid(_solve_intercept(offsets, rate) + offsets)
        return u < probs, None
    by_class = np.array([_mnar_probs(r, cfg.prevalence) for r in rates]).T  # (2, M)
    return u < by_class[y], by_class


def _sample_latent(rng: np.random.Generator, y: np.ndarray, params: ModelParams) -> np.ndarray:
    z = rng.standard_normal((len(y), P.LATENT_DIM))
    g = np.empty_like(z)
    for c in (0, 1):
        sel = y == c
        g[sel] = params.mu[c] + z[sel] @ np.linalg.cholesky(params.sigma[c]).T
    return g


# --------------------------------------------------------------------------- modalities


def _ehr(rng, params, ids, index_s, y, g, bait, has):
    """Encounters: partial y-free history, one complete signal-carrying last encounter, bait."""
    n = len(y)
    g_ehr = g[:, P.BLOCKS["ehr"]]
    z = g_ehr @ params.lab_load.T + P.LAB_NOISE * rng.standard_normal((n, P.N_LABS))
    last_labs = params.lab_mean + params.lab_sd * z
    ghat = ((last_labs - params.lab_mean) / params.lab_sd) @ params.proj["ehr"].T
    smoking = _categorical(rng, P.SMOKING_GIVEN_Y[y])
    diabetes = _categorical(rng, P.DIABETES_GIVEN_Y[y])
    cat_llr = categorical_llr(smoking, P.SMOKING_GIVEN_Y) + categorical_llr(
        diabetes, P.DIABETES_GIVEN_Y
    )

    n_prev = np.minimum(rng.poisson(1.5, n), 4)
    prev_pid = np.repeat(np.arange(n), n_prev)
    m = prev_pid.size
    prev_labs = params.lab_mean + params.lab_sd * rng.standard_normal((m, P.N_LABS))
    prev_labs[rng.random((m, P.N_LABS)) < 0.5] = np.nan  # earlier encounters are partial

    def marginal(table):  # y-free: the class mixture
        probs = (1 - params.prevalence) * table[0] + params.prevalence * table[1]
        codes = _categorical(rng, np.tile(probs, (m, 1)))
        return np.where(rng.random(m) < 0.6, -1, codes)

    bait_pid = np.flatnonzero(bait)
    bait_labs = np.full((bait_pid.size, P.N_LABS), np.nan)
    bait_labs[:, 0] = params.lab_mean[0] + params.lab_sd[0] * (
        5.0 * y[bait_pid] + 0.3 * rng.standard_normal(bait_pid.size)
    )
    pid = np.concatenate([prev_pid, np.arange(n), bait_pid])
    t = np.concatenate(
        [
            index_s[prev_pid] - rng.integers(31 * DAY, 400 * DAY, m),
            index_s - rng.integers(DAY, 30 * DAY, n),
            index_s[bait_pid] + rng.integers(DAY, 30 * DAY, bait_pid.size),
        ]
    )
    labs = np.concatenate([prev_labs, last_labs, bait_labs])
    smoke = np.concatenate([marginal(P.SMOKING_GIVEN_Y), smoking, np.full(bait_pid.size, -1)])
    diab = np.concatenate([marginal(P.DIABETES_GIVEN_Y), diabetes, np.full(bait_pid.size, -1)])
    keep = has[pid]
    order = np.lexsort((t[keep], pid[keep]))
    rows = np.flatnonzero(keep)[order]
    labs = labs[rows]
    df = pd.DataFrame(
        {
            "patient_id": _take(ids, pid[rows]),
            "event_time": _timestamps(t[rows]),
            **{f"lab_{j:02d}": labs[:, j] for j in range(P.N_LABS)},
            "smoking": np.array([*P.SMOKING_LEVELS, None], dtype=object)[smoke[rows]],
            "diabetes": np.array([*P.DIABETES_LEVELS, None], dtype=object)[diab[rows]],
        }
    )
    return df, ghat, cat_llr


def _genomics_dense(rng, params, ids, g, has, n_genes):
    n = g.shape[0]
    g_gen = g[:, P.BLOCKS["genomics"]]
    gene_ids, gene_offset = P.genomics_layout(params, n_genes)
    idx = np.flatnonzero(has)
    x = rng.standard_normal((idx.size, n_genes), dtype=np.float32)
    x *= np.float32(P.GENE_NOISE)
    x += gene_offset.astype(np.float32)
    x[:, gene_ids] += (g_gen[idx] @ params.gene_load.T).astype(np.float32)
    ghat = g_gen + _chol_noise(rng, n, params.noise_cov["genomics"])  # exact law, for absent
    signal = x[:, gene_ids].astype(np.float64) - gene_offset[gene_ids]
    ghat[idx] = signal @ params.proj["genomics"].T  # from the written values, for present
    df = pd.DataFrame({"patient_id": _take(ids, idx)})
    df["expression"] = _list_column(_list_array(x))
    return df, ghat


def _genomics_sparse(rng, params, ids, y, has):
    """Long format; causal carriers depend on y, the ~1,000 background variants do not."""
    n = len(y)
    carrier = rng.random((n, P.N_CAUSAL_VARIANTS), dtype=np.float32) < params.carrier_freq[y]
    llr = carrier_llr(carrier, params.carrier_freq)
    idx = np.flatnonzero(has)
    c_pid, c_var = np.nonzero(carrier[idx])
    causal_keys = (
        idx[c_pid].astype(np.int64) * SYNTH_GENOMICS_SPARSE_FEATURES + params.causal_ids[c_var]
    )
    counts = 400 + rng.poisson(600, idx.size)
    b_pid = np.repeat(idx, counts).astype(np.int64)
    # Uniform over the non-causal ids: draw r in [0, n - n_causal) and skip
    # past every causal id <= the result (causal_ids is sorted).
    r = rng.integers(0, SYNTH_GENOMICS_SPARSE_FEATURES - P.N_CAUSAL_VARIANTS, b_pid.size)
    skips = params.causal_ids - np.arange(P.N_CAUSAL_VARIANTS)
    b_var = r + np.searchsorted(skips, r, side="right")
    # Duplicate draws are merged: the background stays y-free, which is all the oracle needs.
    keys = np.concatenate([causal_keys, b_pid * SYNTH_GENOMICS_SPARSE_FEATURES + b_var])
    keys.sort()
    keys = keys[np.concatenate([keys[:1] == keys[:1], keys[1:] != keys[:-1]])]
    pid, var = np.divmod(keys, SYNTH_GENOMICS_SPARSE_FEATURES)
    dosage = np.where(rng.random(keys.size) < 0.85, 1.0, 2.0).astype(np.float32)
    df = pd.DataFrame(
        {"patient_id": _take(ids, pid), "variant_id": var.astype(np.int32), "dosage": dosage}
    )
    return df, llr


def _imaging(rng, params, ids, index_s, y, g, bait, has):
    n = len(y)
    g_img = g[:, P.BLOCKS["imaging"]]
    idx = np.flatnonzero(has)
    n_px = SYNTH_IMAGE_SIZE * SYNTH_IMAGE_SIZE
    img = rng.standard_normal((idx.size, n_px), dtype=np.float32)
    img *= np.float32(P.PIXEL_NOISE)
    img += g_img[idx].astype(np.float32) @ params.blobs.T.astype(np.float32)
    ghat = g_img + _chol_noise(rng, n, params.noise_cov["imaging"])
    proj = params.proj["imaging"].T
    for start in range(0, idx.size, 8192):  # float64 projection, in chunks to bound memory
        chunk = slice(start, start + 8192)
        ghat[idx[chunk]] = img[chunk].astype(np.float64) @ proj
    b_idx = np.flatnonzero(bait & has)
    bait_img = rng.standard_normal((b_idx.size, n_px), dtype=np.float32)
    bait_img += np.float32(4.0) * y[b_idx, None].astype(np.float32)
    pid = np.concatenate([idx, b_idx])
    t = np.concatenate(
        [
            index_s[idx] - rng.integers(DAY, 90 * DAY, idx.size),
            index_s[b_idx] + rng.integers(DAY, 30 * DAY, b_idx.size),
        ]
    )
    order = np.lexsort((t, pid))
    df = pd.DataFrame({"patient_id": _take(ids, pid[order]), "event_time": _timestamps(t[order])})
    # Scatter whole rows into sorted position (much cheaper than an arrow take on lists).
    where = np.empty_like(order)
    where[order] = np.arange(order.size)
    pixels = np.empty((order.size, n_px), dtype=np.float32)
    pixels[where[: idx.size]] = img
    pixels[where[idx.size :]] = bait_img
    del img
    df["pixels"] = _list_column(_list_array(pixels))
    return df, ghat


def _wearables(rng, params, ids, index_s, y, g, bait, has, temporal):
    """Irregular samples; per-patient GLS estimate of g_wearables and its covariance."""
    n = len(y)
    g_w = g[:, P.BLOCKS["wearables"]]
    counts = 15 + rng.poisson(45, n)
    pid = np.repeat(np.arange(n), counts)
    before = rng.integers(1, WINDOW + 1, pid.size)  # seconds before index time
    tau = 0.5 - before / WINDOW  # centred position in the window
    # Per patient, channel c contributes design rows (L_c + tau T_c) to M, so
    # M'M needs only the sums of 1, tau and tau^2 (and M'w those of w, tau*w).
    lvl, trd = P.wearable_loadings(temporal)
    s1 = np.bincount(pid, tau, n)
    s2 = np.bincount(pid, tau**2, n)
    gram = (
        counts[:, None, None] * (lvl.T @ lvl)
        + s1[:, None, None] * (lvl.T @ trd + trd.T @ lvl)
        + s2[:, None, None] * (trd.T @ trd)
    )
    cov = P.WEARABLE_NOISE**2 * np.linalg.inv(gram)
    # Values only for patients with the modality; the others get ghat from its
    # exact law N(g, cov) (their times are drawn above, so cov is theirs).
    keep = has[pid]
    kp, kt = pid[keep], tau[keep]
    z = (g_w @ lvl.T)[kp] + kt[:, None] * (g_w @ trd.T)[kp]
    z += P.WEARABLE_NOISE * rng.standard_normal(z.shape)
    values = P.WEARABLE_BASE + P.WEARABLE_SCALE * z
    zs = (values - P.WEARABLE_BASE) / P.WEARABLE_SCALE  # from the written values
    sw = np.stack([np.bincount(kp, zs[:, c], n) for c in range(3)], axis=1)
    stw = np.stack([np.bincount(kp, kt * zs[:, c], n) for c in range(3)], axis=1)
    ghat = g_w + np.einsum("nij,nj->ni", np.linalg.cholesky(cov), rng.standard_normal((n, 2)))
    rows = np.flatnonzero(has)
    rhs = (sw @ lvl + stw @ trd)[rows]
    ghat[rows] = np.linalg.solve(gram[rows], rhs[..., None])[..., 0]

    b_idx = np.flatnonzero(bait & has)
    b_counts = rng.integers(1, 9, b_idx.size)
    b_pid = np.repeat(b_idx, b_counts)
    b_vals = P.WEARABLE_BASE + P.WEARABLE_SCALE * rng.standard_normal((b_pid.size, 3))
    b_vals[:, 0] += 5.0 * P.WEARABLE_SCALE[0] * y[b_pid]
    keep = has[pid]
    all_pid = np.concatenate([kp, b_pid])
    t = np.concatenate(
        [index_s[kp] - before[keep], index_s[b_pid] + rng.integers(600, 7 * DAY, b_pid.size)]
    )
    vals = np.concatenate([values, b_vals])
    order = np.lexsort((t, all_pid))
    vals = vals[order]
    columns = {name: vals[:, c] for c, name in enumerate(SYNTH_WEARABLE_CHANNELS)}
    df = pd.DataFrame(
        {"patient_id": _take(ids, all_pid[order]), "event_time": _timestamps(t[order]), **columns}
    )
    return df, ghat, cov


def _notes(rng, params, ids, index_s, y, bait, has):
    """Words iid given the patient's topic; exact LLR by log-sum-exp over topics."""
    n = len(y)
    topic = _categorical(rng, P.TOPIC_GIVEN_Y[y])
    n_notes = rng.integers(1, 5, n)
    note_pid = np.repeat(np.arange(n), n_notes)
    lengths = rng.integers(30, 61, note_pid.size)
    tok_pid = np.repeat(note_pid, lengths)
    u = rng.random(tok_pid.size)
    words = np.empty(tok_pid.size, dtype=np.int64)
    tok_topic = topic[tok_pid]
    n_words = params.word_probs.shape[1]
    loglik = np.empty((n, P.N_TOPICS))
    for k in range(P.N_TOPICS):
        sel = tok_topic == k
        cdf = np.cumsum(params.word_probs[k])
        words[sel] = np.minimum(np.searchsorted(cdf, u[sel], side="right"), n_words - 1)
    log_probs = np.log(params.word_probs)
    for k in range(P.N_TOPICS):
        loglik[:, k] = np.bincount(tok_pid, log_probs[k, words], n)
    llr = notes_llr(loglik, P.TOPIC_GIVEN_Y)

    keep_note = has[note_pid]
    keep_tok = has[tok_pid]
    offsets = np.concatenate([[0], np.cumsum(lengths[keep_note])])
    vocab = pa.array(P.vocabulary(), pa.string())
    tokens = pa.ListArray.from_arrays(
        pa.array(offsets, pa.int32()), vocab.take(pa.array(words[keep_tok]))
    )
    text = pc.binary_join(tokens, " ")
    kept_pid = note_pid[keep_note]
    b_idx = np.flatnonzero(bait & has)
    pid = np.concatenate([kept_pid, b_idx])
    t = np.concatenate(
        [
            index_s[kept_pid] - rng.integers(DAY, 365 * DAY, kept_pid.size),
            index_s[b_idx] + rng.integers(DAY, 30 * DAY, b_idx.size),
        ]
    )
    bait_text = pa.array([BAIT_NOTE[int(v)] for v in y[b_idx]], pa.string())
    text = pa.concat_arrays([text.cast(pa.string()), bait_text])
    order = np.lexsort((t, pid))
    df = pd.DataFrame(
        {
            "patient_id": _take(ids, pid[order]),
            "event_time": _timestamps(t[order]),
            "text": _take(text, order),
        }
    )
    return df, llr


# --------------------------------------------------------------------------- public API


def generate_cohort(config: SynthConfig) -> SyntheticCohort:
    """Sample a cohort from the model described in the module docstring."""
    config.validate()
    params = P.model_params(config.regime, config.prevalence)
    seeds = np.random.SeedSequence(config.seed).spawn(len(_STREAMS))
    rng = {name: np.random.default_rng(s) for name, s in zip(_STREAMS, seeds, strict=True)}
    patients, y = _sample_patients(rng["patients"], config)
    present, presence_probs = _sample_presence(rng["presence"], config, patients, y)
    has = {m: present[:, j] for j, m in enumerate(MODALITIES)}
    g = _sample_latent(rng["latent"], y, params)
    bait = rng["bait"].random(len(y)) < config.bait_rate
    ids = pa.array(patients["patient_id"].to_numpy(dtype=object), pa.string())
    index_s = patients["index_time"].to_numpy().astype("datetime64[s]").astype(np.int64)

    ghat = np.empty_like(g)
    frames: dict[str, pd.DataFrame] = {}
    frames["ehr"], ghat[:, P.BLOCKS["ehr"]], cat_llr = _ehr(
        rng["ehr"], params, ids, index_s, y, g, bait, has["ehr"]
    )
    sparse_llr = None
    if config.genomics_format == "dense":
        frames["genomics"], ghat[:, P.BLOCKS["genomics"]] = _genomics_dense(
            rng["genomics"], params, ids, g, has["genomics"], config.genomics_features
        )
    else:
        frames["genomics"], sparse_llr = _genomics_sparse(
            rng["genomics"], params, ids, y, has["genomics"]
        )
        ghat[:, P.BLOCKS["genomics"]] = 0.0  # unused: sparse genomics replaces the dense block
    frames["imaging"], ghat[:, P.BLOCKS["imaging"]] = _imaging(
        rng["imaging"], params, ids, index_s, y, g, bait, has["imaging"]
    )
    frames["wearables"], ghat[:, P.BLOCKS["wearables"]], wear_cov = _wearables(
        rng["wearables"], params, ids, index_s, y, g, bait, has["wearables"], config.temporal
    )
    frames["notes"], note_llr = _notes(rng["notes"], params, ids, index_s, y, bait, has["notes"])

    state = OracleState(
        params=params,
        ghat=ghat,
        wearable_cov=wear_cov,
        categorical_llr=cat_llr,
        notes_llr=note_llr,
        sparse_llr=sparse_llr,
        presence_probs=presence_probs,
    )
    pids = patients["patient_id"]
    oracle = pd.DataFrame({"patient_id": pids, "oracle_prob": _sigmoid(state.log_odds(present))})
    present_df = pd.DataFrame({"patient_id": pids, **has})
    return SyntheticCohort(config, patients, frames, oracle, present_df, state)


_TIMESTAMP = pa.timestamp("us")


def _arrow_table(df: pd.DataFrame) -> pa.Table:
    """Arrow table with the contract's types (string, timestamp[us], list<float>...)."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    fields = []
    for f in table.schema:
        t = f.type
        if pa.types.is_large_string(t) or pa.types.is_string(t) or pa.types.is_null(t):
            t = pa.string()
        elif pa.types.is_timestamp(t):
            t = _TIMESTAMP
        fields.append(pa.field(f.name, t))
    return table.cast(pa.schema(fields))


def write_batch(cohort: SyntheticCohort, landing_dir: Path, batch_id: str) -> Path:
    """Write the landing batch (contract section 1) through the append-only landing protocol.

    The files go to a staging folder, ``_READY`` (the manifest) last, and the folder
    is moved into place in one rename (``fusion_assets.landing_zone.publish_batch``):
    writing the same batch again changes nothing; other content under an existing
    batch id raises ``LandingConflict``.
    """
    root = Path(landing_dir)
    staging = staging_dir(root, batch_id)
    try:
        files = {"patients": cohort.patients, "oracle": cohort.oracle, **cohort.modalities}
        for name, df in files.items():
            pq.write_table(_arrow_table(df), staging / f"{name}.parquet")
        return publish_batch(staging, root, batch_id).batch_dir
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def batch_id_prefix(batch_id: str) -> str:
    """Pseudonymous, stable id prefix for a batch (8 hex digits of its hash)."""
    return hashlib.blake2b(batch_id.encode(), digest_size=4).hexdigest()


def synthesize_batch(
    landing_dir: Path | str,
    n_patients: int = 5000,
    regime: str = "correlated",
    missingness: str = "mar",
    seed: int = 0,
    batch_id: str | None = None,
    genomics_format: str = "dense",
    **settings: object,
) -> Path:
    """Generate a cohort and write it as one landing batch; returns the batch folder.

    ``settings`` are further :class:`SynthConfig` fields (``availability``,
    ``genomics_features``, ``temporal`` …).
    """
    if batch_id is None:
        batch_id = f"synth-{regime}-{missingness}-s{seed}-n{n_patients}"
        if genomics_format != "dense":
            batch_id += f"-{genomics_format}"
    config = SynthConfig(
        n_patients=n_patients,
        regime=regime,
        missingness=missingness,
        seed=seed,
        genomics_format=genomics_format,
        id_prefix=batch_id_prefix(f"{batch_id}/{seed}"),
        **settings,
    )
    return write_batch(generate_cohort(config), Path(landing_dir), batch_id)


# --------------------------------------------------------------------------- difficulty


def difficulty_report(cohort: SyntheticCohort) -> dict:
    """Oracle AUROCs: actual modalities, each modality alone, all of them, late fusion.

    ``late_fusion_*`` adds the single-modality log-likelihood ratios to the
    prior (the best any late-fusion model can do; the presence-pattern term of
    MNAR is additive over modalities, so it is exact there too). The gap
    between ``all`` and ``late_fusion_all`` is what joint models can gain.
    """
    y = cohort.labels
    n, k = len(y), len(MODALITIES)
    actual = cohort.present_matrix()
    none = cohort.state.log_odds(np.zeros((n, k), dtype=bool))
    single, late_all, late_actual = {}, none.copy(), none.copy()
    for j, m in enumerate(MODALITIES):
        mask = np.zeros((n, k), dtype=bool)
        mask[:, j] = True
        gain = cohort.state.log_odds(mask) - none
        single[m] = auroc(y, gain)
        late_all += gain
        late_actual += np.where(actual[:, j], gain, 0.0)
    all_auc = auroc(y, cohort.state.log_odds(np.ones((n, k), dtype=bool)))
    lift = all_auc - 0.5
    return {
        "n_patients": n,
        "regime": cohort.config.regime,
        "missingness": cohort.config.missingness,
        "genomics_format": cohort.config.genomics_format,
        "genomics_features": cohort.config.genomics_features,
        "temporal": cohort.config.temporal,
        "prevalence_observed": float(y.mean()),
        "oracle_auroc_actual": auroc(y, cohort.oracle["oracle_prob"].to_numpy()),
        "oracle_auroc_late_fusion_actual": auroc(y, late_actual),
        "oracle_auroc_all": all_auc,
        "oracle_auroc_late_fusion_all": auroc(y, late_all),
        "oracle_auroc_single": single,
        "lift_fraction_single": {m: (a - 0.5) / lift for m, a in single.items()},
        "max_single_lift_fraction": max((a - 0.5) / lift for a in single.values()),
        "availability_observed": dict(
            zip(MODALITIES, actual.mean(axis=0).round(4).tolist(), strict=True)
        ),
    }
