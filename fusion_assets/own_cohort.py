"""Run the pipeline on a user's cohort: ``fusion-assets import`` and ``fusion-assets run``.

``run`` reads the spec file, imports the sources as a landing batch of the
cohort named in the spec (``<data_dir>/<name>/landing``), builds that cohort's
definitions in this process (no environment variable, no fresh process needed)
and materializes every asset with :func:`fusion_assets.demo.materialize_cohort`.
A spec whose name is a cohort of the code location (``breast_cancer``) lands
where ``make ui`` shows it.
"""

from __future__ import annotations

import time
from pathlib import Path

from fusion_assets.cohorts.importer import import_cohort
from fusion_assets.cohorts.spec_file import read_spec_file
from fusion_assets.location.cohort import Cohort, cohort_name


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
    data_dir: Path,
    batch_id: str | None = None,
    fast: bool = False,
    replace: bool = False,
) -> Path:
    """Import the cohort of ``spec_path`` and materialize the whole pipeline on it.

    Returns the path of the HTML report (in this run's versioned report folder).
    """
    from fusion_assets.demo import (
        FAST_RUN_CONFIG,
        default_instance,
        materialize_cohort,
        print_report_location,
    )
    from fusion_assets.location.build import build_location, location_resources

    started = time.perf_counter()
    spec_path = Path(spec_path).resolve()
    spec = read_spec_file(spec_path)
    cohort = Cohort(cohort_name(spec.name), spec)
    resources = location_resources(data_dir=str(data_dir))
    landing = resources["landing"].for_cohort(cohort.name).root
    batch_dir = import_spec(spec_path, landing, batch_id, replace=replace)
    materialize_cohort(
        build_location([cohort], resources),
        cohort,
        default_instance(),
        [batch_dir.name],
        FAST_RUN_CONFIG if fast else None,
    )
    print(f"[run] cohort {cohort.name!r} done in {time.perf_counter() - started:.0f} s")
    return print_report_location(resources["reports"].for_cohort(cohort.name), "run")
