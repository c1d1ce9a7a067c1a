"""The deployment availability profile: which modalities the deployment will have.

Optional in the cohort spec (``deployment:``) and in the evaluation's run config
(``DeploymentSettings``). Either per-modality availability rates (modalities
independent), an explicit mix of availability patterns (modalities joined by ``+``
in spec order, as in ``profile.availability``, or ``none``), or a landed batch whose
patients' pattern mix is the profile: that mix is measured in the warehouse
(``warehouse/deployment.py``, the one place a profile is resolved), which turns the
profile into a pattern mix that remembers its batch. ``metrics/deployment.py``
reweights the held-out patients to it.

Pure pydantic / numpy; no dagster.
"""

from __future__ import annotations

import hashlib
import itertools
import json

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from fusion_assets.disclosure import SMALL_CELL_LIMIT, partition_suppression
from fusion_assets.identifiers import check_batch_id

# Rates turn into 2^M patterns; beyond this many modalities give patterns instead.
MAX_RATE_MODALITIES = 16
NO_MODALITY = "none"  # the pattern of a patient with no modality (profile.availability)


class DeploymentProfile(BaseModel):
    """Expected modality availability at deployment: one of ``rates``, ``patterns``, ``batch``.

    ``rates``: modality -> probability it is available for a patient (independent);
    every modality of the cohort must be named. ``patterns``: availability pattern
    (modalities joined by ``+`` as in ``profile.availability``, or ``none``) ->
    relative share (normalised to sum to 1). ``batch``: a landed batch id; the mix is
    that batch's patients' patterns, measured by ``warehouse.deployment`` into
    ``patterns`` with ``batch_patients`` set (a measured profile: batch and patterns
    together, only with ``batch_patients``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(default="deployment", description="How the report names this profile")
    rates: dict[str, float] | None = Field(
        default=None, description="Modality -> availability rate in [0, 1]"
    )
    patterns: dict[str, float] | None = Field(
        default=None, description="Availability pattern -> share (normalised)"
    )
    batch: str | None = Field(
        default=None,
        description="A landed batch whose patients' availability-pattern mix is the profile",
    )
    batch_patients: int | None = Field(
        default=None,
        ge=1,
        description="Set when the batch's mix is measured (warehouse.deployment): its patients",
    )

    @model_validator(mode="after")
    def _one_of(self) -> DeploymentProfile:
        given = [k for k in SOURCES if getattr(self, k) is not None]
        if self.batch_patients is not None:  # measured on a batch: its mix and its id
            if given != ["patterns", "batch"]:
                raise ValueError(
                    "'batch_patients' is set when a batch's mix is measured, with 'batch' and "
                    f"its 'patterns' (got {given})"
                )
        elif len(given) != 1:
            raise ValueError(
                "a deployment profile gives exactly one of 'rates', 'patterns' or 'batch' "
                f"(got {given or 'none'})"
            )
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
        if self.batch is not None:
            check_batch_id(self.batch)  # a landing folder's name, or refused with the fix
        return self

    @property
    def needs_measuring(self) -> bool:
        """A landed batch named, its mix not measured yet (``warehouse.deployment``)."""
        return self.batch is not None and self.patterns is None

    def check(self, modalities: list[str]) -> None:
        """Raise ValueError unless the profile fits the cohort's modalities (a batch's mix is
        checked where it is measured)."""
        if not self.needs_measuring:
            self.target_mix(modalities)

    def target_mix(self, modalities: list[str]) -> pd.Series:
        """Pattern -> share (sums to 1, zero shares dropped), patterns in ``modalities`` order."""
        if self.rates is not None:
            return _mix_from_rates(self.rates, modalities)
        if self.needs_measuring:
            raise ValueError(
                f"deployment profile {self.name!r} names landed batch {self.batch!r}: its "
                "pattern mix is measured in the warehouse first "
                "(fusion_assets.warehouse.deployment.resolve_deployment)"
            )
        return _mix_from_patterns(self.patterns or {}, modalities)

    def hidden_patterns(self, limit: int = SMALL_CELL_LIMIT) -> set[str]:
        """Patterns whose share may not be published: a measured batch's patterns with few
        patients, and enough others that those cannot be recovered (``partition_suppression``);
        none for a profile someone wrote (its shares describe no patient)."""
        if self.batch_patients is None or self.patterns is None:
            return set()
        names = list(self.patterns)
        total = sum(self.patterns.values())
        counts = [round(self.patterns[p] / total * self.batch_patients) for p in names]
        hidden = partition_suppression(counts, float(self.batch_patients), limit=limit)
        return {p for p, h in zip(names, hidden, strict=True) if h}

    def as_given(self) -> DeploymentProfile:
        """The profile as a spec or a run gives it: a measured batch's mix left out."""
        if self.batch is None:
            return self
        return DeploymentProfile(name=self.name, batch=self.batch)

    def source(self) -> str:
        """Where the mix comes from, for the report."""
        if self.rates is not None:
            return "per-modality availability rates"
        if self.batch is None:
            return "an explicit availability-pattern mix"
        if self.batch_patients is None:
            return f"landed batch {self.batch!r} (not measured yet)"
        return (
            f"the availability-pattern mix of landed batch {self.batch!r} "
            f"({self.batch_patients} patients)"
        )


SOURCES = ("rates", "patterns", "batch")  # a profile gives one (a measured batch: two)


class DeploymentSettings(BaseModel):
    """A run's deployment profile, replacing the spec's: one of rates, patterns or batch.

    The evaluation's steps (predictions with its stress tests, the subgroup report)
    share these fields; ``warehouse.deployment.resolve_deployment`` turns them, or the
    spec's profile when none is given, into the one profile of the run.
    """

    deployment_name: str = Field(
        default="deployment", description="How the report names the deployment profile"
    )
    deployment_rates: dict[str, float] | None = Field(
        default=None,
        description="Expected availability per modality at deployment (overrides the spec's)",
    )
    deployment_patterns: dict[str, float] | None = Field(
        default=None,
        description="Expected availability-pattern mix at deployment (overrides the spec's)",
    )
    deployment_batch: str | None = Field(
        default=None,
        description="A landed batch whose availability-pattern mix is the deployment's "
        "(overrides the spec's)",
    )

    def deployment_override(self) -> DeploymentProfile | None:
        """The profile these fields give, or None when they give none (the spec's holds)."""
        fields = {
            "rates": self.deployment_rates,
            "patterns": self.deployment_patterns,
            "batch": self.deployment_batch,
        }
        if all(v is None for v in fields.values()):
            return None
        return DeploymentProfile(name=self.deployment_name, **fields)


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


def mix_fingerprint(profile: DeploymentProfile, modalities: list[str]) -> str:
    """Name, batch and pattern mix (shares to 12 digits) in 16 hex digits: two profiles with
    the same fingerprint are one deployment. What the predictions step publishes instead of
    a batch's measured mix (patient-derived shares stay in the warehouse)."""
    mix = profile.target_mix(modalities).sort_index()
    text = json.dumps(
        [profile.name, profile.batch, [[p, round(float(s), 12)] for p, s in mix.items()]]
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def evaluation_profile(
    stressed: DeploymentProfile | None,
    fingerprint: str | None,
    override: DeploymentProfile | None,
    modalities: list[str],
) -> DeploymentProfile | None:
    """The one profile of the evaluation, for the report: the one the stress tests ran toward.

    ``stressed``: the profile the predictions step recorded, resolved again (a batch measured
    again), and ``fingerprint`` the one it recorded; they must still agree (a batch landed
    again since has another mix). A report ``override`` (resolved) must be that same profile:
    otherwise the reweighted metrics and the pattern-shift stress tests would speak of two
    deployments. Either is refused with the fix.
    """
    fix = "materialize predictions and the report again"
    if stressed is not None and mix_fingerprint(stressed, modalities) != fingerprint:
        raise ValueError(
            f"The deployment profile {stressed.name!r} ({stressed.source()}) is no longer the "
            "mix the predictions step's stress tests ran toward (its batch was landed again "
            f"since?): {fix}."
        )
    if override is None or (
        stressed is not None and mix_fingerprint(override, modalities) == fingerprint
    ):
        return stressed if override is None else override
    ran = (
        f"{stressed.name!r} ({stressed.source()})"
        if stressed is not None
        else "no deployment profile"
    )
    raise ValueError(
        f"The subgroup report's deployment profile {override.name!r} ({override.source()}) is "
        f"not the one the predictions step's stress tests ran toward: {ran}. Give the same "
        f"deployment_* fields to the predictions step (the report follows it without them) and "
        f"{fix}."
    )
