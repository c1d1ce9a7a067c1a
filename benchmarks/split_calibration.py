"""Are the default cohort's "too timid" calibration slopes the models' or the test split's?

    python benchmarks/split_calibration.py [--warehouse data/synthetic/warehouse.duckdb]
                                           [--halves 200] [--no-record]

Reads the warehouse `make demo` leaves (``eval.predictions``, labels from
``aligned.patients``) and prints, per strategy, the calibration slope of its
(recalibrated) probabilities on the validation split and on the test split. Then, for the
logistic reference, the spread of that slope difference between random halves of the
validation and test patients pooled: if the two splits were exchangeable draws, the
observed validation-test difference would be typical of that spread. Recorded in
``benchmarks/results/split_calibration.md``.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from fusion_assets.metrics.weighted_logistic import weighted_calibration  # noqa: E402

RESULTS = HERE / "results" / "split_calibration.md"


def slope(prob: np.ndarray, labels: np.ndarray) -> float:
    """The calibration slope (b in logit P(y) = a + b logit p), as the report fits it."""
    _, slopes = weighted_calibration(labels, prob, np.ones((len(labels), 1)))
    return float(slopes[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--warehouse", default="data/synthetic/warehouse.duckdb")
    ap.add_argument("--halves", type=int, default=200, help="random splits of the pooled patients")
    ap.add_argument("--strategy", default="reference_logistic", help="for the random halves")
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()
    con = duckdb.connect(args.warehouse, read_only=True)
    df = con.sql(
        "SELECT p.strategy, p.split, p.prob, a.label FROM eval.predictions p "
        "JOIN aligned.patients a USING (patient_id)"
    ).df()
    lines = [
        "# Validation vs test calibration slopes on the default cohort",
        "",
        f"`python benchmarks/split_calibration.py --warehouse {args.warehouse}`, "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC.",
        "",
        "| strategy | n validation | slope on validation | n test | slope on test |",
        "|---|---|---|---|---|",
    ]
    for strategy, g in df.groupby("strategy", sort=True):
        v, t = g[g["split"] == "validation"], g[g["split"] == "test"]
        lines.append(
            f"| {strategy} | {len(v)} | {slope(v['prob'].to_numpy(), v['label'].to_numpy()):.2f} "
            f"| {len(t)} | {slope(t['prob'].to_numpy(), t['label'].to_numpy()):.2f} |"
        )
    g = df[df["strategy"] == args.strategy]
    p, y = g["prob"].to_numpy(), g["label"].to_numpy()
    is_val = (g["split"] == "validation").to_numpy()
    observed = slope(p[~is_val], y[~is_val]) - slope(p[is_val], y[is_val])
    rng = np.random.default_rng(0)
    diffs = []
    for _ in range(args.halves):
        half = rng.random(len(p)) < 0.5
        diffs.append(slope(p[half], y[half]) - slope(p[~half], y[~half]))
    sd = float(np.std(diffs, ddof=1))
    lines += [
        "",
        f"{args.strategy}: test slope − validation slope = {observed:+.2f}; between "
        f"{args.halves} random halves of the {len(p)} pooled patients that difference has "
        f"SD {sd:.2f}, so the observed one is {abs(observed) / sd:.1f} SD.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_record:
        RESULTS.write_text(text)
        print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
