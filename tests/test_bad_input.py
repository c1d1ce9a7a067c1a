"""Bad input never loses data: a corpus of malformed cohorts, each refused with a clear error.

Every case starts from a warehouse holding a good first batch (the user's files of
``tests/fixtures/user_files.py``), breaks one thing in a fresh copy of the user's
files or spec, and runs what a user runs: read the spec, import the sources,
ingest the landing batch.  ``CASES`` is the corpus: what is broken and what the
error must say (what is wrong and where: key / file / modality / column / rows).
Every case also asserts that the first batch is intact in the warehouse (row
counts and a checksum per raw table) and that no landing batch was left behind.
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
from tests.fixtures.user_files import user_spec, write_user_files
from tests.fixtures.warehouse import raw_snapshot

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
        return raw_snapshot(self.con, GOOD, include_batches=True)

    def batches(self) -> list[str]:
        return [r[0] for r in self.con.execute("SELECT batch_id FROM raw.batches").fetchall()]


@pytest.fixture
def warehouse(tmp_path: Path, warehouse_con: duckdb.DuckDBPyConnection) -> Warehouse:
    spec = read_spec_file(write_user_files(tmp_path / "good_files", n=N_PATIENTS))
    wh = Warehouse(tmp_path, warehouse_con)
    ingest_batch(warehouse_con, import_cohort(spec, wh.landing, GOOD), spec)
    return wh


def user_files(wh: Warehouse, edit_spec: Callable[[dict], None] | None = None) -> Path:
    """A fresh copy of the user's files and spec (edited), for one bad case."""
    folder = wh.root / "bad_files"
    shutil.rmtree(folder, ignore_errors=True)
    spec = copy.deepcopy(user_spec())
    if edit_spec:
        edit_spec(spec)
    return write_user_files(folder, n=N_PATIENTS, spec=spec)


def attempt(wh: Warehouse, spec_path: Path) -> Path:
    """What a user runs: read the spec, import, ingest.  Returns the landing batch."""
    spec = read_spec_file(spec_path)
    batch = import_cohort(spec, wh.landing, BAD)
    ingest_batch(wh.con, batch, spec)
    return batch


# ------------------------------------------------------------------ how files are broken
FileEdit = Callable[[Path], None]  # applied to the folder of the user's files


def edit_csv(name: str, change: Callable[[pd.DataFrame], pd.DataFrame]) -> FileEdit:
    def edit(folder: Path) -> None:
        frame = pd.read_csv(folder / name, dtype=str, keep_default_na=False)
        change(frame).to_csv(folder / name, index=False)

    return edit


def set_cells(name: str, column: str, rows: list[int] | None, value: str) -> FileEdit:
    """Cells of a CSV set to ``value`` (``rows`` None: the whole column)."""

    def change(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[frame.index if rows is None else rows, column] = value
        return frame

    return edit_csv(name, change)


def edit_parquet(name: str, change: Callable[[pd.DataFrame], None]) -> FileEdit:
    def edit(folder: Path) -> None:
        frame = pd.read_parquet(folder / name)
        change(frame)
        frame.to_parquet(folder / name, index=False)

    return edit


def truncate(name: str) -> FileEdit:
    def edit(folder: Path) -> None:
        data = (folder / name).read_bytes()
        (folder / name).write_bytes(data[: len(data) // 2])

    return edit


def semicolon_patients(folder: Path) -> None:
    frame = pd.read_csv(folder / "patients.csv")
    frame.to_csv(folder / "patients.csv", index=False, sep=";")


def invalid_utf8(folder: Path) -> None:
    csv = folder / "memo.csv"
    csv.write_bytes(csv.read_bytes().replace(b"stable", b"stabl\xe9", 1))


def scan_of_wrong_size(folder: Path) -> None:
    pixels = [list(np.arange(4, dtype=float))] * 5 + [list(np.arange(6, dtype=float))]
    table = pa.table({"pid": [f"pt-{i:04d}" for i in range(6)], "img": pixels})
    pq.write_table(table, folder / "scan.parquet")


def _prefix_sample_ids(frame: pd.DataFrame) -> None:
    frame["sample_of"] = "S-" + frame["sample_of"]


def _missing_genes(frame: pd.DataFrame) -> None:
    frame.loc[[0, 2], "gene_3"] = np.nan


# ------------------------------------------------------------------ how specs are broken
def modality(name: str, **entry: object) -> Callable[[dict], None]:
    """A spec edit adding (or replacing) modality ``name``."""

    def edit(spec: dict) -> None:
        spec["modalities"][name] = dict(entry)

    return edit


def misspell_modalities(spec: dict) -> None:
    spec["modalites"] = spec.pop("modalities")


def typo_in_kind(spec: dict) -> None:
    spec["modalities"]["labs"]["kind"] = "tabluar"


def comma_delimiter(spec: dict) -> None:
    spec["patients"]["delimiter"] = ","


# ------------------------------------------------------------------ the corpus
@dataclass(frozen=True)
class Case:
    """One malformed cohort: what is broken and what the error must say."""

    error: type[Exception]
    says: tuple[str, ...]
    files: FileEdit | None = None
    spec: Callable[[dict], None] | None = None


CASES: dict[str, Case] = {
    # the spec file
    "misspelled_spec_key": Case(
        SpecError,
        ("cohort.yaml", "bad_files", "`modalites`", "did you mean `modalities`?"),
        spec=misspell_modalities,
    ),
    "unknown_kind": Case(
        SpecError, ("modalities.labs.kind", "did you mean `tabular`?"), spec=typo_in_kind
    ),
    "timeseries_without_time_column": Case(
        SpecError,
        ("modalities.vitals", "time_column"),
        spec=modality(
            "vitals", kind="timeseries", source="labs.csv", id_column="pid", channels=["lab_a"]
        ),
    ),
    # the sources
    "missing_modality_file": Case(
        CohortImportError,
        ("modality genes", "'genes.parquet' not found", "source"),
        files=lambda folder: (folder / "genes.parquet").unlink(),
    ),
    "file_of_zero_bytes": Case(
        CohortImportError,
        ("modality memo", "memo.csv is empty (0 bytes)"),
        files=lambda folder: (folder / "memo.csv").write_bytes(b""),
    ),
    "truncated_parquet": Case(
        CohortImportError,
        ("modality genes", "cannot read genes.parquet", "re-export"),
        files=truncate("genes.parquet"),
    ),
    "id_column_absent": Case(
        CohortImportError,
        (
            "modality labs (labs.csv)",
            "column 'pid'",
            "modalities.labs.id_column",
            "patient_ref",
        ),
        files=edit_csv("labs.csv", lambda f: f.rename(columns={"pid": "patient_ref"})),
    ),
    "invalid_utf8_text": Case(
        CohortImportError,
        ("modality memo", "memo.csv is not valid UTF-8", "iconv"),
        files=invalid_utf8,
    ),
    "wrong_delimiter_option": Case(
        CohortImportError,
        ("patients (patients.csv)", "delimited by ';'", "`delimiter: ';'`"),
        files=semicolon_patients,
        spec=comma_delimiter,
    ),
    # the patients
    "duplicated_patient_ids": Case(
        CohortImportError,
        (
            "patients (patients.csv)",
            "'pid'",
            "1 id(s) appear more than once (2 rows",
            "'pt-0002' at data rows [3, 4]",
        ),
        files=set_cells("patients.csv", "pid", [3], "pt-0002"),
    ),
    "label_not_zero_one": Case(
        CohortImportError,
        (
            "patients (patients.csv)",
            "label column 'outcome': 2 of 20 values are not 0/1",
            "['2']",
            "rows [2, 6]",
            "positive_label",
        ),
        files=set_cells("patients.csv", "outcome", [1, 5], "2"),
    ),
    "label_all_one_class": Case(
        CohortImportError,
        ("'outcome' has a single class (0) over all 20 patients",),
        files=set_cells("patients.csv", "outcome", None, "0"),
    ),
    "unparseable_timestamps": Case(
        CohortImportError,
        (
            "modality labs (labs.csv)",
            "time column 'drawn_at': 3 of 60 values are not dates/times",
            "rows [1, 8, 10]",
            "last tuesday",
            "time_format",
        ),
        files=set_cells("labs.csv", "drawn_at", [0, 7, 9], "last tuesday"),
    ),
    # the modalities
    "feature_column_entirely_empty": Case(
        CohortImportError,
        ("modality labs", "['lab_b'] are entirely empty", "features"),
        files=set_cells("labs.csv", "lab_b", None, ""),
    ),
    "modality_with_no_patient_of_the_cohort": Case(
        CohortImportError,
        (
            "modality genes (genes.parquet)",
            "none of its",
            "S-pt-0000",
            "modalities.genes.id_column",
        ),
        files=edit_parquet("genes.parquet", _prefix_sample_ids),
    ),
    "infinities_in_numeric_features": Case(
        CohortImportError,
        (
            "modality labs (labs.csv)",
            "column 'lab_a': 2 value(s) are infinite",
            "data rows [5, 12]",
        ),
        files=set_cells("labs.csv", "lab_a", [4, 11], "inf"),
    ),
    "image_of_the_wrong_size": Case(
        CohortImportError,
        (
            "modality scan (scan.parquet)",
            "column 'img': 1 of 6 lists do not have 4 values",
            "lengths ['6']",
            "data rows [6]",
        ),
        files=scan_of_wrong_size,
        spec=modality(
            "scan",
            kind="image",
            source="scan.parquet",
            id_column="pid",
            pixels_column="img",
            height=2,
            width=2,
        ),
    ),
    # what only the warehouse contract knows (age 0-130) is caught by ingest: quarantined
    "out_of_range_age_is_quarantined_by_ingest": Case(
        BatchValidationError,
        ("patients.parquet", "column age", "in_range", "failed on 1 row(s)", "'row': 2"),
        files=set_cells("patients.csv", "age_years", [2], "250"),
    ),
    "packed_omics_with_missing_values": Case(
        CohortImportError,
        ("modality genes", "2 of", "missing values", "rows [1, 3]"),
        files=edit_parquet("genes.parquet", _missing_genes),
    ),
    "label_as_a_feature": Case(
        CohortImportError,
        ("modality demo", "'outcome'", "leak"),
        spec=modality(
            "demo",
            kind="tabular",
            source="patients.csv",
            id_column="pid",
            features=["age_years", "outcome"],
        ),
    ),
}


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_bad_input_is_refused_and_the_first_batch_stays(warehouse: Warehouse, case: Case) -> None:
    path = user_files(warehouse, case.spec)
    if case.files:
        case.files(path.parent)
    before = warehouse.snapshot()
    with pytest.raises(case.error) as info:
        attempt(warehouse, path)
    message = str(info.value)
    for fragment in case.says:
        assert fragment in message, f"{fragment!r} not in:\n{message}"
    assert warehouse.snapshot() == before
    assert warehouse.batches() == [GOOD]
    # An import error writes nothing; an ingest error moves the batch to quarantine.
    assert not (warehouse.landing / BAD).exists()
    assert not [p for p in warehouse.landing.iterdir() if p.name.startswith(".import-")]
    if case.error is BatchValidationError:
        assert (warehouse.landing / "_quarantine" / BAD / "errors.json").exists()


# ------------------------------------------------------------------ not fatal
def test_csv_with_another_delimiter_is_sniffed(warehouse: Warehouse) -> None:
    path = user_files(warehouse)
    semicolon_patients(path.parent)
    batch = attempt(warehouse, path)
    patients = pd.read_parquet(batch / "patients.parquet")
    assert len(patients) == N_PATIENTS and patients["patient_id"].iloc[0] == "pt-0000"


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
