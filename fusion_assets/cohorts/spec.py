"""What a cohort is made of: its modalities, each with a kind and options.

Everything downstream (alignment, encoders, fusion, evaluation) asks a
``CohortSpec`` which modalities exist and how to treat each one; nothing may
assume the five synthetic modalities by name.
"""

from __future__ import annotations

from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationInfo,
    field_validator,
    model_validator,
)

from fusion_assets.cohorts.deployment_profile import DeploymentProfile
from fusion_assets.identifiers import reserved_problem
from fusion_assets.kinds import KindOptions, get_kind


class ModalitySpec(BaseModel):
    """One modality of a cohort: its name, its kind and the kind's typed ``options``.

    ``options`` is validated by the kind's options model (see ``fusion_assets.kinds``
    and docs/own-data.md), so a modality built in code is checked like one read
    from a spec file.  ``ModalitySpec("labs", "tabular")`` and keyword arguments
    both work.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    kind: str
    timed: bool = True
    options: SerializeAsAny[KindOptions] = Field(default=None, validate_default=True)
    # Where a user's cohort keeps this modality (set by a spec file, read by the
    # importer; see fusion_assets.cohorts.spec_file). None for the synthetic cohort,
    # whose batches are already in the landing format.
    source: dict[str, Any] | None = None

    def __init__(self, *args: Any, **data: Any) -> None:
        # positional fields in declaration order, as ModalitySpec("labs", "tabular")
        if len(args) > len(_MODALITY_FIELDS):
            raise TypeError(
                f"ModalitySpec takes at most {len(_MODALITY_FIELDS)} positional arguments"
            )
        data.update(zip(_MODALITY_FIELDS, args, strict=False))
        super().__init__(**data)

    @field_validator("name")
    @classmethod
    def _usable_name(cls, name: str) -> str:
        # spec files also hold names to a pattern (spec_file); code may quote any name
        problem = reserved_problem(name, "modality", "rename the modality")
        if problem:
            raise ValueError(" -> ".join(problem))
        return name

    @field_validator("kind")
    @classmethod
    def _registered(cls, kind: str) -> str:
        get_kind(kind)  # ValueError naming the registered kinds
        return kind

    @field_validator("options", mode="before")
    @classmethod
    def _kind_options(cls, value: Any, info: ValidationInfo) -> Any:
        if "kind" not in info.data:
            return KindOptions()  # the kind's own error says what is wrong
        model = get_kind(info.data["kind"]).Options
        if value is None:
            value = {}
        return value if type(value) is model else model.model_validate(value)

    def option(self, key: str, default: Any = None) -> Any:
        """An option by name (``default`` when the kind has no such option or it is unset)."""
        value = getattr(self.options, key, None)
        return default if value is None else value


_MODALITY_FIELDS = ("name", "kind", "timed", "options", "source")


class CohortSpec(BaseModel):
    """A cohort: a name and its modalities, in a fixed order."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    modalities: tuple[ModalitySpec, ...]
    # Synthetic cohorts ship the Bayes-optimal probability (oracle.parquet); real ones do not.
    has_oracle: bool = False
    # The user's patients table (spec files only); see ModalitySpec.source.
    patients_source: dict[str, Any] | None = None
    # Expected modality availability where the model will be used (the report reweights
    # the held-out patients to it; cohorts/deployment_profile.py)
    deployment: DeploymentProfile | None = None

    @model_validator(mode="after")
    def _unique_names(self) -> CohortSpec:
        # DuckDB table names are case-insensitive: "Labs" and "labs" are one table
        names = [n.lower() for n in self.modality_names]
        dupes = sorted({n for n in self.modality_names if names.count(n.lower()) > 1})
        if dupes:
            raise ValueError(f"modality names must be unique (ignoring case); repeated: {dupes}")
        if self.deployment is not None:  # names every modality it needs, and no other
            self.deployment.check(self.modality_names)
        return self

    @property
    def modality_names(self) -> list[str]:
        return [m.name for m in self.modalities]

    def modality(self, name: str) -> ModalitySpec:
        for m in self.modalities:
            if m.name == name:
                return m
        raise KeyError(
            f"Cohort {self.name!r} has no modality {name!r}; it has {self.modality_names}."
        )


# Shape constants of the synthetic cohort, shared by the generator and the spec.
SYNTH_IMAGE_SIZE = 32
SYNTH_WEARABLE_CHANNELS = ("heart_rate", "activity", "sleep_hours")
SYNTH_WEARABLE_WINDOW_DAYS = 28
SYNTH_WEARABLE_BINS = 28
SYNTH_GENOMICS_DENSE_FEATURES = 2_000
SYNTH_GENOMICS_SPARSE_FEATURES = 1_000_000


def synthetic_spec(
    genomics_format: str = "dense", genomics_features: int = SYNTH_GENOMICS_DENSE_FEATURES
) -> CohortSpec:
    """The spec of the embedded synthetic cohort (see fusion_assets.cohorts.synthetic);
    ``genomics_features`` is the dense panel's size (the sparse one has 10^6 variants)."""
    n_genes = genomics_features if genomics_format == "dense" else SYNTH_GENOMICS_SPARSE_FEATURES
    return CohortSpec(
        name="synthetic",
        modalities=(
            ModalitySpec("ehr", "tabular"),
            ModalitySpec(
                "genomics",
                "omics",
                timed=False,
                options={"format": genomics_format, "n_features": n_genes},
            ),
            ModalitySpec(
                "imaging",
                "image",
                options={"height": SYNTH_IMAGE_SIZE, "width": SYNTH_IMAGE_SIZE, "channels": 1},
            ),
            ModalitySpec(
                "wearables",
                "timeseries",
                options={
                    "channels": list(SYNTH_WEARABLE_CHANNELS),
                    "window_days": SYNTH_WEARABLE_WINDOW_DAYS,
                    "n_bins": SYNTH_WEARABLE_BINS,
                },
            ),
            ModalitySpec("notes", "text"),
        ),
        has_oracle=True,
    )
