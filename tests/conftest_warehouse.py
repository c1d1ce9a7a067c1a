"""Hand-made landing batches for the warehouse tests.

A ten-patient cohort with one modality of every kind, under deliberately
non-synthetic names, so nothing can rely on the synthetic modality names.
Every number the tests assert is derivable by hand from the tables below.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fusion_assets.cohorts.spec import CohortSpec, ModalitySpec

T0 = datetime(2024, 3, 1)  # every patient's index time unless stated


def small_spec() -> CohortSpec:
    return CohortSpec(
        name="handmade",
        modalities=(
            ModalitySpec("labs", "tabular"),
            ModalitySpec(
                "genes", "omics", timed=False, options={"format": "dense", "n_features": 4}
            ),
            ModalitySpec("scan", "image", options={"height": 2, "width": 2, "channels": 1}),
            ModalitySpec(
                "watch",
                "timeseries",
                options={"channels": ["hr", "steps"], "window_days": 4, "n_bins": 4},
            ),
            ModalitySpec("memo", "text"),
        ),
    )


def sparse_spec() -> CohortSpec:
    return CohortSpec(
        name="sparse",
        modalities=(
            ModalitySpec("labs", "tabular"),
            ModalitySpec(
                "snps", "omics", timed=False, options={"format": "sparse", "n_features": 100}
            ),
        ),
    )


def patients_frame(ids: list[str], labels: list[int], index_time: datetime = T0) -> pd.DataFrame:
    n = len(ids)
    return pd.DataFrame(
        {
            "patient_id": ids,
            "index_time": [index_time] * n,
            "label": labels,
            "sex": ["F" if i % 2 else "M" for i in range(n)],
            "age": [40 + i for i in range(n)],
            "site": ["A" if i < n // 2 else "B" for i in range(n)],
        }
    )


def d(days: float) -> datetime:
    """A time ``days`` before T0 (negative: after the index time)."""
    return T0 - timedelta(days=days)


# Ten patients: labels 1 for P01-P04.
IDS = [f"P{i:02d}" for i in range(1, 11)]
LABELS = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]


def small_batch_frames() -> dict[str, pd.DataFrame | pa.Table]:
    """The ten-patient batch. Comments give what alignment must produce."""
    labs = pd.DataFrame(
        {
            "patient_id": [
                "P01",
                "P01",
                "P01",
                "P02",
                "P03",
                "P05",
                "P05",
                "P06",
                "P07",
                "P08",
                "P09",
                "P09",
            ],
            "event_time": [
                d(10),
                d(5),
                d(-1),
                d(3),
                d(1),
                d(2),
                d(1),
                d(7),
                d(4),
                d(6),
                d(2),
                d(-2),
            ],
            # P01: last non-null lab_a before T0 is at d(10) (1.0); lab_b at d(5) (5.0).
            # The row at d(-1) (after index) is bait: lab_a 999 must never appear.
            "lab_a": [1.0, None, 999.0, 2.0, 3.0, 4.0, None, 6.0, 7.0, 8.0, 9.0, 999.0],
            "lab_b": [None, 5.0, 999.0, 20.0, 30.0, None, 41.0, 60.0, 70.0, 80.0, 90.0, 999.0],
            "smoker": [
                "no",
                None,
                "LEAK",
                "yes",
                "no",
                "no",
                "yes",
                "no",
                "no",
                "yes",
                "no",
                "LEAK",
            ],
        }
    )
    genes = pd.DataFrame(
        {
            "patient_id": ["P01", "P02", "P05", "P06"],
            "expression": [[0.1, 0.2, 0.3, 0.4], [1, 2, 3, 4], [5, 6, 7, 8], [0, 0, 0, 1]],
        }
    )
    genes_table = pa.Table.from_pandas(genes, preserve_index=False).cast(
        pa.schema([("patient_id", pa.string()), ("expression", pa.list_(pa.float32()))])
    )
    scan = pd.DataFrame(
        {
            # P01: two images before T0 (d(3) wins), one after (bait).  P04: only after -> absent.
            "patient_id": ["P01", "P01", "P01", "P04", "P07"],
            "event_time": [d(8), d(3), d(-5), d(-1), d(1)],
            "pixels": [[1, 1, 1, 1], [2, 2, 2, 2], [9, 9, 9, 9], [9, 9, 9, 9], [3, 3, 3, 3]],
        }
    )
    scan_table = pa.Table.from_pandas(scan, preserve_index=False).cast(
        pa.schema(
            [
                ("patient_id", pa.string()),
                ("event_time", pa.timestamp("us")),
                ("pixels", pa.list_(pa.float32())),
            ]
        )
    )
    watch = pd.DataFrame(
        {
            # window 4 days, 4 bins of one day: bin 0 = [T0-4d, T0-3d), ..., bin 3 = [T0-1d, T0).
            # P01: bin0 hr 60 & 70 (mean 65) steps 100 & null; bin3 hr null steps 10;
            #      a sample at d(5) is outside the window; one at d(-0.5) is after T0 (bait).
            # P02: one sample in bin 2.  P03: only samples outside the window -> absent.
            "patient_id": ["P01", "P01", "P01", "P01", "P01", "P02", "P03"],
            "event_time": [d(3.9), d(3.5), d(0.5), d(5), d(-0.5), d(1.5), d(6)],
            "hr": [60.0, 70.0, None, 80.0, 999.0, 90.0, 50.0],
            "steps": [100.0, None, 10.0, 1.0, 999.0, 5.0, 1.0],
        }
    )
    memo = pd.DataFrame(
        {
            "patient_id": ["P01", "P01", "P01", "P02", "P08"],
            "event_time": [d(2), d(9), d(-1), d(1), d(-3)],
            "text": ["second note", "first note", "label is positive", "hello world", "after only"],
        }
    )
    return {
        "patients": patients_frame(IDS, LABELS),
        "labs": labs,
        "genes": genes_table,
        "scan": scan_table,
        "watch": watch,
        "memo": memo,
    }


def write_batch(
    landing: Path, batch_id: str, frames: dict[str, pd.DataFrame | pa.Table], ready: bool = True
) -> Path:
    """Write ``<landing>/<batch_id>/<name>.parquet`` for every frame, then ``_READY``."""
    batch = landing / batch_id
    batch.mkdir(parents=True, exist_ok=True)
    for name, frame in frames.items():
        table = (
            frame
            if isinstance(frame, pa.Table)
            else pa.Table.from_pandas(frame, preserve_index=False)
        )
        pq.write_table(table, batch / f"{name}.parquet")
    if ready:
        (batch / "_READY").touch()
    return batch
