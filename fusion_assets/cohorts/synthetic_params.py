"""Fixed parameters of the synthetic cohort's generative model.

The model is the *same* for every batch: ``PARAM_SEED`` fixes every loading
matrix, blob position, vocabulary and table below, and a cohort's own ``seed``
only drives the sampling of patients. That is what lets a model trained on one
batch be evaluated on another, and what makes the oracle a fixed function of
the data.

Latent layout. The four continuous modalities share one latent vector
``g`` (``LATENT_DIM`` = 10) split into blocks::

    ehr 0:3   genomics 3:5   imaging 5:8   wearables 8:10

with ``g | y ~ N(mu[y], sigma[y])``. Each block is observed through a known
full-column-rank linear map plus isotropic noise, so its least-squares
projection ``ghat = g + e`` (``e ~ N(0, S)``, ``S`` known) is a sufficient
statistic for that block (see ``synthetic_oracle``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from fusion_assets.cohorts.spec import (
    SYNTH_GENOMICS_DENSE_FEATURES,
    SYNTH_GENOMICS_SPARSE_FEATURES,
    SYNTH_IMAGE_SIZE,
)

PARAM_SEED = 20_240_601
MODALITIES: tuple[str, ...] = ("ehr", "genomics", "imaging", "wearables", "notes")
REGIMES: tuple[str, ...] = ("independent", "correlated", "synergy")

# Latent blocks of the continuous modalities, in spec order.
BLOCKS: dict[str, slice] = {
    "ehr": slice(0, 3),
    "genomics": slice(3, 5),
    "imaging": slice(5, 8),
    "wearables": slice(8, 10),
}
LATENT_DIM = 10

N_LABS = 30
N_SIGNAL_GENES = 50
N_TOPICS = 4
N_CAUSAL_VARIANTS = 300

# Mean shift of g between the classes (mu[0] = 0, mu[1] = DELTA). Zero entries
# are nuisance or synergy dimensions with no marginal signal.
DELTA = np.array(
    [
        1.2,  # ehr 0: the main EHR signal; carries the shared nuisance when correlated
        0.25,  # ehr 1
        0.0,  # ehr 2: synergy partner of imaging 2
        0.6,  # genomics 0
        0.0,  # genomics 1: nuisance proxy when correlated
        0.6,  # imaging 0
        0.0,  # imaging 1: nuisance proxy when correlated
        0.0,  # imaging 2: synergy partner of ehr 2
        0.5,  # wearables 0
        0.0,  # wearables 1: nuisance proxy when correlated
    ]
)
# Correlated regime: g = mu[y] + u + NUISANCE * s with s ~ N(0, 1) independent
# of y. (The other regimes use an independent s per dimension: same marginals.) The nuisance drowns EHR's main signal; every other continuous modality
# carries a y-free proxy of s, so a joint model can subtract it and a per-
# modality model cannot (late fusion is then sub-optimal).
NUISANCE = np.array([2.0, 0.0, 0.0, 0.0, 1.5, 0.0, 1.5, 0.0, 0.0, 1.5])
# Synergy regime: corr(ehr 2, imaging 2) = +RHO if y = 1 and -RHO if y = 0;
# neither dimension has any marginal signal.
SYNERGY_PAIR = (2, 7)
SYNERGY_RHO = 0.6

SITES: tuple[str, ...] = ("site_a", "site_b", "site_c", "site_d")
SITE_PROBS = np.array([0.4, 0.3, 0.2, 0.1])

SMOKING_LEVELS: tuple[str, ...] = ("never", "former", "current")
SMOKING_GIVEN_Y = np.array([[0.60, 0.25, 0.15], [0.45, 0.28, 0.27]])
DIABETES_LEVELS: tuple[str, ...] = ("no", "yes")
DIABETES_GIVEN_Y = np.array([[0.85, 0.15], [0.72, 0.28]])

WEARABLE_BASE = np.array([70.0, 50.0, 7.0])  # heart_rate, activity, sleep_hours
WEARABLE_SCALE = np.array([6.0, 12.0, 0.6])
# Row c: how g_wearables moves channel c's level (L) and its trend over the window (T).
WEARABLE_LEVEL = np.array([[1.0, 0.0], [0.6, 0.8], [-0.5, 0.4]])
WEARABLE_TREND = np.array([[0.0, 1.0], [0.8, 0.0], [0.0, -0.7]])
WEARABLE_NOISE = 2.0  # per sample, in channel-scale units
# Where the wearables' signal lives over the 28-day window (the study's temporal axis):
# "mixed" (the default) puts g_wearables in each channel's level and trend; "none" in the
# level only (a per-patient mean keeps everything: no temporal dynamics to learn);
# "strong" in the trend only (the window mean carries almost nothing, the slope all).
TEMPORAL_SIGNALS: tuple[str, ...] = ("mixed", "none", "strong")


def wearable_loadings(temporal: str) -> tuple[np.ndarray, np.ndarray]:
    """(level, trend) loadings of g_wearables on the channels for a temporal setting."""
    if temporal not in TEMPORAL_SIGNALS:
        raise ValueError(f"temporal must be one of {TEMPORAL_SIGNALS}, got {temporal!r}")
    zero = np.zeros_like(WEARABLE_LEVEL)
    if temporal == "none":
        return WEARABLE_LEVEL, zero
    if temporal == "strong":
        # Both columns of WEARABLE_TREND are non-zero, so the slope alone identifies g.
        return zero, WEARABLE_TREND
    return WEARABLE_LEVEL, WEARABLE_TREND


LAB_NOISE = 1.0
GENE_NOISE = 1.0
PIXEL_NOISE = 1.0
BLOB_CENTERS = ((8.0, 9.0), (22.0, 11.0), (15.0, 24.0))
BLOB_WIDTH = 4.0

NOTE_TOPIC_WEIGHT = 0.3  # share of a note's words drawn from its topic
TOPIC_GIVEN_Y = np.array([[0.40, 0.30, 0.20, 0.10], [0.15, 0.25, 0.28, 0.32]])

_ROOTS = (
    "cardi neur gastr hepat nephr pulmon derm oste arthr my hem angi enter col "
    "cyst encephal lymph thyr pancreat laryng"
)
_SUFFIXES = "itis opathy ology algia ectomy ogram oscopy osis"
_WORDS = (
    "patient presents with reports denies history of chronic acute pain fever cough "
    "fatigue nausea vomiting dizziness headache swelling rash shortness breath chest "
    "abdominal back joint stable improved worsening mild moderate severe noted exam "
    "normal abnormal follow up plan continue start stop dose daily twice weekly "
    "medication therapy referral clinic visit labs imaging ordered reviewed results "
    "pressure elevated low heart rate rhythm regular irregular murmur lungs clear "
    "wheeze crackles bowel sounds tender nontender edema bilateral left right lower "
    "upper extremity gait balance sleep appetite weight loss gain diet exercise "
    "smoking alcohol family social allergies none known vaccination screening "
    "discussed counseled agrees understands return precautions emergency symptoms "
    "onset duration intermittent persistent resolved recurrent episode since last "
    "week month year morning night rest activity tolerance fluid intake output "
    "glucose insulin lipid cholesterol kidney liver function anemia infection "
    "antibiotic culture pending negative positive mass lesion nodule biopsy scan "
    "ultrasound xray mri ct echo ekg stress test range within limits baseline "
    "trend monitor home device wearable steps adherence barriers support caregiver "
    "independent assistance mobility cognition mood anxiety depression"
)


@lru_cache(maxsize=1)
def vocabulary() -> tuple[str, ...]:
    """The notes vocabulary: a few hundred distinct clinical-ish words."""
    combos = [r + s for r in _ROOTS.split() for s in _SUFFIXES.split()]
    words = list(dict.fromkeys(_WORDS.split() + combos))
    return tuple(words)


@dataclass(frozen=True)
class ModelParams:
    """Every parameter of the generative model for one regime (see module doc)."""

    regime: str
    prevalence: float
    mu: np.ndarray  # (2, D)
    sigma: np.ndarray  # (2, D, D)
    lab_load: np.ndarray  # (N_LABS, 3): standardised labs = lab_load @ g_ehr + noise
    lab_mean: np.ndarray
    lab_sd: np.ndarray
    gene_ids: np.ndarray  # (N_SIGNAL_GENES,) genes that load on g_genomics
    gene_load: np.ndarray  # (N_SIGNAL_GENES, 2)
    gene_offset: np.ndarray  # (n_genes,)
    blobs: np.ndarray  # (n_pixels, 3): image = blobs @ g_imaging + noise
    word_probs: np.ndarray  # (N_TOPICS, V): P(word | topic)
    causal_ids: np.ndarray  # (N_CAUSAL_VARIANTS,) sparse variant ids with y-dependent frequency
    carrier_freq: np.ndarray  # (2, N_CAUSAL_VARIANTS): P(carrier | y)
    # Least-squares projections onto each block and the covariance of the
    # resulting estimation error (fixed for ehr/genomics/imaging).
    proj: dict[str, np.ndarray]
    noise_cov: dict[str, np.ndarray]


def _latent_moments(regime: str) -> tuple[np.ndarray, np.ndarray]:
    if regime not in REGIMES:
        raise ValueError(f"regime must be one of {REGIMES}, got {regime!r}")
    mu = np.stack([np.zeros(LATENT_DIM), DELTA])
    # Every regime has the same per-block marginals: the nuisance variance is
    # there in all of them, but only "correlated" shares it across blocks.
    shared = np.outer(NUISANCE, NUISANCE)
    base = np.eye(LATENT_DIM) + (shared if regime == "correlated" else np.diag(np.diag(shared)))
    sigma = np.stack([base, base])
    if regime == "synergy":
        i, j = SYNERGY_PAIR
        sigma[1, i, j] = sigma[1, j, i] = SYNERGY_RHO
        sigma[0, i, j] = sigma[0, j, i] = -SYNERGY_RHO
    return mu, sigma


def _blob_images() -> np.ndarray:
    rows, cols = np.mgrid[0:SYNTH_IMAGE_SIZE, 0:SYNTH_IMAGE_SIZE]
    blobs = [
        np.exp(-((rows - r) ** 2 + (cols - c) ** 2) / (2 * BLOB_WIDTH**2)).ravel()
        for r, c in BLOB_CENTERS
    ]
    return np.stack(blobs, axis=1)


def _word_probs(rng: np.random.Generator, n_words: int) -> np.ndarray:
    # Background: a Zipf-like law over a shuffled vocabulary; each topic adds
    # weight on its own 25 words. P(word | topic) is a fixed mixture of both.
    background = 1.0 / np.arange(1, n_words + 1) ** 0.9
    background = background[rng.permutation(n_words)]
    background /= background.sum()
    order = rng.permutation(n_words)
    probs = np.empty((N_TOPICS, n_words))
    for k in range(N_TOPICS):
        topic = np.zeros(n_words)
        topic[order[25 * k : 25 * (k + 1)]] = rng.uniform(0.5, 1.5, 25)
        topic /= topic.sum()
        probs[k] = (1 - NOTE_TOPIC_WEIGHT) * background + NOTE_TOPIC_WEIGHT * topic
    return probs


def _projection(load: np.ndarray, noise_sd: float) -> tuple[np.ndarray, np.ndarray]:
    gram_inv = np.linalg.inv(load.T @ load)
    return gram_inv @ load.T, noise_sd**2 * gram_inv


@lru_cache(maxsize=8)
def model_params(regime: str, prevalence: float) -> ModelParams:
    """The fixed parameters for ``regime`` (deterministic; cached)."""
    rng = np.random.default_rng(PARAM_SEED)
    mu, sigma = _latent_moments(regime)
    lab_load = rng.normal(0.0, 0.45, (N_LABS, 3))
    lab_mean = np.round(rng.uniform(1.0, 150.0, N_LABS), 1)
    lab_sd = lab_mean * rng.uniform(0.05, 0.2, N_LABS)
    gene_ids = np.sort(rng.choice(SYNTH_GENOMICS_DENSE_FEATURES, N_SIGNAL_GENES, replace=False))
    gene_load = rng.normal(0.0, 1.2, (N_SIGNAL_GENES, 2))
    gene_offset = rng.normal(6.0, 1.5, SYNTH_GENOMICS_DENSE_FEATURES)
    blobs = _blob_images()
    word_probs = _word_probs(rng, len(vocabulary()))
    causal_ids = np.sort(
        rng.choice(SYNTH_GENOMICS_SPARSE_FEATURES, N_CAUSAL_VARIANTS, replace=False)
    )
    f0 = rng.uniform(0.03, 0.15, N_CAUSAL_VARIANTS)
    log_or = rng.normal(0.0, 0.15, N_CAUSAL_VARIANTS)
    odds1 = f0 / (1 - f0) * np.exp(log_or)
    carrier_freq = np.stack([f0, odds1 / (1 + odds1)])
    proj, noise_cov = {}, {}
    for name, load, sd in (
        ("ehr", lab_load, LAB_NOISE),
        ("genomics", gene_load, GENE_NOISE),
        ("imaging", blobs, PIXEL_NOISE),
    ):
        proj[name], noise_cov[name] = _projection(load, sd)
    return ModelParams(
        regime=regime,
        prevalence=prevalence,
        mu=mu,
        sigma=sigma,
        lab_load=lab_load,
        lab_mean=lab_mean,
        lab_sd=lab_sd,
        gene_ids=gene_ids,
        gene_load=gene_load,
        gene_offset=gene_offset,
        blobs=blobs,
        word_probs=word_probs,
        causal_ids=causal_ids,
        carrier_freq=carrier_freq,
        proj=proj,
        noise_cov=noise_cov,
    )


def genomics_layout(params: ModelParams, n_genes: int) -> tuple[np.ndarray, np.ndarray]:
    """(signal gene ids, per-gene offsets) of a dense panel of ``n_genes`` genes.

    The default panel (SYNTH_GENOMICS_DENSE_FEATURES genes) is ``params``' own. Another
    size places the same N_SIGNAL_GENES signal genes, with the same loadings, among
    ``n_genes`` (a fixed draw per size), so only the number of pure-noise genes changes:
    the oracle, which reads the signal genes only, is the same at every size.
    """
    if n_genes < N_SIGNAL_GENES:
        raise ValueError(f"a dense panel needs at least {N_SIGNAL_GENES} genes, got {n_genes}")
    if n_genes == SYNTH_GENOMICS_DENSE_FEATURES:
        return params.gene_ids, params.gene_offset
    rng = np.random.default_rng([PARAM_SEED, n_genes])
    gene_ids = np.sort(rng.choice(n_genes, N_SIGNAL_GENES, replace=False))
    return gene_ids, rng.normal(6.0, 1.5, n_genes)


# Missingness. MAR: logit P(present) = intercept + site effect + age effect,
# the intercept solved per cohort so the mean rate hits the target; it depends
# on demographics only, which are independent of y, so it is ancillary. MNAR:
# P(present | y) with this odds ratio between the classes, mean rate on target.
MAR_SITE_EFFECT = np.array(
    [  # ehr, genomics, imaging, wearables, notes
        [0.0, 0.6, 0.3, 0.4, 0.3],
        [0.0, -0.2, 0.2, 0.0, 0.0],
        [0.0, -0.5, -0.4, -0.3, -0.2],
        [0.0, -0.8, -0.6, -0.6, -0.5],
    ]
)
MAR_AGE_EFFECT = np.array([0.0, 0.3, 0.5, -0.6, 0.3])  # per 15 years above 55
MNAR_ODDS_RATIO = 2.0
