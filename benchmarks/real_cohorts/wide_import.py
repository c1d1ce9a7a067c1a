"""Issue 11's import case: a 15,000-column dense omics CSV should import in under a minute.

Writes a cohort of ``n_patients`` with one wide CSV (``g00000 ... g14999``, seeded
normal values, as an expression matrix would arrive) and a spec that packs the
columns with ``features: "regex:..."``, then times ``fusion-assets import`` on it
in a fresh process (the time includes the ~2 s start-up of the command).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

TARGET_S = 60
SPEC = """\
# Written by benchmarks/real_cohorts/wide_import.py: the wide dense omics import case.
name: wide_import
patients:
  source: patients.csv
  id_column: patient
  index_time: none
  label_column: label
modalities:
  expression:
    kind: omics
    format: dense
    source: expression.csv
    id_column: patient
    features: "regex:^g\\\\d+$"
"""


def write_cohort(folder: Path, n_columns: int, n_patients: int, seed: int = 0) -> Path:
    """The cohort's files and spec in ``folder`` (emptied first); returns the spec path."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    ids = [f"W{i:04d}" for i in range(n_patients)]
    pd.DataFrame({"patient": ids, "label": np.arange(n_patients) % 2}).to_csv(
        folder / "patients.csv", index=False
    )
    values = rng.standard_normal((n_patients, n_columns)).astype(np.float32)
    wide = pd.DataFrame(values, columns=[f"g{j:05d}" for j in range(n_columns)])
    wide.insert(0, "patient", ids)
    wide.to_csv(folder / "expression.csv", index=False, float_format="%.5g")
    (folder / "cohort.yaml").write_text(SPEC)
    return folder / "cohort.yaml"


def measure(
    folder: Path,
    python: str,
    repo: Path,
    n_columns: int = 15_000,
    n_patients: int = 200,
    timeout_s: int = 1500,
) -> dict[str, Any]:
    """Time ``fusion-assets import`` of the wide cohort; a run past ``timeout_s`` is stopped."""
    spec = write_cohort(folder, n_columns, n_patients)
    env = {**os.environ, "PYTHONPATH": str(repo), "FUSION_DATA_DIR": str(folder / "pipeline")}
    command = [python, "-m", "fusion_assets.cli", "import", "--spec", str(spec)]
    record: dict[str, Any] = {
        "columns": n_columns,
        "patients": n_patients,
        "timeout_s": timeout_s,
        "target_s": TARGET_S,
    }
    t0 = time.perf_counter()
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {**record, "status": f"did not finish within {timeout_s} s", "seconds": None}
    seconds = round(time.perf_counter() - t0, 1)
    status = "ok" if done.returncode == 0 else f"failed (exit {done.returncode})"
    tail = (done.stdout + done.stderr).strip().splitlines()[-5:]
    return {
        **record,
        "status": status,
        "seconds": seconds,
        "met": done.returncode == 0 and seconds < TARGET_S,
        "output_tail": tail,
    }
