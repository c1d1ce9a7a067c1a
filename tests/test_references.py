"""The non-neural references on the suite's small signal cohort (real fits).

Gradient boosting is scikit-learn's default HGB on the concatenated features (so
no default baseline beats it on its own features); on a cohort this small every
reference is fitted on the training and validation patients together, with its
recalibration from cross-fitted predictions (``models/crossfit.py``); logistic
regression imputes and scales from the patients it is fitted on only and picks C by
inner CV; the stacked
reference scores a patient from the modalities it has. Every reference is in the
registry, survives a pickle round trip and scores patients with modalities absent.
"""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

from fusion_assets.metrics.classification import auroc
from fusion_assets.models.config import FusionConfig
from fusion_assets.models.logistic_reference import C_GRID, LogisticReference
from fusion_assets.models.reference import ReferenceModel
from fusion_assets.models.reference_features import NonNeuralModel
from fusion_assets.models.stacked_reference import StackedReference
from fusion_assets.models.strategies import STRATEGIES
from fusion_assets.models.training import train_fusion
from fusion_assets.names import REFERENCE, REFERENCE_LOGISTIC, REFERENCE_STACKED
from tests.fixtures.cohort import SignalCohort, signal_cohort

REFERENCES = (REFERENCE, REFERENCE_LOGISTIC, REFERENCE_STACKED)
TABULAR_AND_GENES = ("labs", "genes")


@pytest.fixture(scope="module")
def cohort() -> SignalCohort:
    return signal_cohort(n=240, seed=3, presence_rate=0.7)


@pytest.fixture(scope="module")
def fitted(cohort: SignalCohort) -> dict:
    """Each reference on two modalities (labs, genes), no unimodal models needed."""
    frames = {m: cohort.frames[m] for m in TABULAR_AND_GENES}
    return {
        name: train_fusion(
            name,
            cohort.spec,
            frames,
            cohort.labels,
            cohort.train_ids,
            cohort.val_ids,
            config=FusionConfig(),
        )
        for name in REFERENCES
    }


def test_references_are_registered_non_neural_strategies():
    for name in REFERENCES:
        assert name in STRATEGIES and not STRATEGIES[name].neural
        assert issubclass(STRATEGIES[name].model_class(), NonNeuralModel)


def test_every_reference_learns_and_pickles(cohort, fitted):
    for name, (model, result) in fitted.items():
        assert result.val_auroc > 0.65, name
        prepared = model.prepare(cohort.frames, cohort.test_ids)
        p = model.predict_proba(prepared, recalibrated=False)  # the predictor's own
        assert np.isfinite(p).all() and ((p > 0) & (p < 1)).all()
        again = pickle.loads(pickle.dumps(model.predictor))
        np.testing.assert_array_equal(again.predict_proba(prepared, prepared.present), p)
        assert model.predictor.n_parameters > 0


def test_gradient_boosting_is_the_default_hgb_on_its_features(cohort, fitted):
    model = fitted[REFERENCE][0]
    reference: ReferenceModel = model.predictor
    fitted_ids = [*cohort.train_ids, *cohort.val_ids]  # cross-fitted: both splits
    train = model.prepare(cohort.frames, fitted_ids)
    test = model.prepare(cohort.frames, cohort.test_ids)
    x = reference.blocks.matrix(train, train.present)
    y = cohort.labels.loc[fitted_ids].to_numpy()
    default = HistGradientBoostingClassifier(random_state=0).fit(x, y)
    expected = default.predict_proba(reference.blocks.matrix(test, test.present))[:, 1]
    np.testing.assert_allclose(model.predict_proba(test, recalibrated=False), expected, rtol=1e-12)
    # unweighted log loss: the mean training prediction is the training prevalence
    assert model.predict_proba(train, recalibrated=False).mean() == pytest.approx(
        y.mean(), abs=0.02
    )


def test_logistic_learns_its_imputation_from_fitted_patients_only(cohort, fitted):
    model = fitted[REFERENCE_LOGISTIC][0]
    reference: LogisticReference = model.predictor
    assert np.isclose(C_GRID, reference.chosen_c).any()
    # refit with the test patients' labs changed: the same model
    frames = {m: cohort.frames[m].copy() for m in TABULAR_AND_GENES}
    labs = frames["labs"]
    others = ~labs["patient_id"].isin([*cohort.train_ids, *cohort.val_ids])
    labs.loc[others, "lab_a"] = 1e6
    refit, _ = train_fusion(
        REFERENCE_LOGISTIC,
        cohort.spec,
        frames,
        cohort.labels,
        cohort.train_ids,
        cohort.val_ids,
        config=FusionConfig(),
    )
    imputer = refit.predictor.estimator[0]
    np.testing.assert_array_equal(imputer.statistics_, reference.estimator[0].statistics_)
    np.testing.assert_array_equal(
        refit.predictor.estimator[-1].coef_, reference.estimator[-1].coef_
    )


def test_absent_modalities_are_scored_from_what_a_patient_has(cohort, fitted):
    ids = cohort.test_ids
    for name, (model, _) in fitted.items():
        prepared = model.prepare(cohort.frames, ids)
        keep = np.ones_like(prepared.present)
        keep[:, cohort.spec.modality_names.index("genes")] = False
        without = model.predict_proba(prepared, keep)
        assert np.isfinite(without).all(), name
        # the genes' values no longer matter once genes are removed
        shuffled = model.prepare(cohort.frames, ids)
        shuffled.arrays["genes"]["x"] = shuffled.arrays["genes"]["x"][::-1].copy()
        np.testing.assert_allclose(model.predict_proba(shuffled, keep), without, err_msg=name)


def test_stacking_combines_out_of_fold_modality_models_with_flags(cohort, fitted):
    stacked: StackedReference = fitted[REFERENCE_STACKED][0].predictor
    assert set(stacked.models) == set(TABULAR_AND_GENES)
    # one logit per informative modality (positive weight) and one availability flag each
    assert stacked.stacked == list(TABULAR_AND_GENES) and stacked.direct is None
    assert stacked.stacker.coef_.shape == (1, 2 * len(TABULAR_AND_GENES))
    assert (stacked.stacker.coef_[0, :2] > 0).all()
    # each modality model alone is informative on the patients that have it
    model = fitted[REFERENCE_STACKED][0]
    test = model.prepare(cohort.frames, cohort.test_ids)
    y = cohort.labels.loc[cohort.test_ids].to_numpy()
    col = cohort.spec.modality_names.index("labs")
    has = test.present[:, col]
    x = stacked.blocks.block("labs", test, test.present)[has]
    assert auroc(y[has], stacked.models["labs"].predict_proba(x)[:, 1]) > 0.6


def test_stacker_leaves_out_modalities_it_would_weigh_negatively(cohort, fitted):
    stacked: StackedReference = copy.deepcopy(fitted[REFERENCE_STACKED][0].predictor)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    signal = 2.0 * y - 1.0
    flags = np.ones((len(y), 2))
    # genes' out-of-fold logits against the label: noise a positive-weight stack ignores
    logits = {"labs": signal + rng.normal(0, 1, len(y)), "genes": -signal}
    stacked._fit_stacker(logits, flags, y)
    assert stacked.stacked == ["labs"] and stacked.stacker.coef_[0, 0] > 0
    # no modality with a positive weight: the one with the lowest out-of-fold loss alone
    stacked.oof_log_loss = {"labs": 0.70, "genes": 0.65}
    stacked._fit_stacker({"labs": -signal, "genes": -signal}, flags, y)
    assert stacked.stacker is None and stacked.direct == "genes"
    model = fitted[REFERENCE_STACKED][0]
    test = model.prepare(cohort.frames, cohort.test_ids)
    alone = stacked.models["genes"].predict_proba(stacked.blocks.block("genes", test, test.present))
    has = test.present[:, cohort.spec.modality_names.index("genes")]
    p = stacked.predict_proba(test, test.present)
    np.testing.assert_allclose(p[has], alone[has, 1], rtol=1e-6)
    assert np.allclose(p[~has], stacked.prevalence)


def test_small_cohort_references_are_cross_fitted_on_train_and_validation(cohort, fitted):
    from fusion_assets.models.crossfit import crossfit_applies

    y_train = cohort.labels.loc[cohort.train_ids].to_numpy()
    y_val = cohort.labels.loc[cohort.val_ids].to_numpy()
    assert crossfit_applies(y_train, y_val)
    assert not crossfit_applies(y_train, y_val[:0])  # no validation patients: plain fit
    for name, (model, result) in fitted.items():
        assert result.n_train == len(cohort.train_ids) + len(cohort.val_ids), name
        assert "cross-fitted" in str(result.details["fitted_on"]), name
        # the validation AUROC is out-of-sample: below the in-sample AUROC on those patients
        val = model.prepare(cohort.frames, cohort.val_ids)
        in_sample = auroc(y_val, model.predict_proba(val, recalibrated=False))
        assert result.val_auroc < in_sample, name
        assert model.recalibration.n == len(y_train) + len(y_val), name
