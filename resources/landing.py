"""The landing zone resource: where new batches arrive."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field

from resources.paths import default_path

READY_MARKER = "_READY"
QUARANTINE_DIR = "_quarantine"


class LandingZoneResource(dg.ConfigurableResource):
    """A folder of batch folders ``<path>/<batch_id>/``.

    A batch is complete once its ``_READY`` marker exists (writers create it
    last), so a half-copied batch is never read. Rejected batches move to
    ``<path>/_quarantine/<batch_id>/``.
    """

    path: str = Field(default_factory=lambda: default_path("landing"))

    @property
    def root(self) -> Path:
        return Path(self.path)

    def batch_dir(self, batch_id: str) -> Path:
        directory = self.root / batch_id
        if not (directory / READY_MARKER).exists():
            raise FileNotFoundError(
                f"Landing batch {batch_id!r} is not ready: {directory / READY_MARKER} is missing. "
                "Writers create the marker after the last file is complete."
            )
        return directory

    def ready_batches(self) -> list[str]:
        """Batch ids with a ``_READY`` marker, sorted by name (cheap: one stat per folder)."""
        if not self.root.exists():
            return []
        return sorted(
            entry.name
            for entry in self.root.iterdir()
            if entry.is_dir() and not entry.name.startswith("_") and (entry / READY_MARKER).exists()
        )
