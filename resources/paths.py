"""Where a cohort's files live: ``<data_dir>/<cohort>/`` (one folder per cohort).

The data folder itself is configuration: the code location sets it with
``dg.EnvVar("FUSION_DATA_DIR")`` (resolved when a run starts, never at import),
the CLI from ``--data-dir``. A relative folder is taken from the directory the
process runs in (the repository root in the README's commands).
"""

from __future__ import annotations

from pathlib import Path

DATA_DIR_ENV = "FUSION_DATA_DIR"
DEFAULT_DATA_DIR = "data"


def cohort_dir(data_dir: str, cohort: str) -> Path:
    """``<data_dir>/<cohort>``, absolute."""
    return Path(data_dir).resolve() / cohort
