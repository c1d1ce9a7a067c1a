"""The landing zone is append-only: staged writes, manifests, no batch ever replaced by accident.

See ``fusion_assets/landing_zone.py`` for the protocol and docs/operations.md
("Threat model") for what it guarantees.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fusion_assets.cohorts.importer import CohortImportError, import_cohort
from fusion_assets.cohorts.spec_file import read_spec_file
from fusion_assets.cohorts.synthetic import synthesize_batch
from fusion_assets.identifiers import InvalidIdentifier
from fusion_assets.landing_zone import (
    READY_MARKER,
    REPLACED_DIR,
    STAGING_PREFIX,
    LandingConflict,
    clean_stale_staging,
    read_manifest,
    scan_ready_batches,
)
from fusion_assets.warehouse.ingest import ingest_batch
from fusion_assets.warehouse.quarantine import BatchValidationError, quarantine_batch
from tests.fixtures.bad_input import Warehouse, set_cells, user_files

REPO = Path(__file__).resolve().parents[1]


def _tree(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def _lab_a(wh: Warehouse, batch_id: str) -> float:
    return wh.con.execute(
        "SELECT sum(lab_a) FROM raw.labs WHERE batch_id = ?", [batch_id]
    ).fetchone()[0]


def test_the_manifest_lists_every_file_with_size_and_checksum(corpus_warehouse: Warehouse) -> None:
    batch = corpus_warehouse.landing / "good"
    manifest = read_manifest(batch)
    files = {p.name for p in batch.iterdir() if p.name != READY_MARKER}
    assert set(manifest["files"]) == files and manifest["batch_id"] == "good"
    assert all(e["bytes"] == (batch / n).stat().st_size for n, e in manifest["files"].items())
    assert all(len(e["sha256"]) == 64 for e in manifest["files"].values())


def test_importing_the_same_data_again_changes_nothing(corpus_warehouse: Warehouse) -> None:
    wh = corpus_warehouse
    before = _tree(wh.landing / "good")
    notes: list[str] = []
    spec = read_spec_file(wh.root / "good_files" / "cohort.yaml")
    batch = import_cohort(spec, wh.landing, "good", log=notes.append)
    assert batch == wh.landing / "good" and _tree(batch) == before
    assert any("already in the landing zone with the same data" in n for n in notes)
    assert not wh.staging()


def test_replace_keeps_the_old_copy_until_the_new_one_is_ingested(
    corpus_warehouse: Warehouse,
) -> None:
    wh = corpus_warehouse
    old = _tree(wh.landing / "good")
    path = user_files(wh)
    set_cells("labs.csv", "lab_a", [0], "9.5")(path.parent)
    spec = read_spec_file(path)
    with pytest.raises(CohortImportError, match="already exists"):
        import_cohort(spec, wh.landing, "good")
    batch = import_cohort(spec, wh.landing, "good", replace=True)
    (kept,) = (wh.landing / REPLACED_DIR).iterdir()
    assert _tree(kept) == old and _tree(batch) != old
    before = _lab_a(wh, "good")
    ingest_batch(wh.con, batch, spec)
    assert _lab_a(wh, "good") != before  # the new data replaced the batch's rows
    assert not list((wh.landing / REPLACED_DIR).iterdir())  # and the old copy went


def test_a_refused_replacement_puts_the_old_copy_back(corpus_warehouse: Warehouse) -> None:
    wh = corpus_warehouse
    old, before = _tree(wh.landing / "good"), wh.snapshot()
    path = user_files(wh)
    set_cells("patients.csv", "age_years", [2], "250")(path.parent)  # ingest quarantines it
    spec = read_spec_file(path)
    batch = import_cohort(spec, wh.landing, "good", replace=True)
    with pytest.raises(BatchValidationError):
        ingest_batch(wh.con, batch, spec)
    assert _tree(wh.landing / "good") == old and wh.snapshot() == before
    assert (wh.landing / "_quarantine" / "good" / "errors.json").exists()
    assert not list((wh.landing / REPLACED_DIR).iterdir())


def test_stale_staging_folders_are_cleaned(corpus_warehouse: Warehouse, tmp_path: Path) -> None:
    """A killed import leaves ``.import-*``; the next writer removes it (not a live one's)."""
    landing = corpus_warehouse.landing
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    folders = {}
    for name, pid, age in (
        ("dead", int(dead.stdout), 0),
        ("alive", os.getpid(), 0),
        ("old", os.getpid(), 7 * 3600),
    ):
        folder = landing / f"{STAGING_PREFIX}{name}-{pid}"
        folder.mkdir()
        (folder / ".owner").write_text(json.dumps({"host": socket.gethostname(), "pid": pid}))
        (folder / "patients.parquet").write_bytes(b"half")
        os.utime(folder, (time.time() - age, time.time() - age))
        folders[name] = folder
    orphan = landing / f"{STAGING_PREFIX}orphan-1"
    orphan.mkdir()
    os.utime(orphan, (time.time() - 120, time.time() - 120))
    spec = read_spec_file(user_files(corpus_warehouse))
    import_cohort(spec, landing, "next")
    assert [n for n, f in folders.items() if f.exists()] == ["alive"]
    assert not orphan.exists()
    assert clean_stale_staging(landing) == []  # the live writer's folder stays


def test_a_ready_marker_copied_before_its_files_is_not_ready(corpus_warehouse: Warehouse) -> None:
    """A batch copied in the wrong order is left for a later scan, then ingested whole."""
    landing = corpus_warehouse.landing
    source = landing / "good"
    target = landing / "copied"
    target.mkdir()
    shutil.copy(source / READY_MARKER, target / READY_MARKER)
    known = ["good", "old_bad"]
    assert scan_ready_batches(landing, known) == ([], 1)
    for path in sorted(p for p in source.iterdir() if p.name != READY_MARKER):
        (target / path.name).write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        assert scan_ready_batches(landing, known) == ([], 1), "a half-copied file"
        shutil.copy(path, target / path.name)
    assert scan_ready_batches(landing, known) == (["copied"], 0)


def test_folders_that_are_no_batch_ids_are_never_ready(tmp_path: Path) -> None:
    for name in ("a b", "x..y", "good"):
        (tmp_path / name).mkdir()
        (tmp_path / name / READY_MARKER).touch()
    assert scan_ready_batches(tmp_path) == (["good"], 2)


def test_the_synthetic_writer_is_append_only(tmp_path: Path) -> None:
    batch = synthesize_batch(tmp_path, n_patients=60, seed=1, batch_id="s1")
    before = _tree(batch)
    assert synthesize_batch(tmp_path, n_patients=60, seed=1, batch_id="s1") == batch
    assert _tree(batch) == before
    with pytest.raises(LandingConflict, match="already exists"):
        synthesize_batch(tmp_path, n_patients=60, seed=2, batch_id="s1")
    assert _tree(batch) == before
    for unsafe in ("..", ".", "_quarantine", "a/b"):
        with pytest.raises(InvalidIdentifier):
            synthesize_batch(tmp_path, n_patients=60, seed=1, batch_id=unsafe)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s1"]


def test_ingest_and_quarantine_refuse_unsafe_batch_ids(corpus_warehouse: Warehouse) -> None:
    spec = read_spec_file(corpus_warehouse.root / "good_files" / "cohort.yaml")
    batch = corpus_warehouse.landing / "good"
    for unsafe in ("..", "_quarantine", "../good"):
        with pytest.raises(InvalidIdentifier):
            ingest_batch(corpus_warehouse.con, batch, spec, batch_id=unsafe)
        with pytest.raises(InvalidIdentifier):
            quarantine_batch(batch, unsafe, [])
    assert batch.is_dir()


def test_synth_with_an_unsafe_batch_id_prints_the_message(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "fusion_assets.cli", "synth", "--landing", str(tmp_path)]
    done = subprocess.run(
        [*command, "--batch-id", ".", "--patients", "50"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "batch id '.' is not a safe folder name" in done.stderr
    assert "Traceback" not in done.stderr and list(tmp_path.iterdir()) == []


def test_the_import_report_travels_into_the_ledger(corpus_warehouse: Warehouse) -> None:
    report = corpus_warehouse.con.execute(
        "SELECT import_report FROM raw.batches WHERE batch_id = 'good'"
    ).fetchone()[0]
    assert json.loads(report)["cohort"] == "own_cohort"
