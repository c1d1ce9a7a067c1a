"""The study: a tiny two-cell grid through the real pipeline, resumed, and its answer.

Each cell is a real synthetic cohort materialized by the code location's jobs (tiny
networks), measured from its own DuckDB warehouse; the study's rows land in a real
DuckDB file, and a second run finds them and runs nothing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fusion_assets.demo import FAST_RUN_CONFIG
from fusion_assets.study.analysis import (
    Pooled,
    analyze,
    early_claim_verdict,
    late_claim_verdict,
    pool,
    write_answer,
)
from fusion_assets.study.grid import designed_grid, tiny_grid
from fusion_assets.study.measure import EARLY_VS_LATE, EXTRA_DROP, FUSION_STRATEGIES
from fusion_assets.study_runner import read_study, run_study


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    lines: list[str] = []
    ran = run_study(tiny_grid(), out, workers=2, run_config=FAST_RUN_CONFIG, log=lines.append)
    return out, ran, lines


def test_the_tiny_study_runs_every_cell_through_the_pipeline(study) -> None:
    out, ran, lines = study
    assert ran == {**ran, "finished": 2, "failed": 0, "pending": 2}
    tables = read_study(out)
    cells = tables["cells"]
    assert sorted(cells["cell_id"]) == sorted(c.cell_id for c in tiny_grid())
    for summary in cells["summary"]:
        assert summary["recommended"] in FUSION_STRATEGIES
        assert summary["winner"] in FUSION_STRATEGIES
        assert 0.5 < summary["oracle_auroc"] <= 1.0
        assert summary["delta_ci_low"] <= summary["delta_winner_minus_recommended"]
        # held out, never k-fold: about a fifth (the split is stratified by label x pattern)
        assert 0.15 * 400 <= summary["n_test"] <= 0.25 * 400
    # every strategy, reference and single-modality baseline, with intervals around the point
    metrics = tables["metrics"]
    assert {*FUSION_STRATEGIES, "reference", "oracle"} <= set(metrics["strategy"])
    assert (metrics["ci_low"] <= metrics["auroc"]).all() and (
        metrics["auroc"] <= metrics["ci_high"]
    ).all()
    # the claims' replicates: claim 1 only from the complete cell, claim 2 from both
    reps = tables["replicates"]
    complete = next(c.cell_id for c in tiny_grid() if c.availability == "complete")
    assert set(reps.loc[reps["quantity"] == EARLY_VS_LATE, "cell_id"]) == {complete}
    assert set(reps.loc[reps["quantity"] == f"{EXTRA_DROP}early", "cell_id"]) == set(
        cells["cell_id"]
    )
    assert all(len(v) == 1000 for v in reps["values"])
    # each cell keeps its report and pipeline log; its data folder is removed
    for cell in tiny_grid():
        folder = out / "cells" / cell.cell_id
        assert (folder / "report.md").exists() and "[pipeline]" in (
            folder / "pipeline.log"
        ).read_text()
        assert not (folder / "data").exists()
    assert sum("done in" in line for line in lines) == 2


def test_a_second_run_resumes_and_runs_nothing(study) -> None:
    out, _, _ = study
    lines: list[str] = []
    again = run_study(tiny_grid(), out, workers=1, run_config=FAST_RUN_CONFIG, log=lines.append)
    assert again["pending"] == 0 and again["finished"] == 0
    assert "2 already finished, 0 to run" in lines[0]


def test_the_answer_is_written_with_the_claims_and_the_agreement(study) -> None:
    out, _, _ = study
    md = write_answer(out, read_study(out), ["header line"]).read_text()
    assert "header line" in md and "Claim 1" in md and "Claim 2" in md
    assert "Overall agreement" in md and "![winner map](study.png)" in md
    assert (out / "study.png").stat().st_size > 1000
    answer = analyze(read_study(out))
    assert answer.agreement_by_rule["cells"].sum() == 2
    assert set(answer.late_claim) == {"early", "intermediate", "attention"}


def _replicates(rows: list[tuple[str, str, float, int, np.ndarray]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["cell_id", "quantity", "point", "n", "values"])


def test_pooling_weights_cells_by_patients_and_draws_replicate_by_replicate() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.03, 0.01, 1000), rng.normal(0.0, 0.02, 1000)
    reps = _replicates(
        [("a", "q", 0.03, 300, a), ("b", "q", 0.0, 100, b), ("c", "other", 1.0, 5, a)]
    )
    pooled = pool(reps, "q")
    assert pooled.point == pytest.approx(0.0225)
    expected = (300 * a + 100 * b) / 400
    assert pooled.ci_low == pytest.approx(np.quantile(expected, 0.025))
    assert pooled.ci_high == pytest.approx(np.quantile(expected, 0.975))
    assert (pooled.n_cells, pooled.n_patients) == (2, 400)
    assert pool(reps, "q", {"b"}).point == 0.0 and pool(reps, "missing") is None


@pytest.mark.parametrize(
    ("low", "high", "verdict"),
    [
        (0.01, 0.04, "holds"),
        (0.06, 0.09, "holds, with a larger lead"),
        (0.002, 0.015, "does not hold: early fusion is ahead, but by less"),
        (-0.03, 0.01, "does not hold: the interval excludes"),
        (-0.01, 0.03, "inconclusive"),
    ],
)
def test_the_early_claim_verdict_follows_the_interval(low, high, verdict) -> None:
    assert early_claim_verdict(Pooled("q", (low + high) / 2, low, high, 3, 2700)).startswith(
        verdict
    )


def test_the_late_claim_needs_every_other_strategy_to_lose_more() -> None:
    loses_more = Pooled("q", 0.02, 0.01, 0.03, 3, 900)
    unclear = Pooled("q", 0.0, -0.01, 0.01, 3, 900)
    loses_less = Pooled("q", -0.02, -0.03, -0.01, 3, 900)
    assert late_claim_verdict({"early": loses_more, "attention": loses_more}).startswith("holds")
    assert late_claim_verdict({"early": loses_more, "attention": unclear}).startswith(
        "inconclusive"
    )
    assert "attention" in late_claim_verdict({"early": loses_more, "attention": loses_less})


def test_the_designed_grid_answers_each_rule_and_claim_with_three_seeds() -> None:
    grid = designed_grid()
    assert len({c.cell_id for c in grid}) == len(grid)
    blocks = {c.block for c in grid}
    assert blocks == {"early", "dimgap", "missing", "temporal", "size"}
    seeds_per_cell: dict[str, set[int]] = {}
    for c in grid:
        seeds_per_cell.setdefault(c.design_cell, set()).add(c.seed)
    assert all(len(s) == 3 for s in seeds_per_cell.values())
    # claim 1 needs at least 2,000 complete-case test patients (20 % of each complete cohort)
    complete = [c for c in grid if c.availability == "complete"]
    assert sum(0.2 * c.n_patients for c in complete) >= 2_000
    assert {c.regime for c in complete} == {"independent", "correlated", "synergy"}
    # the dimensionality axis spans 10^2 to 10^6 features
    dims = {(c.genomics_format, c.genomics_features) for c in grid if c.block == "dimgap"}
    assert {("dense", 100), ("dense", 10_000), ("sparse", 2_000)} <= dims


def test_the_report_cites_the_recorded_study_for_the_recommended_rule(tmp_path) -> None:
    import json

    from fusion_assets.study.evidence import load_evidence, study_sentences

    assert load_evidence(tmp_path / "none.json") is None
    assert study_sentences("late", None) == []
    path = tmp_path / "evidence.json"
    path.write_text(
        json.dumps(
            {
                "commit": "abc1234",
                "rules": {"late": {"cells": 12, "agrees": 9, "agreement_rate": 0.75}},
                "claims": [{"claim": "c", "verdict": "inconclusive", "evidence": "e"}],
            }
        )
    )
    evidence = load_evidence(path)
    late = study_sentences("late", evidence)
    assert "recommended late in 12 cell(s)" in late[0] and "in 9 (75%)" in late[0]
    assert "abc1234" in late[0] and late[1].endswith("“c”: inconclusive (e).")
    assert "never recommended early" in study_sentences("early", evidence)[0]


def test_what_if_with_the_default_thresholds_reproduces_the_recorded_recommendations(study) -> None:
    from fusion_assets.study.analysis import what_if

    out, _, _ = study
    tables = read_study(out)
    same = what_if(tables)  # the current defaults: the thresholds these cells ran with
    assert len(same.cells) == 2 and same.changed == []
    recorded_agrees = tables["cells"]["summary"].map(lambda s: s["agrees"])
    assert same.judged["agrees"].sum() == recorded_agrees.sum()
    # the small, complete, controlled cell is recommended early fusion; thresholds under which
    # no cohort is small change that cell's recommendation and no other
    complete = next(c.cell_id for c in tiny_grid() if c.availability == "complete")
    recorded = tables["cells"].set_index("cell_id")["summary"]
    assert recorded[complete]["recommended"] == "early"
    never_small = what_if(tables, small_cohort=0)
    assert never_small.changed == [complete] and len(never_small.cells) == 2
    assert never_small.cells.set_index("cell_id")["agrees"].notna().all()  # replicates pair them
    assert never_small.by_rule()["cells"].sum() == 2
    # the evidence the report cites: rules under the given thresholds, the two claims
    from fusion_assets.study.analysis import evidence

    record = evidence(analyze(tables), same, "abc1234")
    assert record["commit"] == "abc1234" and sum(r["cells"] for r in record["rules"].values()) == 2
    assert [c["claim"][:5] for c in record["claims"]] == ["early", "late "]
    md = write_answer(out, tables, []).read_text()
    assert "## The thresholds now" not in md  # nothing changed: no what-if section
