"""The cohort component: one small ``defs.yaml`` per cohort under ``fusion_assets/defs/``.

``dg`` (and ``load_from_defs_folder``) finds each ``defs.yaml`` of type
``fusion_assets.location.component.CohortComponent`` and builds that cohort's
assets, checks, jobs and sensors under its own key prefix. Adding a cohort is
adding one file, e.g. ``fusion_assets/defs/my_cohort/defs.yaml``::

    type: fusion_assets.location.component.CohortComponent
    attributes:
      spec: ../../../my_cohort/cohort.yaml   # relative to this file's folder
      retrain_cron: "0 3 * * 0"               # optional (Sundays 03:00)

A synthetic cohort says ``synthetic: {patients: 5000, seed: 0}`` instead of
``spec``. ``deployment: {name: ..., rates: {...}}`` (or ``patterns``) sets the cohort's
deployment availability profile (``cohorts/deployment_profile.py``), replacing a spec
file's own. The cohort's name (key prefix, folder under the data folder) is the
folder's name unless ``name`` says otherwise.
"""

# No `from __future__ import annotations`: dg.Resolvable reads the field types at runtime.
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import yaml

from fusion_assets.location.build import build_cohort_definitions
from fusion_assets.location.cohort import DEFAULT_RETRAIN_CRON, Cohort, SyntheticSource

DEFS_DIR = Path(__file__).resolve().parents[1] / "defs"
COMPONENT_TYPE = "fusion_assets.location.component.CohortComponent"


class SyntheticSettings(dg.Model):
    """The synthetic generator's settings (fusion_assets/cohorts/synthetic.py)."""

    patients: int = 5000
    seed: int = 0
    regime: str = "correlated"
    missingness: str = "mar"
    genomics_format: str = "dense"
    genomics_features: int = 2_000
    temporal: str = "mixed"
    sites: int = 4
    availability: dict[str, float] | None = None


@dataclass
class CohortComponent(dg.Component, dg.Resolvable):
    """A cohort served by the code location: a spec file, or the synthetic generator."""

    spec: str | None = None
    synthetic: SyntheticSettings | None = None
    name: str | None = None
    retrain_cron: str = DEFAULT_RETRAIN_CRON
    owners: list[str] = field(default_factory=lambda: ["team:ml-platform"])
    # Run-config defaults by asset, e.g. {fused_model: {preset: tiny}} for a smoke cohort.
    config_defaults: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The expected availability at deployment: {name, rates}, {name, patterns} or {name, batch}
    deployment: dict[str, Any] | None = None

    def cohort(self, folder: Path) -> Cohort:
        """The cohort this file declares (``folder``: the folder of its defs.yaml)."""
        return cohort_from_source(
            name=self.name or folder.name,
            spec=(folder / self.spec) if self.spec else None,
            synthetic=self.synthetic,
            retrain_cron=self.retrain_cron,
            owners=tuple(self.owners),
            config_defaults=self.config_defaults,
            deployment=self.deployment,
        )

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        return build_cohort_definitions(self.cohort(context.path))


def cohort_from_source(
    name: str,
    spec: Path | None = None,
    synthetic: SyntheticSettings | None = None,
    retrain_cron: str = DEFAULT_RETRAIN_CRON,
    owners: tuple[str, ...] = ("team:ml-platform",),
    config_defaults: dict[str, dict[str, Any]] | None = None,
    deployment: dict[str, Any] | None = None,
) -> Cohort:
    """A cohort from exactly one of a spec file or synthetic settings (and, optionally, a
    deployment profile that replaces the spec's)."""
    from fusion_assets.cohorts import synthetic_spec

    if (spec is None) == (synthetic is None):
        raise ValueError(
            f"Cohort {name!r}: give exactly one of 'spec' (a cohort spec file) or "
            "'synthetic' (generator settings)."
        )
    if spec is not None:
        from fusion_assets.cohorts.spec_file import read_spec_file

        spec_, source = read_spec_file(spec), None
    else:
        source = SyntheticSource(**synthetic.model_dump())
        spec_ = synthetic_spec(source.genomics_format, source.genomics_features)
    if deployment is not None:
        from fusion_assets.cohorts.deployment_profile import DeploymentProfile
        from fusion_assets.cohorts.spec import CohortSpec

        # re-validated: the profile must name the spec's modalities
        spec_ = CohortSpec(**{**dict(spec_), "deployment": DeploymentProfile(**deployment)})
    return Cohort(
        name,
        spec_,
        retrain_cron,
        synthetic=source,
        owners=owners,
        config_defaults=config_defaults or {},
    )


def declared_cohorts(defs_dir: Path = DEFS_DIR) -> dict[str, Cohort]:
    """The cohorts the code location serves, by name: every ``<folder>/defs.yaml`` of this type.

    The CLI builds its in-process location from these (with its own data folder);
    ``dagster dev`` and ``dg`` load the same files through ``load_from_defs_folder``.
    """
    cohorts: dict[str, Cohort] = {}
    for path in sorted(defs_dir.glob("*/defs.yaml")):
        document = yaml.safe_load(path.read_text()) or {}
        if document.get("type") != COMPONENT_TYPE:
            continue
        component = CohortComponent.from_attributes_dict(
            attributes=document.get("attributes") or {}
        )
        cohort = component.cohort(path.parent)
        cohorts[cohort.name] = cohort
    return cohorts
