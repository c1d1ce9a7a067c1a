"""The one protocol every modality kind implements, and the plain types it speaks.

A kind is everything that depends on *what* a modality is (a table of
features, an omics vector, an image, a time series, text) rather than on its
name: its spec options, how the importer writes its landing payload, the
pandera/DuckDB contract of that payload, the alignment SQL as of index time,
its profile dimensionality, its drift summaries, its preprocessing, the torch
encoder it builds, what it contributes to early fusion, attention and the
gradient-boosting reference.  Nothing outside ``fusion_assets.kinds`` branches
on a kind's name; it asks the modality's kind (``kinds.kind_of(modality)``).

Kinds are pure: no dagster import, and torch only inside the methods that
build or run torch modules (the code location loads kinds without torch).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

import numpy as np
import pandas as pd

from fusion_assets.kinds.arrays import fill_rows
from fusion_assets.kinds.options import KindOptions

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa_arrow
    import torch

    from fusion_assets.cohorts.spec import ModalitySpec
    from fusion_assets.models.config import EncoderConfig, FusionConfig
    from fusion_assets.models.encoders import Encoder

# Landing-format keys every modality file may carry (data-contracts §1).
PATIENT_KEY = "patient_id"
EVENT_TIME = "event_time"
KEY_COLUMNS = frozenset({PATIENT_KEY, EVENT_TIME, "batch_id"})

State = dict[str, Any]  # fitted preprocessing: plain numbers, lists and numpy arrays
Arrays = dict[str, np.ndarray]


# ---------------------------------------------------------------- landing
@dataclass(frozen=True)
class LandingColumn:
    """A scalar payload column of a landing file: its dtype family and value range."""

    family: Literal["integer", "numeric", "string", "datetime"]
    nullable: bool = True
    minimum: float | None = None
    maximum: float | None = None
    raw_type: str | None = None  # DuckDB type in raw.<modality>; None: from the file's type


@dataclass(frozen=True)
class ListColumnRule:
    """A list payload column and its required length (None: any length)."""

    column: str
    length: int | None


@dataclass(frozen=True)
class LandingPayload:
    """What ingest checks in a modality's landing file beyond its keys."""

    columns: dict[str, LandingColumn] = field(default_factory=dict)
    lists: tuple[ListColumnRule, ...] = ()


@dataclass(frozen=True)
class TimeSteps:
    """A temporal kind's time-step tokens for attention fusion: how many, how wide."""

    n_steps: int
    width: int


# ---------------------------------------------------------------- import
class ImportContext(Protocol):
    """What the importer offers a kind while it writes one modality's landing payload.

    ``option`` arguments are the kind's option names (``pixels_column``); the
    context turns them into the spec key a user sees (``modalities.scan.pixels_column``).
    """

    def key(self, option: str) -> str: ...
    def column_type(self, column: str) -> str: ...
    def problem(self, text: str, fix: str) -> None: ...
    def log(self, text: str) -> None: ...
    def need(self, option: str, column: str | None) -> bool: ...
    def features(
        self, selection: list[str] | str | None, option: str = "features"
    ) -> list[str] | None: ...
    def numeric_only(self, names: list[str], what: str) -> bool: ...
    def flat_columns(self, names: list[str], what: str) -> bool: ...
    # one scan of the source each, whatever the number of columns
    def empty_columns(self, names: list[str], option: str) -> None: ...
    def infinite_values(self, names: list[str]) -> None: ...
    def numeric_block(self, names: list[str], option: str, what: str) -> None: ...
    def numbers_as_text(self, names: list[str]) -> None: ...
    def text_lengths(self, names: list[str]) -> None: ...
    def bad_rows(self, condition: str, shown: str) -> tuple[int, list, list]: ...
    def scalar_row(self, sql: str) -> tuple: ...
    def duplicates(self, columns: list[str]) -> tuple[int, int, list[str]]: ...
    def list_payload(
        self,
        column: str,
        option: str,
        out: str,
        length: int | None,
        fix: str,
        max_length: int | None = None,
    ) -> dict[str, str] | None: ...
    @property
    def n_rows(self) -> int: ...
    @property
    def id_column(self) -> str: ...
    @property
    def time_column(self) -> str | None: ...


# ---------------------------------------------------------------- the protocol
class ModalityKind(ABC):
    """A modality kind: register an instance with ``fusion_assets.kinds.register_kind``."""

    #: the name a spec writes as ``kind:``
    name: ClassVar[str]
    #: the options the pipeline reads (``modality.options`` is an instance)
    Options: ClassVar[type[KindOptions]]
    #: what a spec *file* must say (e.g. its source columns); defaults to ``Options``
    FileOptions: ClassVar[type[KindOptions] | None] = None
    #: the aligned columns ``transform`` reads (an empty frame of them stands for "nobody")
    transform_columns: ClassVar[tuple[str, ...]] = ()

    # ------------------------------------------------------------ spec
    @classmethod
    def file_options(cls) -> type[KindOptions]:
        return cls.FileOptions or cls.Options

    @property
    def preprocessing_tag(self) -> str:
        """The ``kind`` tag of its fitted preprocessing (saved with models)."""
        return self.name

    def for_modality(self, modality: ModalitySpec) -> ModalityKind:
        """The concrete kind of ``modality`` (a kind with several formats picks one)."""
        return self

    def formats(self) -> tuple[ModalityKind, ...]:
        """Every concrete kind ``for_modality`` can return."""
        return (self,)

    def spec_problems(self, has_time_column: bool, has_index_time: bool) -> list[tuple[str, str]]:
        """(problem, fix) of a spec file's modality that its options alone cannot tell."""
        return []

    @property
    def temporal(self) -> bool:
        """Whether the kind is a series of time steps (the profile's temporal axis)."""
        return False

    # ------------------------------------------------------------ import and landing
    @abstractmethod
    def import_payload(self, ctx: ImportContext, modality: ModalitySpec) -> dict[str, str] | None:
        """Landing payload column -> SQL over the user's source; None after ``ctx.problem``."""

    @abstractmethod
    def landing_payload(
        self, modality: ModalitySpec, arrow_schema: pa_arrow.Schema
    ) -> LandingPayload:
        """The payload columns ingest validates in ``<modality>.parquet``."""

    # ------------------------------------------------------------ alignment
    def timed_row_conditions(self, modality: ModalitySpec) -> list[str]:
        """Extra SQL conditions on a timed modality's usable rows (``r``: raw, ``p``: patients)."""
        return []

    @abstractmethod
    def aligned_sql(self, con: duckdb.DuckDBPyConnection, modality: ModalitySpec) -> str:
        """The SQL after the ``used`` CTE that yields one aligned row per patient.

        Either ``SELECT ...`` or ``, more_ctes AS (...) SELECT ...``.
        """

    @abstractmethod
    def empty_aligned_columns(self, modality: ModalitySpec) -> str:
        """Column DDL of the aligned table before any batch carried the modality."""

    def has_days_since_last(self, modality: ModalitySpec) -> bool:
        """Whether the aligned table has ``days_since_last`` (audited by count_future_rows)."""
        return False

    # ------------------------------------------------------------ profile and drift
    @abstractmethod
    def dimensionality(
        self, con: duckdb.DuckDBPyConnection, modality: ModalitySpec, table: str | None
    ) -> int:
        """Features a model sees; ``table`` is the aligned table (None if not built yet)."""

    @abstractmethod
    def drift_summaries(self, modality: ModalitySpec, columns: dict[str, str]) -> dict[str, str]:
        """Scalar summaries per patient (name -> SQL over the aligned table) for drift."""

    # ------------------------------------------------------------ preprocessing
    @abstractmethod
    def fit(self, modality: ModalitySpec, rows: pd.DataFrame, config: EncoderConfig) -> State:
        """Preprocessing state learned from the training patients' aligned rows."""

    def transform_rows(self, modality: ModalitySpec, state: State, rows: pd.DataFrame) -> Arrays:
        """Arrays of the given aligned rows, one leading row each (or override ``transform``)."""
        raise NotImplementedError(
            f"kind {self.name!r} implements neither transform_rows nor transform"
        )

    def transform(
        self, modality: ModalitySpec, state: State, rows: pd.DataFrame, present: np.ndarray
    ) -> Arrays:
        """Arrays for every patient of ``present`` (absent patients: zeros)."""
        if not present.any():
            # still produce correctly shaped arrays: transform an empty frame by shape
            rows = pd.DataFrame({c: pd.Series([], dtype=object) for c in self.transform_columns})
        arrays = self.transform_rows(modality, state, rows)
        return {name: fill_rows(len(present), present, a) for name, a in arrays.items()}

    def fit_screen(
        self,
        modality: ModalitySpec,
        state: State,
        arrays: Arrays,
        labels: np.ndarray,
        config: EncoderConfig,
    ) -> State:
        """``state`` narrowed to the features with label signal, from the training patients
        that have the modality (``arrays``, ``labels``: theirs only); default: unchanged."""
        return state

    # ------------------------------------------------------------ torch
    @abstractmethod
    def build_encoder(self, modality: ModalitySpec, state: State, config: EncoderConfig) -> Encoder:
        """The torch encoder to ``config.embedding_dim``, sized from ``state``."""

    @abstractmethod
    def flat_width(self, modality: ModalitySpec, state: State) -> int:
        """Width of the minimally encoded dense features for early fusion."""

    def flat_features(self, inputs: dict[str, torch.Tensor], width: int) -> torch.Tensor:
        """The minimally encoded features [b, width] of a batch."""
        return inputs["x"].flatten(1)

    def flat_bag_size(self, state: State) -> int | None:
        """Rows of an ``EmbeddingBag`` early fusion feeds ``index``/``offsets``/``weight`` to
        (a linear layer on a never densified vector); None for dense kinds."""
        return None

    def time_steps(self, modality: ModalitySpec) -> TimeSteps | None:
        """Time-step tokens for attention fusion (None: the kind has none)."""
        return None

    def step_tokens(self, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(per-step features [b, T, width], observed bool [b, T]) of a temporal kind."""
        raise NotImplementedError(f"kind {self.name!r} has no time steps")

    # ------------------------------------------------------------ reference model
    def fit_reference_screen(
        self,
        state: State,
        arrays: Arrays,
        rows: np.ndarray,
        labels: np.ndarray,
        config: FusionConfig,
    ) -> np.ndarray | None:
        """Columns the reference keeps, fitted on the training patients ``rows`` (bool) that
        have the modality; None keeps whatever ``reference_features`` returns."""
        return None

    @abstractmethod
    def reference_features(
        self, state: State, arrays: Arrays, config: FusionConfig, screen: np.ndarray | None
    ) -> np.ndarray:
        """Minimally encoded features [n, F] for gradient boosting (NaN where unobserved)."""


def listed_or_all(listed: Sequence[str] | None, names: Sequence[str]) -> list[str]:
    """The listed columns, else every one of ``names`` that is not a landing key."""
    if listed:
        return list(listed)
    return [n for n in names if n not in KEY_COLUMNS]
