"""A feature (or time bin) no training patient has a value for is dropped for that fit.

Issue 11: a column entirely missing in a training fold made scikit-learn's binning
raise "window shape cannot be larger than input array shape". Per kind, the
feature is emptied for the training patients only, then the modality's unimodal
model, early fusion and every reference are fitted, score finite probabilities
and the fit says what it dropped in one log line.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from fusion_assets.models.config import EncoderConfig, FusionConfig
from fusion_assets.models.training import train_fusion, train_unimodal
from fusion_assets.names import EARLY, REFERENCE, REFERENCE_LOGISTIC, REFERENCE_STACKED
from tests.fixtures.cohort import SPARSE, WATCH_BINS, WATCH_CHANNELS, SignalCohort

STRATEGIES = (EARLY, REFERENCE, REFERENCE_LOGISTIC, REFERENCE_STACKED)


def _train_rows(frame: pd.DataFrame, cohort: SignalCohort) -> pd.Series:
    return frame["patient_id"].isin(cohort.train_ids)


def _set_lists(frame: pd.DataFrame, column: str, rows: pd.Series, new) -> None:
    """``column``'s list in each of ``rows`` replaced by ``new(old)`` (in place)."""
    frame[column] = [new(v) if r else v for v, r in zip(frame[column], rows, strict=True)]


def _empty_lab(cohort: SignalCohort) -> dict[str, pd.DataFrame]:
    labs = cohort.frames["labs"].copy()
    labs.loc[_train_rows(labs, cohort), "lab_b"] = np.nan
    return {"labs": labs}


def _empty_gene(cohort: SignalCohort) -> dict[str, pd.DataFrame]:
    genes = cohort.frames["genes"].copy()
    train = _train_rows(genes, cohort)
    _set_lists(genes, "values", train, lambda v: np.r_[np.nan, np.asarray(v, dtype=float)[1:]])
    return {"genes": genes}


def _empty_variants(cohort: SignalCohort) -> dict[str, pd.DataFrame]:
    """No training patient carries any variant: the vocabulary is the OOV bucket only."""
    calls = cohort.frames[SPARSE].copy()
    train = _train_rows(calls, cohort)
    _set_lists(calls, "indices", train, lambda v: np.zeros(0, np.int64))
    _set_lists(calls, "values", train, lambda v: np.zeros(0, np.float32))
    return {SPARSE: calls}


def _empty_bin(cohort: SignalCohort) -> dict[str, pd.DataFrame]:
    """Bin 0 (the oldest day of the window) unobserved for every training and validation
    patient (a small cohort's references are fitted on both: ``models/crossfit.py``)."""
    watch = cohort.frames["watch"].copy()
    train = watch["patient_id"].isin([*cohort.train_ids, *cohort.val_ids])
    width = len(WATCH_CHANNELS)

    def blank(v: object) -> np.ndarray:
        v = np.asarray(v, dtype=np.float32).reshape(WATCH_BINS, width).copy()
        v[0] = 0.0
        return v.ravel()

    _set_lists(watch, "values", train, blank)
    _set_lists(watch, "mask", train, blank)
    return {"watch": watch}


def _empty_notes(cohort: SignalCohort) -> dict[str, pd.DataFrame]:
    memo = cohort.frames["memo"].copy()
    memo.loc[_train_rows(memo, cohort), "text"] = ""
    return {"memo": memo}


# modality -> (empty it, what its preprocessing logs, whether the references drop more)
CASES = {
    "labs": (_empty_lab, "1 numeric columns", False),
    "genes": (_empty_gene, "1 features", False),
    SPARSE: (_empty_variants, None, False),  # unseen variants never enter the vocabulary
    # the bin stays in the (masked) series; the references drop its columns
    "watch": (_empty_bin, f"{len(WATCH_CHANNELS)} (bin, channel) cells", True),
    "memo": (_empty_notes, None, False),  # an empty vocabulary: the OOV token only
}


@pytest.mark.parametrize("modality", list(CASES))
def test_an_empty_training_feature_is_dropped_not_fatal(small_signal, modality, caplog):
    cohort = small_signal
    empty, logged, reference_drops = CASES[modality]
    frames = {**cohort.frames, **empty(cohort)}
    used = {m: frames[m] for m in dict.fromkeys(["labs", modality])}
    args = (cohort.labels, cohort.train_ids, cohort.val_ids)
    with caplog.at_level(logging.INFO, logger="fusion_assets"):
        unimodal = {
            m: train_unimodal(cohort.spec, m, used, *args, EncoderConfig.tiny())[0] for m in used
        }
        fitted = {
            s: train_fusion(s, cohort.spec, used, *args, unimodal, FusionConfig.tiny())[0]
            for s in STRATEGIES
        }
    for name, model in {**unimodal, **fitted}.items():
        p = model.predict_proba(model.prepare(used, cohort.all_ids))
        assert np.isfinite(p).all(), (modality, name)
    if logged:
        lines = [r.getMessage() for r in caplog.records if "no observed value" in r.getMessage()]
        assert any(modality in line and logged in line for line in lines), lines
        assert any("reference features" in line for line in lines) == reference_drops, lines
