"""A small cohort laid out unlike the synthetic batches, written as a user would have it.

Patients in a CSV with their own column names (``pid``, ``outcome``,
``admitted`` ...), and four modalities under their own names: ``labs``
(tabular CSV, time-stamped, with rows after the index time that reveal the
label), ``rna`` (omics, a wide parquet file of ``gene_*`` columns, untimed),
``history`` and ``discharge`` (text CSV, untimed).  The label depends on a lab value, a gene and
a word in the note, so those modalities carry signal; ``history`` (untimed
tabular, read from the patients' own CSV) carries none.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

N_GENES = 6
T0 = pd.Timestamp("2024-03-01")


def cohort_frames(n: int = 60, seed: int = 0) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    ids = [f"pt-{i:04d}" for i in range(n)]
    y = np.tile([0, 1], n // 2 + 1)[:n]
    patients = pd.DataFrame(
        {
            "pid": ids,
            "outcome": y,
            "admitted": [
                (T0 + pd.Timedelta(days=int(d))).strftime("%Y-%m-%d")
                for d in rng.integers(0, 30, n)
            ],
            "gender": rng.choice(["female", "male"], n),
            "age_years": rng.uniform(30, 80, n).round(1),
            "hospital": rng.choice(["north", "south"], n),
        }
    )
    index = pd.to_datetime(patients["admitted"])
    labs = []
    for i, pid in enumerate(ids):
        for k in range(2):  # two encounters before the index time
            labs.append(
                (
                    pid,
                    index[i] - pd.Timedelta(days=5 * (k + 1)),
                    1.0 + y[i] + rng.normal(0, 0.7),
                    rng.normal(),
                )
            )
        # leakage bait: after the index time, perfectly separating
        labs.append((pid, index[i] + pd.Timedelta(days=1), 100.0 * y[i], 0.0))
    labs = pd.DataFrame(labs, columns=["pid", "drawn_at", "crp", "sodium"])
    labs["drawn_at"] = labs["drawn_at"].dt.strftime("%Y-%m-%d %H:%M:%S")
    has_rna = rng.random(n) < 0.8
    genes = rng.normal(size=(n, N_GENES)) + 0.8 * y[:, None] * (np.arange(N_GENES) == 0)
    rna = pd.DataFrame(genes[has_rna], columns=[f"gene_{j}" for j in range(N_GENES)])
    rna.insert(0, "sample_of", np.array(ids)[has_rna])
    words = np.where(y == 1, "worsening", "stable")
    discharge = pd.DataFrame(
        {"patient": ids, "summary": [f"patient {w} at discharge" for w in words]}
    )
    return {"patients": patients, "labs": labs, "rna": rna, "discharge": discharge}


def cohort_spec(index_time: bool = True) -> dict:
    return {
        "name": "own_cohort",
        "patients": {
            "source": "patients.csv",
            "id_column": "pid",
            "index_time": "admitted" if index_time else "none",
            "label_column": "outcome",
            "sex_column": "gender",
            "age_column": "age_years",
            "site_column": "hospital",
        },
        "modalities": {
            "labs": {
                "kind": "tabular",
                "source": "labs.csv",
                "id_column": "pid",
                "time_column": "drawn_at",
                "features": ["crp", "sodium"],
            },
            "rna": {
                "kind": "omics",
                "source": "rna.parquet",
                "id_column": "sample_of",
                "features": "gene_*",
            },
            # untimed tabular, read from the patients table's own file
            "history": {
                "kind": "tabular",
                "source": "patients.csv",
                "id_column": "pid",
                "features": ["age_years"],
            },
            "discharge": {
                "kind": "text",
                "source": "discharge.csv",
                "id_column": "patient",
                "text_column": "summary",
            },
        },
    }


def write_cohort(folder: Path, n: int = 60, seed: int = 0, spec: dict | None = None) -> Path:
    """Write the files and ``cohort.yaml`` into ``folder``; returns the spec path."""
    folder.mkdir(parents=True, exist_ok=True)
    frames = cohort_frames(n, seed)
    frames["patients"].to_csv(folder / "patients.csv", index=False)
    frames["labs"].to_csv(folder / "labs.csv", index=False)
    frames["rna"].to_parquet(folder / "rna.parquet", index=False)
    frames["discharge"].to_csv(folder / "discharge.csv", index=False)
    path = folder / "cohort.yaml"
    path.write_text(yaml.safe_dump(spec or cohort_spec(), sort_keys=False))
    return path
