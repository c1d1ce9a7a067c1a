"""What a cohort is made of: its modalities, each with a kind and options.

Everything downstream (alignment, encoders, fusion, evaluation) asks a
``CohortSpec`` which modalities exist and how to treat each one; nothing may
assume the five synthetic modalities by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

ModalityKind = Literal["tabular", "omics", "image", "timeseries", "text"]
MODALITY_KINDS: tuple[str, ...] = ("tabular", "omics", "image", "timeseries", "text")

# Kinds whose raw rows carry an ``event_time`` by default; alignment keeps only
# rows strictly before the patient's index time for these.
TIMED_KINDS: frozenset[str] = frozenset({"tabular", "image", "timeseries", "text"})


@dataclass(frozen=True)
class ModalitySpec:
    """One modality of a cohort.

    ``options`` are kind specific (see docs/data-contracts.md):
      - tabular: ``features`` (list of column names; default: every column but the keys)
      - omics: ``format`` ("dense" | "sparse"), ``n_features``
      - image: ``height``, ``width``, ``channels``
      - timeseries: ``channels`` (list), ``window_days``, ``n_bins``
      - text: none
    """

    name: str
    kind: ModalityKind
    timed: bool = True
    options: dict[str, Any] = field(default_factory=dict)
    # Where a user's cohort keeps this modality (set by a spec file, read by the
    # importer; see fusion_assets.cohorts.spec_file). None for the synthetic cohort,
    # whose batches are already in the landing format.
    source: dict[str, Any] | None = None

    def option(self, key: str, default: Any = None) -> Any:
        return self.options.get(key, default)


@dataclass(frozen=True)
class CohortSpec:
    """A cohort: a name and its modalities, in a fixed order."""

    name: str
    modalities: tuple[ModalitySpec, ...]
    # Synthetic cohorts ship the Bayes-optimal probability (oracle.parquet); real ones do not.
    has_oracle: bool = False
    # The user's patients table (spec files only); see ModalitySpec.source.
    patients_source: dict[str, Any] | None = None

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


def synthetic_spec(genomics_format: str = "dense") -> CohortSpec:
    """The spec of the embedded synthetic cohort (see fusion_assets.cohorts.synthetic)."""
    n_genes = (
        SYNTH_GENOMICS_DENSE_FEATURES
        if genomics_format == "dense"
        else SYNTH_GENOMICS_SPARSE_FEATURES
    )
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
