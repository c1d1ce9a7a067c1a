"""The DuckDB warehouse: one file per cohort, ``<data_dir>/<cohort>/warehouse.duckdb``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
from pydantic import Field

from resources.paths import cohort_dir

WAREHOUSE_FILE = "warehouse.duckdb"


@dataclass(frozen=True)
class Warehouse:
    """One DuckDB file holding the schemas raw, aligned, profile and eval.

    DuckDB allows a single writing process per file: each cohort's writers are
    serialized by its Dagster pool (``duckdb_writer_<cohort>``, see dagster.yaml),
    and every asset holds a connection only for the duration of its work.
    """

    path: str
    threads: int = 2
    memory_limit: str = "4GB"
    lock_timeout_s: float = 300.0

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        db = Path(self.path)
        if read_only and not db.exists():
            raise FileNotFoundError(
                f"The warehouse {db} does not exist yet: materialize the ingest assets first."
            )
        db.parent.mkdir(parents=True, exist_ok=True)
        con = self._connect_waiting_for_lock(db, read_only)
        try:
            yield con
        finally:
            con.close()

    def _connect_waiting_for_lock(self, db: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
        """Connect, waiting while another process holds the file's lock.

        Writers are serialized by the pool, but readers (training steps) are not:
        they wait here for a writer in another process to finish instead of failing.
        """
        deadline = time.monotonic() + self.lock_timeout_s
        delay = 0.2
        while True:
            try:
                return duckdb.connect(
                    str(db),
                    read_only=read_only,
                    config={"threads": self.threads, "memory_limit": self.memory_limit},
                )
            except duckdb.IOException as error:
                if "lock" not in str(error).lower() or time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 5.0)


class WarehouseResource(dg.ConfigurableResource):
    """Every cohort's DuckDB warehouse: ``<data_dir>/<cohort>/warehouse.duckdb``."""

    data_dir: str = Field(description="The data folder; each cohort has a sub-folder")
    threads: int = Field(default=2, ge=1, description="DuckDB threads per connection")
    memory_limit: str = Field(default="4GB", description="DuckDB memory limit per connection")
    lock_timeout_s: float = Field(
        default=300.0,
        ge=0.0,
        description="How long to wait for another process's write lock on the DuckDB file",
    )

    def for_cohort(self, cohort: str) -> Warehouse:
        return Warehouse(
            path=str(cohort_dir(self.data_dir, cohort) / WAREHOUSE_FILE),
            threads=self.threads,
            memory_limit=self.memory_limit,
            lock_timeout_s=self.lock_timeout_s,
        )
