"""End to end over the pure evaluation code: evaluate() -> verdict -> rendered report."""

from __future__ import annotations

import html
import re
from dataclasses import replace

import numpy as np
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
    # forest, calibration, patterns, degradation, decision curves
    assert n_img == len(files.plot_paths) == 5
    for heading in (
        "Cohort",
        "Headline: all test patients",
        "Verdict",
        "AUROC by subgroup",
        "Subgroups by availability pattern",
        "Calibration",
        "Degradation under missing modalities",
        "Clinical utility (decision curves)",
        "Availability patterns",
        "Model cards",
        "Model card: late",
        "Leakage check",
        "Definitions",
    ):
        assert f">{heading}</h" in text, heading
    assert "http://" not in text and "https://" not in text  # no external resources
    md = files.markdown_path.read_text(encoding="utf-8")
    assert md.count("](plots/") == 5
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


def _site_report(inputs, tmp_path, sites: dict[str, list[str]]):
    """The report after moving the given test patients into sites of their own."""
    patients = inputs.patients.copy()
    for site, ids in sites.items():
        patients.loc[patients["patient_id"].isin(ids), "site"] = site
    r = evaluate(
        inputs.predictions, patients, None, inputs.recommendation, EvaluationConfig(n_boot=30)
    )
    return r, render_report(r, tmp_path)


def _rows(md: str, first_cell: str) -> list[list[str]]:
    return [
        [c.strip() for c in line.strip("|").split("|")]
        for line in md.splitlines()
        if line.startswith(f"| {first_cell} |")
    ]


def test_suppressed_cells_are_printed_not_dropped(inputs, tmp_path) -> None:
    test_ids = inputs.predictions.loc[inputs.predictions["split"] == "test", "patient_id"].unique()
    r, f = _site_report(inputs, tmp_path, {"tiny": list(test_ids[:5])})
    md = f.markdown_path.read_text(encoding="utf-8")
    # The size of a suppressed subgroup is not printed either: 5 is a small cell.
    assert "| tiny | late | <11 | – | suppressed (<11) |" in md
    assert "No stress-test predictions were given." in md
    assert len(f.plot_paths) == 4  # no degradation plot without stress tests


def test_no_small_count_can_be_recovered_from_the_subgroup_tables(inputs, tmp_path) -> None:
    """Secondary suppression: the sites partition the test set (whose size is printed), so
    with one site suppressed the next smallest is hidden too, or 1200 minus the others
    would give the small one; its size is in no table, sentence or metadata frame."""
    test_ids = inputs.predictions.loc[inputs.predictions["split"] == "test", "patient_id"].unique()
    r, f = _site_report(inputs, tmp_path, {"tiny": list(test_ids[:5])})
    md = f.markdown_path.read_text(encoding="utf-8")
    sizes = r.table[r.table["subgroup_type"] == "site"].drop_duplicates("subgroup")
    sizes = sizes.set_index("subgroup")["n"].sort_values()
    second = sizes.index[1]  # the smallest published site
    assert sizes["tiny"] == 5 and sizes[second] >= 11
    rows = _rows(md, second)
    assert rows and all(row[2] == "suppressed" and row[3] == "suppressed" for row in rows)
    assert f"={second} (n={sizes[second]})" not in md
    shown = [int(v) for row in _rows(md, "site_a") + _rows(md, "site_b") for v in row[2:3]]
    assert shown  # the other sites keep their sizes
    # What is printed can no longer give the small site by subtraction.
    printed = {s: rows[0][2] for s in sizes.index if (rows := _rows(md, s))}
    assert sum(1 for v in printed.values() if not v.isdigit()) >= 2
    html_page = f.html_path.read_text(encoding="utf-8")
    assert f"<td>{second}</td><td>late</td><td>{sizes[second]}</td>" not in html_page


def test_rates_over_few_events_are_not_printed(inputs, tmp_path) -> None:
    """A 30-patient site with 4 events: its event count is a small cell, sensitivity (a
    rate over 4 events) is not printed; specificity over its 26 non-events is."""
    test = inputs.patients[
        inputs.patients["patient_id"].isin(
            inputs.predictions.loc[inputs.predictions["split"] == "test", "patient_id"]
        )
    ]
    few = [
        *test[test["label"] == 1]["patient_id"][:4],
        *test[test["label"] == 0]["patient_id"][:26],
    ]
    r, f = _site_report(inputs, tmp_path, {"few": few})
    md = f.markdown_path.read_text(encoding="utf-8")
    rows = _rows(md, "few")
    columns = ["subgroup", "strategy", "n", "events", "AUROC [CI]"]
    assert rows and all(dict(zip(columns, row, strict=False))["n"] == "30" for row in rows)
    assert all(row[3] == "<11" for row in rows)  # 4 events
    assert all(row[10] == "–" and row[11] != "–" for row in rows)  # sens hidden, spec shown
    sens = r.table.loc[
        (r.table["subgroup"] == "few") & (r.table["strategy"] == "late"), "sensitivity"
    ]
    assert sens.notna().all()  # computed in the warehouse table, not published


def test_model_card_percentages_do_not_reveal_small_patterns(result, tmp_path) -> None:
    """12 % of 60 = 7: a pattern's share is printed only when its count may be."""
    n = result.cohort["n_test"]
    counts = pd.DataFrame(
        {"pattern": ["ehr+notes", "ehr", "notes"], "n": [n - 100, 93, 7], "events": [1, 1, 1]}
    )
    f = render_report(replace(result, pattern_counts=counts), tmp_path)
    md = f.markdown_path.read_text(encoding="utf-8")
    data = [line for line in md.splitlines() if line.startswith("Data: ")]
    assert data and all(
        "notes (<11 patients)" in line and "ehr (suppressed)" in line for line in data
    )
    assert not [line for line in data if "ehr 8%" in line or "notes 1%" in line]
    assert all("ehr+notes 92%" in line for line in data)


def test_pattern_chart_bars_hide_small_and_revealing_counts() -> None:
    from fusion_assets.metrics.plots import pattern_bars

    labels, shown, texts = pattern_bars(["a", "b", "c", "d"], [3, 50, 40, 12], total=105)
    assert labels == ["b", "c", "d", "a"]
    # 3 is small; 12 would give it back as 105 - 50 - 40 - 12: both drawn empty.
    assert shown == [50.0, 40.0, 0.0, 0.0] and texts == ["50", "40", "suppressed", "<11"]


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


# ------------------------------------------- calibration, oracle sentences, omitted subgroups


def _all_row(result, strategy: str):
    t = result.table
    return (t["subgroup_type"] == "all") & (t["strategy"] == strategy)


def test_model_cards_judge_calibration_from_the_interval(result, tmp_path) -> None:
    table = result.table.copy()
    # late: point slope 0.70 (old rule: "too extreme") but the interval holds 1.
    table.loc[_all_row(result, "late"), ["cal_slope", "cal_slope_ci_low", "cal_slope_ci_high"]] = (
        0.70,
        0.48,
        1.05,
    )
    table.loc[
        _all_row(result, "late"), ["cal_intercept", "cal_intercept_ci_low", "cal_intercept_ci_high"]
    ] = (0.0, -0.1, 0.1)
    # early: point slope 0.85 (old rule: "acceptable") but the interval lies below the band.
    table.loc[_all_row(result, "early"), ["cal_slope", "cal_slope_ci_low", "cal_slope_ci_high"]] = (
        0.85,
        0.72,
        0.78,
    )
    judged = replace(result, subgroups=replace(result.subgroups, table=table))
    md = render_report(judged, tmp_path).markdown_path.read_text(encoding="utf-8")
    late_card = md.split("### Model card: late")[1].split("###")[0]
    early_card = md.split("### Model card: early")[1].split("###")[0]
    assert (
        "calibration of late is acceptable by its intervals (slope 0.70 [0.48, 1.05]" in late_card
    )
    assert "probabilities of early are too extreme: slope 0.85 [0.72, 0.78]" in early_card
    assert (
        "even after recalibration on held-out patients; do not read its probabilities" in early_card
    )
    headline = md.split("## Headline")[1].split("\n## ")[0]
    assert (
        "> **Warning:** Calibration stays poor: probabilities of early are too extreme" in headline
    )
    assert "Calibration stays poor: calibration of late" not in headline
    assert "| 0.85 [0.72, 0.78] | too extreme" in headline  # the headline shows the interval
    verdict = md.split("## Verdict")[1].split("\n## ")[0]
    assert "Calibration: The recommended strategy: calibration of late is acceptable" in verdict
    calibration = md.split("## Calibration\n")[1].split("\n## ")[0]
    assert "interval contains 1" in calibration and "| early |" in calibration


def test_oracle_sentences_only_with_an_oracle(inputs, files, tmp_path) -> None:
    synthetic = files.markdown_path.read_text(encoding="utf-8")
    assert "## Leakage check" in synthetic and "lift captured" in synthetic
    assert "Lift captured = (AUROC − 0.5)" in synthetic and "oracle AUROC" in synthetic
    real = inputs.patients.drop(columns=["oracle_prob"])
    r = evaluate(
        inputs.predictions,
        real,
        inputs.degradation_predictions,
        inputs.recommendation,
        EvaluationConfig(n_boot=30, seed=1, min_pattern_size=25),
        modalities=list(inputs.modalities),
    )
    # With the cross-validation design's own text too.
    design = RepeatedKFold(400, CrossValSettings(folds=5, repeats=2)).notes(pd.DataFrame())
    r = replace(r, cohort={**r.cohort, "design": design})
    f = render_report(r, tmp_path)
    md = f.markdown_path.read_text(encoding="utf-8")
    for text in ("oracle", "Oracle", "lift", "Lift", "Leakage check", "leakage"):
        assert text not in md, text
    assert "lift_captured" not in f.headline.columns
    assert "Leakage check" not in f.html_path.read_text(encoding="utf-8")


def test_the_interval_note_agrees_with_paired_intervals(inputs, tmp_path) -> None:
    # 200 test patients: the reference's interval is over 0.1 wide, yet some paired
    # differences (the single modalities vs the reference) exclude 0.
    small = inputs.predictions.copy()
    test_ids = small.loc[small["split"] == "test", "patient_id"].unique()[:200]
    small = small[(small["split"] != "test") | small["patient_id"].isin(test_ids)]
    r = evaluate(small, inputs.patients, None, inputs.recommendation, EvaluationConfig(n_boot=100))
    all_rows = r.table[r.table["subgroup_type"] == "all"].set_index("strategy")
    ref = all_rows.loc["reference"]
    assert ref["auroc_ci_high"] - ref["auroc_ci_low"] > 0.1
    established = all_rows[all_rows["delta_auroc_vs_reference_ci_high"] < 0]
    assert len(established) and (established["delta_auroc_vs_reference"].abs() > 0).all()
    md = render_report(r, tmp_path).markdown_path.read_text(encoding="utf-8")
    note = next(line for line in md.splitlines() if "AUROC interval of reference is" in line)
    assert "established when its paired interval (the ΔAUROC columns) excludes 0" in note
    assert "smaller than that are not established" not in md


def test_single_level_subgroup_types_are_left_out_with_a_note(inputs, tmp_path) -> None:
    patients = inputs.patients.drop(columns=["site"]).assign(sex=None, age=np.nan)
    r = evaluate(
        inputs.predictions, patients, None, inputs.recommendation, EvaluationConfig(n_boot=30)
    )
    assert set(r.table["subgroup_type"]) == {"all", "pattern"}
    assert dict(r.subgroups.omitted) == {"sex": "unknown", "age_band": "unknown"}
    # A site column with one site is left out too, naming the site.
    one_site = inputs.patients.assign(site="A", sex=None)
    r2 = evaluate(inputs.predictions, one_site, None, None, EvaluationConfig(n_boot=30))
    assert dict(r2.subgroups.omitted) == {"sex": "unknown", "site": "A"}
    md = render_report(r2, tmp_path).markdown_path.read_text(encoding="utf-8")
    assert (
        "Left out of the subgroup tables, having one level only (the same patients as all): "
        "sex (not recorded); site (every test patient: A)." in md
    )
    assert "## Subgroups by sex" not in md and "## Subgroups by site" not in md
    assert "## Subgroups by age band" in md and "| unknown |" not in md


def test_few_events_in_the_whole_test_set_are_never_printed(result, tmp_path) -> None:
    """8 events among 1200: the count, the prevalence (0.7 % of 1200) and the design's size
    note would each give it; none is printed."""
    design = RepeatedKFold(400, CrossValSettings(folds=5, repeats=2))
    few = replace(
        result,
        cohort={
            **result.cohort,
            "events": 8,
            "prevalence": 8 / 1200,
            "design": design.notes(pd.DataFrame()),
        },
    )
    md = render_report(few, tmp_path).markdown_path.read_text(encoding="utf-8")
    assert "1200 test patients, <11 events" in md
    assert "Small cohort (1200 patients, <11 events)" in md
    assert not re.search(r"\b8 events|0\.7%", md)


def test_a_profile_measured_on_a_batch_is_named_in_the_report(inputs, tmp_path) -> None:
    from fusion_assets.cohorts.deployment_profile import DeploymentProfile

    shares = inputs.patients["pattern"].value_counts(normalize=True)
    profile = DeploymentProfile(
        name="ED pilot",
        batch="ed-pilot-2026-11",
        patterns={str(p): float(s) for p, s in shares.items()},
        batch_patients=412,
    )
    result = evaluate(
        inputs.predictions,
        inputs.patients,
        inputs.degradation_predictions,
        inputs.recommendation,
        EvaluationConfig(n_boot=50, seed=1, min_pattern_size=25),
        modalities=list(inputs.modalities),
        deployment=profile,
    )
    markdown = render_report(result, tmp_path).markdown_path.read_text(encoding="utf-8")
    assert "## Expected performance at deployment: ED pilot" in markdown
    assert (
        "The deployment profile is the availability-pattern mix of landed batch "
        "'ed-pilot-2026-11' (412 patients)." in markdown
    )
