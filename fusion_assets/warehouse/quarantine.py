"""Quarantine a bad landing batch and explain what is wrong with it."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fusion_assets.identifiers import check_batch_id
from fusion_assets.landing_zone import QUARANTINE_DIR, restore_replaced

# What the data owner should do, per failed check (prefix match on the check name).
_FIXES: list[tuple[str, str]] = [
    ("readable_parquet", "re-export the file; it is empty, truncated or not parquet"),
    ("file_exists", "add the missing file to the batch"),
    ("column_in_dataframe", "add the missing column (see docs/data-contracts.md §1)"),
    ("dtype_is_", "write the column with the contract type (see docs/data-contracts.md §1)"),
    ("not_nullable", "fill or drop the rows with a null in this column"),
    ("field_uniqueness", "keep one row per patient; remove the duplicate ids"),
    ("isin", "recode the values to the allowed set"),
    ("in_range", "correct the out-of-range values"),
    ("finite", "replace +/-inf by null (missing) or a real value"),
    ("elements_finite", "replace inf/NaN/null elements inside the lists"),
    ("list_length", "resize the list payload to the spec's shape or fix the spec options"),
    ("integral", "write whole numbers"),
    ("values_are_strings", "write text values only"),
    (
        "type_matches_raw",
        "write the column with the type earlier batches gave it (shown in brackets)",
    ),
    (
        "list_length_matches_raw",
        "give the vectors the length earlier batches had (or a new modality)",
    ),
    ("list_length_uniform", "give every row a vector of the same length"),
    (
        "name_not_reserved",
        "rename the column (see fusion_assets/identifiers.py for reserved names)",
    ),
    (
        "manifest_checksum",
        "the file changed after the batch was written: re-send it under a new id",
    ),
    ("manifest_lists_file", "write the batch again with every file (under a new batch id)"),
]


class BatchValidationError(ValueError):
    """A landing batch failed validation and was moved to quarantine."""

    def __init__(self, batch_id: str, errors: list[dict[str, Any]], quarantine_dir: Path | None):
        self.batch_id = batch_id
        self.errors = errors
        self.quarantine_dir = quarantine_dir
        super().__init__(format_errors(batch_id, errors, quarantine_dir))


def fix_for(check: str) -> str:
    """The advice line for a failed check."""
    for prefix, fix in _FIXES:
        if check.startswith(prefix) or prefix in check:
            return fix
    return "correct the offending rows and re-send the batch"


def format_errors(
    batch_id: str, errors: list[dict[str, Any]], where: Path | None, examples: bool = True
) -> str:
    """Batch id, then one line per error: file, column, check, rows, what to do.

    ``examples=False``: without the failing values (ids, raw values), for the Dagster event
    log; the data owner finds them in the quarantine's errors.json."""
    lines = [
        f"Batch {batch_id!r} failed validation with {len(errors)} error(s)"
        + (f"; moved to {where} (see errors.json there)" if where else "")
        + "; nothing was written to the warehouse (rows count from 1, as data rows of the file):"
    ]
    for e in errors:
        column = e["column"] or "-"
        stem = str(e["file"]).removesuffix(".parquet")
        where_ = e["file"] if stem in ("patients", "oracle") else f"{e['file']} (modality {stem})"
        lines.append(
            f"  {where_}: column {column}: check {e['check']} failed on "
            f"{e['failing_rows']} row(s)"
            + (f"; examples {e['examples'][:3]}" if examples else "")
            + f" -> {fix_for(e['check'])}"
        )
    lines.append("Fix the files and re-send the batch under the same or a new batch id.")
    return "\n".join(lines)


def quarantine_batch(batch_dir: Path, batch_id: str, errors: list[dict[str, Any]]) -> Path:
    """Move ``batch_dir`` to ``<landing>/_quarantine/<batch_id>/`` and write errors.json.

    An older quarantined copy of the same batch id is renamed with a timestamp
    suffix rather than deleted, so no evidence is lost.  A batch that replaced an
    earlier copy (``--replace``) gets that copy back in place.
    """
    check_batch_id(batch_id)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    target_root = batch_dir.parent / QUARANTINE_DIR
    target_root.mkdir(parents=True, exist_ok=True)
    target = target_root / batch_id
    if target.exists():
        target.rename(target_root / f"{batch_id}.{stamp}")
    shutil.move(str(batch_dir), str(target))
    report = {
        "batch_id": batch_id,
        "quarantined_at": stamp,
        "errors": [e | {"fix": fix_for(e["check"])} for e in errors],
    }
    (target / "errors.json").write_text(json.dumps(report, indent=2))
    restore_replaced(batch_dir.parent, batch_id)
    return target
