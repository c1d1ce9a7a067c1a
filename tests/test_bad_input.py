"""Bad input never loses data: a corpus of malformed cohorts, each refused with a clear error.

Every case starts from a warehouse holding a good first batch (the small own
cohort of ``tests/own_cohort_fixtures.py``), breaks one thing in a fresh copy of
the user's files or spec, and runs what a user runs: read the spec, import the
sources, ingest the landing batch.  Each case asserts what the error says (what
is wrong and where: key / file / modality / column / rows) and that the first
batch is intact in the warehouse (row counts and a checksum per raw table).
"""

from __future__ import annotations

import copy
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fusion_assets.cohorts.importer import REPORT_FILE, CohortImportError, import_cohort
from fusion_assets.cohorts.spec_file import SpecError, read_spec_file
from fusion_assets.warehouse.ingest import ingest_batch
from fusion_assets.warehouse.quarantine import BatchValidationError
from tests.own_cohort_fixtures import cohort_spec, write_cohort

N_PATIENTS = 20
GOOD, BAD = "good", "bad"


@dataclass
class Warehouse:
    root: Path
    con: duckdb.DuckDBPyConnection

    @property
    def landing(self) -> Path:
        return self.root / "landing"

    def snapshot(self) -> dict[str, tuple[int, int]]:
        """Rows and an order-free checksum of the first batch, per raw table."""
        tables = [
            r[0]
            for r in self.con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'raw'"
            ).fetchall()
        ]
        out = {}
        for t in tables:
            n, checksum = self.con.execute(
                f'SELECT count(*), coalesce(sum(hash(t)), 0) FROM raw."{t}" t WHERE batch_id = ?',
                [GOOD],
            ).fetchone()
            out[t] = (int(n), int(checksum))
        return out

    def batches(self) -> list[str]:
        return [r[0] for r in self.con.execute("SELECT batch_id FROM raw.batches").fetchall()]


@pytest.fixture
def warehouse(tmp_path: Path) -> Warehouse:
    spec = read_spec_file(write_cohort(tmp_path / "good_files", n=N_PATIENTS))
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    wh = Warehouse(tmp_path, con)
    batch = import_cohort(spec, wh.landing, GOOD)
    ingest_batch(con, batch, spec)
    yield wh
    con.close()


def user_files(wh: Warehouse, edit_spec: Callable[[dict], None] | None = None) -> Path:
    """A fresh copy of the user's files and spec (edited), for one bad case."""
    folder = wh.root / "bad_files"
    shutil.rmtree(folder, ignore_errors=True)
    spec = copy.deepcopy(cohort_spec())
    if edit_spec:
        edit_spec(spec)
    return write_cohort(folder, n=N_PATIENTS, spec=spec)


def attempt(wh: Warehouse, spec_path: Path) -> Path:
    """What a user runs: read the spec, import, ingest.  Returns the landing batch."""
    spec = read_spec_file(spec_path)
    batch = import_cohort(spec, wh.landing, BAD)
    ingest_batch(wh.con, batch, spec)
    return batch


def refused(wh: Warehouse, spec_path: Path, error: type[Exception], *fragments: str) -> str:
    """Assert the attempt fails with ``error`` naming every fragment, and nothing changed."""
    before = wh.snapshot()
    with pytest.raises(error) as info:
        attempt(wh, spec_path)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in:\n{message}"
    assert wh.snapshot() == before
    assert wh.batches() == [GOOD]
    # An import error writes nothing; an ingest error moves the batch to quarantine.
    assert not (wh.landing / BAD).exists()
    assert not [p for p in wh.landing.iterdir() if p.name.startswith(".import-")]
    if error is BatchValidationError:
        assert (wh.landing / "_quarantine" / BAD / "errors.json").exists()
    return message


def edit_csv(path: Path, change: Callable[[pd.DataFrame], pd.DataFrame | None]) -> None:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame = change(frame) if change(frame) is not None else frame
    frame.to_csv(path, index=False)


def _set(frame: pd.DataFrame, column: str, rows: list[int], value: str) -> pd.DataFrame:
    frame.loc[rows, column] = value
    return frame


# ------------------------------------------------------------------ spec file
def test_misspelled_spec_key_names_key_file_and_fix(warehouse: Warehouse) -> None:
    def misspell(spec: dict) -> None:
        spec["modalites"] = spec.pop("modalities")

    path = user_files(warehouse, misspell)
    message = refused(
        warehouse, path, SpecError, "cohort.yaml", "`modalites`", "did you mean `modalities`?"
    )
    assert "bad_files" in message


def test_unknown_kind_suggests_the_kind(warehouse: Warehouse) -> None:
    def typo(spec: dict) -> None:
        spec["modalities"]["labs"]["kind"] = "tabluar"

    refused(
        warehouse,
        user_files(warehouse, typo),
        SpecError,
        "modalities.labs.kind",
        "did you mean `tabular`?",
    )


def test_timeseries_without_time_column_is_a_spec_error(warehouse: Warehouse) -> None:
    def series(spec: dict) -> None:
        spec["modalities"]["vitals"] = {
            "kind": "timeseries",
            "source": "labs.csv",
            "id_column": "pid",
            "channels": ["crp"],
        }

    refused(warehouse, user_files(warehouse, series), SpecError, "modalities.vitals", "time_column")


# ------------------------------------------------------------------ sources
def test_missing_modality_file(warehouse: Warehouse) -> None:
    path = user_files(warehouse)
    (path.parent / "rna.parquet").unlink()
    refused(warehouse, path, CohortImportError, "modality rna", "'rna.parquet' not found", "source")


def test_file_of_zero_bytes(warehouse: Warehouse) -> None:
    path = user_files(warehouse)
    (path.parent / "discharge.csv").write_bytes(b"")
    refused(
        warehouse, path, CohortImportError, "modality discharge", "discharge.csv is empty (0 bytes)"
    )


def test_truncated_parquet(warehouse: Warehouse) -> None:
    path = user_files(warehouse)
    target = path.parent / "rna.parquet"
    target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
    refused(
        warehouse, path, CohortImportError, "modality rna", "cannot read rna.parquet", "re-export"
    )


def test_id_column_absent(warehouse: Warehouse) -> None:
    path = user_files(warehouse)
    edit_csv(path.parent / "labs.csv", lambda f: f.rename(columns={"pid": "patient_ref"}))
    refused(
        warehouse,
        path,
        CohortImportError,
        "modality labs (labs.csv)",
        "column 'pid'",
        "modalities.labs.id_column",
        "patient_ref",
    )


def test_invalid_utf8_text(warehouse: Warehouse) -> None:
    path = user_files(warehouse)
    csv = path.parent / "discharge.csv"
    csv.write_bytes(csv.read_bytes().replace(b"stable", b"stabl\xe9", 1))
    refused(
        warehouse,
        path,
        CohortImportError,
        "modality discharge",
        "discharge.csv is not valid UTF-8",
        "iconv",
    )


def test_csv_with_another_delimiter_is_sniffed(warehouse: Warehouse) -> None:
    path = user_files(warehouse)
    frame = pd.read_csv(path.parent / "patients.csv")
    frame.to_csv(path.parent / "patients.csv", index=False, sep=";")
    batch = attempt(warehouse, path)
    patients = pd.read_parquet(batch / "patients.parquet")
    assert len(patients) == N_PATIENTS and patients["patient_id"].iloc[0] == "pt-0000"


def test_csv_with_a_wrong_delimiter_option_names_the_option(warehouse: Warehouse) -> None:
    def comma(spec: dict) -> None:
        spec["patients"]["delimiter"] = ","

    path = user_files(warehouse, comma)
    frame = pd.read_csv(path.parent / "patients.csv")
    frame.to_csv(path.parent / "patients.csv", index=False, sep=";")
    refused(
        warehouse,
        path,
        CohortImportError,
        "patients (patients.csv)",
        "delimited by ';'",
        "`delimiter: ';'`",
    )


# ------------------------------------------------------------------ patients
def test_duplicated_patient_ids(warehouse: Warehouse) -> None:
    path = user_files(warehouse)
    edit_csv(path.parent / "patients.csv", lambda f: _set(f, "pid", [3], "pt-0002"))
    refused(
        warehouse,
        path,
        CohortImportError,
        "patients (patients.csv)",
        "'pid'",
        "1 id(s) appear more than once (2 rows",
        "'pt-0002' at data rows [3, 4]",
    )


def test_label_not_zero_one(warehouse: Warehouse) -> None:
    path = user_files(warehouse)
    edit_csv(path.parent / "patients.csv", lambda f: _set(f, "outcome", [1, 5], "2"))
    refused(
        warehouse,
        path,
        CohortImportError,
        "patients (patients.csv)",
        "label column 'outcome': 2 of 20 values are not 0/1",
        "['2']",
        "rows [2, 6]",
        "positive_label",
    )


def test_label_all_one_class(warehouse: Warehouse) -> None:
    path = user_files(warehouse)
    edit_csv(
        path.parent / "patients.csv", lambda f: _set(f, "outcome", list(range(N_PATIENTS)), "0")
    )
    refused(
        warehouse, path, CohortImportError, "'outcome' has a single class (0) over all 20 patients"
    )


def test_unparseable_timestamps(warehouse: Warehouse) -> None:
    path = user_files(warehouse)
    edit_csv(path.parent / "labs.csv", lambda f: _set(f, "drawn_at", [0, 7, 9], "last tuesday"))
    refused(
        warehouse,
        path,
        CohortImportError,
        "modality labs (labs.csv)",
        "time column 'drawn_at': 3 of 60 values are not dates/times",
        "rows [1, 8, 10]",
        "last tuesday",
        "time_format",
    )


# ------------------------------------------------------------------ modalities
def test_feature_column_entirely_empty(warehouse: Warehouse) -> None:
    path = user_files(warehouse)
    edit_csv(path.parent / "labs.csv", lambda f: _set(f, "sodium", list(range(len(f))), ""))
    refused(
        warehouse,
        path,
        CohortImportError,
        "modality labs",
        "['sodium'] are entirely empty",
        "features",
    )


def test_modality_with_no_patient_of_the_cohort(warehouse: Warehouse) -> None:
    path = user_files(warehouse)
    rna = pd.read_parquet(path.parent / "rna.parquet")
    rna["sample_of"] = "S-" + rna["sample_of"]
    rna.to_parquet(path.parent / "rna.parquet", index=False)
    refused(
        warehouse,
        path,
        CohortImportError,
        "modality rna (rna.parquet)",
        "none of its",
        "S-pt-0000",
        "modalities.rna.id_column",
    )


def test_infinities_in_numeric_features(warehouse: Warehouse) -> None:
    path = user_files(warehouse)
    edit_csv(path.parent / "labs.csv", lambda f: _set(f, "crp", [4, 11], "inf"))
    refused(
        warehouse,
        path,
        CohortImportError,
        "modality labs (labs.csv)",
        "column 'crp': 2 value(s) are infinite",
        "data rows [5, 12]",
    )


def test_image_of_the_wrong_size(warehouse: Warehouse) -> None:
    def scan(spec: dict) -> None:
        spec["modalities"]["scan"] = {
            "kind": "image",
            "source": "scan.parquet",
            "id_column": "pid",
            "pixels_column": "img",
            "height": 2,
            "width": 2,
        }

    path = user_files(warehouse, scan)
    pixels = [list(np.arange(4, dtype=float))] * 5 + [list(np.arange(6, dtype=float))]
    table = pa.table({"pid": [f"pt-{i:04d}" for i in range(6)], "img": pixels})
    pq.write_table(table, path.parent / "scan.parquet")
    refused(
        warehouse,
        path,
        CohortImportError,
        "modality scan (scan.parquet)",
        "column 'img': 1 of 6 lists do not have 4 values",
        "lengths ['6']",
        "data rows [6]",
    )


def test_out_of_range_age_is_quarantined_by_ingest(warehouse: Warehouse) -> None:
    """What only the warehouse contract knows (age 0-130) is caught by ingest: quarantined."""
    path = user_files(warehouse)
    edit_csv(path.parent / "patients.csv", lambda f: _set(f, "age_years", [2], "250"))
    refused(
        warehouse,
        path,
        BatchValidationError,
        "patients.parquet",
        "column age",
        "in_range",
        "failed on 1 row(s)",
        "'row': 2",
    )


def test_packed_omics_with_missing_values(warehouse: Warehouse) -> None:
    path = user_files(warehouse)
    rna = pd.read_parquet(path.parent / "rna.parquet")
    rna.loc[[0, 2], "gene_3"] = np.nan
    rna.to_parquet(path.parent / "rna.parquet", index=False)
    refused(
        warehouse, path, CohortImportError, "modality rna", "2 of", "missing values", "rows [1, 3]"
    )


def test_label_as_a_feature_is_refused(warehouse: Warehouse) -> None:
    def leak(spec: dict) -> None:
        spec["modalities"]["demo"] = {
            "kind": "tabular",
            "source": "patients.csv",
            "id_column": "pid",
            "features": ["age_years", "outcome"],
        }

    refused(
        warehouse,
        user_files(warehouse, leak),
        CohortImportError,
        "modality demo",
        "'outcome'",
        "leak",
    )


# ------------------------------------------------------------------ not fatal
def test_rows_of_unknown_patients_are_reported_and_ignored(warehouse: Warehouse) -> None:
    path = user_files(warehouse)
    labs = pd.read_csv(path.parent / "labs.csv")
    strangers = labs.head(3).assign(pid=["zz-1", "zz-2", "zz-2"])
    pd.concat([labs, strangers]).to_csv(path.parent / "labs.csv", index=False)
    before = warehouse.snapshot()
    notes: list[str] = []
    spec = read_spec_file(path)
    batch = import_cohort(spec, warehouse.landing, BAD, log=notes.append)
    assert any("modality labs" in n and "3 row(s)" in n and "zz-1" in n for n in notes)
    assert "3 row(s)" in (batch / REPORT_FILE).read_text()
    result = ingest_batch(warehouse.con, batch, spec)
    assert result.orphan_rows == {"labs": 3}
    assert result.rows["labs"] == len(labs)
    assert warehouse.snapshot() == before  # the first batch is untouched
    assert sorted(warehouse.batches()) == [BAD, GOOD]
