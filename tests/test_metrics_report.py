"""End to end over the pure evaluation code: evaluate() -> verdict -> rendered report."""

from __future__ import annotations

import re

import pytest

from fusion_assets.metrics.config import EvaluationConfig
from fusion_assets.metrics.evaluate import evaluate
from fusion_assets.metrics.report import HEADLINE_COLUMNS, render_report
from fusion_assets.metrics.simulate import simulate_inputs


@pytest.fixture(scope="module")
def inputs():
    return simulate_inputs(
        n_test=1200, n_validation=500, seed=2, n_mask_seeds=2, rates=(0, 0.5, 0.9)
    )


@pytest.fixture(scope="module")
def result(inputs):
    cfg = EvaluationConfig(n_boot=100, seed=1, min_pattern_size=25)
    return evaluate(
        inputs.predictions,
        inputs.patients,
        inputs.degradation_predictions,
        inputs.recommendation,
        cfg,
        modalities=list(inputs.modalities),
    )


@pytest.fixture(scope="module")
def files(result, tmp_path_factory):
    return render_report(result, tmp_path_factory.mktemp("report"))


def test_verdict_has_winners_and_claims(result) -> None:
    v = result.verdict
    assert v.recommended == "late"
    assert len(v.winners) == result.table.groupby(["subgroup_type", "subgroup"]).ngroups - int(
        result.table.groupby(["subgroup_type", "subgroup"])["suppressed"].first().sum()
    )
    assert not v.winners["winner"].str.startswith("single:").any()
    claims = {c.claim: c.status for c in v.claims}
    assert set(claims) == {
        "early fusion ahead on complete data",
        "late fusion degrades least as modalities go missing",
    }
    assert all(
        s in {"holds", "does not hold", "inconclusive", "not testable"} for s in claims.values()
    )
    # Every disagreement is one sentence.
    assert all(s.endswith(".") for s in v.disagreements)
    assert v.stress_winner in result.subgroups.strategies
    assert result.leaks.empty


def test_html_is_self_contained_with_every_plot(files) -> None:
    text = files.html_path.read_text(encoding="utf-8")
    n_img = len(re.findall(r'<img [^>]*src="data:image/png;base64,', text))
    assert n_img == len(files.plot_paths) == 4
    for heading in (
        "Cohort",
        "Headline: all test patients",
        "Verdict",
        "AUROC by subgroup",
        "Subgroups by availability pattern",
        "Calibration",
        "Degradation under missing modalities",
        "Availability patterns",
        "Model cards",
        "Model card: late",
        "Leakage check",
        "Definitions",
    ):
        assert f">{heading}</h" in text, heading
    assert "http://" not in text and "https://" not in text  # no external resources
    md = files.markdown_path.read_text(encoding="utf-8")
    assert md.count("](plots/") == 4
    assert "## Verdict" in md and "### Model card: early" in md


def test_no_patient_ids_in_report(inputs, files) -> None:
    text = files.html_path.read_text(encoding="utf-8") + files.markdown_path.read_text(
        encoding="utf-8"
    )
    # Images are base64 blobs where any letter run can occur; check the text around them.
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", text)
    ids = set(inputs.patients["patient_id"])
    assert not ids & set(re.findall(r"P\d{6}", text))
    assert not re.search(r"P\d{6}", text)


def test_headline_and_metadata(files, inputs) -> None:
    assert list(files.headline.columns) == HEADLINE_COLUMNS
    assert len(files.headline) == inputs.predictions["strategy"].nunique()
    assert files.metadata_plot.exists() and files.metadata_plot.suffix == ".png"


def test_suppressed_cells_are_printed_not_dropped(inputs, tmp_path) -> None:
    patients = inputs.patients.copy()
    test_ids = inputs.predictions.loc[inputs.predictions["split"] == "test", "patient_id"].unique()
    patients.loc[patients["patient_id"].isin(test_ids[:5]), "site"] = "tiny"
    r = evaluate(
        inputs.predictions,
        patients,
        None,
        inputs.recommendation,
        EvaluationConfig(n_boot=30),
    )
    f = render_report(r, tmp_path)
    md = f.markdown_path.read_text(encoding="utf-8")
    assert "| tiny | late | 5 | – | suppressed (<11) |" in md
    assert "No stress-test predictions were given." in md
    assert len(f.plot_paths) == 3
