"""Issue 11 item 1: recalibration on patients the model was not fitted on; the late stacker
shrunk toward the best single modality."""

from __future__ import annotations

import numpy as np
import pytest

from fusion_assets.metrics.classification import auroc, calibration_intercept_slope
from fusion_assets.models.api import load_model, save_model
from fusion_assets.models.config import EncoderConfig, FusionConfig
from fusion_assets.models.recalibration import (
    MAX_SLOPE,
    MIN_EVENTS_PER_CLASS,
    PRIOR_PATIENTS,
    fit_platt,
    fit_recalibration,
)
from fusion_assets.models.stacking import choose_stack, one_standard_error_choice
from fusion_assets.models.strategies import STRATEGIES
from fusion_assets.models.training import label_vector, train_fusion, train_unimodal
from tests.fixtures.cohort import SignalCohort, signal_cohort


def _overconfident(rng: np.random.Generator, n: int, factor: float = 3.0):
    """Labels from true risks, and a model whose logits are ``factor`` x the true ones."""
    true_logit = rng.normal(0.0, 1.2, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-true_logit))).astype(float)
    return 1 / (1 + np.exp(-factor * true_logit)), y


def _slope(prob: np.ndarray, y: np.ndarray) -> float:
    return calibration_intercept_slope(y, prob)[1]


def test_platt_moves_an_overconfident_slope_toward_one() -> None:
    rng = np.random.default_rng(0)
    val_p, val_y = _overconfident(rng, 3000)
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


def test_the_prior_is_worth_a_fixed_number_of_patients() -> None:
    """25 validation patients move the slope about 25 / (25 + PRIOR_PATIENTS) of the way
    from 1 to their own fit; 1,000 patients almost all the way."""
    rng = np.random.default_rng(4)
    for n, tolerance in ((25, 0.12), (1000, 0.03)):
        p, y = _overconfident(rng, n)
        own = fit_platt(p, y, prior_patients=0.0)[1]
        shrunk = fit_platt(p, y)[1]
        expected = 1 + (own - 1) * n / (n + PRIOR_PATIENTS)
        assert own < shrunk <= 1 and shrunk == pytest.approx(expected, abs=tolerance)


def test_platt_only_tempers_an_under_confident_model() -> None:
    """Logits at a third of the true ones want a slope of ~3: kept at MAX_SLOPE = 1 with the
    intercept refitted, so validation patients that flatter the model cannot sharpen it."""
    rng = np.random.default_rng(5)
    p, y = _overconfident(rng, 2000, factor=1 / 3)
    assert fit_platt(p, y, prior_patients=0.0)[1] == MAX_SLOPE == 1.0
    assert _slope(p, y) > 2.5
    shifted = np.clip(p * 0.6, 1e-6, 1)  # an intercept to correct at the bound
    a, b = fit_platt(shifted, y)
    assert b == 1.0 and a > 0.3


def test_too_few_events_leave_the_probabilities_as_they_are() -> None:
    rng = np.random.default_rng(6)
    p, _ = _overconfident(rng, 30)
    y = (np.arange(30) < MIN_EVENTS_PER_CLASS - 1).astype(float)
    for method in ("platt", "isotonic"):
        skipped = fit_recalibration(p, y, method)
        assert skipped.method == "none" and skipped.apply(p) == pytest.approx(p)
        assert "fewer than the 5 needed" in skipped.describe()
    lowered = fit_recalibration(p, y, "platt", min_events=MIN_EVENTS_PER_CLASS - 1)
    assert "fewer than" not in lowered.describe()


def test_a_map_is_kept_only_when_it_beats_the_identity_out_of_sample() -> None:
    """Well-calibrated probabilities keep the identity (a map fitted on them is noise, and
    the gate says so); a grossly over-confident model on 60 patients is recalibrated."""
    rng = np.random.default_rng(8)
    calibrated_p, calibrated_y = _overconfident(rng, 60, factor=1.0)
    kept = fit_recalibration(calibrated_p, calibrated_y, "platt")
    assert kept.method == "none" and "did not beat the identity" in kept.describe()
    wild_p, wild_y = _overconfident(rng, 60, factor=6.0)
    fitted = fit_recalibration(wild_p, wild_y, "platt")
    assert fitted.method == "platt" and fitted.slope < 0.5
    # rows of one patient (several repeats) stay in one fold of the gate
    twice = fit_recalibration(
        np.tile(wild_p, 2), np.tile(wild_y, 2), "platt", groups=np.tile(np.arange(60), 2)
    )
    assert twice.method == "platt" and twice.n == 120


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
    if strategy == "single" or STRATEGIES[strategy].neural:
        assert recalibration.n == len(cohort.val_ids)
        assert recalibration == fit_on(cohort.val_ids)
    else:  # a small cohort's reference: cross-fitted on training and validation patients
        assert recalibration.n == len(cohort.train_ids) + len(cohort.val_ids)
    # the same fit on the training rows too (leakage) finds another map
    assert fit_on(cohort.train_ids + cohort.val_ids) != recalibration
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


def test_one_standard_error_rule_keeps_the_shrunk_stack_unless_a_blend_is_clearly_better() -> None:
    """Per-patient held-out losses: a blend 0.004 better on average but ±0.05 per patient
    (standard error ~0.008) is noise, so the strongest shrinkage (infinity) is kept."""
    base = np.random.default_rng(7).normal(0.6, 0.3, 40)
    grid = [1.0, 4.0, float("inf")]
    swing = 0.05 * (-1.0) ** np.arange(40)
    noisy = [base - 0.004 + swing, base - 0.002 - swing, base]
    assert one_standard_error_choice(grid, noisy) == float("inf")
    clear = [base - 0.2, base - 0.1, base]
    assert one_standard_error_choice(grid, clear) == 1.0
