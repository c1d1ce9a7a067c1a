"""Fixtures the test modules share; the data and helpers behind them are in tests/fixtures/.

- ``tests/fixtures/cohort.py``: the suite's cohort (one spec, a modality of every kind):
  the ten hand-made patients and the planted-signal batch.
- ``tests/fixtures/user_files.py``: the signal batch as a user's own files and spec.
- ``tests/fixtures/availability.py``: ``profile.availability`` rows for split and fold tests.
- ``tests/fixtures/pipeline.py``: resources in a temporary folder, the tiny pipeline run.
- ``tests/fixtures/dagster_dev.py``: ``dagster dev`` for the slow end-to-end tests.
- ``tests/fixtures/simulate.py``: simulated predictions for the metrics and report tests.
- ``tests/fixtures/bad_input.py``: the bad-input corpus's warehouse with earlier batches.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest

from fusion_assets.cohorts.spec import CohortSpec
from fusion_assets.warehouse.align import AlignResult, align_all
from fusion_assets.warehouse.ingest import ingest_batch
from tests.fixtures.bad_input import Warehouse, build_template
from tests.fixtures.cohort import (
    SignalCohort,
    handmade_batch,
    signal_cohort,
    suite_spec,
    write_batch,
)
from tests.fixtures.pipeline import temp_resources
from tests.fixtures.user_files import write_user_files


@pytest.fixture
def spec() -> CohortSpec:
    """The suite's cohort spec (sparse omics of 1,000 features)."""
    return suite_spec()


@pytest.fixture
def warehouse_con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB file in the test's folder, closed afterwards."""
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    yield con
    con.close()


@pytest.fixture
def handmade_warehouse(
    tmp_path: Path, warehouse_con: duckdb.DuckDBPyConnection, spec: CohortSpec
) -> tuple[duckdb.DuckDBPyConnection, dict[str, AlignResult]]:
    """The ten hand-made patients ingested as batch ``b1`` and aligned."""
    ingest_batch(warehouse_con, write_batch(tmp_path / "landing", "b1", handmade_batch()), spec)
    return warehouse_con, align_all(warehouse_con, spec.modalities)


@pytest.fixture(scope="session")
def small_signal() -> SignalCohort:
    """80 patients of the signal cohort, aligned (read-only: copy a frame before editing it)."""
    return signal_cohort(n=80, seed=2)


@pytest.fixture
def user_files(tmp_path: Path) -> Path:
    """The user's files of 60 signal-cohort patients and their ``cohort.yaml`` (its path)."""
    return write_user_files(tmp_path / "files")


@pytest.fixture
def resources(tmp_path: Path) -> dict[str, Any]:
    """The code location's resources with the test's folder as the data folder."""
    return temp_resources(tmp_path)


@pytest.fixture
def dagster_instance() -> Iterator[dg.DagsterInstance]:
    """An ephemeral Dagster instance."""
    with dg.DagsterInstance.ephemeral() as instance:
        yield instance


@pytest.fixture(scope="module")
def corpus_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Batch ``good`` ingested and ``old_bad`` quarantined (built once per module; copy it)."""
    return build_template(tmp_path_factory.mktemp("corpus"))


@pytest.fixture
def corpus_warehouse(corpus_template: Path, tmp_path: Path) -> Iterator[Warehouse]:
    """This test's own copy of the corpus template, connected."""
    root = tmp_path / "wh"
    shutil.copytree(corpus_template, root, symlinks=True)
    con = duckdb.connect(str(root / "warehouse.duckdb"))
    yield Warehouse(root, con)
    con.close()
