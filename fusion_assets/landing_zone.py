"""The landing zone's layout: which folders are complete batches.

Standard library only: the landing sensor imports this on every code-location
load, and the writers (generator, importer), the ingest and the resource share
the same markers.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path

READY_MARKER = "_READY"  # written last by every writer: the batch is complete
QUARANTINE_DIR = "_quarantine"  # rejected batches, with their errors.json


def scan_ready_batches(root: Path, known: Collection[str] = ()) -> tuple[list[str], int]:
    """Complete batch folders under ``root`` not in ``known`` (sorted), and how many are incomplete.

    One ``scandir`` of the root plus one stat (of ``_READY``) per folder not yet
    known: known folders and file contents are never touched. Folders starting
    with ``_`` (``_quarantine``) or ``.`` are not batches.
    """
    if not root.is_dir():
        return [], 0
    ready: list[str] = []
    incomplete = 0
    with os.scandir(root) as entries:
        for entry in entries:
            name = entry.name
            if name in known or name.startswith(("_", ".")):
                continue
            if not entry.is_dir(follow_symlinks=False):
                continue
            if os.path.exists(os.path.join(entry.path, READY_MARKER)):
                ready.append(name)
            else:
                incomplete += 1  # still being copied: looked at again next time
    return sorted(ready), incomplete


def list_ready_batches(root: Path) -> list[str]:
    """Every complete batch id under ``root``, sorted."""
    return scan_ready_batches(root)[0]
