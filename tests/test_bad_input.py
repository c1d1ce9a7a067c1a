"""Bad input never loses data: a corpus of malformed cohorts, each refused with a clear error.

Every case starts from a warehouse holding earlier batches (``good`` ingested from the
user's files of ``tests/fixtures/user_files.py``, ``old_bad`` quarantined; see
``tests/fixtures/bad_input.py``), breaks one thing in a fresh copy of the user's files
or spec (or in the landing batch between import and ingest), and runs what a user
runs: read the spec, import the sources, ingest the landing batch.  ``CASES`` is the
corpus: what is broken and what the error must say (what is wrong and where: key /
file / modality / column / rows, 1-based data rows).  Every case also asserts that the
earlier batches are intact in the warehouse (row counts and a checksum per raw table),
that every earlier landing and quarantine file is byte for byte the same, and that no
batch or staging folder was left behind (except a batch that is not complete yet,
which stays for a later attempt).  Spec-level and security cases (identifiers, query
sandbox, limits, YAML) are in ``tests/test_untrusted_specs.py``; documented acceptances
of unusual but valid input are at the end of this file.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fusion_assets.cohorts.importer import REPORT_FILE, CohortImportError, import_cohort
from fusion_assets.cohorts.spec_file import SpecError, read_spec_file
from fusion_assets.landing_zone import BatchNotReady
from fusion_assets.warehouse.ingest import ingest_batch
from fusion_assets.warehouse.quarantine import BatchValidationError
from tests.fixtures.bad_input import (
    BAD,
    GOOD,
    N_PATIENTS,
    Case,
    FileEdit,
    SpecEdit,
    Warehouse,
    attempt,
    edit_csv,
    edit_parquet,
    modality,
    modality_key,
    patients_key,
    refuse,
    set_cells,
    user_files,
)
from tests.fixtures.warehouse import raw_snapshot


# ------------------------------------------------------------------ how files are broken
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


def header(name: str, old: str, new: str) -> FileEdit:
    """Rename column ``old`` to ``new`` in the header line of CSV ``name`` (as written)."""

    def edit(folder: Path) -> None:
        lines = (folder / name).read_text().split("\n", 1)
        names = [new if c == old else c for c in lines[0].split(",")]
        (folder / name).write_text(",".join(names) + "\n" + lines[1])

    return edit


def add_column(name: str, column: str, values: Callable[[pd.DataFrame], object]) -> FileEdit:
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        frame[column] = values(frame)
        return frame

    return edit_csv(name, change)


def sparse_file(rows: list[tuple[str, object, float]]) -> FileEdit:
    """``variants.parquet``: (patient, index, value) rows of a sparse omics modality."""

    def edit(folder: Path) -> None:
        pid, idx, value = zip(*rows, strict=True)
        pd.DataFrame({"pid": pid, "idx": idx, "dose": value}).to_parquet(
            folder / "variants.parquet"
        )

    return edit


SPARSE = modality(
    "variants",
    kind="omics",
    format="sparse",
    source="variants.parquet",
    id_column="pid",
    index_column="idx",
    value_column="dose",
    n_features=10,
)


def list_file(lists: list[list[float]]) -> FileEdit:
    """``vectors.parquet``: one list of floats per patient (a dense omics list column)."""

    def edit(folder: Path) -> None:
        pid = [f"pt-{i:04d}" for i in range(len(lists))]
        pq.write_table(pa.table({"pid": pid, "expr": lists}), folder / "vectors.parquet")

    return edit


VECTORS = modality(
    "vectors", kind="omics", source="vectors.parquet", id_column="pid", list_column="expr"
)


def extra_parquet_column(column: str, values: Callable[[int], object]) -> FileEdit:
    """``extra.parquet``: one row per patient with ``column`` (e.g. a struct)."""

    def edit(folder: Path) -> None:
        pid = [f"pt-{i:04d}" for i in range(N_PATIENTS)]
        pq.write_table(
            pa.table({"pid": pid, column: [values(i) for i in range(N_PATIENTS)]}),
            folder / "extra.parquet",
        )

    return edit


def notes_parquet(text: str) -> FileEdit:
    def edit(folder: Path) -> None:
        pd.DataFrame({"patient": ["pt-0000", "pt-0001"], "summary": [text, "short"]}).to_parquet(
            folder / "notes.parquet"
        )

    return edit


def three_patients(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.head(3).assign(outcome=["0", "1", "0"])


def one_more_gene(frame: pd.DataFrame) -> None:
    frame["gene_4"] = 1.0


# ------------------------------------------------------------------ how landing batches are broken
def delete(name: str) -> FileEdit:
    return lambda batch: (batch / name).unlink()


def flip_a_byte(name: str) -> FileEdit:
    def edit(batch: Path) -> None:
        data = bytearray((batch / name).read_bytes())
        data[len(data) // 2] ^= 0xFF
        (batch / name).write_bytes(bytes(data))

    return edit


def extra_landing_file(batch: Path) -> None:
    (batch / "extra.parquet").write_bytes((batch / "patients.parquet").read_bytes())


def half_written_marker(batch: Path) -> None:
    text = (batch / "_READY").read_text()
    (batch / "_READY").write_text(text[: len(text) // 2])


def reserved_landing_column(batch: Path) -> None:
    labs = pd.read_parquet(batch / "labs.parquet").assign(days_since_last=1.0)
    labs.to_parquet(batch / "labs.parquet", index=False)
    (batch / "_READY").write_text("")  # as a hand-made batch would: no manifest


# ------------------------------------------------------------------ the corpus
LABS_TIMES = "time column 'drawn_at'"

CASES: dict[str, Case] = {
    # the spec file
    "misspelled_spec_key": Case(
        SpecError,
        ("cohort.yaml", "bad_files", "`modalites`", "did you mean `modalities`?"),
        spec=lambda s: s.update(modalites=s.pop("modalities")),
    ),
    "unknown_kind": Case(
        SpecError,
        ("modalities.labs.kind", "did you mean `tabular`?"),
        spec=modality_key("labs", kind="tabluar"),
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
        ("modality labs (labs.csv)", "column 'pid'", "modalities.labs.id_column", "patient_ref"),
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
        spec=patients_key(delimiter=","),
    ),
    "a_line_over_the_csv_limit": Case(
        CohortImportError,
        ("modality memo", "memo.csv", "over the CSV line limit of 2,000,000 bytes", "shorten"),
        files=set_cells("memo.csv", "summary", [0], "x" * 3_000_000),
    ),
    "a_text_over_the_field_limit": Case(
        CohortImportError,
        (
            "modality notes",
            "'summary': 1 value(s) are longer than 1,000,000 bytes",
            "data rows [1]",
        ),
        files=notes_parquet("y" * 1_500_000),
        spec=modality(
            "notes", kind="text", source="notes.parquet", id_column="patient", text_column="summary"
        ),
    ),
    "repeated_csv_header": Case(
        CohortImportError,
        ("modality labs", "the header of labs.csv names ['lab_a'] more than once", "own name"),
        files=header("labs.csv", "lab_b", "lab_a"),
    ),
    "csv_header_repeated_in_another_case": Case(
        CohortImportError,
        ("the header of labs.csv names ['lab_a'] more than once (ignoring case)",),
        files=header("labs.csv", "lab_b", "LAB_A"),
    ),
    "numeric_column_named_rowid": Case(
        CohortImportError,
        ("modality labs", "labs.csv has a column named 'rowid'", "RENAME (rowid AS row_id)"),
        files=add_column("labs.csv", "rowid", lambda f: [str(i * 7) for i in range(len(f))]),
    ),
    "text_column_named_rowid": Case(
        CohortImportError,
        ("modality memo", "memo.csv has a column named 'rowid'"),
        files=add_column("memo.csv", "rowid", lambda f: ["note"] * len(f)),
    ),
    "feature_named_days_since_last_by_pattern": Case(
        CohortImportError,
        (
            "modality labs",
            "feature column 'days_since_last' is a reserved name",
            "computed by alignment",
        ),
        files=header("labs.csv", "lab_b", "days_since_last"),
        spec=modality_key("labs", features="regex:^(lab_a|days_since_last)$"),
    ),
    "struct_feature_column": Case(
        CohortImportError,
        ("modality extra", "features hold nested or binary values", "info (STRUCT", "flatten"),
        files=extra_parquet_column("info", lambda i: {"a": i, "b": "x"}),
        spec=modality("extra", kind="tabular", source="extra.parquet", id_column="pid"),
    ),
    "list_feature_column": Case(
        CohortImportError,
        ("modality extra", "nested or binary values", "codes (BIGINT[])"),
        files=extra_parquet_column("codes", lambda i: [i, i + 1]),
        spec=modality("extra", kind="tabular", source="extra.parquet", id_column="pid"),
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
    "patient_id_NULL": Case(
        CohortImportError,
        (
            "patients (patients.csv)",
            "1 of 20 ids are placeholders for a missing value",
            "data rows [4]",
            "'NULL'",
        ),
        files=set_cells("patients.csv", "pid", [3], "NULL"),
    ),
    "patient_id_NaN_in_a_modality": Case(
        CohortImportError,
        ("modality labs (labs.csv)", "ids are placeholders", "data rows [1]", "'NaN'"),
        files=set_cells("labs.csv", "pid", [0], "NaN"),
    ),
    "patient_id_with_a_leading_tab": Case(
        CohortImportError,
        ("patients (patients.csv)", "contain control characters", "data rows [3]", r"'\tpt-0002'"),
        files=set_cells("patients.csv", "pid", [2], "\tpt-0002"),
    ),
    "patient_id_with_a_newline": Case(
        CohortImportError,
        ("modality memo (memo.csv)", "contain control characters", r"'pt-0000\n'"),
        files=set_cells("memo.csv", "patient", [0], "pt-0000\n"),
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
    "positive_label_matching_no_value": Case(
        CohortImportError,
        ("single class (0)", "`positive_label` 'yes' matches none of ['0', '1']"),
        spec=patients_key(positive_label="yes"),
    ),
    "a_three_patient_cohort": Case(
        CohortImportError,
        ("the cohort has 3 patients, only 1 of class 1", "at least 5 of each class"),
        files=edit_csv("patients.csv", three_patients),
    ),
    "too_few_events": Case(
        CohortImportError,
        ("the cohort has 20 patients, only 2 of class 1", "5-fold cross-validation"),
        files=edit_csv("patients.csv", lambda f: f.assign(outcome=["1", "1"] + ["0"] * 18)),
    ),
    "sex_coded_zero_one_without_sex_values": Case(
        CohortImportError,
        ("sex column 'gender'", "values ['0', '1']", "`patients.sex_values` (e.g. {0: F, 1: M})"),
        files=edit_csv("patients.csv", lambda f: f.assign(gender=["0", "1"] * 10)),
    ),
    "sex_code_missing_from_sex_values": Case(
        CohortImportError,
        ("sex column 'gender': 1 values", "values ['2']", "data rows [3]", "add the codes"),
        files=edit_csv("patients.csv", lambda f: f.assign(gender=["0", "1", "2"] + ["1"] * 17)),
        spec=patients_key(sex_values={0: "F", 1: "M"}),
    ),
    "age_NaN": Case(
        CohortImportError,
        (
            "age column 'age_years': 1 values are not usable ages",
            "['nan']",
            "data rows [2]",
            "not NaN",
        ),
        files=set_cells("patients.csv", "age_years", [1], "NaN"),
    ),
    "age_1e12": Case(
        CohortImportError,
        ("age column 'age_years': 1 values are not usable ages", "data rows [2]"),
        files=set_cells("patients.csv", "age_years", [1], "1e12"),
    ),
    "age_not_a_number": Case(
        CohortImportError,
        ("age column 'age_years': 1 values are not numbers", "['old']", "data rows [5]"),
        files=set_cells("patients.csv", "age_years", [4], "old"),
    ),
    # what only the warehouse contract knows (age 0-130) is caught by ingest: quarantined
    "out_of_range_age_is_quarantined_by_ingest": Case(
        BatchValidationError,
        ("patients.parquet", "column age", "in_range", "failed on 1 row(s)", "'row': 3"),
        files=set_cells("patients.csv", "age_years", [2], "250"),
    ),
    # times
    "unparseable_timestamps": Case(
        CohortImportError,
        (
            "modality labs (labs.csv)",
            f"{LABS_TIMES}: 3 of 60 values are not dates/times",
            "rows [1, 8, 10]",
            "last tuesday",
            "time_format",
        ),
        files=set_cells("labs.csv", "drawn_at", [0, 7, 9], "last tuesday"),
    ),
    "time_format_always_wins": Case(
        CohortImportError,
        (f"{LABS_TIMES}: 60 of 60 values are not dates/times", "`time_format` (now '%d/%m/%Y')"),
        spec=modality_key("labs", time_format="%d/%m/%Y"),
    ),
    "naive_and_zoned_times_mixed": Case(
        CohortImportError,
        (f"{LABS_TIMES} mixes 2 values with a time zone and 58 without", "set `timezone`"),
        files=edit_csv(
            "labs.csv",
            lambda f: f.assign(
                drawn_at=[t + ("+02:00" if i < 2 else "") for i, t in enumerate(f["drawn_at"])]
            ),
        ),
    ),
    "index_time_mixing_named_zones_and_naive": Case(
        CohortImportError,
        ("patients (patients.csv)", "time column 'admitted' mixes 1 values with a time zone"),
        files=set_cells("patients.csv", "admitted", [0], "2024-03-13 09:00 Europe/Berlin"),
    ),
    "all_rows_after_the_index_time": Case(
        CohortImportError,
        (
            "modality labs (labs.csv)",
            "all 60 rows",
            "at or after their index time",
            "time_format / timezone",
        ),
        files=set_cells("labs.csv", "drawn_at", None, "2100-01-01"),
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
    "a_text_value_in_a_numeric_lab": Case(
        CohortImportError,
        (
            "modality labs",
            "column 'lab_a' holds numbers except 1 value(s) ['<0.5']",
            "data rows [5]",
        ),
        files=set_cells("labs.csv", "lab_a", [4], "<0.5"),
    ),
    "NA_markers_in_a_numeric_lab": Case(
        CohortImportError,
        ("column 'lab_b' holds numbers except 2 value(s) ['NA']", "leave the cells empty"),
        files=set_cells("labs.csv", "lab_b", [0, 2], "NA"),
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
    "ragged_list_column": Case(
        CohortImportError,
        ("modality vectors", "1 of 5 lists differ from the most common length 3", "data rows [5]"),
        files=list_file([[1.0, 2.0, 3.0]] * 4 + [[1.0, 2.0]]),
        spec=VECTORS,
    ),
    "NaN_inside_a_list_column": Case(
        CohortImportError,
        ("modality vectors", "1 of 5 lists hold empty, NaN or infinite values", "data rows [2]"),
        files=list_file([[1.0, 2.0], [float("nan"), 1.0], [1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]),
        spec=VECTORS,
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
    "sparse_pairs_repeated": Case(
        CohortImportError,
        (
            "modality variants",
            "1 (patient, index) pairs appear more than once (2 rows",
            "pt-0001 / 3",
        ),
        files=sparse_file([("pt-0000", 1, 1.0), ("pt-0001", 3, 1.0), ("pt-0001", 3, 2.0)]),
        spec=SPARSE,
    ),
    "sparse_indices_not_whole": Case(
        CohortImportError,
        ("index column 'idx': 1 of 3 indices are not whole numbers", "['1.5']", "data rows [2]"),
        files=sparse_file([("pt-0000", 1.0, 1.0), ("pt-0001", 1.5, 1.0), ("pt-0002", 2.0, 1.0)]),
        spec=SPARSE,
    ),
    "sparse_index_negative": Case(
        CohortImportError,
        ("index column 'idx': 1 of 3 indices are negative", "['-1']"),
        files=sparse_file([("pt-0000", 1, 1.0), ("pt-0001", -1, 1.0), ("pt-0002", 2, 1.0)]),
        spec=SPARSE,
    ),
    "sparse_index_past_n_features": Case(
        CohortImportError,
        ("indices are >= n_features (10)", "['12']"),
        files=sparse_file([("pt-0000", 1, 1.0), ("pt-0001", 12, 1.0), ("pt-0002", 2, 1.0)]),
        spec=SPARSE,
    ),
    # the landing zone: append-only, manifests
    "changed_data_under_an_existing_batch_id": Case(
        CohortImportError,
        ("landing batch 'good'", "already exists", "with other content", "--replace"),
        files=set_cells("labs.csv", "lab_a", [0], "9.5"),
        batch_id=GOOD,
    ),
    "a_file_missing_although_ready": Case(
        BatchNotReady,
        ("not complete", "labs.parquet: missing", "left in place"),
        landing=delete("labs.parquet"),
        stays=True,
    ),
    "ready_marker_still_being_written": Case(
        BatchNotReady,
        ("_READY unreadable",),
        landing=half_written_marker,
        stays=True,
    ),
    "a_file_changed_after_the_batch_was_written": Case(
        BatchValidationError,
        ("memo.parquet", "manifest_checksum", "content differs from the manifest"),
        landing=flip_a_byte("memo.parquet"),
    ),
    "a_file_added_after_the_batch_was_written": Case(
        BatchValidationError,
        ("extra.parquet", "manifest_lists_file", "added after the batch was written"),
        landing=extra_landing_file,
    ),
    "a_landing_column_with_a_reserved_name": Case(
        BatchValidationError,
        ("labs.parquet (modality labs)", "column days_since_last", "name_not_reserved"),
        landing=reserved_landing_column,
    ),
    # type drift against the earlier batch's raw tables
    "text_into_a_numeric_raw_column": Case(
        BatchValidationError,
        ("labs.parquet (modality labs)", "column lab_a", "type_matches_raw (DOUBLE)", "'high'"),
        files=edit_csv("labs.csv", lambda f: f.assign(lab_a=["high", "low"] * 30)),
    ),
    "vectors_longer_than_the_raw_tables": Case(
        BatchValidationError,
        ("genes.parquet (modality genes)", "column expression", "list_length_matches_raw == 4"),
        files=edit_parquet("genes.parquet", one_more_gene),
    ),
}


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_bad_input_is_refused_and_earlier_batches_stay(
    corpus_warehouse: Warehouse, case: Case
) -> None:
    refuse(corpus_warehouse, case)


def test_the_corpus_is_complete() -> None:
    """Issue 17 item 10: the 20 original cases and at least 40 more (with the spec-level file)."""
    from tests.test_untrusted_specs import SPEC_CASES

    assert len(CASES) + len(SPEC_CASES) >= 60


# ------------------------------------------------------------------ documented acceptances
def _import(wh: Warehouse, edit_spec: SpecEdit | None = None, files: FileEdit | None = None):
    path = user_files(wh, edit_spec)
    if files:
        files(path.parent)
    notes: list[str] = []
    batch = import_cohort(read_spec_file(path), wh.landing, BAD, log=notes.append)
    return batch, notes


def test_csv_with_another_delimiter_is_sniffed(corpus_warehouse: Warehouse) -> None:
    path = user_files(corpus_warehouse)
    semicolon_patients(path.parent)
    batch = attempt(corpus_warehouse, path)
    patients = pd.read_parquet(batch / "patients.parquet")
    assert len(patients) == N_PATIENTS and patients["patient_id"].iloc[0] == "pt-0000"


def test_rows_of_unknown_patients_are_reported_and_ignored(corpus_warehouse: Warehouse) -> None:
    wh = corpus_warehouse
    path = user_files(wh)
    labs = pd.read_csv(path.parent / "labs.csv")
    strangers = labs.head(3).assign(pid=["zz-1", "zz-2", "zz-2"])
    pd.concat([labs, strangers]).to_csv(path.parent / "labs.csv", index=False)
    before = raw_snapshot(wh.con, GOOD, include_batches=True)
    notes: list[str] = []
    spec = read_spec_file(path)
    batch = import_cohort(spec, wh.landing, BAD, log=notes.append)
    assert any("modality labs" in n and "3 row(s)" in n and "zz-1" in n for n in notes)
    assert "3 row(s)" in (batch / REPORT_FILE).read_text()
    result = ingest_batch(wh.con, batch, spec)
    assert result.orphan_rows == {"labs": 3}
    assert result.rows["labs"] == len(labs)
    assert raw_snapshot(wh.con, GOOD, include_batches=True) == before  # the first batch stays
    assert sorted(wh.batches()) == [BAD, GOOD]


def test_sex_values_map_codes_to_f_and_m(corpus_warehouse: Warehouse) -> None:
    codes = edit_csv("patients.csv", lambda f: f.assign(gender=["0", "1", ""] + ["1"] * 17))
    batch, _ = _import(corpus_warehouse, patients_key(sex_values={0: "F", 1: "M"}), codes)
    sex = pd.read_parquet(batch / "patients.parquet")["sex"]
    assert sex.iloc[0] == "F" and sex.iloc[1] == "M" and pd.isna(sex.iloc[2])


def test_positive_label_yes_on_a_yes_no_column(corpus_warehouse: Warehouse) -> None:
    """The CSV reader types yes/no as BOOLEAN; the label column is read as text instead."""
    yes_no = edit_csv(
        "patients.csv", lambda f: f.assign(outcome=f["outcome"].map({"1": "yes", "0": "no"}))
    )
    batch, _ = _import(corpus_warehouse, patients_key(positive_label="yes"), yes_no)
    labels = pd.read_parquet(batch / "patients.parquet")["label"]
    expected = pd.read_csv(corpus_warehouse.root / "good_files" / "patients.csv")["outcome"]
    assert labels.tolist() == expected.tolist()


@pytest.mark.parametrize(
    ("ages", "why"),
    [
        (lambda a: ((a - a.mean()) / a.std()).round(3), "negative values"),
        (lambda a: (a / 100).round(3), "fractional values"),
        (lambda a: a * 365, "months or days"),
    ],
    ids=["standardised", "zero_to_one", "days"],
)
def test_ages_not_in_years_are_left_out_with_a_note(
    corpus_warehouse: Warehouse, ages: Callable[[pd.Series], pd.Series], why: str
) -> None:
    """Issue 11 item 6: not all patients in one age band; the decision is recorded."""
    wh = corpus_warehouse

    def rescale(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.assign(age_years=ages(frame["age_years"].astype(float)).astype(str))

    batch, notes = _import(wh, files=edit_csv("patients.csv", rescale))
    assert pd.read_parquet(batch / "patients.parquet")["age"].isna().all()
    report = json.loads((batch / REPORT_FILE).read_text())
    assert report["age_scale"]["years"] is False and why in report["age_scale"]["reason"]
    assert any("not in years" in n for n in notes)
    ingest_batch(wh.con, batch, read_spec_file(wh.root / "bad_files" / "cohort.yaml"))
    stored = wh.con.execute("SELECT import_report FROM raw.batches WHERE batch_id = ?", [BAD])
    assert json.loads(stored.fetchone()[0])["age_scale"]["years"] is False


def test_time_format_wins_over_the_csv_sniffer(corpus_warehouse: Warehouse) -> None:
    """``01/03/2024`` with ``%m/%d/%Y`` is 3 January (DuckDB's sniffer would read 1 March)."""

    def us_dates(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.assign(admitted=pd.to_datetime(frame["admitted"]).dt.strftime("%m/%d/%Y"))

    batch, _ = _import(
        corpus_warehouse, patients_key(time_format="%m/%d/%Y"), edit_csv("patients.csv", us_dates)
    )
    got = pd.read_parquet(batch / "patients.parquet")["index_time"]
    good = pd.read_csv(corpus_warehouse.root / "good_files" / "patients.csv")["admitted"]
    assert got.dt.strftime("%Y-%m-%d").tolist() == good.tolist()


def test_timezone_names_the_zone_of_naive_times(corpus_warehouse: Warehouse) -> None:
    def zoned(frame: pd.DataFrame) -> pd.DataFrame:
        times = [t + ("Z" if i == 0 else "") for i, t in enumerate(frame["drawn_at"])]
        return frame.assign(drawn_at=times)

    batch, _ = _import(
        corpus_warehouse,
        modality_key("labs", timezone="Europe/Berlin"),
        edit_csv("labs.csv", zoned),
    )
    got = pd.read_parquet(batch / "labs.parquet")["event_time"]
    good = pd.to_datetime(
        pd.read_csv(corpus_warehouse.root / "good_files" / "labs.csv")["drawn_at"]
    )
    assert got.iloc[0] == good.iloc[0]  # 'Z': already UTC
    # naive wall times of Berlin (UTC+1 in March, UTC+2 in summer) are stored in UTC
    offsets = (good.iloc[1:] - got.iloc[1:]).dt.total_seconds() / 3600
    assert set(offsets) <= {1.0, 2.0} and 1.0 in set(offsets)
