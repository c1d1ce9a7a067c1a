"""The DuckDB warehouse resource."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
from pydantic import Field

from resources.paths import default_path


class WarehouseResource(dg.ConfigurableResource):
    """One DuckDB file holding the schemas raw, aligned, profile and eval.

    DuckDB allows a single writing process per file: writers are serialized with
    the Dagster pool ``duckdb_writer`` (see dagster.yaml), and every asset holds
    a connection only for the duration of its work.
    """

    path: str = Field(default_factory=lambda: default_path("warehouse.duckdb"))
    threads: int = 2
    memory_limit: str = "4GB"
    lock_timeout_s: float = Field(
        default=300.0,
        description="How long to wait for another process's write lock on the DuckDB file",
    )

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

        Writers are serialized by the ``duckdb_writer`` pool, but readers (training
        steps) are not: they wait here for a writer in another process to finish
        instead of failing.
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
