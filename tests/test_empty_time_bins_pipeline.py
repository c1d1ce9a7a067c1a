"""Issue 11's crashing case end to end: more time bins than visits, through the pipeline."""

from __future__ import annotations

from pathlib import Path

import pytest

from fusion_assets.cohorts.importer import import_cohort
from fusion_assets.cohorts.spec_file import read_spec_file
from fusion_assets.models.strategies import STRATEGIES
from tests.fixtures.pipeline import cohort_stores, run_cohort, spec_cohort
from tests.fixtures.visits import write_visit_files


@pytest.mark.slow
def test_time_bins_no_patient_has_run_end_to_end(tmp_path: Path) -> None:
    from fusion_assets.demo import FAST_RUN_CONFIG

    spec = read_spec_file(write_visit_files(tmp_path / "files"))
    cohort = spec_cohort(spec)
    resources = cohort_stores(tmp_path, cohort)
    batch = import_cohort(spec, resources["landing"].root)
    config = {
        **FAST_RUN_CONFIG,
        "splits": {"config": {"folds": 3, "repeats": 1}},
        "subgroup_report": {"config": {"n_boot": 100}},
    }
    _, results = run_cohort(tmp_path, cohort, [batch.name], config)
    assert all(r.success for r in results)
    with resources["warehouse"].connect() as con:
        masks = con.sql("SELECT mask FROM aligned.visits").fetchall()
        strategies = {
            r[0] for r in con.sql("SELECT DISTINCT strategy FROM eval.predictions").fetchall()
        }
    # bins 1 and 3 are empty for every patient (both channels): the case that crashed
    assert all(m[0][2:4] == [0.0, 0.0] and m[0][6:8] == [0.0, 0.0] for m in masks)
    assert set(STRATEGIES) <= strategies
