"""Presets: the profile numbers that make ``auto`` pick small_n, and what small_n changes."""

from __future__ import annotations

from fusion_assets.models.presets import (
    SMALL_N_SCREEN_TOP_K,
    choose_preset,
    encoder_preset,
    fusion_preset,
)
from fusion_assets.training_settings import TrainingSettings


def _summary(n: int, positives: int, **dims: int) -> dict:
    return {"n_patients": n, "n_positive": positives, "dimensionality": dims}


def test_a_large_cohort_with_many_events_per_feature_keeps_the_default():
    choice = choose_preset(_summary(5_000, 1_000, labs=40, vitals=60))
    assert choice.name == "default" and len(choice.reasons) == 1


def test_small_few_events_or_wide_cohorts_get_small_n_with_their_reasons():
    small = choose_preset(_summary(198, 51, clinical=4, expression=76))
    assert small.name == "small_n" and "198 patients" in small.reasons[0]
    # 2,000 patients but 100 events over 20,000 genes: few events per feature, p >> n
    wide = choose_preset(_summary(2_000, 100, clinical=10, genes=20_000))
    assert wide.name == "small_n" and len(wide.reasons) == 2
    assert "genes (20,000 features)" in wide.reasons[1]
    assert wide.as_dict() == {"preset": "small_n", "reasons": list(wide.reasons)}


def test_small_n_regularises_harder_and_screens_dense_omics():
    default, small = fusion_preset("default"), fusion_preset("small_n")
    assert small.encoder.omics_screen_top_k == SMALL_N_SCREEN_TOP_K
    assert default.encoder.omics_screen_top_k is None
    assert small.encoder.dropout > default.encoder.dropout
    assert small.train.weight_decay > default.train.weight_decay
    assert encoder_preset("small_n").train.weight_decay == small.train.weight_decay


def test_runs_train_with_the_default_preset_unless_asked():
    assert TrainingSettings().concrete_preset("small_n") == "default"
    assert TrainingSettings(preset="auto").concrete_preset("small_n") == "small_n"
    assert (
        TrainingSettings(preset="auto").fusion_config("small_n")
        == TrainingSettings(preset="small_n").fusion_config()
    )
