"""The kinds a spec may name: built-in ones and any registered by a plug-in or a test."""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Any

from fusion_assets.kinds.base import ModalityKind

if TYPE_CHECKING:
    from fusion_assets.cohorts.spec import ModalitySpec

_KINDS: dict[str, ModalityKind] = {}
_BY_TAG: dict[str, ModalityKind] = {}
_version = 0  # bumped on every change, so models built from the registry are rebuilt


def register_kind(kind: ModalityKind, replace: bool = False) -> ModalityKind:
    """Make ``kind`` available to specs as ``kind: <kind.name>``; returns it."""
    global _version
    if not isinstance(kind, ModalityKind):
        raise TypeError(f"{kind!r} is not a ModalityKind instance")
    if kind.name in _KINDS and not replace:
        raise ValueError(f"modality kind {kind.name!r} is already registered")
    if kind.name in _KINDS:
        unregister_kind(kind.name)
    _KINDS[kind.name] = kind
    for concrete in kind.formats():
        _BY_TAG[concrete.preprocessing_tag] = concrete
    _version += 1
    return kind


def unregister_kind(name: str) -> None:
    """Forget a registered kind (a test's clean-up)."""
    global _version
    kind = _KINDS.pop(name)
    for concrete in kind.formats():
        _BY_TAG.pop(concrete.preprocessing_tag, None)
    _version += 1


def kind_names() -> tuple[str, ...]:
    """Registered kind names, in registration order."""
    return tuple(_KINDS)


def registry_version() -> int:
    return _version


def unknown_kind_hint(name: Any) -> str:
    """``did you mean `tabular`?`` or the list of kinds."""
    close = difflib.get_close_matches(str(name), kind_names(), n=1)
    return f"did you mean `{close[0]}`?" if close else f"use one of {', '.join(kind_names())}"


def get_kind(name: str) -> ModalityKind:
    """The registered kind called ``name`` (ValueError naming the kinds otherwise)."""
    try:
        return _KINDS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"{name!r} is not a registered modality kind: {unknown_kind_hint(name)} "
            "(a plug-in kind must be registered with fusion_assets.kinds.register_kind first)"
        ) from None


def kind_of(modality: ModalitySpec) -> ModalityKind:
    """The concrete kind that handles ``modality`` (omics: its format)."""
    return get_kind(modality.kind).for_modality(modality)


def preprocessing_kind(state: dict[str, Any]) -> ModalityKind:
    """The kind whose ``fit`` produced a preprocessing ``state`` (by its ``kind`` tag)."""
    tag = state.get("kind")
    if tag not in _BY_TAG:
        raise ValueError(
            f"fitted preprocessing of kind {tag!r} has no registered kind (known: "
            f"{', '.join(sorted(_BY_TAG))}); register the plug-in kind before loading the model"
        )
    return _BY_TAG[tag]
