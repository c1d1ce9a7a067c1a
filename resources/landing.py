"""The landing zone resource: where new batches arrive."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field

from fusion_assets.landing_zone import READY_MARKER, list_ready_batches
from resources.paths import default_path


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
        """Batch ids with a ``_READY`` marker, sorted by name."""
        return list_ready_batches(self.root)
