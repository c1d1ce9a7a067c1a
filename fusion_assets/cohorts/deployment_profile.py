"""The deployment availability profile: which modalities the deployment will have.

Optional in the cohort spec (``deployment:``) and in the subgroup report's run
config. Either per-modality availability rates (modalities independent) or an
explicit mix of availability patterns (modalities joined by ``+`` in spec order, as
in ``profile.availability``, or ``none``). ``metrics/deployment.py`` reweights the
held-out patients to it.

Pure pydantic / numpy; no dagster.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

# Rates turn into 2^M patterns; beyond this many modalities give patterns instead.
MAX_RATE_MODALITIES = 16
NO_MODALITY = "none"  # the pattern of a patient with no modality (profile.availability)


class DeploymentProfile(BaseModel):
    """Expected modality availability at deployment: ``rates`` or ``patterns``, not both.

    ``rates``: modality -> probability it is available for a patient (independent);
    every modality of the cohort must be named. ``patterns``: availability pattern
    (modalities joined by ``+`` as in ``profile.availability``, or ``none``) ->
    relative share (normalised to sum to 1).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(default="deployment", description="How the report names this profile")
    rates: dict[str, float] | None = Field(
        default=None, description="Modality -> availability rate in [0, 1]"
    )
    patterns: dict[str, float] | None = Field(
        default=None, description="Availability pattern -> share (normalised)"
    )

    @model_validator(mode="after")
    def _one_of(self) -> DeploymentProfile:
        if (self.rates is None) == (self.patterns is None):
            raise ValueError("a deployment profile gives exactly one of 'rates' or 'patterns'")
        if self.rates is not None:
            bad = {m: r for m, r in self.rates.items() if not 0.0 <= r <= 1.0}
            if bad:
                raise ValueError(f"deployment rates must lie in [0, 1]; got {bad}")
        if self.patterns is not None:
            bad = {p: s for p, s in self.patterns.items() if s < 0}
            if bad or sum(self.patterns.values()) <= 0:
                raise ValueError(
                    f"deployment pattern shares must be non-negative with a positive sum; "
                    f"got {self.patterns}"
                )
        return self

    def target_mix(self, modalities: list[str]) -> pd.Series:
        """Pattern -> share (sums to 1, zero shares dropped), patterns in ``modalities`` order."""
        if self.rates is not None:
            return _mix_from_rates(self.rates, modalities)
        return _mix_from_patterns(self.patterns or {}, modalities)


def pattern_name(present: tuple[bool, ...] | list[bool], modalities: list[str]) -> str:
    """The pattern string of ``profile.availability`` for presence flags in spec order."""
    names = [m for m, has in zip(modalities, present, strict=True) if has]
    return "+".join(names) if names else NO_MODALITY


def _mix_from_rates(rates: dict[str, float], modalities: list[str]) -> pd.Series:
    unknown = sorted(set(rates) - set(modalities))
    missing = [m for m in modalities if m not in rates]
    if unknown or missing:
        raise ValueError(
            f"deployment rates must name every modality {modalities} and nothing else: "
            f"missing {missing}, unknown {unknown}"
        )
    if len(modalities) > MAX_RATE_MODALITIES:
        raise ValueError(
            f"{len(modalities)} modalities make {2 ** len(modalities)} patterns; give the "
            "deployment profile as 'patterns' instead of 'rates'."
        )
    shares = {}
    for present in itertools.product((True, False), repeat=len(modalities)):
        share = float(
            np.prod(
                [
                    rates[m] if has else 1.0 - rates[m]
                    for m, has in zip(modalities, present, strict=True)
                ]
            )
        )
        if share > 0:
            shares[pattern_name(present, modalities)] = share
    mix = pd.Series(shares, dtype=np.float64)
    return mix / mix.sum()


def _mix_from_patterns(patterns: dict[str, float], modalities: list[str]) -> pd.Series:
    shares: dict[str, float] = {}
    for raw, share in patterns.items():
        names = [] if raw.strip() == NO_MODALITY else [m.strip() for m in raw.split("+")]
        unknown = [m for m in names if m not in modalities]
        if unknown or len(set(names)) != len(names):
            raise ValueError(
                f"deployment pattern {raw!r}: modalities must be distinct names of {modalities} "
                f"joined by '+' (or {NO_MODALITY!r}); unknown {unknown}"
            )
        key = pattern_name([m in names for m in modalities], modalities)
        shares[key] = shares.get(key, 0.0) + float(share)
    mix = pd.Series(shares, dtype=np.float64)
    mix = mix[mix > 0]
    return mix / mix.sum()


def at_deployment(summary: dict, profile: DeploymentProfile, modalities: list[str]) -> dict:
    """A profile summary (``warehouse.profile.summarize_profile``) with its availability axes
    replaced by the deployment's: each modality's rate and the complete-case share under the
    target mix. Dimensionality, cadence and cohort size stay the training cohort's."""
    mix = profile.target_mix(modalities)
    has = {m: [m in p.split("+") for p in mix.index] for m in modalities}
    availability = {m: float(mix[np.array(has[m], dtype=bool)].sum()) for m in modalities}
    complete = "+".join(modalities)
    return {
        **summary,
        "availability": {m: availability[m] for m in summary["availability"]},
        "complete_case_fraction": float(mix.get(complete, 0.0)),
        "deployment": profile.name,
    }
