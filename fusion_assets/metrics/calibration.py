"""When the report calls a strategy's calibration acceptable, and how it says so.

The rule is judged from the bootstrap intervals of the subgroup table, never
from the point estimates alone:

- the **slope** is acceptable when its interval contains 1 or lies within
  ``SLOPE_BAND`` [0.8, 1.25];
- the **intercept** (calibration in the large) is acceptable when its interval
  contains 0 or lies within ``INTERCEPT_BAND`` [-0.2, 0.2];
- calibration is **acceptable** when both are. Otherwise it is poor, and the
  side of the ideal the interval lies on says how: slope below 1, predictions
  too extreme; above 1, too timid; intercept above 0, risks under-estimated on
  average; below 0, over-estimated.

An acceptable parameter whose interval also reaches outside its band is marked
*wide*: the data do not rule out poor calibration either. Without an interval
(too few resamples with a finite fit) calibration is not judged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SLOPE_BAND = (0.8, 1.25)
INTERCEPT_BAND = (-0.2, 0.2)

RULE = (
    "Calibration is judged from the intervals: acceptable when the slope interval contains 1 "
    f"or lies within [{SLOPE_BAND[0]}, {SLOPE_BAND[1]}] and the intercept interval contains 0 "
    f"or lies within [{INTERCEPT_BAND[0]}, {INTERCEPT_BAND[1]}]; otherwise poor (slope below 1: "
    "probabilities too extreme; above 1: too timid; intercept above 0: risk under-estimated on "
    "average; below 0: over-estimated). 'Wide': acceptable, but the interval also reaches "
    "outside the band, so poor calibration is not ruled out either."
)

# How each parameter is off, below / above its ideal: (table label, sentence with {s} = strategy).
_DIRECTIONS = {
    "cal_slope": (
        ("too extreme", "probabilities of {s} are too extreme"),
        ("too timid", "probabilities of {s} are too timid"),
    ),
    "cal_intercept": (
        ("over-estimates risk", "{s} over-estimates risk on average"),
        ("under-estimates risk", "{s} under-estimates risk on average"),
    ),
}


def _parameter(lo: float, hi: float, ideal: float, band: tuple[float, float]) -> str:
    """'ok', 'wide' (ok only because a wide interval contains the ideal), 'low', 'high' or
    'unknown' (no interval)."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "unknown"
    within = band[0] <= lo and hi <= band[1]
    if within:
        return "ok"
    if lo <= ideal <= hi:
        return "wide"
    return "low" if hi < ideal else "high"


@dataclass(frozen=True)
class CalibrationJudgement:
    """The rule applied to one strategy's all-patients (or any) row of the subgroup table."""

    strategy: str
    slope: str  # ok | wide | low | high | unknown
    intercept: str
    slope_text: str  # "slope 0.49 [0.24, 0.97]"
    intercept_text: str

    @property
    def acceptable(self) -> bool | None:
        """True / False by the rule; None when an interval is missing."""
        if "unknown" in (self.slope, self.intercept):
            return None
        return self.slope in ("ok", "wide") and self.intercept in ("ok", "wide")

    def _problems(self) -> list[tuple[str, str]]:
        """(table label, phrase with its interval) for each parameter outside the rule."""
        out = []
        for key, state, text in (
            ("cal_slope", self.slope, self.slope_text),
            ("cal_intercept", self.intercept, self.intercept_text),
        ):
            if state in ("low", "high"):
                label, phrase = _DIRECTIONS[key][state == "high"]
                out.append((label, f"{phrase.format(s=self.strategy)}: {text}"))
        return out

    @property
    def label(self) -> str:
        """A short cell for tables: acceptable, acceptable (wide), too extreme, …"""
        if self.acceptable is None:
            return "not judged"
        if self.acceptable:
            return "acceptable (wide)" if "wide" in (self.slope, self.intercept) else "acceptable"
        return "; ".join(label for label, _ in self._problems())

    def sentence(self) -> str:
        """One plain sentence for model cards, notes and the verdict."""
        both = f"{self.slope_text}, {self.intercept_text}"
        if self.acceptable is None:
            return f"calibration of {self.strategy} could not be judged (no interval: {both})"
        if not self.acceptable:
            phrases = "; ".join(phrase for _, phrase in self._problems())
            return (
                f"{phrases}, even after recalibration on held-out patients; do not read its "
                "probabilities as risks"
            )
        if "wide" in (self.slope, self.intercept):
            return (
                f"calibration of {self.strategy} is acceptable by its intervals ({both}), but they "
                "are wide: poor calibration is not ruled out either"
            )
        return f"calibration of {self.strategy} is acceptable ({both})"


def _interval_text(name: str, est: float, lo: float, hi: float, signed: bool) -> str:
    f = "{:+.2f}" if signed else "{:.2f}"
    if not np.isfinite(est):
        return f"{name} –"
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return f"{name} {f.format(est)}"
    return f"{name} {f.format(est)} [{f.format(lo)}, {f.format(hi)}]"


def judge_calibration(row) -> CalibrationJudgement:
    """The rule (module docstring) on a subgroup-table row (a mapping with the cal_* columns)."""
    v = {k: float(row[k]) for k in _COLUMNS}
    return CalibrationJudgement(
        strategy=str(row["strategy"]),
        slope=_parameter(v["cal_slope_ci_low"], v["cal_slope_ci_high"], 1.0, SLOPE_BAND),
        intercept=_parameter(
            v["cal_intercept_ci_low"], v["cal_intercept_ci_high"], 0.0, INTERCEPT_BAND
        ),
        slope_text=_interval_text(
            "slope", v["cal_slope"], v["cal_slope_ci_low"], v["cal_slope_ci_high"], False
        ),
        intercept_text=_interval_text(
            "intercept",
            v["cal_intercept"],
            v["cal_intercept_ci_low"],
            v["cal_intercept_ci_high"],
            True,
        ),
    )


_COLUMNS = (
    "cal_slope",
    "cal_slope_ci_low",
    "cal_slope_ci_high",
    "cal_intercept",
    "cal_intercept_ci_low",
    "cal_intercept_ci_high",
)
