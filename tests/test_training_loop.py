"""The training loop's data path and determinism: tensors kept across epochs, chunked
validation, seeded fits, bagged members equal to independent fits."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

import fusion_assets.models.training as training
from fusion_assets.models.api import predict_logits
from fusion_assets.models.batch import make_batch, subset_inputs, take_rows, to_tensors
from fusion_assets.models.config import EncoderConfig, FusionConfig
from fusion_assets.models.fusion import Bagged
from fusion_assets.models.inputs import fit_preprocessing, prepare
from fusion_assets.models.training import fit_module, train_fusion, train_unimodal
from fusion_assets.models.unimodal import UnimodalModel
from tests.fixtures.cohort import SignalCohort, signal_cohort


@pytest.fixture(scope="module")
def cohort() -> SignalCohort:
    return signal_cohort(n=160, seed=3)


@pytest.fixture(scope="module")
def prepared(cohort):
    preprocessing = fit_preprocessing(
        cohort.spec, cohort.frames, cohort.train_ids, EncoderConfig.tiny()
    )
    return prepare(cohort.spec, preprocessing, cohort.frames, cohort.train_ids)


@pytest.fixture(scope="module")
def unimodal(cohort):
    return {
        m: train_unimodal(
            cohort.spec,
            m,
            cohort.frames,
            cohort.labels,
            cohort.train_ids,
            cohort.val_ids,
            EncoderConfig.tiny(),
        )[0]
        for m in cohort.spec.modality_names
    }


def _fit(cohort, unimodal, strategy, config):
    fitted, result = train_fusion(
        strategy,
        cohort.spec,
        cohort.frames,
        cohort.labels,
        cohort.train_ids,
        cohort.val_ids,
        unimodal,
        config,
    )
    return fitted, result, fitted.predict_proba(fitted.prepare(cohort.frames, cohort.test_ids))


# --------------------------------------------------------------------------- gathering


def test_tensor_batches_hold_exactly_the_rows_asked_for(prepared):
    """Dense rows by fancy indexing; sparse bags re-packed entry for entry."""
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(prepared))[:37]
    idx[-1] = idx[0]  # a patient twice in one request
    batch = to_tensors(prepared).batch(torch.from_numpy(idx))
    np.testing.assert_array_equal(batch.present.numpy(), prepared.present[idx])
    for name, arrays in prepared.arrays.items():
        got = batch.inputs[name]
        if "offsets" not in arrays:
            assert set(got) == set(arrays) - {"x_nan"}
            for key, tensor in got.items():
                np.testing.assert_array_equal(tensor.numpy(), arrays[key][idx])
            continue
        ends = np.append(got["offsets"].numpy()[1:], len(got["index"]))
        for k, i in enumerate(idx):
            lo, n = arrays["offsets"][i], arrays["counts"][i]
            bag = slice(got["offsets"][k].item(), ends[k])
            np.testing.assert_array_equal(got["index"][bag].numpy(), arrays["index"][lo : lo + n])
            np.testing.assert_array_equal(got["weight"][bag].numpy(), arrays["weight"][lo : lo + n])


def test_make_batch_and_subset_agree_with_tensor_batches(prepared):
    idx = np.array([5, 0, 3, 17, 3])
    present = prepared.present.copy()
    present[:, 0] = False
    via_numpy = make_batch(prepared, idx, present)
    via_tensors = to_tensors(prepared).batch(torch.from_numpy(idx), torch.from_numpy(present))
    assert torch.equal(via_numpy.present, via_tensors.present) and not via_numpy.present[:, 0].any()
    for name in via_numpy.inputs:
        for key, tensor in via_numpy.inputs[name].items():
            assert torch.equal(tensor, via_tensors.inputs[name][key]), (name, key)
    sub = subset_inputs(prepared, idx)
    whole = to_tensors(sub).batch(torch.arange(len(idx)))
    for name in whole.inputs:
        for key, tensor in whole.inputs[name].items():
            assert torch.equal(tensor, via_tensors.inputs[name][key]), (name, key)


def test_an_empty_row_set_gives_empty_bags(prepared):
    sparse = to_tensors(prepared).inputs["snp.calls"]
    out = take_rows(sparse, torch.zeros(0, dtype=torch.int64))
    assert [len(t) for t in out.values()] == [0, 0, 0]


def test_tensors_share_the_prepared_arrays_memory(prepared):
    tensors = to_tensors(prepared)
    x = prepared.arrays["labs"]["x"]
    assert tensors.inputs["labs"]["x"].data_ptr() == x.ctypes.data
    assert "x_nan" not in tensors.inputs["labs"]


# --------------------------------------------------------------------------- the loop


def test_fit_module_takes_prepared_or_tensor_inputs_alike(cohort, prepared):
    """Converting once and sharing the tensors (as bagged members do) changes nothing."""
    modality = "scan"
    preprocessing = fit_preprocessing(
        cohort.spec, cohort.frames, cohort.train_ids, EncoderConfig.tiny()
    )
    val = prepare(cohort.spec, preprocessing, cohort.frames, cohort.val_ids)
    y_train = cohort.labels.loc[cohort.train_ids].to_numpy(np.float32)
    y_val = cohort.labels.loc[cohort.val_ids].to_numpy(np.float32)
    config = EncoderConfig.tiny()
    column = cohort.spec.modality_names.index(modality)
    rows = np.flatnonzero(prepared.present[:, column]), np.flatnonzero(val.present[:, column])
    logits = []
    for train_in, val_in in [(prepared, val), (to_tensors(prepared), to_tensors(val))]:
        torch.manual_seed(0)
        model = UnimodalModel(cohort.spec, modality, preprocessing[modality], config)
        result = fit_module(model, train_in, y_train, val_in, y_val, config.train, *rows)
        logits.append(predict_logits(model, val, val.present))
    np.testing.assert_array_equal(logits[0], logits[1])
    assert result.best_epoch >= 1


def test_chunked_validation_scores_like_one_pass(cohort, unimodal, monkeypatch):
    """The early-stopping score does not depend on the validation chunk size."""
    fitted, _, _ = _fit(cohort, unimodal, "attention", FusionConfig.tiny())
    val = fitted.prepare(cohort.frames, cohort.val_ids)
    y_val = cohort.labels.loc[cohort.val_ids].to_numpy(np.float32)
    rows = np.arange(len(val))
    scores = []
    for chunk in (7, 10_000):
        monkeypatch.setattr(training, "VALIDATION_CHUNK", chunk)
        scores.append(training._Validation(to_tensors(val), rows, y_val).logits(fitted.predictor))
    np.testing.assert_allclose(scores[0], scores[1], rtol=1e-5, atol=1e-6)
    reference = predict_logits(fitted.predictor, val, val.present)
    np.testing.assert_allclose(scores[0], reference, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- determinism


def test_the_same_seed_gives_identical_predictions(cohort, unimodal):
    config = replace(FusionConfig.tiny(), n_seeds=2)
    for strategy in ("early", "intermediate", "attention"):
        first, second = (_fit(cohort, unimodal, strategy, config) for _ in range(2))
        assert first[1].history == second[1].history, strategy
        np.testing.assert_array_equal(first[2], second[2], err_msg=strategy)
    other = replace(config, train=replace(config.train, seed=1))
    assert not np.array_equal(
        _fit(cohort, unimodal, "early", config)[2], _fit(cohort, unimodal, "early", other)[2]
    )


def test_bag_members_equal_independent_fits_with_their_seeds(cohort, unimodal):
    """Member k of a bag trained with seed s is the single model trained with seed s + k."""
    single = FusionConfig.tiny()
    bag, _, bag_p = _fit(cohort, unimodal, "intermediate", replace(single, n_seeds=2))
    assert isinstance(bag.predictor, Bagged)
    test = bag.prepare(cohort.frames, cohort.test_ids)
    member_logits = []
    for k, member in enumerate(bag.predictor.members):
        seeded = replace(single, train=replace(single.train, seed=k))
        alone, _, _ = _fit(cohort, unimodal, "intermediate", seeded)
        logits = predict_logits(member, test, test.present)
        np.testing.assert_array_equal(logits, predict_logits(alone.predictor, test, test.present))
        member_logits.append(logits)
    np.testing.assert_allclose(bag_p, 1 / (1 + np.exp(-np.mean(member_logits, axis=0))), rtol=1e-6)
