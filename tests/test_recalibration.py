"""Issue 11 item 1: recalibration on patients the model was not fitted on; the late stacker
shrunk toward the best single modality."""

from __future__ import annotations

import numpy as np
import pytest

from fusion_assets.metrics.classification import auroc
from fusion_assets.models.api import load_model, save_model
from fusion_assets.models.config import EncoderConfig, FusionConfig
from fusion_assets.models.recalibration import fit_platt, fit_recalibration
from fusion_assets.models.stacking import choose_stack
from fusion_assets.models.strategies import STRATEGIES
from fusion_assets.models.training import label_vector, train_fusion, train_unimodal
from tests.fixtures.cohort import SignalCohort, signal_cohort


def _overconfident(rng: np.random.Generator, n: int, factor: float = 3.0):
    """Labels from true risks, and a model whose logits are ``factor`` x the true ones."""
    true_logit = rng.normal(0.0, 1.2, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-true_logit))).astype(float)
    return 1 / (1 + np.exp(-factor * true_logit)), y


def _slope(prob: np.ndarray, y: np.ndarray) -> float:
    return fit_platt(prob, y, prior_weight=0.0)[1]


def test_platt_moves_an_overconfident_slope_toward_one() -> None:
    rng = np.random.default_rng(0)
    val_p, val_y = _overconfident(rng, 300)
    test_p, test_y = _overconfident(rng, 3000)
    before = _slope(test_p, test_y)
    recalibration = fit_recalibration(val_p, val_y, "platt")
    after = _slope(recalibration.apply(test_p), test_y)
    assert before < 0.45  # the planted over-confidence (1 / 3)
    assert abs(after - 1) < 0.2 and abs(after - 1) < abs(before - 1)
    # a positive slope: the ranking (AUROC) is unchanged
    assert auroc(test_y, recalibration.apply(test_p)) == pytest.approx(auroc(test_y, test_p))


def test_isotonic_is_monotone_and_identity_without_two_classes() -> None:
    rng = np.random.default_rng(1)
    p, y = _overconfident(rng, 400)
    iso = fit_recalibration(p, y, "isotonic")
    grid = np.linspace(0, 1, 101)
    assert iso.method == "isotonic" and np.all(np.diff(iso.apply(grid)) >= 0)
    assert iso.apply(grid).min() > 0 and iso.apply(grid).max() < 1
    assert fit_recalibration(p, np.zeros_like(y), "platt").apply(p) == pytest.approx(p)
    with pytest.raises(ValueError, match="Unknown recalibration"):
        fit_recalibration(p, y, "beta")


@pytest.fixture(scope="module")
def cohort() -> SignalCohort:
    return signal_cohort(n=120, seed=3)


@pytest.mark.parametrize("strategy", ["single", *STRATEGIES])
def test_every_model_is_recalibrated_on_its_validation_patients_only(
    cohort: SignalCohort, strategy: str, tmp_path
) -> None:
    """The recalibration is the fit on the validation rows' raw probabilities: refitting on
    the training rows (leakage) or on both gives other parameters, and it is saved with
    the model."""
    args = (cohort.frames, cohort.labels, cohort.train_ids, cohort.val_ids)
    modality = cohort.spec.modality_names[0]
    unimodal = {
        m: train_unimodal(cohort.spec, m, *args, EncoderConfig.tiny())[0]
        for m in cohort.spec.modality_names
    }
    if strategy == "single":
        fitted = unimodal[modality]
    else:
        fitted, _ = train_fusion(strategy, cohort.spec, *args, unimodal, FusionConfig.tiny())

    def fit_on(ids):
        raw = fitted.predict_proba(fitted.prepare(cohort.frames, ids), recalibrated=False)
        return fit_recalibration(raw, label_vector(cohort.labels, ids), "platt")

    recalibration = fitted.recalibration
    assert recalibration.method == "platt" and recalibration.n == len(cohort.val_ids)
    on_val = fit_on(cohort.val_ids)
    assert (recalibration.intercept, recalibration.slope) == pytest.approx(
        (on_val.intercept, on_val.slope)
    )
    leaked = fit_on(cohort.train_ids + cohort.val_ids)
    assert (leaked.intercept, leaked.slope) != pytest.approx(
        (recalibration.intercept, recalibration.slope), abs=1e-6
    )
    prepared = fitted.prepare(cohort.frames, cohort.test_ids)
    loaded = load_model(save_model(fitted, tmp_path / "m"))
    np.testing.assert_allclose(loaded.predict_proba(prepared), fitted.predict_proba(prepared))
    raw = fitted.predict_proba(prepared, recalibrated=False)
    np.testing.assert_allclose(fitted.predict_proba(prepared), recalibration.apply(raw))


def test_stacking_shrinks_toward_the_best_modality_and_drops_noise() -> None:
    """A noise modality beside an informative one: the stack chosen by inner CV keeps the
    informative modality at full weight and gives the noise next to none."""
    rng = np.random.default_rng(2)
    n = 80
    signal = rng.normal(0, 1.5, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-signal))).astype(float)
    logits = np.column_stack([rng.normal(0, 2.0, n), signal])  # modality 0: noise
    present = np.ones_like(logits, dtype=bool)
    stack = choose_stack(logits, present, y, base_l2=1.0)
    assert stack.toward == 1
    assert abs(stack.weight[0]) < 0.15 and stack.weight[1] > 0.6
