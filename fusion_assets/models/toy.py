"""A tiny cohort in the aligned format (data-contracts §3) with a planted signal.

For tests and quick timing of the model code only; the real synthetic cohort
with its oracle lives in ``fusion_assets.cohorts``. Modality names are
deliberately unlike the synthetic ones so nothing can rely on names.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from fusion_assets.cohorts.spec import CohortSpec, ModalitySpec

FILLER_WORDS = ("patient", "seen", "today", "stable", "plan", "review", "follow", "up", "clinic")


@dataclass
class ToyCohort:
    spec: CohortSpec
    frames: dict[str, pd.DataFrame]
    labels: pd.Series  # indexed by patient_id
    train_ids: list[str]
    val_ids: list[str]
    test_ids: list[str]

    @property
    def all_ids(self) -> list[str]:
        return self.train_ids + self.val_ids + self.test_ids


def toy_spec(sparse_features: int = 1_000_000) -> CohortSpec:
    return CohortSpec(
        name="toy",
        modalities=(
            ModalitySpec("vitals panel", "tabular"),
            ModalitySpec(
                "rna", "omics", timed=False, options={"format": "dense", "n_features": 40}
            ),
            ModalitySpec(
                "snp.calls",
                "omics",
                timed=False,
                options={"format": "sparse", "n_features": sparse_features},
            ),
            ModalitySpec("xray", "image", options={"height": 8, "width": 8, "channels": 1}),
            ModalitySpec(
                "watch",
                "timeseries",
                options={"channels": ["pulse", "steps"], "n_bins": 6, "window_days": 6},
            ),
            ModalitySpec("letters", "text"),
        ),
    )


def toy_cohort(
    n: int = 120, seed: int = 0, presence_rate: float = 0.75, sparse_features: int = 1_000_000
) -> ToyCohort:
    """``n`` patients, ~40 % positive, every modality carrying an easy signal, random missingness."""
    rng = np.random.default_rng(seed)
    spec = toy_spec(sparse_features)
    ids = [f"p{i:04d}" for i in range(n)]
    y = (rng.random(n) < 0.4).astype(int)
    s = 2.0 * y - 1.0  # ±1: the planted signal

    def keep(rate: float) -> np.ndarray:
        return rng.random(n) < rate

    frames: dict[str, pd.DataFrame] = {}
    has = keep(0.95)
    lab_b = rng.normal(size=n)
    lab_b[rng.random(n) < 0.3] = np.nan
    frames["vitals panel"] = pd.DataFrame(
        {
            "patient_id": ids,
            "days_since_last": rng.exponential(30, n),
            "crp": 1.2 * s + rng.normal(size=n),
            "lab_b": lab_b,
            "smoker": np.where(rng.random(n) < 0.5 + 0.3 * s, "yes", "no"),
        }
    )[has]

    has = keep(presence_rate)
    expression = np.exp(rng.normal(size=(n, 40)) + 0.8 * s[:, None] * (np.arange(40) < 5))
    frames["rna"] = pd.DataFrame(
        {"patient_id": ids, "values": [row.astype(np.float32) for row in expression]}
    )[has]

    has = keep(presence_rate)
    risky = np.arange(100, 110)
    indices, values = [], []
    for i in range(n):
        background = rng.choice(sparse_features, size=15, replace=False)
        signal = risky[rng.random(10) < (0.6 if y[i] else 0.1)]
        idx = np.unique(np.concatenate([background, signal])).astype(np.int32)
        indices.append(idx)
        values.append(rng.choice([1.0, 2.0], size=len(idx)).astype(np.float32))
    frames["snp.calls"] = pd.DataFrame({"patient_id": ids, "indices": indices, "values": values})[
        has
    ]

    has = keep(presence_rate)
    images = rng.normal(size=(n, 8, 8, 1))
    images[:, 2:6, 2:6, 0] += 1.0 * s[:, None, None]
    frames["xray"] = pd.DataFrame(
        {
            "patient_id": ids,
            "days_since_last": rng.exponential(60, n),
            "pixels": [im.ravel().astype(np.float32) for im in images],
        }
    )[has]

    has = keep(presence_rate)
    mask = (rng.random((n, 6, 2)) < 0.7).astype(np.float32)
    series = (rng.normal(size=(n, 6, 2)) + 1.0 * s[:, None, None] + 60.0) * mask
    frames["watch"] = pd.DataFrame(
        {
            "patient_id": ids,
            "n_samples": mask.sum((1, 2)).astype(int),
            "values": [v.ravel().astype(np.float32) for v in series],
            "mask": [m.ravel() for m in mask],
        }
    )[has]

    has = keep(0.9)
    texts = []
    for i in range(n):
        words = list(rng.choice(FILLER_WORDS, size=12))
        if rng.random() < (0.9 if y[i] else 0.1):
            for _ in range(3):
                words.insert(int(rng.integers(len(words))), "Fever")
        texts.append(" ".join(words[:6]) + "\n" + " ".join(words[6:]))
    frames["letters"] = pd.DataFrame({"patient_id": ids, "n_notes": 2, "text": texts})[has]

    order = rng.permutation(n)
    n_train, n_val = int(0.5 * n), int(0.25 * n)
    split = [
        [ids[i] for i in order[a:b]]
        for a, b in ((0, n_train), (n_train, n_train + n_val), (n_train + n_val, n))
    ]
    return ToyCohort(spec, frames, pd.Series(y, index=ids, name="label"), *split)
