"""A modality kind added from this file alone runs import → align → train → report.

``scalar_pair`` (two numeric source columns per patient, timed or untimed) is
the recipe of docs/architecture.md ("How to add a modality kind"): options,
landing payload, alignment SQL, preprocessing, a torch encoder, early-fusion
width and reference features, registered with ``register_kind``.  If anything
outside ``fusion_assets/kinds`` branched on a kind's name, this kind would
fail somewhere between the spec file and the report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from torch import nn

from fusion_assets.cohorts.importer import import_cohort
from fusion_assets.cohorts.spec_file import SpecError, read_spec_file, spec_json_schema
from fusion_assets.kinds import (
    KindOptions,
    LandingColumn,
    LandingPayload,
    ModalityKind,
    register_kind,
    unregister_kind,
)
from fusion_assets.kinds.arrays import safe_mean, safe_std
from fusion_assets.models.encoders import Encoder
from fusion_assets.models.strategies import STRATEGIES
from fusion_assets.warehouse.align import align_all
from fusion_assets.warehouse.ingest import ingest_batch
from tests.fixtures.pipeline import cohort_stores, run_cohort, spec_cohort

PAIR = ("x1", "x2")  # the landing and aligned payload columns
T0 = pd.Timestamp("2024-03-01")


# ------------------------------------------------------------------ the kind
class ScalarPairOptions(KindOptions):
    """``columns``: the two numeric source columns, in order."""

    columns: tuple[str, str] | None = None


class ScalarPairFileOptions(ScalarPairOptions):
    columns: tuple[str, str]


class PairEncoder(Encoder):
    def __init__(self, embedding_dim: int) -> None:
        super().__init__()
        self.net = nn.Linear(len(PAIR), embedding_dim)

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.net(inputs["x"])


class ScalarPairKind(ModalityKind):
    name = "scalar_pair"
    Options = ScalarPairOptions
    FileOptions = ScalarPairFileOptions
    transform_columns = PAIR

    def import_payload(self, ctx, modality) -> dict[str, str] | None:
        columns = list(modality.options.columns)
        if not all([ctx.need("columns", c) for c in columns]):
            return None
        if not ctx.numeric_only(columns, "scalar_pair columns"):
            return None
        return {out: f'CAST("{c}" AS DOUBLE)' for out, c in zip(PAIR, columns, strict=True)}

    def landing_payload(self, modality, arrow_schema) -> LandingPayload:
        return LandingPayload({c: LandingColumn("numeric") for c in PAIR})

    def aligned_sql(self, con, modality) -> str:
        pick = "arg_max({c}, event_time)" if modality.timed else "first({c})"
        values = ", ".join(f"{pick.format(c=c)} AS {c}" for c in PAIR)
        return f"\n SELECT patient_id, {values} FROM used GROUP BY patient_id"

    def empty_aligned_columns(self, modality) -> str:
        return "patient_id VARCHAR, " + ", ".join(f"{c} DOUBLE" for c in PAIR)

    def dimensionality(self, con, modality, table) -> int:
        return len(PAIR)

    def drift_summaries(self, modality, columns) -> dict[str, str]:
        return {c: c for c in PAIR}

    def fit(self, modality, rows, config) -> dict[str, Any]:
        values = rows[list(PAIR)].to_numpy(np.float64)
        return {"mean": safe_mean(values), "std": safe_std(values)}

    def transform_rows(self, modality, state, rows) -> dict[str, np.ndarray]:
        values = rows[list(PAIR)].to_numpy(np.float64) if len(rows) else np.zeros((0, 2))
        x = (values - state["mean"]) / state["std"]
        return {"x": np.nan_to_num(x, nan=0.0).astype(np.float32)}

    def build_encoder(self, modality, state, config) -> Encoder:
        return PairEncoder(config.embedding_dim)

    def flat_width(self, modality, state) -> int:
        return len(PAIR)

    def reference_features(self, state, arrays, config, screen) -> np.ndarray:
        return arrays["x"]


@pytest.fixture(scope="module", autouse=True)
def scalar_pair():
    kind = register_kind(ScalarPairKind())
    yield kind
    unregister_kind(kind.name)


# ------------------------------------------------------------------ a cohort using it
# Its own cohort, not the suite's (tests/fixtures/cohort.py): a spec file can only name the
# scalar_pair kind while this module has it registered, and the pair needs two source columns.
def write_cohort(folder: Path, n: int = 300, seed: int = 0, index_time: bool = True) -> Path:
    """Patients, a timed ``bp`` pair (with post-index leakage bait) and a ``labs`` table."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    ids = [f"p{i:04d}" for i in range(n)]
    y = (rng.random(n) < 0.4).astype(int)
    index = [T0 + pd.Timedelta(days=int(d)) for d in rng.integers(0, 30, n)]
    pd.DataFrame({"pid": ids, "outcome": y, "admitted": index}).to_csv(
        folder / "patients.csv", index=False
    )
    rows = []
    for i, pid in enumerate(ids):
        if rng.random() < 0.8:  # bp is missing for some patients
            for k in (3, 1):
                rows.append(
                    (
                        pid,
                        index[i] - pd.Timedelta(days=k),
                        120 + 15 * y[i] + rng.normal(0, 8),
                        80 + rng.normal(0, 5),
                    )
                )
        rows.append((pid, index[i] + pd.Timedelta(days=1), 999.0, 999.0))  # after the index time
    pd.DataFrame(rows, columns=["pid", "measured_at", "sbp", "dbp"]).to_csv(
        folder / "bp.csv", index=False
    )
    labs = pd.DataFrame({"pid": ids, "crp": 1.0 + y + rng.normal(0, 1.0, n)})
    labs.to_csv(folder / "labs.csv", index=False)
    spec = {
        "name": "pair_cohort",
        "patients": {
            "source": "patients.csv",
            "id_column": "pid",
            "index_time": "admitted" if index_time else "none",
            "label_column": "outcome",
        },
        "modalities": {
            "bp": {
                "kind": "scalar_pair",
                "source": "bp.csv",
                "id_column": "pid",
                "time_column": "measured_at",
                "columns": ["sbp", "dbp"],
            },
            "labs": {"kind": "tabular", "source": "labs.csv", "id_column": "pid"},
        },
    }
    path = folder / "cohort.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


# ------------------------------------------------------------------ fast checks
def test_the_spec_file_knows_the_registered_kind(tmp_path: Path) -> None:
    spec = read_spec_file(write_cohort(tmp_path, n=20))
    bp = spec.modality("bp")
    assert (bp.kind, bp.timed, bp.options.columns) == ("scalar_pair", True, ("sbp", "dbp"))
    schema = spec_json_schema()
    assert "ScalarPairModality" in schema["$defs"]


def test_the_registered_kind_gets_the_spec_file_checks(tmp_path: Path) -> None:
    path = write_cohort(tmp_path, n=20)
    raw = yaml.safe_load(path.read_text())
    raw["modalities"]["bp"]["colums"] = raw["modalities"]["bp"].pop("columns")
    raw["modalities"]["bp"]["pixels_column"] = "img"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(SpecError) as info:
        read_spec_file(path)
    message = str(info.value)
    assert "key `modalities.bp.colums`: unknown key -> did you mean `columns`?" in message
    assert "key `modalities.bp.columns`: missing" in message
    assert "key `modalities.bp.pixels_column`: not an option of a scalar_pair modality" in message


def test_import_and_alignment_as_of_index_time(tmp_path: Path) -> None:
    spec = read_spec_file(write_cohort(tmp_path / "files", n=40))
    batch = import_cohort(spec, tmp_path / "landing")
    assert list(pd.read_parquet(batch / "bp.parquet").columns) == [
        "patient_id",
        "event_time",
        *PAIR,
    ]
    with duckdb.connect() as con:
        ingest_batch(con, batch, spec)
        results = align_all(con, spec.modalities)
        top = con.execute("SELECT max(x1), max(x2) FROM aligned.bp").fetchone()
    assert results["bp"].rows_after_index_time == 40
    assert max(top) < 999  # the rows after the index time never aligned


def test_an_untimed_pair_aligns_from_all_rows(tmp_path: Path) -> None:
    spec = read_spec_file(write_cohort(tmp_path / "files", n=40, index_time=False))
    assert not spec.modality("bp").timed
    batch = import_cohort(spec, tmp_path / "landing")
    with duckdb.connect() as con:
        ingest_batch(con, batch, spec)
        results = align_all(con, spec.modalities)
        n_raw = con.execute("SELECT count(*) FROM raw.bp").fetchone()[0]
        n_aligned = con.execute("SELECT count(*) FROM aligned.bp").fetchone()[0]
    assert results["bp"].rows_used == n_raw and n_aligned == 40


# ------------------------------------------------------------------ end to end
def test_a_registered_kind_runs_through_the_whole_pipeline(tmp_path: Path) -> None:
    from fusion_assets.demo import FAST_RUN_CONFIG

    spec = read_spec_file(write_cohort(tmp_path / "files"))
    cohort = spec_cohort(spec)
    resources = cohort_stores(tmp_path, cohort)
    batch = import_cohort(spec, resources["landing"].root)
    config = {
        **FAST_RUN_CONFIG,
        "splits": {"config": {"small_cohort_size": 0}},  # one held-out split: quick
        "predictions": {"config": {"mask_seeds": 1}},
        "subgroup_report": {"config": {"n_boot": 50}},
    }
    _, results = run_cohort(tmp_path, cohort, [batch.name], config)
    assert all(r.success for r in results)
    with resources["warehouse"].connect() as con:
        table = con.sql(
            "SELECT DISTINCT strategy FROM eval.subgroup_metrics WHERE subgroup = 'all'"
        ).fetchall()
        dims = con.sql("SELECT * FROM profile.availability LIMIT 1").df().columns
    strategies = {r[0] for r in table}
    fused = set(STRATEGIES)
    assert {"single:bp", "single:labs"} | fused <= strategies
    assert "bp" in dims
    markdown = (resources["reports"] / "latest" / "report.md").read_text()
    assert "single:bp" in markdown
    # the plug-in kind's model is costed like every other (models/cost.py)
    cost = markdown.split("\n## Cost\n")[1].split("\n## ")[0]
    assert all(f"| {name} |" in cost for name in {"single:bp", "single:labs"} | fused), cost
