"""Bring your own cohort: a spec unlike the synthetic batches runs end to end.

The cohort (tests/fixtures/user_files.py: the suite's signal cohort as a user's
files) has its own column names and four modalities (``labs`` tabular CSV with a
time column, ``genes`` omics parquet without one, ``history`` tabular from the
patients CSV and ``memo`` text CSV without one), CSV and parquet mixed.  The fast tests check the spec, the import and alignment without
Dagster; the slow one builds the code location for the spec in-process and
materializes every asset.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pytest

from fusion_assets.cohorts.importer import PLACEHOLDER_INDEX_TIME, import_cohort
from fusion_assets.cohorts.spec_file import SpecError, read_spec_file
from fusion_assets.warehouse.align import align_all
from fusion_assets.warehouse.ingest import ingest_batch
from tests.fixtures.cohort import GENES
from tests.fixtures.pipeline import cohort_stores, run_cohort, spec_cohort
from tests.fixtures.user_files import user_spec, write_user_files

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "breast_cancer" / "cohort.yaml"


def test_spec_reads_names_kinds_and_timing(user_files: Path) -> None:
    spec = read_spec_file(user_files)
    assert spec.name == "own_cohort" and not spec.has_oracle
    assert [(m.name, m.kind, m.timed) for m in spec.modalities] == [
        ("labs", "tabular", True),
        ("genes", "omics", False),
        ("history", "tabular", False),
        ("memo", "text", False),
    ]
    assert spec.modality("labs").option("features") == ["lab_a", "lab_b"]
    assert spec.patients_source["label_column"] == "outcome"


def test_the_example_cohort_spec_is_valid() -> None:
    spec = read_spec_file(EXAMPLE)
    assert spec.name == "breast_cancer"
    assert spec.modality_names == ["clinical", "expression"]
    assert not any(m.timed for m in spec.modalities)  # index_time: none


def test_without_index_time_alignment_takes_all_rows(tmp_path: Path) -> None:
    """``index_time: none``: a placeholder index time, every modality untimed."""
    spec = read_spec_file(write_user_files(tmp_path / "files", spec=user_spec(index_time=False)))
    assert not any(m.timed for m in spec.modalities)
    batch = import_cohort(spec, tmp_path / "landing")
    patients = pd.read_parquet(batch / "patients.parquet")
    assert (patients["index_time"] == pd.Timestamp(PLACEHOLDER_INDEX_TIME)).all()
    labs = pd.read_parquet(batch / "labs.parquet")
    assert "event_time" not in labs.columns  # the time column is not used without index times
    with duckdb.connect() as con:
        ingest_batch(con, batch, spec)
        results = align_all(con, spec.modalities)
        n_labs_rows = con.execute("SELECT count(*) FROM raw.labs").fetchone()[0]
    assert results["labs"].rows_used == n_labs_rows  # all rows, none cut at an index time
    assert results["genes"].patients == len(pd.read_parquet(batch / "genes.parquet"))


def test_import_renames_to_the_landing_format(tmp_path: Path, user_files: Path) -> None:
    spec = read_spec_file(user_files)
    batch = import_cohort(spec, tmp_path / "landing", "b1")
    assert batch == tmp_path / "landing" / "b1" and (batch / "_READY").exists()
    patients = pd.read_parquet(batch / "patients.parquet")
    assert list(patients.columns) == ["patient_id", "index_time", "label", "sex", "age", "site"]
    assert set(patients["sex"]) == {"F", "M"}  # female/male recoded
    assert list(pd.read_parquet(batch / "labs.parquet").columns) == [
        "patient_id",
        "event_time",
        "lab_a",
        "lab_b",
    ]
    genes = pd.read_parquet(batch / "genes.parquet")
    assert list(genes.columns) == ["patient_id", "expression"]
    assert {len(v) for v in genes["expression"]} == {GENES}
    assert list(pd.read_parquet(batch / "memo.parquet").columns) == ["patient_id", "text"]


@pytest.mark.slow
def test_own_cohort_runs_end_to_end(tmp_path: Path) -> None:
    from fusion_assets.demo import FAST_RUN_CONFIG

    document = user_spec()
    # where it will be used, genes are rare and every note is there (issue 15 item 1)
    document["deployment"] = {
        "name": "clinic",
        "rates": {"labs": 1.0, "genes": 0.1, "history": 1.0, "memo": 1.0},
    }
    spec = read_spec_file(write_user_files(tmp_path / "files", n=80, spec=document))
    assert spec.deployment is not None and spec.deployment.name == "clinic"
    cohort = spec_cohort(spec)
    resources = cohort_stores(tmp_path, cohort)
    batch = import_cohort(spec, resources["landing"].root)
    config = {
        **FAST_RUN_CONFIG,
        # Three folds once: the small-cohort path, kept light for the test.
        "splits": {"config": {"folds": 3, "repeats": 1}},
        "subgroup_report": {"config": {"n_boot": 100}},
    }
    defs, results = run_cohort(tmp_path, cohort, [batch.name], config)
    assert all(r.success for r in results)
    keys = {k.path[-1] for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {"raw_labs", "raw_genes", "raw_memo", "aligned_labs", "aligned_genes"} <= keys
    assert not {k for k in keys if k.endswith(("_ehr", "_genomics", "_oracle"))}

    with resources["warehouse"].connect() as con:
        strategies = {
            r[0] for r in con.sql("SELECT DISTINCT strategy FROM eval.predictions").fetchall()
        }
        max_lab_a = con.sql("SELECT max(lab_a) FROM aligned.labs").fetchone()[0]
        n_genes, n_patients = con.sql(
            "SELECT (SELECT count(*) FROM aligned.genes), (SELECT count(*) FROM aligned.patients)"
        ).fetchone()
        some_id = con.sql("SELECT patient_id FROM aligned.patients LIMIT 1").fetchone()[0]
    assert {"single:labs", "single:genes", "single:memo", "late"} <= strategies
    assert max_lab_a < 50  # the leakage bait (lab_a = 100 after the index time) never aligned
    assert 0 < n_genes < n_patients == 80  # genes are missing for some patients

    checks = {e.check_name: e for r in results for e in r.get_asset_check_evaluations()}
    assert checks["no_strategy_beats_oracle"].passed  # no oracle: the check does not apply
    markdown = (resources["reports"] / "latest" / "report.md").read_text()
    assert "own_cohort" in markdown and "Headline" in markdown
    assert some_id not in markdown
    assert "Expected performance at deployment: clinic" in markdown
    assert "The deployment profile is per-modality availability rates." in markdown
    # the predictions step recorded the profile its stress tests ran toward; the report used it
    *_, recorded = [
        e.materialization.metadata["deployment_profile"].value
        for r in results
        for e in r.get_asset_materialization_events()
        if e.asset_key == cohort.key("predictions")
    ]
    assert recorded["profile"]["name"] == "clinic" and recorded["fingerprint"]
    assert "## Pattern-shift stress tests" in markdown and "MNAR by label" in markdown
    assert "genes at deployment rate" in markdown
    assert "Clinical utility" in markdown
    with resources["warehouse"].connect() as con:
        deployed = con.sql("SELECT * FROM eval.deployment_metrics").df()
        utility = con.sql("SELECT * FROM eval.net_benefit WHERE subgroup_type = 'all'").df()
    assert set(deployed["profile"]) == {"clinic"} and "late" in set(deployed["strategy"])
    assert (deployed["auroc_ci_low"] <= deployed["auroc_ci_high"]).all()
    assert set(utility["threshold"]) == {0.1, 0.2, 0.3}
    assert utility.loc[utility["strategy"] != "treat all", "ci_low"].notna().all()


def test_a_deployment_profile_must_name_the_spec_modalities(tmp_path: Path) -> None:
    document = user_spec()
    document["deployment"] = {"rates": {"labs": 1.0, "mri": 0.5}}
    with pytest.raises(SpecError, match="deployment"):
        read_spec_file(write_user_files(tmp_path, n=20, spec=document))


def test_query_and_glob_sources(tmp_path: Path) -> None:
    """A DuckDB query (paths relative to the spec) and a glob over several CSVs."""
    spec_dict = user_spec()
    spec_dict["modalities"]["genes"]["source"] = {
        "query": "SELECT * FROM 'genes.parquet' WHERE gene_1 > 0"
    }
    spec_dict["modalities"]["labs"]["source"] = "labs_part*.csv"
    path = write_user_files(tmp_path / "files", spec=spec_dict)
    labs = pd.read_csv(path.parent / "labs.csv")
    labs.iloc[:50].to_csv(path.parent / "labs_part1.csv", index=False)
    labs.iloc[50:].to_csv(path.parent / "labs_part2.csv", index=False)
    batch = import_cohort(read_spec_file(path), tmp_path / "landing")
    genes = pd.read_parquet(path.parent / "genes.parquet")
    selected = (genes["gene_1"] > 0).sum()
    assert 0 < selected < len(genes) and len(pd.read_parquet(batch / "genes.parquet")) == selected
    assert len(pd.read_parquet(batch / "labs.parquet")) == len(labs)
