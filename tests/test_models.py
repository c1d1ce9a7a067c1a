"""Model code on the suite's signal cohort (aligned by the warehouse): every encoder kind,
every strategy, the one API."""

from __future__ import annotations

import itertools
import tracemalloc
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from fusion_assets.kinds.text import OOV_TOKEN
from fusion_assets.models.api import FittedModel, load_model, predict_logits, save_model
from fusion_assets.models.batch import Batch, make_batch
from fusion_assets.models.config import EncoderConfig, FusionConfig
from fusion_assets.models.inputs import fit_preprocessing, prepare
from fusion_assets.models.training import (
    STRATEGY_NAMES,
    TrainResult,
    log_loss,
    modality_dropout_mask,
    train_fusion,
    train_unimodal,
)
from tests.fixtures.cohort import SPARSE, SignalCohort, signal_cohort


@pytest.fixture(scope="module")
def cohort() -> SignalCohort:
    return signal_cohort(n=200, seed=1)


@pytest.fixture(scope="module")
def unimodal(cohort: SignalCohort) -> dict[str, tuple[FittedModel, TrainResult]]:
    return {
        m: train_unimodal(
            cohort.spec,
            m,
            cohort.frames,
            cohort.labels,
            cohort.train_ids,
            cohort.val_ids,
            EncoderConfig.tiny(),
        )
        for m in cohort.spec.modality_names
    }


@pytest.fixture(scope="module")
def fused(cohort, unimodal) -> dict[str, tuple[FittedModel, TrainResult]]:
    models = {m: f for m, (f, _) in unimodal.items()}
    return {
        s: train_fusion(
            s,
            cohort.spec,
            cohort.frames,
            cohort.labels,
            cohort.train_ids,
            cohort.val_ids,
            models,
            FusionConfig.tiny(),
        )
        for s in STRATEGY_NAMES
    }


def _all_models(unimodal, fused) -> dict[str, FittedModel]:
    return {f.strategy: f for f, _ in [*unimodal.values(), *fused.values()]}


def _test_batch(cohort: SignalCohort, models: dict[str, FittedModel]) -> Batch:
    """One batch of the test patients with every modality prepared by its unimodal model."""
    prepared = next(iter(models.values())).prepare(cohort.frames, cohort.test_ids)
    prepared.arrays = {
        m: f.prepare(cohort.frames, cohort.test_ids).arrays[m] for m, f in models.items()
    }
    return make_batch(prepared, np.arange(len(prepared)), prepared.present)


# --------------------------------------------------------------------------- preprocessing


def test_tabular_preprocessing_is_fitted_on_train_only(cohort):
    name = "labs"
    train = cohort.frames[name][cohort.frames[name].patient_id.isin(cohort.train_ids)]
    state = fit_preprocessing(
        cohort.spec, cohort.frames, cohort.train_ids, EncoderConfig(), [name]
    )[name]
    assert state["mean"][state["numeric"].index("lab_a")] == pytest.approx(
        train["lab_a"].mean(), rel=1e-4
    )

    odd = pd.DataFrame(
        {
            "patient_id": ["a", "b"],
            "days_since_last": [1.0, np.nan],
            "lab_a": [np.nan, 2.0],
            "lab_b": [0.0, 1.0],
            "smoker": ["never heard of", None],
        }
    )
    arrays = prepare(cohort.spec, {name: state}, {name: odd}, ["b", "zz", "a"]).arrays[name]
    n_num = len(state["numeric"])
    x = arrays["x"]
    assert x.shape[0] == 3
    lab_a = state["numeric"].index("lab_a")
    assert x[2, lab_a] == 0.0 and x[2, n_num + lab_a] == 1.0  # NaN → 0 + indicator
    assert x[0, n_num + lab_a] == 0.0
    assert np.all(x[:, 2 * n_num :] == 0)  # unknown / missing category → all zeros
    assert np.all(x[1] == 0)  # "zz" has no row: absent, zeros


def test_prepare_handles_extra_and_missing_patients(cohort):
    model = signal_cohort(n=60, seed=3)
    prep = fit_preprocessing(model.spec, model.frames, model.train_ids, EncoderConfig.tiny())
    ids = ["nobody", *model.test_ids]
    prepared = prepare(model.spec, prep, model.frames, ids)
    assert prepared.present.shape == (len(ids), len(model.spec.modalities))
    assert not prepared.present[0].any()
    for name in model.spec.modality_names:
        expected = np.isin(ids, model.frames[name].patient_id)
        np.testing.assert_array_equal(
            prepared.present[:, prepared.modality_names.index(name)], expected
        )


def test_text_vocabulary_comes_from_train_only(cohort):
    frames = dict(cohort.frames)
    text = frames["memo"].copy()
    val_row = text.patient_id.isin(cohort.val_ids)
    text.loc[val_row, "text"] = "zebraword " * 3
    frames["memo"] = text
    state = fit_preprocessing(cohort.spec, frames, cohort.train_ids, EncoderConfig.tiny(), ["memo"])
    assert "zebraword" not in state["memo"]["vocab"]
    ids = text.patient_id[val_row].tolist()[:3]
    tokens = prepare(cohort.spec, state, frames, ids).arrays["memo"]["tokens"]
    assert np.all(tokens[:, :3] == OOV_TOKEN)


def test_sparse_omics_never_densify(small_signal):
    """10^6 variant columns: nothing of size n × 10^6 (or even 10^6) is ever allocated."""

    def run(small: SignalCohort) -> tuple[FittedModel, dict[str, np.ndarray]]:
        name = SPARSE
        fitted, _ = train_unimodal(
            small.spec,
            name,
            small.frames,
            small.labels,
            small.train_ids,
            small.val_ids,
            EncoderConfig.tiny(),
        )
        ref, _ = train_fusion(
            "reference",
            small.spec,
            {name: small.frames[name]},
            small.labels,
            small.train_ids,
            small.val_ids,
            {name: fitted},
            FusionConfig.tiny(),
        )
        prepared = fitted.prepare(small.frames, small.all_ids)
        fitted.predict_proba(prepared)
        ref.predict_proba(ref.prepare(small.frames, small.all_ids))
        return fitted, prepared.arrays[name]

    # warm up first: torch and sklearn import submodules lazily on first use
    run(small_signal)  # 1,000 variants
    small = signal_cohort(n=80, seed=2, sparse_features=1_000_000)
    tracemalloc.start()
    fitted, arrays = run(small)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    dense_bytes = len(small.all_ids) * 1_000_000 * 4
    assert peak < dense_bytes / 20, f"peak {peak / 1e6:.1f} MB suggests a dense variant matrix"
    assert all(p.numel() < 1_000_000 for p in fitted.predictor.parameters())
    assert all(a.size < 1_000_000 for a in arrays.values())


# --------------------------------------------------------------------------- training pieces


def test_modality_dropout_mask_drops_but_keeps_one():
    gen = torch.Generator().manual_seed(0)
    present = torch.rand(4000, 5, generator=gen) < 0.7
    present[:10] = False
    kept = modality_dropout_mask(present, 0.3, gen)
    assert not (kept & ~present).any()  # never invents a modality
    assert not kept[:10].any()  # nobody stays nobody
    has_any = present.any(1)
    assert kept[has_any].any(1).all()  # at least one kept
    dropped = (present & ~kept).sum() / present.sum()
    assert 0.2 < float(dropped) < 0.35
    assert torch.equal(modality_dropout_mask(present, 0.0, gen), present)


def test_every_unimodal_encoder_learns(unimodal):
    for name, (_, result) in unimodal.items():
        assert result.val_auroc > 0.6, (name, result.history)
        assert result.n_parameters > 0 and result.best_epoch >= 1
        assert len(result.history) >= result.best_epoch


def test_every_strategy_learns(fused):
    for strategy, (_, result) in fused.items():
        assert result.val_auroc > 0.6, (strategy, result)
        assert result.train_seconds > 0


def test_early_stopping_keeps_and_restores_the_best_epoch(cohort, fused):
    train = FusionConfig.tiny().train
    for strategy in ("early", "intermediate", "attention"):
        fitted, result = fused[strategy]
        losses = [h["val_loss"] for h in result.history]
        best = result.history[result.best_epoch - 1]
        assert (result.val_loss, result.val_auroc) == (best["val_loss"], best["val_auroc"])
        # no later epoch improved on the kept one by the tolerance; stopping was on patience
        assert all(v >= result.val_loss - 1e-4 for v in losses[result.best_epoch :])
        assert len(losses) in (train.max_epochs, result.best_epoch + train.patience)
        # the returned weights are the kept epoch's, not the last epoch's
        val = fitted.prepare(cohort.frames, cohort.val_ids)
        y_val = cohort.labels.loc[cohort.val_ids].to_numpy(np.float32)
        logits = predict_logits(fitted.predictor, val, val.present)
        assert log_loss(y_val, logits) == pytest.approx(result.val_loss, rel=1e-6), strategy


def test_on_epoch_callback_sees_every_epoch(cohort):
    seen = []
    _, result = train_unimodal(
        cohort.spec,
        "scan",
        cohort.frames,
        cohort.labels,
        cohort.train_ids,
        cohort.val_ids,
        EncoderConfig.tiny(),
        on_epoch=lambda *args: seen.append(args),
    )
    assert [s[0] for s in seen] == [h["epoch"] for h in result.history]
    assert all(np.isfinite(s[1]) and np.isfinite(s[2]) for s in seen)


# --------------------------------------------------------------------------- the API


def test_save_load_round_trip_is_identical(cohort, unimodal, fused, tmp_path):
    for name, fitted in _all_models(unimodal, fused).items():
        before = fitted.predict_proba(fitted.prepare(cohort.frames, cohort.test_ids))
        loaded = load_model(save_model(fitted, tmp_path / name.replace(":", "_")))
        after = loaded.predict_proba(loaded.prepare(cohort.frames, cohort.test_ids))
        np.testing.assert_array_equal(before, after, err_msg=name)


def test_every_modality_subset_scores(cohort, unimodal, fused):
    """All 2^m keep masks at once: each test patient repeated once per subset."""
    subsets = np.array(list(itertools.product([False, True], repeat=len(cohort.spec.modalities))))
    ids = cohort.test_ids[:20]
    keep = np.repeat(subsets, len(ids), axis=0)
    for name, fitted in _all_models(unimodal, fused).items():
        p = fitted.predict_proba(fitted.prepare(cohort.frames, ids * len(subsets)), keep)
        assert p.shape == (len(keep),)
        assert np.all(np.isfinite(p)) and np.all((p >= 0) & (p <= 1)), name
        # nothing usable (the first subset): every patient gets the same prior
        assert np.ptp(p[: len(ids)]) < 1e-6, (name, p[:5])


def test_unimodal_gives_prior_without_its_modality(cohort, unimodal):
    fitted, _ = unimodal["genes"]
    prepared = fitted.prepare(cohort.frames, cohort.test_ids)
    keep = np.ones_like(prepared.present)
    keep[:, cohort.spec.modality_names.index("genes")] = False
    # the predictor's prior; its recalibration (fitted on validation) then maps it
    p = fitted.predict_proba(prepared, keep, recalibrated=False)
    prevalence = cohort.labels[cohort.train_ids].mean()
    np.testing.assert_allclose(p, prevalence, rtol=1e-4)


def test_early_fusion_zero_fills_absent_modalities(cohort, fused, unimodal):
    early, _ = fused["early"]
    assert not early.config.availability_indicators
    prepared = early.prepare(cohort.frames, cohort.test_ids)
    j = cohort.spec.modality_names.index("scan")
    keep = np.ones_like(prepared.present)
    keep[:, j] = False
    removed = early.predict_proba(prepared, keep)
    # a present modality whose features are all zero is indistinguishable from an absent one
    prepared.arrays["scan"]["x"][:] = 0.0
    prepared.present[:, j] = True
    np.testing.assert_allclose(removed, early.predict_proba(prepared), rtol=1e-5)

    # with availability indicators the model can tell them apart
    config = FusionConfig.tiny()
    config.availability_indicators = True
    models = {m: f for m, (f, _) in unimodal.items()}
    flagged, _ = train_fusion(
        "early",
        cohort.spec,
        cohort.frames,
        cohort.labels,
        cohort.train_ids,
        cohort.val_ids,
        models,
        config,
    )
    prepared = flagged.prepare(cohort.frames, cohort.test_ids)
    removed = flagged.predict_proba(prepared, keep)
    prepared.arrays["scan"]["x"][:] = 0.0
    prepared.present[:, j] = True
    assert not np.allclose(removed, flagged.predict_proba(prepared))


def test_late_fusion_with_one_modality_is_its_calibrated_head(cohort, unimodal, fused):
    late, _ = fused["late"]
    model = late.predictor
    for j, name in enumerate(model.modalities):
        single, _ = unimodal[name]
        column = cohort.spec.modality_names.index(name)
        prepared = late.prepare(cohort.frames, cohort.test_ids)
        keep = np.zeros_like(prepared.present)
        keep[:, column] = True
        has = prepared.present[:, column]
        p_single = single.predict_proba(
            single.prepare(cohort.frames, cohort.test_ids), recalibrated=False
        )
        logit = np.log(p_single / (1 - p_single))
        w, c, b = (
            float(model.stack_weight[j]),
            float(model.stack_shift[j]),
            float(model.stack_bias),
        )
        expected = np.where(has, 1 / (1 + np.exp(-(b + w * logit + c))), 1 / (1 + np.exp(-b)))
        np.testing.assert_allclose(
            late.predict_proba(prepared, keep, recalibrated=False), expected, rtol=1e-4, atol=1e-6
        )


def test_keep_mask_shape_is_checked(cohort, unimodal):
    fitted, _ = unimodal["watch"]
    prepared = fitted.prepare(cohort.frames, cohort.test_ids)
    with pytest.raises(ValueError, match="keep must be bool"):
        fitted.predict_proba(prepared, np.ones((len(prepared), 2), dtype=bool))


def test_a_removed_modality_has_no_influence(cohort, unimodal, fused):
    """Whatever a masked-out modality's arrays hold, predictions do not change."""
    rng = np.random.default_rng(0)
    for name, fitted in _all_models(unimodal, fused).items():
        for j, modality in enumerate(cohort.spec.modality_names):
            if modality not in fitted.modalities:
                continue
            prepared = fitted.prepare(cohort.frames, cohort.test_ids)
            keep = np.ones_like(prepared.present)
            keep[:, j] = False
            before = fitted.predict_proba(prepared, keep)
            for array in prepared.arrays[modality].values():
                if array.dtype.kind == "f":
                    array[:] = rng.normal(size=array.shape) * 5
            after = fitted.predict_proba(prepared, keep)
            np.testing.assert_allclose(
                before, after, rtol=1e-5, atol=1e-7, err_msg=f"{name}/{modality}"
            )


def test_joint_models_start_from_the_unimodal_encoders(cohort, unimodal):
    from fusion_assets.models.api import build_predictor

    models = {m: f for m, (f, _) in unimodal.items()}
    preprocessing = {m: f.preprocessing[m] for m, f in models.items()}
    config = FusionConfig.tiny()
    for strategy in ("intermediate", "attention"):
        model = build_predictor(strategy, cohort.spec, preprocessing, config)
        model.init_from_unimodal({m: f.predictor for m, f in models.items()})
        for enc, m in zip(model.encoders.encoders, model.modalities, strict=True):
            for a, b in zip(
                enc.parameters(), models[m].predictor.encoder.parameters(), strict=True
            ):
                assert torch.equal(a, b)
        # with the late-fusion residual and a zeroed joint head, it starts as the sum of
        # the present modalities' unimodal logits
        batch = _test_batch(cohort, models)
        model.eval()
        with torch.no_grad():
            expected = sum(
                models[m].predictor.logits(batch) * model.present(batch)[:, j]
                for j, m in enumerate(model.modalities)
            )
            torch.testing.assert_close(model.logits(batch), expected, rtol=1e-4, atol=1e-5)


def test_fusion_without_unimodal_models_and_clear_errors(cohort):
    fitted, result = train_fusion(
        "intermediate",
        cohort.spec,
        cohort.frames,
        cohort.labels,
        cohort.train_ids,
        cohort.val_ids,
        None,
        FusionConfig.tiny(),
    )
    assert np.isfinite(result.val_auroc) and fitted.modalities == cohort.spec.modality_names
    with pytest.raises(ValueError, match="Late fusion stacks unimodal models"):
        train_fusion("late", cohort.spec, cohort.frames, cohort.labels, cohort.train_ids, [])
    with pytest.raises(ValueError, match="Unknown fusion strategy"):
        train_fusion("stacked", cohort.spec, cohort.frames, cohort.labels, cohort.train_ids, [])
    with pytest.raises(ValueError, match="have no label"):
        train_unimodal(cohort.spec, "genes", cohort.frames, cohort.labels[:5], cohort.train_ids, [])


def test_config_round_trip():
    from fusion_assets.models.config import config_from_dict, config_to_dict

    for config in (EncoderConfig(), EncoderConfig.tiny(), FusionConfig(), FusionConfig.tiny()):
        assert config_from_dict(type(config), config_to_dict(config)) == config


def test_config_saved_before_linear_path_rebuilds_without_it():
    """Models saved before ``linear_path`` / ``unimodal_residual`` have no such weights."""
    from fusion_assets.models.config import config_from_dict, config_to_dict

    old = config_to_dict(FusionConfig())
    del old["encoder"]["linear_path"], old["unimodal_residual"]
    assert config_from_dict(FusionConfig, old).encoder.linear_path is False
    assert config_from_dict(FusionConfig, old).unimodal_residual is False
    assert config_from_dict(FusionConfig, config_to_dict(FusionConfig())).encoder.linear_path


def test_series_summary_recovers_level_and_trend():
    from fusion_assets.models.encoders import series_summary

    t = torch.linspace(-1.0, 1.0, 10)
    values = torch.stack([2.0 + 0.0 * t, 3.0 * t], dim=1).unsqueeze(0)  # [1, 10, 2]
    mask = torch.ones_like(values)
    mask[0, ::2, 1] = 0.0  # every other bin of channel 1 unobserved
    summary = series_summary(values * mask, mask)[0]
    assert torch.allclose(summary[:2], torch.tensor([2.0, 3.0 * t[1::2].mean()]), atol=1e-5)
    assert torch.allclose(summary[2:4], torch.tensor([0.0, 3.0]), atol=1e-4)
    assert torch.allclose(summary[4:], torch.tensor([1.0, 0.5]))


def test_model_code_imports_neither_dagster_nor_mlflow():
    from pathlib import Path

    import fusion_assets.models as package

    for path in Path(package.__file__).parent.glob("*.py"):
        source = path.read_text()
        assert "import dagster" not in source and "from dagster" not in source, path
        assert "mlflow" not in source, path


def test_a_modality_no_training_patient_has_is_left_out(cohort):
    frames = dict(cohort.frames)
    scan = frames["scan"]
    frames["scan"] = scan[~scan.patient_id.isin(cohort.train_ids)]
    with pytest.raises(ValueError, match="none of the .* training patients"):
        train_unimodal(cohort.spec, "scan", frames, cohort.labels, cohort.train_ids, [])
    fitted, _ = train_fusion(
        "early",
        cohort.spec,
        frames,
        cohort.labels,
        cohort.train_ids,
        cohort.val_ids,
        None,
        FusionConfig.tiny(),
    )
    assert "scan" not in fitted.modalities
    p = fitted.predict_proba(fitted.prepare(cohort.frames, cohort.test_ids))
    assert np.all(np.isfinite(p))


def test_bagging_averages_members_and_old_configs_load_unbagged(cohort, unimodal):
    from fusion_assets.models.api import build_predictor
    from fusion_assets.models.config import config_from_dict, config_to_dict
    from fusion_assets.models.fusion import Bagged

    old = config_to_dict(FusionConfig())
    del old["n_seeds"]  # saved before bagging existed: trained as one model
    assert config_from_dict(FusionConfig, old).n_seeds == 1
    models = {m: f for m, (f, _) in unimodal.items()}
    preprocessing = {m: f.preprocessing[m] for m, f in models.items()}
    model = build_predictor("intermediate", cohort.spec, preprocessing, FusionConfig.tiny())
    assert not isinstance(model, Bagged)
    config = replace(FusionConfig.tiny(), n_seeds=2)
    model = build_predictor("intermediate", cohort.spec, preprocessing, config)
    assert isinstance(model, Bagged) and len(model.members) == 2
    batch = _test_batch(cohort, models)
    model.eval()
    with torch.no_grad():
        expected = (model.members[0](batch) + model.members[1](batch)) / 2
        torch.testing.assert_close(model(batch), expected)


# --------------------------------------------------------------------------- stress tests


def test_stress_tests_from_cached_encodings_equal_per_copy_scoring(cohort, unimodal, fused):
    """Every strategy, the single-modality baselines, a bagged model and the references,
    some recalibrated: the stress tests scored from cached encodings (and, for early fusion
    and the references, batched masked copies) give the probabilities of scoring each
    masked copy through the whole model, to 1e-6."""
    from fusion_assets.models.fusion import Bagged
    from fusion_assets.models.recalibration import Recalibration
    from fusion_assets.scoring import stress_test

    models = _all_models(unimodal, fused)
    members = [models["intermediate"].predictor, models["attention"].predictor]
    models["bagged"] = replace(models["intermediate"], predictor=Bagged(cohort.spec, members))
    platt = Recalibration("platt", intercept=0.4, slope=0.6)
    models = {
        name: replace(m, recalibration=platt) if i % 2 else m
        for i, (name, m) in enumerate(models.items())
    }
    cached = {n for n, m in models.items() if getattr(m.predictor, "caches_encodings", False)}
    assert {"late", "intermediate", "attention", "bagged"} <= cached
    assert {f"single:{m}" for m in cohort.spec.modality_names} <= cached
    assert "early" not in cached  # scored as batched masked copies

    ids = cohort.test_ids
    new = stress_test(models, cohort.frames, ids, n_seeds=2)
    old = stress_test(models, cohort.frames, ids, n_seeds=2, per_copy=True)
    pd.testing.assert_frame_equal(new.drop(columns="prob"), old.drop(columns="prob"))
    np.testing.assert_allclose(new["prob"], old["prob"], rtol=0, atol=1e-6)
    # the masks did change predictions: every model's rate-0.9 scores differ from its full ones
    for name, g in new[new["scenario"] == "global"].groupby("strategy"):
        full = g.loc[g["rate"] == 0.0, "prob"].to_numpy()
        dropped = g.loc[(g["rate"] == 0.9) & (g["mask_seed"] == 0), "prob"].to_numpy()
        assert np.abs(full[: len(dropped)] - dropped).max() > 1e-3, name


def test_the_mlflow_input_example_is_synthetic_and_every_model_scores_it(
    cohort, unimodal, fused
) -> None:
    """The example stored with each registered version holds no patient's id or value, and
    every kind's model still reads it (the pyfunc's own path: JSON -> frames -> predict)."""
    import json

    from fusion_assets.pyfunc_io import input_example, json_to_frames

    ids = cohort.val_ids[:2]
    example = input_example(cohort.frames, ids)
    assert example["patient_id"].tolist() == ["example-0", "example-1"]
    text = example.to_json()
    assert not any(
        pid in text for pid in cohort.frames[cohort.spec.modality_names[0]]["patient_id"]
    )

    neutral = (0, 0.0, False, "", "example", None, "2000-01-01T00:00:00")
    for modality in cohort.spec.modality_names:
        record = json.loads(example[modality].iloc[0])
        assert set(record) == set(cohort.frames[modality].columns) - {"patient_id"}
        for value in record.values():
            if isinstance(value, list) and value and isinstance(value[0], int):
                assert value == list(range(len(value)))  # integer arrays (sparse indices)
            else:
                assert all(v in neutral for v in (value if isinstance(value, list) else [value]))
    frames = json_to_frames(example, list(cohort.spec.modality_names))
    for name, model in _all_models(unimodal, fused).items():
        prob = model.predict_proba(model.prepare(frames, example["patient_id"].tolist()))
        assert len(prob) == 2 and np.isfinite(prob).all() and ((prob > 0) & (prob < 1)).all(), name
