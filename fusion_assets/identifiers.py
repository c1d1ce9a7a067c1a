"""Names a user chooses, checked before they become folders, tables or columns.

Batch ids and cohort names become folders (``<landing>/<batch_id>/``, the
cohort's data folder); modality names become DuckDB tables, columns of
``profile.availability``, Dagster asset names and partition keys; feature and
channel names become columns of ``raw.<modality>``.  A name that is not a safe
pattern, or that is on :data:`RESERVED` (the one list of names the pipeline
uses for itself, each with the reason), is refused with the fix.

DuckDB identifiers are case-insensitive, so names are compared in lower case.
Standard library only: the landing zone (and the sensor that scans it) uses it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Role = Literal["modality", "column"]

# Batch ids: a folder name that cannot climb or hide (no leading '.', '_' or '-',
# no '..', no separators); cohort names also become asset key prefixes and folders.
BATCH_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
COHORT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,40}$")
# Modality names become DuckDB tables, Dagster asset names and partition keys.
MODALITY_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,62}$")
# Folders of the landing zone that are not batches (fusion_assets.landing_zone).
RESERVED_FOLDERS = ("_quarantine", "_replaced")


@dataclass(frozen=True)
class Reserved:
    """A name the pipeline uses for itself: which user names may not take it, and why."""

    roles: tuple[Role, ...]
    why: str


_TABLE = "a warehouse table of that name exists (raw./aligned.)"
_AVAILABILITY = "a column of profile.availability (modalities are its presence flags)"
_KEY = "a key column of every landing file and raw table"

#: The one list: every name a modality, feature or channel may not take.
RESERVED: dict[str, Reserved] = {
    # tables the warehouse keeps beside the modalities' raw.<m> / aligned.<m>
    "patients": Reserved(("modality",), _TABLE),
    "oracle": Reserved(("modality",), _TABLE),
    "batches": Reserved(("modality",), _TABLE),
    "provenance": Reserved(("modality",), _TABLE),
    "availability": Reserved(("modality",), "the profile table of presence flags"),
    # profile.availability: patient_id, <one flag per modality>, pattern, n_modalities, label
    "pattern": Reserved(("modality",), _AVAILABILITY),
    "n_modalities": Reserved(("modality",), _AVAILABILITY),
    "label": Reserved(
        ("modality",), _AVAILABILITY + ": the availability pattern would encode the label"
    ),
    "none": Reserved(("modality",), "the availability pattern of a patient without modalities"),
    # columns of landing files, raw tables and alignment's row sets
    "patient_id": Reserved(("modality", "column"), _KEY),
    "event_time": Reserved(("column",), _KEY),
    "batch_id": Reserved(("column",), _KEY),
    "index_time": Reserved(
        ("column",), "joined to every row alignment uses (the patient's index time)"
    ),
    "rowid": Reserved(
        ("column",), "DuckDB's row-number pseudo-column, which import and align find rows by"
    ),
    "raw_rowid": Reserved(("column",), "alignment's reference to the raw row"),
    "bin": Reserved(("column",), "the time-series bin alignment computes"),
    "days_since_last": Reserved(("column",), "computed by alignment for timed modalities"),
}


class InvalidIdentifier(ValueError):
    """A batch id, cohort name or other user name that cannot be used; the message says why."""


def reserved(name: str, role: Role) -> Reserved | None:
    """The reservation of ``name`` for ``role`` (case-insensitive), or None."""
    entry = RESERVED.get(str(name).lower())
    return entry if entry is not None and role in entry.roles else None


def reserved_problem(name: str, role: Role, rename: str) -> tuple[str, str] | None:
    """(problem, fix) when ``name`` is reserved for ``role``; ``rename`` says how to rename."""
    entry = reserved(name, role)
    if entry is None:
        return None
    return (
        f"{name!r} is a reserved name ({entry.why})",
        f"{rename}, e.g. {name.lower()}_value; reserved: {', '.join(reserved_names(role))}",
    )


def reserved_names(role: Role) -> list[str]:
    """Every reserved name of ``role``, sorted."""
    return sorted(n for n, entry in RESERVED.items() if role in entry.roles)


def batch_id_problem(batch_id: object) -> str | None:
    """Why ``batch_id`` cannot be a landing folder, or None."""
    if not isinstance(batch_id, str) or not BATCH_ID.match(batch_id):
        return (
            f"batch id {batch_id!r} is not a safe folder name: use 1-128 letters, digits, "
            "'_', '-' or '.', starting with a letter or digit"
        )
    if ".." in batch_id or batch_id.endswith("."):
        return f"batch id {batch_id!r} contains '..' or ends with '.'"
    return None


def check_batch_id(batch_id: object) -> str:
    """``batch_id`` if it is a safe folder name, else :class:`InvalidIdentifier`."""
    problem = batch_id_problem(batch_id)
    if problem:
        raise InvalidIdentifier(
            f"{problem} (reserved folders of the landing zone: {', '.join(RESERVED_FOLDERS)}); "
            "e.g. --batch-id cohort-2024-06"
        )
    return str(batch_id)


def cohort_name_problem(name: object) -> str | None:
    """Why ``name`` cannot be a cohort name, or None."""
    if isinstance(name, str) and COHORT_NAME.match(name):
        return None
    return (
        f"cohort name {name!r} is not usable (it becomes folder, batch and asset names): "
        f"use lower-case letters, digits and '_', starting with a letter, at most 41 "
        f"characters, e.g. {default_cohort_name(str(name))!r}"
    )


def default_cohort_name(text: str) -> str:
    """A usable cohort name from free text (a folder name): ``"My cohort-2"`` -> ``my_cohort_2``."""
    name = re.sub(r"[^a-z0-9_]+", "_", text.strip().lower()).strip("_")[:41]
    return name if name[:1].isalpha() else f"cohort_{name}"[:41].rstrip("_")


def modality_name_problem(name: object) -> tuple[str, str] | None:
    """(problem, fix) when ``name`` cannot name a modality, or None."""
    if not isinstance(name, str) or not MODALITY_NAME.match(name):
        return (
            f"modality name {name!r} is not usable as a table name",
            "use letters, digits and _ (starting with a letter, at most 63 characters)",
        )
    return reserved_problem(name, "modality", "rename the modality")
