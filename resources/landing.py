"""The landing zone: where a cohort's new batches arrive, ``<data_dir>/<cohort>/landing``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from pydantic import Field

from fusion_assets.landing_zone import READY_MARKER, list_ready_batches
from resources.paths import cohort_dir


@dataclass(frozen=True)
class LandingZone:
    """A folder of batch folders ``<path>/<batch_id>/``.

    A batch is complete once its ``_READY`` marker exists (writers create it
    last), so a half-copied batch is never read. Rejected batches move to
    ``<path>/_quarantine/<batch_id>/``.
    """

    path: str

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


class LandingZoneResource(dg.ConfigurableResource):
    """Every cohort's landing zone: ``<data_dir>/<cohort>/landing/<batch_id>/``."""

    data_dir: str = Field(description="The data folder; each cohort has a sub-folder")

    def for_cohort(self, cohort: str) -> LandingZone:
        return LandingZone(str(cohort_dir(self.data_dir, cohort) / "landing"))
