"""Issue 11's crashing case end to end: more time bins than visits, through the pipeline."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from fusion_assets.cohorts.importer import import_cohort
from fusion_assets.cohorts.spec_file import read_spec_file
from fusion_assets.models.strategies import STRATEGIES
from tests.fixtures.visits import write_visit_files


@pytest.mark.slow
def test_time_bins_no_patient_has_run_end_to_end(tmp_path: Path, resources) -> None:
    from fusion_assets.definitions import build_definitions
    from fusion_assets.demo import FAST_RUN_CONFIG, materialize_pipeline

    spec = read_spec_file(write_visit_files(tmp_path / "files"))
    batch = import_cohort(spec, tmp_path / "landing")
    config = {
        **FAST_RUN_CONFIG,
        "splits": {"config": {"folds": 3, "repeats": 1}},
        "subgroup_report": {"config": {"n_boot": 100, "report_dir": str(tmp_path / "reports")}},
    }
    results = materialize_pipeline(
        build_definitions(spec),
        resources,
        dg.DagsterInstance.ephemeral(),
        [batch.name],
        config,
        log=lambda _: None,
    )
    assert all(r.success for r in results)
    with resources["warehouse"].connect() as con:
        masks = con.sql("SELECT mask FROM aligned.visits").fetchall()
        strategies = {
            r[0] for r in con.sql("SELECT DISTINCT strategy FROM eval.predictions").fetchall()
        }
    # bins 1 and 3 are empty for every patient (both channels): the case that crashed
    assert all(m[0][2:4] == [0.0, 0.0] and m[0][6:8] == [0.0, 0.0] for m in masks)
    assert set(STRATEGIES) <= strategies
