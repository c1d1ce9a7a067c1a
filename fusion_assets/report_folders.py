"""Run-versioned report folders: ``reports/<UTC timestamp>-<run id prefix>/`` and ``latest``.

A report is never overwritten in place: each run writes a folder of its own and
then moves the ``latest`` symlink to it in one atomic rename, so a reader of
``reports/latest/report.html`` sees either the previous report or the new one,
never a half-written mix. The link is relative, so the data folder can move.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

LATEST = "latest"
RUN_ID_CHARS = 8


def versioned_report_dir(root: Path | str, run_id: str, now: datetime | None = None) -> Path:
    """A new folder name for this run's report (not created)."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return Path(root) / f"{stamp}-{run_id[:RUN_ID_CHARS]}"


def point_latest(folder: Path) -> Path:
    """Make ``<root>/latest`` point at ``folder`` (a sibling), replacing the link atomically.

    A ``latest`` that is a plain folder (written before reports were versioned)
    is kept, renamed to ``unversioned-<its modification time>``.
    """
    folder = Path(folder)
    latest = folder.parent / LATEST
    if latest.is_dir() and not latest.is_symlink():
        stamp = datetime.fromtimestamp(latest.stat().st_mtime, UTC).strftime("%Y%m%dT%H%M%SZ")
        latest.rename(latest.with_name(f"unversioned-{stamp}"))
    staging = latest.with_name(f".{LATEST}-{folder.name}")
    staging.unlink(missing_ok=True)
    staging.symlink_to(folder.name, target_is_directory=True)
    os.replace(staging, latest)  # rename(2): atomic on POSIX
    return latest


def latest_report(root: Path | str) -> Path:
    """The folder ``<root>/latest`` points at (``<root>/latest`` itself if it is not a link)."""
    latest = Path(root) / LATEST
    return latest.resolve() if latest.is_symlink() else latest
