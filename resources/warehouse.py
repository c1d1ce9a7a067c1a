"""The DuckDB warehouse resource."""

from __future__ import annotations

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

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        db = Path(self.path)
        if read_only and not db.exists():
            raise FileNotFoundError(
                f"The warehouse {db} does not exist yet: materialize the ingest assets first."
            )
        db.parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(
            str(db),
            read_only=read_only,
            config={"threads": self.threads, "memory_limit": self.memory_limit},
        )
        try:
            yield con
        finally:
            con.close()
