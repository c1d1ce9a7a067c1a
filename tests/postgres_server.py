"""A throwaway PostgreSQL server for the production end-to-end test (Debian's ``postgresql``).

The cluster lives in a fresh folder under /tmp, listens on a free loopback port
only, trusts local connections (no password leaves the machine) and is stopped
and deleted afterwards. ``initdb`` refuses to run as root, and CI runs as root,
so as root the server runs as the ``postgres`` system user the Debian package
creates (``runuser``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.e2e_helpers import free_port

USER = "fusion"
SERVER_USER = "postgres"  # the Debian package's system user, used when running as root


def postgres_bin() -> Path | None:
    """The folder with initdb and pg_ctl (``/usr/lib/postgresql/<version>/bin``), if installed."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True)
    found = candidates[0].parent if candidates else None
    if found is None and shutil.which("initdb"):
        found = Path(shutil.which("initdb")).parent
    return found


@dataclass
class PostgresServer:
    host: str
    port: int

    def url(self, database: str) -> str:
        """A SQLAlchemy URL with the driver named (psycopg2, as deploy/dagster.yaml)."""
        return f"postgresql+psycopg2://{USER}@{self.host}:{self.port}/{database}"

    def dagster_env(self, database: str) -> dict[str, str]:
        """The variables deploy/dagster.yaml reads."""
        return {
            "DAGSTER_PG_HOST": self.host,
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_DB": database,
            "DAGSTER_PG_USER": USER,
            "DAGSTER_PG_PASSWORD": "",
        }


def _as_server_user(command: list[str]) -> list[str]:
    return ["runuser", "-u", SERVER_USER, "--", *command] if os.geteuid() == 0 else command


@contextmanager
def postgres_server(databases: tuple[str, ...]) -> Iterator[PostgresServer]:
    """Start a cluster with ``databases``; stop and delete it on exit."""
    bin_dir = postgres_bin()
    if bin_dir is None:
        raise FileNotFoundError("initdb not found: install Debian's postgresql (make test does)")
    folder = Path(tempfile.mkdtemp(prefix="fusion-pg-"))
    if os.geteuid() == 0:
        shutil.chown(folder, SERVER_USER, SERVER_USER)
    data, port = folder / "data", free_port()

    def run(*command: str) -> None:
        subprocess.run(_as_server_user(list(command)), check=True, capture_output=True, timeout=120)

    try:
        run(str(bin_dir / "initdb"), "-D", str(data), "-U", USER, "--auth=trust", "-E", "UTF8")
        options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c max_connections=200"
        run(
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(folder / "log"),
            "-w",
            "start",
        )
        try:
            for database in databases:
                run(
                    str(bin_dir / "createdb"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "-U",
                    USER,
                    database,
                )
            yield PostgresServer("127.0.0.1", port)
        finally:
            run(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
