"""Run the pipeline on a user's cohort: ``fusion-assets import`` and ``fusion-assets run``.

``run`` reads the spec file, imports the sources as a landing batch, then builds
the code location for that spec (``FUSION_COHORT_SPEC`` is set before
``fusion_assets.definitions`` is imported, exactly as ``dagster dev`` would see
it) and materializes every asset with :func:`fusion_assets.demo.materialize_pipeline`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from fusion_assets.cohorts import COHORT_SPEC_ENV
from fusion_assets.cohorts.importer import import_cohort
from fusion_assets.cohorts.spec_file import read_spec_file
from fusion_assets.report_folders import LATEST, latest_report
from resources.paths import default_path


def import_spec(
    spec_path: Path, landing: Path, batch_id: str | None = None, replace: bool = False
) -> Path:
    """Validate the spec, import its sources into ``landing``; returns the batch folder."""
    spec = read_spec_file(spec_path)
    batch_dir = import_cohort(spec, landing, batch_id, log=print, replace=replace)
    print(f"[import] cohort {spec.name!r}: wrote landing batch {batch_dir}")
    return batch_dir


def run_spec(
    spec_path: Path,
    landing: Path,
    batch_id: str | None = None,
    fast: bool = False,
    replace: bool = False,
) -> Path:
    """Import the cohort of ``spec_path`` and materialize the whole pipeline on it.

    Returns the path of the HTML report (in this run's versioned report folder).
    """
    from fusion_assets.demo import FAST_RUN_CONFIG, default_instance, materialize_pipeline

    started = time.perf_counter()
    spec_path = Path(spec_path).resolve()
    batch_dir = import_spec(spec_path, landing, batch_id, replace=replace)
    # The definitions module builds its assets from this variable when first imported.
    os.environ[COHORT_SPEC_ENV] = str(spec_path)
    from fusion_assets.definitions import COHORT, defs
    from resources import LandingZoneResource

    if COHORT.name != read_spec_file(spec_path).name:
        raise RuntimeError(
            f"fusion_assets.definitions was already imported for cohort {COHORT.name!r}; "
            "run `fusion-assets run` in a fresh process."
        )
    resources = {**(defs.resources or {}), "landing": LandingZoneResource(path=str(landing))}
    materialize_pipeline(
        defs,
        resources,
        default_instance(),
        [batch_dir.name],
        FAST_RUN_CONFIG if fast else None,
    )
    reports = Path(default_path("reports"))
    report = latest_report(reports) / "report.html"
    print(f"[run] cohort {COHORT.name!r} done in {time.perf_counter() - started:.0f} s")
    print(f"[run] report: {report} (and report.md beside it)")
    print(f"[run] latest: {reports / LATEST / 'report.html'} (the newest report)")
    return report
