"""The evaluation design: chosen once from the cohort size, asked everything else."""

from __future__ import annotations

import pandas as pd
import pytest

from fusion_assets.evaluation import (
    CrossValSettings,
    HeldOut,
    RepeatedKFold,
    choose_design,
    design_from_record,
)
from fusion_assets.evaluation.plan import OOF_TABLE_COLUMNS
from fusion_assets.metrics.crossval import REPEAT_COLUMNS
from tests.fixtures.availability import availability_frame


def test_the_cohort_size_chooses_the_design() -> None:
    settings = CrossValSettings(small_cohort_size=100, folds=3, repeats=2)
    small, large = (
        choose_design(availability_frame(99), settings),
        choose_design(availability_frame(100), settings),
    )
    assert isinstance(small, RepeatedKFold) and isinstance(large, HeldOut)
    assert len(small.fold_keys) == 6 and small.plan_id
    assert large.fold_keys == [] and large.plan.empty and large.plan_id == ""


def test_splits_follow_the_design() -> None:
    holdout = (0.6, 0.2, 0.2)
    kfold = choose_design(availability_frame(60), CrossValSettings(folds=3, inner_validation=0.25))
    assert kfold.split_fractions(holdout) == (0.75, 0.25, 0.0)  # the deployed model sees all
    assert HeldOut(500, CrossValSettings()).split_fractions(holdout) == holdout
    # A change of design starts the split afresh; the same design extends it.
    cohort = availability_frame(60)
    existing = pd.DataFrame({"patient_id": ["p0000"], "split": ["test"]})
    fresh, _ = kfold.assign_splits(cohort, existing, "holdout", holdout, seed=0)
    kept, _ = kfold.assign_splits(cohort, existing, "cv", holdout, seed=0)
    assert "test" not in set(fresh["split"])
    assert kept.set_index("patient_id").loc["p0000", "split"] == "test"


def test_the_record_rebuilds_the_design() -> None:
    design = choose_design(availability_frame(80), CrossValSettings(folds=4, repeats=1, seed=3))
    record = design.record()
    record["settings"] = __import__("json").loads(record["settings"])
    again = design_from_record(record, design.plan)
    assert type(again) is RepeatedKFold and again.plan_id == design.plan_id
    assert again.settings == design.settings and again.n_patients == 80
    assert isinstance(design_from_record(None), HeldOut)  # nothing recorded yet


def test_held_out_metrics_are_one_repeat_and_no_extra_report_text() -> None:
    design = HeldOut(500, CrossValSettings())
    oof = pd.DataFrame(columns=OOF_TABLE_COLUMNS)
    assert design.repeats(oof) is None
    table = design.repeat_metrics(oof, pd.DataFrame({"patient_id": [], "label": []}))
    assert list(table.columns) == REPEAT_COLUMNS and table.empty
    notes = design.notes(table)
    from fusion_assets.models.recalibration import METHOD_NOTE

    # the recalibration rule is the one definition a held-out report adds
    assert notes.summary is None and notes.methods == (METHOD_NOTE,) and not notes.sections
    assert notes.size_warning(50, 10) is None
    assert design.fit_fold_models(None, "late", None, {}, pd.Series(dtype=int), print) is None
    assert design.load_fold_models(None, "late") == {}


def test_kfold_metrics_are_per_repeat_and_the_report_says_so() -> None:
    design = choose_design(availability_frame(60), CrossValSettings(folds=3, repeats=2))
    oof = pd.DataFrame(
        {
            "strategy": "late",
            "repeat": [0, 0, 1, 1],
            "fold": [0, 1, 1, 0],
            "patient_id": ["a", "b", "a", "b"],
            "role": "test",
            "prob": [0.2, 0.6, 0.4, 0.8],
        }
    )
    assert design.repeats(oof) is oof
    table = design.repeat_metrics(oof, pd.DataFrame({"patient_id": ["a", "b"], "label": [0, 1]}))
    notes = design.notes(table)
    assert "3-fold cross-validation (3 folds x 2 repeats" in notes.summary
    assert any("out-of-fold" in m for m in notes.methods)
    assert [title for title, _, _ in notes.sections] == ["Cross-validation: AUROC per repeat"]
    assert "Small cohort (60 patients, 12 events)" in notes.size_warning(60, 12)
    assert design.plan_summary(availability_frame(60)) is not None


def test_a_cohort_that_cannot_be_cross_validated_is_refused() -> None:
    cohort = availability_frame(30).assign(label=[1, 1] + [0] * 28)
    with pytest.raises(ValueError, match="patients of each label"):
        choose_design(cohort, CrossValSettings(folds=3))
