"""Where the laptop defaults live: one git-ignored data folder.

``FUSION_DATA_DIR`` moves everything (DuckDB file, MLflow store, landing zone,
model store); by default it is ``./data`` under the directory Dagster or the
CLI runs from (the repository root in the README's commands).
"""

from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    return Path(os.environ.get("FUSION_DATA_DIR", "data")).resolve()


def default_path(*parts: str) -> str:
    return str(data_dir().joinpath(*parts))
