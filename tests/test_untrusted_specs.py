"""No spec can delete data, escape its folder, hang the import or depend on the machine.

``SPEC_CASES`` extends the bad-input corpus of ``tests/test_bad_input.py`` (same
machinery, ``tests/fixtures/bad_input.py``) with what a careless or hostile spec can
say: unsafe batch ids and cohort names, reserved names, source queries that try to
attach the warehouse, write files or read outside the spec's folder, paths and links
that climb out of it, values over the limits, YAML alias bombs and duplicate keys.
Each is refused with its message while every earlier batch's rows, landing files and
quarantine stay as they were.  Then: the machine's time zone changes nothing, the
import is interruptible, and the commands print messages, not tracebacks.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from fusion_assets.cohorts.importer import CohortImportError
from fusion_assets.cohorts.spec_file import SpecError
from fusion_assets.landing_zone import STAGING_PREFIX
from tests.fixtures.bad_input import (
    BAD,
    ROOT,
    Case,
    FileEdit,
    Warehouse,
    edit_csv,
    modality,
    modality_key,
    patients_key,
    refuse,
    user_files,
)

REPO = Path(__file__).resolve().parents[1]


def query(sql: str) -> object:
    """A spec edit reading modality ``labs`` from ``sql``."""
    return modality_key("labs", source={"query": sql})


def vitals(**options: object) -> object:
    """A timeseries modality over the labs file with ``options``."""
    entry = {
        "kind": "timeseries",
        "source": "labs.csv",
        "id_column": "pid",
        "time_column": "drawn_at",
    }
    return modality("vitals", **{**entry, "channels": ["lab_a"], **options})


def yaml_edit(change) -> FileEdit:
    def edit(folder: Path) -> None:
        path = folder / "cohort.yaml"
        path.write_text(change(path.read_text()))

    return edit


def symlink(name: str, target: str) -> FileEdit:
    def edit(folder: Path) -> None:
        (folder / name).unlink(missing_ok=True)
        (folder / name).symlink_to(target)

    return edit


ALIAS_BOMB = "\n".join(
    [f"a0: &a0 [{', '.join(['x'] * 9)}]"]
    + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
)
SAFE_DIR = "may read files of the spec's folder"
ONE_SELECT = "a source query must be exactly one SELECT statement"

SPEC_CASES: dict[str, Case] = {
    # identifiers that become folders
    "batch_id_dotdot": Case(
        CohortImportError, ("batch id '..' is not a safe folder name",), batch_id=".."
    ),
    "batch_id_dot": Case(
        CohortImportError, ("batch id '.' is not a safe folder name",), batch_id="."
    ),
    "batch_id_quarantine": Case(
        CohortImportError,
        ("batch id '_quarantine'", "_quarantine, _replaced"),
        batch_id="_quarantine",
    ),
    "batch_id_with_a_separator": Case(CohortImportError, ("batch id 'a/b'",), batch_id="a/b"),
    "batch_id_climbing_inside": Case(CohortImportError, ("contains '..'",), batch_id="x..y"),
    "batch_id_like_an_option": Case(CohortImportError, ("batch id '-rf'",), batch_id="-rf"),
    "cohort_named_dotdot": Case(
        SpecError,
        ("key `name`", "cohort name '..' is not usable"),
        spec=lambda s: s.update(name=".."),
        batch_id=None,
    ),
    "cohort_named_quarantine": Case(
        SpecError,
        ("cohort name '_quarantine' is not usable",),
        spec=lambda s: s.update(name="_quarantine"),
        batch_id=None,
    ),
    "cohort_named_a_path": Case(
        SpecError,
        ("cohort name '../data' is not usable",),
        spec=lambda s: s.update(name="../data"),
        batch_id=None,
    ),
    # reserved names
    "modality_named_label": Case(
        SpecError,
        ("modalities.label", "'label' is a reserved name", "would encode the label"),
        spec=modality(
            "label", kind="text", source="memo.csv", id_column="patient", text_column="summary"
        ),
    ),
    "modality_named_patients": Case(
        SpecError,
        ("'patients' is a reserved name",),
        spec=modality(
            "patients", kind="text", source="memo.csv", id_column="patient", text_column="summary"
        ),
    ),
    "modality_named_none": Case(
        SpecError,
        ("'none' is a reserved name", "without modalities"),
        spec=modality(
            "none", kind="text", source="memo.csv", id_column="patient", text_column="summary"
        ),
    ),
    "modalities_differing_only_in_case": Case(
        SpecError,
        ("modalities ['labs', 'LABS'] differ only in case",),
        spec=modality("LABS", kind="tabular", source="labs.csv", id_column="pid"),
    ),
    "channel_named_bin": Case(
        SpecError,
        ("modalities.vitals.channels", "'bin' is a reserved name", "time-series bin"),
        spec=vitals(channels=["bin"]),
    ),
    "feature_listed_as_days_since_last": Case(
        SpecError,
        ("modalities.labs.features", "'days_since_last' is a reserved name"),
        spec=modality_key("labs", features=["lab_a", "days_since_last"]),
    ),
    "feature_listed_as_rowid": Case(
        SpecError,
        ("'rowid' is a reserved name", "row-number"),
        spec=modality_key("labs", features=["rowid"]),
    ),
    "feature_listed_as_patient_id": Case(
        SpecError,
        ("'PATIENT_ID' is a reserved name", "a key column"),  # DuckDB ignores case
        spec=modality_key("labs", features=["PATIENT_ID"]),
    ),
    # source queries: one read-only SELECT in a sandbox
    "query_with_a_second_statement": Case(
        CohortImportError,
        ("modality labs", ONE_SELECT, "['SELECT', 'DELETE']"),
        spec=query("SELECT * FROM 'labs.csv'; DELETE FROM labs"),
    ),
    "query_closing_its_paren_to_attach_the_warehouse": Case(
        CohortImportError,
        ("modality labs", "source query"),
        spec=query(
            f"SELECT 1) ; ATTACH '{ROOT}/warehouse.duckdb' AS w; DELETE FROM w.raw.labs; SELECT (1"
        ),
    ),
    "query_attaching_the_warehouse": Case(
        CohortImportError,
        (ONE_SELECT, "['ATTACH']"),
        spec=query(f"ATTACH '{ROOT}/warehouse.duckdb' AS w"),
    ),
    "query_copying_to_a_file": Case(
        CohortImportError,
        (ONE_SELECT, "['COPY']"),
        spec=query(f"COPY (SELECT 1 AS pid) TO '{ROOT}/leak.csv'"),
    ),
    "query_installing_an_extension": Case(
        CohortImportError, (ONE_SELECT,), spec=query("INSTALL httpfs")
    ),
    "query_loading_an_extension": Case(CohortImportError, (ONE_SELECT,), spec=query("LOAD httpfs")),
    "query_unlocking_file_access": Case(
        CohortImportError, (ONE_SELECT, "['SET']"), spec=query("SET enable_external_access = true")
    ),
    "query_reading_etc_passwd": Case(
        CohortImportError,
        (SAFE_DIR, "/etc/passwd"),
        spec=query("SELECT * FROM read_csv('/etc/passwd', header = false)"),
    ),
    "query_reading_text_outside": Case(
        CohortImportError,
        (SAFE_DIR,),
        spec=query("SELECT content AS pid FROM read_text('/etc/hostname')"),
    ),
    "query_globbing_the_root": Case(
        CohortImportError, (SAFE_DIR,), spec=query("SELECT file AS pid FROM glob('/*')")
    ),
    "query_climbing_out_with_dotdot": Case(
        CohortImportError, (SAFE_DIR,), spec=query("SELECT * FROM '../good_files/labs.csv'")
    ),
    "query_through_a_symbolic_link": Case(
        CohortImportError,
        (SAFE_DIR,),
        files=symlink("link.csv", "../good_files/labs.csv"),
        spec=query("SELECT * FROM read_csv('link.csv')"),
    ),
    "query_reaching_python_objects": Case(
        CohortImportError, ("the source query failed", "spec"), spec=query("SELECT * FROM spec")
    ),
    # plain sources stay in the spec's folder
    "source_climbing_out_with_dotdot": Case(
        CohortImportError,
        ("modality labs", "reaches outside the spec's folder"),
        spec=modality_key("labs", source="../good_files/labs.csv"),
    ),
    "source_as_an_absolute_path": Case(
        CohortImportError,
        ("reaches outside the spec's folder",),
        spec=modality_key("labs", source=f"{ROOT}/good_files/labs.csv"),
    ),
    "source_as_a_glob_climbing_out": Case(
        CohortImportError,
        ("reaches outside",),
        spec=modality_key("labs", source="../*_files/labs.csv"),
    ),
    "source_through_a_symbolic_link": Case(
        CohortImportError,
        ("reaches outside the spec's folder", "symbolic links and '..' resolved"),
        files=symlink("labs.csv", "../good_files/labs.csv"),
    ),
    # bounded work
    "n_bins_200000": Case(
        SpecError,
        ("modalities.vitals.n_bins", "200,000 is over the limit of 366"),
        spec=vitals(n_bins=200_000),
    ),
    "window_of_a_thousand_years": Case(
        SpecError,
        ("modalities.vitals.window_days", "over the limit of 36,525"),
        spec=vitals(window_days=365_000),
    ),
    "too_many_series_cells": Case(
        SpecError,
        ("300 x 2 = 600 cells", "at most 256 bins"),
        spec=vitals(channels=["lab_a", "lab_b"], n_bins=300),
    ),
    "too_many_listed_features": Case(
        SpecError,
        ("10,001 tabular features, over the limit of 10,000", "kind: omics"),
        spec=modality_key("labs", features=[f"f{i}" for i in range(10_001)]),
    ),
    "image_too_large": Case(
        SpecError,
        ("modalities.scan.height", "5,000 is over the limit of 4,096"),
        spec=modality(
            "scan",
            kind="image",
            source="genes.parquet",
            id_column="sample_of",
            pixels_column="x",
            height=5000,
            width=2,
        ),
    ),
    "dense_omics_too_wide": Case(
        SpecError,
        ("300,000 features is over the limit of 200,000", "format: sparse"),
        spec=modality_key("genes", n_features=300_000),
    ),
    "sparse_omics_too_wide": Case(
        SpecError,
        ("modalities.variants.n_features", "100,000,000 is over the limit of 10,000,000"),
        spec=modality(
            "variants",
            kind="omics",
            format="sparse",
            source="genes.parquet",
            id_column="sample_of",
            index_column="gene_0",
            value_column="gene_1",
            n_features=100_000_000,
        ),
    ),
    "yaml_alias_bomb": Case(
        SpecError,
        ("more than 64 YAML aliases",),
        files=yaml_edit(lambda text: ALIAS_BOMB + "\n" + text),
    ),
    "spec_file_of_a_megabyte": Case(
        SpecError,
        ("the file is over 1,000,000 bytes",),
        files=yaml_edit(lambda text: text + "#" * 1_100_000),
    ),
    # nothing silently changed in the spec
    "duplicate_modality_key": Case(
        SpecError,
        ("key 'labs' appears twice in one mapping", "keep only the last"),
        files=yaml_edit(
            lambda text: (
                text + "  labs:\n    kind: text\n    source: memo.csv\n    id_column: patient\n"
            )
        ),
    ),
    "duplicate_patients_key": Case(
        SpecError,
        ("key 'label_column' appears twice",),
        files=yaml_edit(
            lambda t: t.replace(
                "  label_column: outcome\n", "  label_column: outcome\n  label_column: admitted\n"
            )
        ),
    ),
    "unknown_time_zone": Case(
        SpecError,
        ("modalities.labs.timezone", "'Mars/Olympus' is not a time zone name"),
        spec=modality_key("labs", timezone="Mars/Olympus"),
    ),
    "sex_values_without_a_sex_column": Case(
        SpecError,
        ("patients.sex_values", "`sex_column`, which is not given"),
        spec=lambda s: (s["patients"].pop("sex_column"), s["patients"].update(sex_values={0: "F"})),
    ),
    "sex_values_to_an_unknown_sex": Case(
        SpecError,
        ("code 0 maps to 'X', not F or M",),
        spec=patients_key(sex_values={0: "X", 1: "M"}),
    ),
}


@pytest.mark.parametrize("case", list(SPEC_CASES.values()), ids=list(SPEC_CASES))
def test_untrusted_spec_is_refused_and_earlier_batches_stay(
    corpus_warehouse: Warehouse, case: Case
) -> None:
    refuse(corpus_warehouse, case)
    assert not (corpus_warehouse.root / "leak.csv").exists()  # nothing written outside


# ------------------------------------------------------------------ the machine's time zone
_IMPORT = """
import json, sys, duckdb
from fusion_assets.cohorts.importer import import_cohort
from fusion_assets.cohorts.spec_file import read_spec_file
from fusion_assets.warehouse.ingest import ingest_batch
spec = read_spec_file(sys.argv[1])
batch = import_cohort(spec, sys.argv[2], sys.argv[3])
with duckdb.connect() as con:
    ingest_batch(con, batch, spec)
    rows = con.execute("SELECT CAST(event_time AS VARCHAR) FROM raw.labs ORDER BY rowid").fetchall()
    index = con.execute("SELECT CAST(index_time AS VARCHAR) FROM raw.patients ORDER BY rowid").fetchall()
print(json.dumps({"labs": rows, "patients": index}))
"""


def _import_in(zone: str, spec: Path, landing: Path) -> dict:
    env = {**os.environ, "TZ": zone, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT, str(spec), str(landing), zone.replace("/", "-")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_machines_time_zone_never_matters(corpus_warehouse: Warehouse) -> None:
    """Zoned and naive times (with a `timezone`) land the same under any TZ."""

    def zoned(frame: pd.DataFrame) -> pd.DataFrame:
        suffixes = ["+02:00", "Z", " America/New_York", ""]
        return frame.assign(drawn_at=[t + suffixes[i % 4] for i, t in enumerate(frame["drawn_at"])])

    path = user_files(corpus_warehouse, modality_key("labs", timezone="Asia/Kolkata"))
    edit_csv("labs.csv", zoned)(path.parent)
    landing = corpus_warehouse.root / "tz_landing"
    results = [
        _import_in(zone, path, landing)
        for zone in ("UTC", "America/Los_Angeles", "Pacific/Kiritimati")
    ]
    assert results[0] == results[1] == results[2]
    naive = pd.read_csv(corpus_warehouse.root / "good_files" / "labs.csv")["drawn_at"]
    got = pd.to_datetime([r[0] for r in results[0]["labs"]])
    hours = list((pd.to_datetime(naive) - got).dt.total_seconds() / 3600)
    new_york = ZoneInfo("America/New_York").utcoffset(pd.Timestamp(naive[2]).to_pydatetime())
    # +02:00, Z, a named zone, and a naive time of the spec's `timezone` (Kolkata, +05:30)
    assert hours[:4] == [2.0, 0.0, new_york.total_seconds() / 3600, 5.5]


# ------------------------------------------------------------------ the commands
def _cli(*args: str, **popen) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "fusion_assets.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


@pytest.mark.parametrize(
    ("edit", "batch_id", "says"),
    [
        (lambda s: s.update(name=".."), None, "cohort name '..' is not usable"),
        (None, "..", "batch id '..' is not a safe folder name"),
        (vitals(n_bins=200_000), "x", "200,000 is over the limit"),
        (query("SELECT 1; ATTACH 'w.duckdb' AS w"), "x", ONE_SELECT),
    ],
    ids=["cohort_name", "batch_id", "limit", "query"],
)
def test_import_prints_the_message_not_a_traceback(
    corpus_warehouse: Warehouse, edit, batch_id, says
) -> None:
    path = user_files(corpus_warehouse, edit)
    args = ["import", "--spec", str(path), "--landing", str(corpus_warehouse.landing)]
    done = _cli(*args, *(["--batch-id", batch_id] if batch_id else []))
    out, err = done.communicate(timeout=120)
    assert done.returncode == 2, out + err
    assert says in err and "Traceback" not in err


def test_import_is_interruptible(corpus_warehouse: Warehouse) -> None:
    """Ctrl-C reaches a long DuckDB query: the import stops, exit 130, nothing left behind."""
    endless = "SELECT l.* FROM 'labs.csv' l, range(1000000000000) r WHERE r.range % 7 = 100"
    path = user_files(corpus_warehouse, query(endless))
    files_before = corpus_warehouse.landing_files()
    args = [
        "import",
        "--spec",
        str(path),
        "--landing",
        str(corpus_warehouse.landing),
        "--batch-id",
        BAD,
    ]
    proc = _cli(*args, start_new_session=True)
    try:
        # Long enough for the CLI's imports on a loaded machine: the signal must reach the query.
        time.sleep(10)
        assert proc.poll() is None  # still running the query
        started = time.perf_counter()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:  # never leave an endless query running after a failed assertion
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert time.perf_counter() - started < 15, "the interrupt took too long"
    assert proc.returncode == 130, out + err
    assert corpus_warehouse.landing_files() == files_before
    assert not [
        p for p in corpus_warehouse.landing.iterdir() if p.name.startswith((STAGING_PREFIX, BAD))
    ]


def test_a_killed_import_is_cleaned_by_the_next_one(corpus_warehouse: Warehouse) -> None:
    """SIGKILL mid-import leaves its ``.import-*`` staging folder (no handler runs); the next
    import removes it, publishes its own batch, and every earlier batch's files and rows
    are unchanged.

    The killed import is a real one in its own process, held just before its publishing
    rename (every file written to staging) so that the kill lands mid-import every time.
    """
    from fusion_assets.cohorts.importer import import_cohort
    from fusion_assets.cohorts.spec_file import read_spec_file

    path = user_files(corpus_warehouse)
    landing = corpus_warehouse.landing
    files_before, rows_before = corpus_warehouse.landing_files(), corpus_warehouse.snapshot()
    held = (
        "import sys, time\n"
        "import fusion_assets.cohorts.importer as importer\n"
        "from fusion_assets.cohorts.spec_file import read_spec_file\n"
        "importer.publish_batch = lambda *a, **k: (print('held', flush=True), time.sleep(3600))\n"
        "importer.import_cohort(read_spec_file(sys.argv[1]), importer.Path(sys.argv[2]), sys.argv[3])\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", held, str(path), str(landing), BAD],
        env=env, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout.readline().strip() == "held"
    staged = list(landing.glob(f"{STAGING_PREFIX}{BAD}-{proc.pid}"))
    assert staged and list(staged[0].glob("*.parquet"))
    proc.kill()  # SIGKILL
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL and staged[0].is_dir()  # left behind

    import_cohort(read_spec_file(path), landing, "after_kill")
    assert not list(landing.glob(f"{STAGING_PREFIX}*"))
    assert not (landing / BAD).exists() and (landing / "after_kill").is_dir()
    after = corpus_warehouse.landing_files()
    assert {k: v for k, v in after.items() if not k.startswith("after_kill")} == files_before
    assert corpus_warehouse.snapshot() == rows_before


def test_a_spec_read_back_from_the_schema_keeps_its_keys(tmp_path: Path) -> None:
    """The new keys (sex_values, timezone) are in the JSON Schema editors read."""
    from fusion_assets.cohorts.spec_file import spec_json_schema

    schema = json.dumps(spec_json_schema())
    assert "sex_values" in schema and "timezone" in schema
