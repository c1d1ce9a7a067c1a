"""End to end over the pure evaluation code: evaluate() -> verdict -> rendered report."""

from __future__ import annotations

import html
import re
from dataclasses import replace

import pandas as pd
import pytest

from fusion_assets.evaluation import CrossValSettings, RepeatedKFold
from fusion_assets.metrics.config import EvaluationConfig
from fusion_assets.metrics.evaluate import evaluate
from fusion_assets.metrics.leakage import leakage_flags
from fusion_assets.metrics.report import HEADLINE_COLUMNS, render_report
from tests.fixtures.simulate import simulate_inputs


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


def _headings(files) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    md = files.markdown_path.read_text(encoding="utf-8")
    page = files.html_path.read_text(encoding="utf-8")
    md_heads = [(len(h), t) for h, t in re.findall(r"^(#{1,3}) (.+)$", md, flags=re.M)]
    html_heads = [(int(h), html.unescape(t)) for h, t in re.findall(r"<h([1-3])>(.*?)</h\1>", page)]
    return md_heads, html_heads


def test_markdown_and_html_carry_the_same_sections_in_order(files, result) -> None:
    md_heads, html_heads = _headings(files)
    assert md_heads == html_heads
    fusion = [s for s in result.subgroups.strategies if not result.config.is_single(s)]
    assert [t for level, t in md_heads if level == 3] == [f"Model card: {s}" for s in fusion]
    assert md_heads[0] == (1, "Fusion strategy evaluation")
    assert [t for _, t in md_heads[-2:]] == ["Leakage check", "Definitions"]


def test_every_model_card_states_use_data_and_limitations(files, result) -> None:
    md = files.markdown_path.read_text(encoding="utf-8")
    cards = md.split("### Model card: ")[1:]
    assert len(cards) == len(
        [s for s in result.subgroups.strategies if not s.startswith("single:")]
    )
    for card in cards:
        card = card.split("\n## ")[0]
        assert card.count("Intended use:") == 1 and card.count("Data: ") == 1, card
        assert card.count("- All patients: AUROC ") == 1 and card.count("- Limitations: ") == 1
        assert "FLAGGED" not in card


def test_cross_validation_sections_appear_only_in_cv_mode(result, files, tmp_path) -> None:
    assert "Cross-validation" not in files.markdown_path.read_text(encoding="utf-8")
    repeats = pd.DataFrame(
        {
            "strategy": ["late", "early"],
            "repeats": [2, 2],
            "auroc_mean": [0.8, 0.7],
            "auroc_sd": [0.01, 0.02],
            "auroc_min": [0.79, 0.68],
            "auroc_max": [0.81, 0.72],
        }
    )
    design = RepeatedKFold(400, CrossValSettings(folds=5, repeats=2))
    cv = replace(result, cohort={**result.cohort, "design": design.notes(repeats)})
    md = render_report(cv, tmp_path).markdown_path.read_text(encoding="utf-8")
    assert "## Cross-validation: AUROC per repeat" in md
    assert "| late | 2 | 0.800 | 0.010 | 0.790 – 0.810 |" in md
    assert "5-fold cross-validation (5 folds x 2 repeats" in md
    assert "- Cross-validation (small cohorts): 'test' means out-of-fold" in md


def test_a_leak_is_flagged_in_the_check_and_on_the_model_card(result, tmp_path) -> None:
    table = result.table.copy()
    late_all = (table["strategy"] == "late") & (table["subgroup_type"] == "all")
    table.loc[late_all, "oracle_auroc"] = 0.55
    table.loc[late_all, "delta_auroc_vs_oracle_ci_low"] = 0.1
    leaky = replace(result, leaks=leakage_flags(table))
    md = render_report(leaky, tmp_path).markdown_path.read_text(encoding="utf-8")
    leak_section = md.split("## Leakage check")[1].split("\n## ")[0]
    assert "> **Warning:** 1 strategy × subgroup row(s) exceed the oracle AUROC" in leak_section
    late_card = md.split("### Model card: late")[1].split("###")[0]
    assert "FLAGGED: exceeds the oracle AUROC; suspect leakage" in late_card
    early_card = md.split("### Model card: early")[1].split("###")[0]
    assert "FLAGGED" not in early_card
