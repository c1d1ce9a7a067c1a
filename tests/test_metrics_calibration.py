"""The calibration rule of the report: judged from the intervals, never the point alone."""

from __future__ import annotations

import pytest

from fusion_assets.metrics.calibration import RULE, judge_calibration

NAN = float("nan")


def _row(slope, slope_ci, intercept=0.0, intercept_ci=(-0.1, 0.1)) -> dict:
    return {
        "strategy": "late",
        "cal_slope": slope,
        "cal_slope_ci_low": slope_ci[0],
        "cal_slope_ci_high": slope_ci[1],
        "cal_intercept": intercept,
        "cal_intercept_ci_low": intercept_ci[0],
        "cal_intercept_ci_high": intercept_ci[1],
    }


@pytest.mark.parametrize(
    ("slope", "ci", "label"),
    [
        (1.01, (0.91, 1.12), "acceptable"),  # contains 1, within the band
        (0.90, (0.84, 0.97), "acceptable"),  # excludes 1 but lies within [0.8, 1.25]
        (0.70, (0.48, 1.05), "acceptable (wide)"),  # point outside the band, interval holds 1
        (0.34, (-0.23, 2.19), "acceptable (wide)"),  # consistent with 1, and with much else
        (0.85, (0.72, 0.97), "too extreme"),  # point inside the band, interval below it and 1
        (0.49, (0.24, 0.97), "too extreme"),
        (1.60, (1.30, 1.95), "too timid"),
    ],
)
def test_the_slope_is_judged_from_its_interval(slope, ci, label) -> None:
    judged = judge_calibration(_row(slope, ci))
    assert judged.label == label
    assert judged.acceptable is label.startswith("acceptable")


def test_the_intercept_is_judged_too_and_the_sentence_says_so_plainly() -> None:
    under = judge_calibration(_row(1.0, (0.9, 1.1), 0.45, (0.21, 0.70)))
    assert under.label == "under-estimates risk" and under.acceptable is False
    over = judge_calibration(_row(1.0, (0.9, 1.1), -0.30, (-0.45, -0.22)))
    assert over.label == "over-estimates risk"
    # A small but certain offset lies within [-0.2, 0.2]: acceptable.
    assert judge_calibration(_row(1.0, (0.9, 1.1), 0.06, (0.03, 0.09))).acceptable
    both = judge_calibration(_row(0.49, (0.24, 0.97), 0.45, (0.21, 0.70)))
    assert both.sentence() == (
        "probabilities of late are too extreme: slope 0.49 [0.24, 0.97]; late under-estimates "
        "risk on average: intercept +0.45 [+0.21, +0.70], even after recalibration on held-out "
        "patients; do not read its probabilities as risks"
    )
    assert "acceptable (" in judge_calibration(_row(1.0, (0.9, 1.1))).sentence()
    assert "wide" in judge_calibration(_row(0.34, (-0.23, 2.19))).sentence()


def test_without_an_interval_calibration_is_not_judged() -> None:
    judged = judge_calibration(_row(0.7, (NAN, NAN)))
    assert judged.acceptable is None and judged.label == "not judged"
    assert "could not be judged" in judged.sentence()
    assert judge_calibration(_row(NAN, (NAN, NAN))).slope_text == "slope –"


def test_the_rule_is_stated_with_its_bands() -> None:
    assert "[0.8, 1.25]" in RULE and "[-0.2, 0.2]" in RULE and "interval contains 1" in RULE
