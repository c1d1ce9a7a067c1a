"""Modality kinds as plug-ins: one module per kind, one protocol, one registry.

Built in: ``tabular``, ``omics`` (dense and sparse), ``image``, ``timeseries``,
``text``.  A new kind implements :class:`ModalityKind` and calls
:func:`register_kind`; specs can then name it (docs/architecture.md, "How to
add a modality kind").
"""

from fusion_assets.kinds.base import (
    ImportContext,
    LandingColumn,
    LandingPayload,
    ListColumnRule,
    ModalityKind,
    State,
    TimeSteps,
)
from fusion_assets.kinds.image import ImageKind
from fusion_assets.kinds.omics import DENSE as OMICS
from fusion_assets.kinds.options import KindOptions
from fusion_assets.kinds.registry import (
    get_kind,
    kind_names,
    kind_of,
    preprocessing_kind,
    register_kind,
    registry_version,
    unregister_kind,
)
from fusion_assets.kinds.tabular import TabularKind
from fusion_assets.kinds.text import TextKind
from fusion_assets.kinds.timeseries import TimeseriesKind

for _kind in (TabularKind(), OMICS, ImageKind(), TimeseriesKind(), TextKind()):
    register_kind(_kind)

__all__ = [
    "ImportContext",
    "KindOptions",
    "LandingColumn",
    "LandingPayload",
    "ListColumnRule",
    "ModalityKind",
    "State",
    "TimeSteps",
    "get_kind",
    "kind_names",
    "kind_of",
    "preprocessing_kind",
    "register_kind",
    "registry_version",
    "unregister_kind",
]
