"""Export scikit-survival's breast cancer cohort into the files of this example.

Needs scikit-survival, which the project does not depend on; use a throwaway
environment (no network is needed afterwards, the outputs are in the repo):

    python3 -m venv /tmp/sksurv-venv
    /tmp/sksurv-venv/bin/pip install scikit-survival pandas pyarrow
    /tmp/sksurv-venv/bin/python examples/breast_cancer/export.py

The data (``sksurv.datasets.load_breast_cancer``): 198 node-negative breast
cancer patients, 76 gene-expression probes and four clinical variables (age,
tumour size, grade, oestrogen receptor status), with the time to distant
metastasis (``t.tdm``, days) and whether it was observed (``e.tdm``).  The
label of this cohort is ``e.tdm``.  There is no index time: every row describes
the patient at diagnosis, so the spec says ``index_time: none``.

Outputs, laid out as a user's files would be (CSV and parquet mixed):
  patients.csv        patient, age, size, grade, er, e.tdm, t.tdm
  expression.parquet  patient, then the 76 probe columns (X200726_at, ...)
"""

from __future__ import annotations

from pathlib import Path

from sksurv.datasets import load_breast_cancer

HERE = Path(__file__).resolve().parent


def main() -> None:
    features, outcome = load_breast_cancer()
    # The dataset has no identifiers; these pseudonymous ones follow its row order.
    ids = [f"BC{i:03d}" for i in range(1, len(features) + 1)]
    clinical = ["age", "size", "grade", "er"]
    patients = features[clinical].copy()
    patients.insert(0, "patient", ids)
    patients["e.tdm"] = outcome["e.tdm"].astype(int)
    patients["t.tdm"] = outcome["t.tdm"]  # kept for reference; never a feature (it is the outcome)
    patients.to_csv(HERE / "patients.csv", index=False)

    genes = [c for c in features.columns if c not in clinical]
    expression = features[genes].astype("float32")
    expression.insert(0, "patient", ids)
    expression.to_parquet(HERE / "expression.parquet", index=False)
    print(
        f"wrote {len(patients)} patients ({patients['e.tdm'].sum()} with distant metastasis) "
        f"and {len(genes)} expression features to {HERE}"
    )


if __name__ == "__main__":
    main()
