"""The exact Bayes oracle of the synthetic cohort.

Given the modalities a patient has, the posterior log-odds of the label is::

    logit P(y=1 | data) = logit(prevalence)
                        + Gaussian LLR of the present continuous blocks
                        + categorical LLR of smoking/diabetes      (if ehr present)
                        + notes LLR                                (if notes present)
                        + causal-variant LLR                       (if sparse genomics present)
                        + LLR of the presence pattern              (MNAR only)

Why each term is exact:

* Continuous blocks (ehr labs, dense genomics, imaging, wearables): block m is
  observed as ``x = F_m g_m + noise`` with a known full-column-rank map ``F_m``
  and isotropic Gaussian noise (after a known standardisation). The likelihood
  then factors through ``ghat_m = (F'F)^-1 F' x``, so ``ghat_m`` is sufficient,
  and ``ghat_m | g ~ N(g_m, S_m)`` with ``S_m = s^2 (F'F)^-1``. For wearables
  ``F`` depends on the patient's sample times, which are independent of y
  (ancillary), so ``S`` is per patient. Stacking the present blocks gives
  ``ghat | y ~ N(mu_y, Sigma_y + blockdiag(S))``: a Gaussian likelihood ratio
  with class-specific covariances (computed per presence pattern, batched).
* Earlier EHR encounters, sample counts and times, note counts and lengths,
  image background noise outside the blob span, non-signal genes, background
  variants, demographics and MAR presence are all independent of y given what
  the oracle uses, so they contribute nothing to the likelihood ratio.
* Categorical EHR columns, the notes' topic and the causal variants are
  conditionally independent of g and of each other given y; their LLRs are
  exact discrete sums (log-sum-exp over the note topic).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fusion_assets.cohorts.synthetic_params import BLOCKS, MODALITIES, ModelParams

GAUSSIAN_MODALITIES: tuple[str, ...] = tuple(BLOCKS)


@dataclass
class OracleState:
    """Per-patient sufficient statistics of every modality (present or not).

    Statistics exist for every patient, including modalities the patient lacks
    (drawn from their exact sampling distribution), so the oracle can answer
    "what if this patient had exactly these modalities".
    """

    params: ModelParams
    ghat: np.ndarray  # (n, D): least-squares latent estimates, all blocks
    wearable_cov: np.ndarray  # (n, 2, 2): per-patient error covariance of ghat_wearables
    categorical_llr: np.ndarray  # (n,)
    notes_llr: np.ndarray  # (n,)
    sparse_llr: np.ndarray | None  # (n,) when genomics is sparse; dense block unused then
    presence_probs: np.ndarray | None  # (2, n_modalities): P(present | y) under MNAR

    def log_odds(self, present: np.ndarray) -> np.ndarray:
        """Posterior log-odds if patient i had exactly the modalities ``present[i]``."""
        present = np.asarray(present, dtype=bool)
        n = self.ghat.shape[0]
        if present.shape != (n, len(MODALITIES)):
            raise ValueError(f"present must have shape {(n, len(MODALITIES))}, got {present.shape}")
        col = {m: present[:, i] for i, m in enumerate(MODALITIES)}
        p = self.params.prevalence
        out = np.full(n, np.log(p / (1 - p)))
        gauss = [
            m for m in GAUSSIAN_MODALITIES if not (m == "genomics" and self.sparse_llr is not None)
        ]
        out += self._gaussian_llr(np.stack([col[m] for m in gauss], axis=1), gauss)
        out += np.where(col["ehr"], self.categorical_llr, 0.0)
        out += np.where(col["notes"], self.notes_llr, 0.0)
        if self.sparse_llr is not None:
            out += np.where(col["genomics"], self.sparse_llr, 0.0)
        if self.presence_probs is not None:
            out += pattern_llr(present, self.presence_probs)
        return out

    def _noise_cov(self, idx: np.ndarray, blocks: list[str]) -> np.ndarray:
        dims = sum(BLOCKS[m].stop - BLOCKS[m].start for m in blocks)
        cov = np.zeros((len(idx), dims, dims))
        at = 0
        for m in blocks:
            k = BLOCKS[m].stop - BLOCKS[m].start
            block = self.wearable_cov[idx] if m == "wearables" else self.params.noise_cov[m]
            cov[:, at : at + k, at : at + k] = block
            at += k
        return cov

    def _gaussian_llr(self, has: np.ndarray, names: list[str]) -> np.ndarray:
        llr = np.zeros(has.shape[0])
        codes = has.astype(np.int64) @ (1 << np.arange(has.shape[1]))
        for code in np.unique(codes):
            blocks = [m for j, m in enumerate(names) if code >> j & 1]
            if not blocks:
                continue
            idx = np.flatnonzero(codes == code)
            dims = np.concatenate([np.arange(BLOCKS[m].start, BLOCKS[m].stop) for m in blocks])
            x = self.ghat[np.ix_(idx, dims)]
            noise = self._noise_cov(idx, blocks)
            loglik = [
                _gaussian_loglik(
                    x,
                    self.params.mu[y, dims],
                    self.params.sigma[y][np.ix_(dims, dims)] + noise,
                )
                for y in (0, 1)
            ]
            llr[idx] = loglik[1] - loglik[0]
        return llr


def _gaussian_loglik(x: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """log N(x; mean, cov) up to the shared constant, batched over rows (cov is (n, d, d))."""
    resid = x - mean
    _, logdet = np.linalg.slogdet(cov)
    quad = np.einsum("ni,ni->n", resid, np.linalg.solve(cov, resid[..., None])[..., 0])
    return -0.5 * (logdet + quad)


def pattern_llr(present: np.ndarray, presence_probs: np.ndarray) -> np.ndarray:
    """log P(pattern | y=1) - log P(pattern | y=0) with modalities present independently given y."""
    p0, p1 = np.clip(presence_probs, 1e-12, 1 - 1e-12)
    on = np.log(p1) - np.log(p0)
    off = np.log1p(-p1) - np.log1p(-p0)
    return np.where(present, on, off).sum(axis=1)


def notes_llr(loglik_by_topic: np.ndarray, topic_given_y: np.ndarray) -> np.ndarray:
    """LLR of all of a patient's words, mixing over the (shared) topic c."""
    log_prior = np.log(topic_given_y)  # (2, K)
    joint = loglik_by_topic[:, None, :] + log_prior[None]  # (n, 2, K)
    top = joint.max(axis=2, keepdims=True)
    marg = top[..., 0] + np.log(np.exp(joint - top).sum(axis=2))
    return marg[:, 1] - marg[:, 0]


def categorical_llr(codes: np.ndarray, given_y: np.ndarray) -> np.ndarray:
    """LLR of one categorical column (integer codes) with table P(level | y)."""
    return np.log(given_y[1, codes]) - np.log(given_y[0, codes])


def carrier_llr(carrier: np.ndarray, freq: np.ndarray) -> np.ndarray:
    """LLR of the causal-variant carrier indicators (n, n_causal), independent given y."""
    f0, f1 = freq
    on = np.log(f1) - np.log(f0)
    off = np.log1p(-f1) - np.log1p(-f0)
    return carrier.astype(np.float64) @ (on - off) + off.sum()
