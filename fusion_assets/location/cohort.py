"""One cohort of the code location: its name and every Dagster name derived from it.

A cohort is served under its own asset key prefix (``<cohort>/raw_patients``),
group names (``<cohort>_1_ingest`` … ``<cohort>_6_evaluation``, numbered so the
UI's sidebar lists them in pipeline order), dynamic partitions
(``<cohort>_landing_batches``), DuckDB writer pool, jobs and sensors. Its data
live under ``<data_dir>/<cohort>/`` (see ``resources``). Everything here is
naming; the asset modules ask it instead of spelling a key, group or pool.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import dagster as dg
from pydantic import create_model
from pydantic.fields import FieldInfo

from fusion_assets.cohorts import CohortSpec

# The pipeline's groups in stage order. The number in a group's name orders the UI's
# sidebar; the demo and the retraining order their work by the asset graph, not by this.
GROUP_NUMBERS: dict[str, int] = {
    "ingest": 1,
    "align": 2,
    "profile": 3,
    "encoders": 4,
    "fusion": 5,
    "evaluation": 6,
}
# Cohort names become key prefixes, group, job, pool and folder names.
COHORT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,40}$")
DEFAULT_RETRAIN_CRON = "0 3 * * 0"  # Sundays 03:00, when nobody waits for the CPU
ConfigClass = TypeVar("ConfigClass", bound=dg.Config)


def range_text(info: FieldInfo) -> str:
    """A field's bounds as a person reads them: ``>= 1``, ``in [0, 1]``, ``> 0``."""
    # annotated_types' Ge/Gt/Le/Lt keep the bound in an attribute named like the class.
    bounds = {
        type(m).__name__: getattr(m, type(m).__name__.lower())
        for m in info.metadata
        if type(m).__name__ in ("Ge", "Gt", "Le", "Lt")
    }
    low = ("[", bounds["Ge"]) if "Ge" in bounds else ("(", bounds["Gt"]) if "Gt" in bounds else None
    high = (
        ("]", bounds["Le"]) if "Le" in bounds else (")", bounds["Lt"]) if "Lt" in bounds else None
    )
    if low and high:
        return f"in {low[0]}{low[1]}, {high[1]}{high[0]}"
    if low:
        return f"{'>=' if low[0] == '[' else '>'} {low[1]}"
    if high:
        return f"{'<=' if high[0] == ']' else '<'} {high[1]}"
    return ""


def cohort_name(text: str) -> str:
    """A usable cohort name from a spec's free-text name: ``"My cohort-2"`` -> ``my_cohort_2``."""
    name = re.sub(r"[^a-z0-9_]+", "_", text.strip().lower()).strip("_")
    return name if name[:1].isalpha() else f"cohort_{name}"


@dataclass(frozen=True)
class SyntheticSource:
    """How ``fusion-assets demo`` fills an empty landing zone of a synthetic cohort."""

    patients: int = 5000
    seed: int = 0
    regime: str = "correlated"
    missingness: str = "mar"
    genomics_format: str = "dense"
    genomics_features: int = 2_000
    temporal: str = "mixed"
    sites: int = 4
    # Availability rate per modality (the generator's default for a modality not named).
    availability: Mapping[str, float] | None = None

    def generator_settings(self) -> dict[str, Any]:
        """Keyword arguments of ``synthesize_batch`` beyond the size and the seed."""
        settings: dict[str, Any] = {
            "regime": self.regime,
            "missingness": self.missingness,
            "genomics_format": self.genomics_format,
            "genomics_features": self.genomics_features,
            "temporal": self.temporal,
            "sites": self.sites,
        }
        if self.availability is not None:
            settings["availability"] = dict(self.availability)
        return settings


@dataclass(frozen=True)
class Cohort:
    """A cohort as the code location serves it: the spec plus its Dagster names."""

    name: str
    spec: CohortSpec
    retrain_cron: str = DEFAULT_RETRAIN_CRON
    synthetic: SyntheticSource | None = None
    owners: tuple[str, ...] = field(default=("team:ml-platform",))
    # Run-config defaults by asset name ({"fused_model": {"preset": "tiny"}}): what the
    # launchpad scaffolds and what automation-launched runs use.
    config_defaults: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not COHORT_NAME.match(self.name):
            raise ValueError(
                f"Cohort name {self.name!r} is not usable: lower-case letters, digits and "
                "underscores, starting with a letter (it becomes asset keys and folder names)."
            )
        if len(self.retrain_cron.split()) != 5:
            raise ValueError(
                f"Cohort {self.name!r}: retrain_cron {self.retrain_cron!r} is not a cron "
                f"expression (five fields, e.g. {DEFAULT_RETRAIN_CRON!r} for Sundays 03:00)."
            )

    # --- asset keys and groups ------------------------------------------------------------
    @property
    def prefix(self) -> list[str]:
        return [self.name]

    def key(self, asset: str) -> dg.AssetKey:
        """The asset key of ``asset`` in this cohort (e.g. ``synthetic/raw_patients``)."""
        return dg.AssetKey([self.name, asset])

    def keys(self, *assets: str) -> list[dg.AssetKey]:
        return [self.key(a) for a in assets]

    def asset_attributes(self, stage: str) -> dict[str, Any]:
        """Group, owners and tags every asset of ``stage`` carries."""
        return {
            "group_name": self.group(stage),
            "owners": list(self.owners),
            "tags": {"cohort": self.name, "stage": stage},
        }

    def group(self, stage: str) -> str:
        """``<cohort>_<number>_<stage>``: the UI's sidebar sorts groups by name."""
        return f"{self.name}_{GROUP_NUMBERS[stage]}_{stage}"

    def config_class(self, asset: str, base: type[ConfigClass]) -> type[ConfigClass]:
        """``base`` as the launchpad shows it for ``asset``: this cohort's defaults, and each
        field's range in its description (Dagster's config schema has no bounds of its own)."""
        defaults = dict(self.config_defaults.get(asset) or {})
        unknown = sorted(set(defaults) - set(base.model_fields))
        if unknown:
            raise ValueError(
                f"Cohort {self.name!r}: config_defaults.{asset} has no field(s) {unknown}; "
                f"known: {sorted(base.model_fields)}"
            )
        fields: dict[str, Any] = {}
        for name, info in base.model_fields.items():
            changes: dict[str, Any] = {}
            if name in defaults:
                # Validated now: a bad default fails when the code location loads, not in a run.
                base.__pydantic_validator__.validate_assignment(
                    base.model_construct(), name, defaults[name]
                )
                changes["default"] = defaults[name]
            if (bounds := range_text(info)) and bounds not in (info.description or ""):
                changes["description"] = f"{info.description or name} ({bounds})"
            if changes:
                fields[name] = (info.annotation, FieldInfo.merge_field_infos(info, **changes))
        if not fields:
            return base
        title = "".join(part.title() for part in self.name.split("_"))
        return create_model(f"{base.__name__}{title}", __base__=base, **fields)

    # --- partitions, pools, jobs, sensors ------------------------------------------------
    @property
    def landing_partitions(self) -> str:
        return f"{self.name}_landing_batches"

    @property
    def writer_pool(self) -> str:
        """DuckDB allows one writer per file, and each cohort has its own file."""
        return f"duckdb_writer_{self.name}"

    def op(self, asset: str) -> str:
        """The op (run-config key) computing ``asset``: ``<cohort>__<asset>``."""
        return f"{self.name}__{asset}"

    def run_config(self, ops: dict[str, Any] | None) -> dict[str, Any] | None:
        """Run config written by asset name (``{"fused_model": {...}}``) for this cohort's ops."""
        return {"ops": {self.op(name): cfg for name, cfg in ops.items()}} if ops else None

    def job(self, what: str) -> str:
        return f"{self.name}_{what}"

    def sensor(self, what: str) -> str:
        return f"{self.name}_{what}"
