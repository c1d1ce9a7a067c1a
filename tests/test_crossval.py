"""Small cohorts: repeated stratified k-fold plans, and the pipeline end to end in cv mode."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from fusion_assets.evaluation import CV, HOLDOUT, CrossValSettings
from fusion_assets.evaluation.assignment import assign_folds
from fusion_assets.evaluation.fold_models import (
    OOF_FILE,
    StaleFoldModels,
    check_fold_root,
    load_oof,
    save_oof,
)
from fusion_assets.evaluation.kfold import average_repeats
from fusion_assets.evaluation.plan import fold_ids, fold_keys, plan_id
from fusion_assets.metrics.crossval import repeat_aurocs
from fusion_assets.warehouse.folds import read_evaluation_design, write_evaluation_plan
from tests.fixtures.availability import availability_frame, with_availability
from tests.fixtures.pipeline import SYNTHETIC


def test_every_patient_is_tested_exactly_once_per_repeat() -> None:
    cohort = availability_frame()
    plan = assign_folds(cohort, folds=5, repeats=3, seed=1)
    test = plan[plan["role"] == "test"]
    per_repeat = test.groupby("repeat")["patient_id"]
    assert (per_repeat.nunique() == len(cohort)).all()
    assert (per_repeat.size() == len(cohort)).all()
    assert fold_keys(plan) == [(r, f) for r in range(3) for f in range(5)]
    # Within a fold model every patient has exactly one role, and every patient has one.
    for key in fold_keys(plan):
        ids = fold_ids(plan, *key)
        roles = [set(v) for v in ids.values()]
        assert sum(len(r) for r in roles) == len(cohort)
        assert set.union(*roles) == set(cohort["patient_id"])


def test_folds_are_stratified_by_label_and_pattern() -> None:
    cohort = availability_frame()
    plan = assign_folds(cohort, folds=5, repeats=2, seed=0)
    test = plan[plan["role"] == "test"].merge(cohort, on="patient_id")
    sizes = test.groupby(["repeat", "fold"]).size()
    assert sizes.max() - sizes.min() <= 1
    per_stratum = test.groupby(["repeat", "label", "pattern", "fold"]).size().unstack(fill_value=0)
    assert (per_stratum.max(axis=1) - per_stratum.min(axis=1) <= 1).all()
    # The inner validation carve-out is stratified by label too, at about its share.
    inner = plan[plan["role"] != "test"].merge(cohort, on="patient_id")
    share = inner.groupby(["repeat", "fold", "label"])["role"].apply(
        lambda r: (r == "validation").mean()
    )
    assert share.between(0.15, 0.25).all()


def test_plan_is_seeded_and_independent_of_row_order() -> None:
    cohort = availability_frame()
    a = assign_folds(cohort, folds=4, repeats=2, seed=7)
    b = assign_folds(cohort.sample(frac=1.0, random_state=3), folds=4, repeats=2, seed=7)
    c = assign_folds(cohort, folds=4, repeats=2, seed=8)
    assert plan_id(a) == plan_id(b)
    assert plan_id(a) != plan_id(c)
    # Repeats differ from one another (otherwise repeating would add nothing).
    t = a[a["role"] == "test"].pivot(index="patient_id", columns="repeat", values="fold")
    assert (t[0] != t[1]).any()


def test_small_strata_and_too_few_events() -> None:
    cohort = availability_frame(40)
    cohort.loc[0, "pattern"] = "rare"  # a stratum of one
    plan = assign_folds(cohort, folds=3, repeats=1)
    assert plan.loc[plan["role"] == "test", "patient_id"].is_unique
    few = cohort.assign(label=[1, 1] + [0] * 38)
    with pytest.raises(ValueError, match="at least 3 patients of each label"):
        assign_folds(few, folds=3, repeats=1)


def test_mode_follows_the_cohort_size() -> None:
    settings = CrossValSettings(small_cohort_size=1000)
    assert settings.mode(198) == CV
    assert settings.mode(1000) == HOLDOUT
    assert CrossValSettings(small_cohort_size=0).mode(10) == HOLDOUT
    with pytest.raises(ValueError, match="folds"):
        CrossValSettings(folds=1)


def test_warehouse_plan_and_mode_switch() -> None:
    con = with_availability(availability_frame(120))
    settings = CrossValSettings(folds=3, repeats=2)
    out = write_evaluation_plan(con, settings, (0.6, 0.2, 0.2))
    mode = read_evaluation_design(con)
    assert out["mode"] == mode.mode == CV
    assert mode.plan_id == plan_id(mode.plan) and len(mode.plan) == 2 * 3 * 120
    splits = dict(con.sql("SELECT split, count(*) FROM profile.splits GROUP BY 1").fetchall())
    assert set(splits) == {"train", "validation"}  # the final model sees every patient
    # The cohort crosses the threshold: a held-out split, started afresh, and no plan.
    write_evaluation_plan(con, CrossValSettings(small_cohort_size=100), (0.6, 0.2, 0.2))
    mode = read_evaluation_design(con)
    assert mode.mode == HOLDOUT and mode.plan.empty
    splits = dict(con.sql("SELECT split, count(*) FROM profile.splits GROUP BY 1").fetchall())
    assert splits["test"] >= 20
    assert con.sql("SELECT count(*) FROM profile.folds").fetchone()[0] == 0


def test_failed_plan_changes_nothing() -> None:
    con = with_availability(availability_frame(60))
    write_evaluation_plan(con, CrossValSettings(folds=3, repeats=1), (0.6, 0.2, 0.2))
    before = con.sql("SELECT * FROM profile.folds ORDER BY ALL").df()
    with pytest.raises(ValueError, match="patients of each label"):
        write_evaluation_plan(con, CrossValSettings(folds=50, repeats=1), (0.6, 0.2, 0.2))
    pd.testing.assert_frame_equal(before, con.sql("SELECT * FROM profile.folds ORDER BY ALL").df())


def test_stale_fold_roots_are_refused(tmp_path: Path) -> None:
    with pytest.raises(StaleFoldModels, match="No finished fold models"):
        check_fold_root(tmp_path, "abc", "late")
    (tmp_path / "folds.json").write_text('{"plan_id": "old"}')
    with pytest.raises(StaleFoldModels, match="fold plan old"):
        check_fold_root(tmp_path, "new", "late")
    check_fold_root(tmp_path, "old", "late")


def test_fold_oof_files_carry_no_patient_id_and_read_back_exactly(tmp_path: Path) -> None:
    """oof.parquet travels with every registered version: rows in the plan, not ids."""
    plan = assign_folds(availability_frame(60), folds=3, repeats=2, seed=4)
    rows = plan[plan["role"] != "train"].reset_index(drop=True)
    oof = rows.assign(prob=np.linspace(0.01, 0.99, len(rows)))[
        ["repeat", "fold", "patient_id", "role", "prob"]
    ]
    path = save_oof(tmp_path, oof.assign(raw_prob=oof["prob"]), plan)
    stored = pd.read_parquet(path)
    assert "patient_id" not in stored.columns and path.name == OOF_FILE
    raw = path.read_bytes()
    assert not [pid for pid in plan["patient_id"].unique() if pid.encode() in raw]
    (tmp_path / "folds.json").write_text(f'{{"plan_id": "{plan_id(plan)}"}}')
    back = load_oof(tmp_path, plan, plan_id(plan), "late")
    pd.testing.assert_frame_equal(back, oof, check_dtype=False)
    with pytest.raises(StaleFoldModels, match="fold plan"):
        load_oof(tmp_path, plan, "another-plan", "late")


def test_average_repeats_and_per_repeat_aurocs() -> None:
    oof = pd.DataFrame(
        {
            "strategy": "late",
            "repeat": [0, 0, 1, 1, 0],
            "fold": [0, 1, 1, 0, 1],
            "patient_id": ["a", "b", "a", "b", "a"],
            "role": ["test", "test", "test", "test", "validation"],
            "prob": [0.2, 0.6, 0.4, 0.8, 0.5],
        }
    )
    preds = average_repeats(oof).set_index(["patient_id", "split"])
    assert preds.loc[("a", "test"), "prob"] == pytest.approx(0.3)
    assert preds.loc[("b", "test"), "n_models"] == 2
    assert preds.loc[("a", "validation"), "prob"] == pytest.approx(0.5)
    table = repeat_aurocs(oof, pd.DataFrame({"patient_id": ["a", "b"], "label": [0, 1]}))
    assert table.loc[0, "repeats"] == 2 and table.loc[0, "auroc_mean"] == 1.0


def test_the_fold_models_log_the_reports_estimate_and_label_the_ensemble() -> None:
    """``FoldRun.oof_auroc`` (the log line and ``cv_oof_auroc``) is the report's headline
    AUROC; the repeat-averaged ensemble, planted above it here, is a separate figure."""

    from fusion_assets.evaluation.fold_models import FoldRun
    from fusion_assets.metrics.config import EvaluationConfig
    from fusion_assets.metrics.subgroups import subgroup_table
    from tests.test_metrics_subgroups import _repeated_scores

    rng = np.random.default_rng(4)
    patients, averaged, oof = _repeated_scores(rng, 150, 3, {"late": 1.2}, {"late": 1.5})
    oof["fold"] = 0
    run = FoldRun(oof.drop(columns="strategy"), pd.DataFrame(), 0.0)
    labels = patients.set_index("patient_id")["label"]
    table = subgroup_table(averaged, patients, EvaluationConfig(n_boot=20), repeats=oof).table
    headline = table.loc[table["subgroup_type"] == "all", "auroc"].iloc[0]
    assert run.oof_auroc(labels) == pytest.approx(headline, abs=1e-12)
    assert run.ensemble_auroc(labels) > run.oof_auroc(labels) + 0.01


# --------------------------------------------------------------------------- end to end

FOLDS, REPEATS, N_PATIENTS = 3, 2, 180


@pytest.fixture(scope="module")
def cv_run(tmp_path_factory):
    from fusion_assets.cohorts.synthetic import synthesize_batch
    from fusion_assets.demo import FAST_RUN_CONFIG
    from tests.fixtures.pipeline import cohort_stores, run_cohort

    root = tmp_path_factory.mktemp("crossval")
    stores = cohort_stores(root, SYNTHETIC)
    synthesize_batch(stores["landing"].root, n_patients=N_PATIENTS, seed=5, batch_id="small")
    config = {
        **FAST_RUN_CONFIG,
        "splits": {"config": {"folds": FOLDS, "repeats": REPEATS}},
        "predictions": {"config": {"mask_seeds": 1, "rates": [0.0, 0.5]}},
        "subgroup_report": {"config": {"n_boot": 100}},
    }
    instance = dg.DagsterInstance.ephemeral()
    _, results = run_cohort(root, SYNTHETIC, ["small"], config, instance)
    return {"root": root, "resources": stores, "results": results, "instance": instance}


@pytest.mark.slow
def test_cv_every_patient_has_an_oof_prediction_from_every_strategy(cv_run) -> None:
    from fusion_assets.assets.fusion import STRATEGIES

    MODALITIES = SYNTHETIC.spec.modality_names  # noqa: N806

    assert all(r.success for r in cv_run["results"])
    with cv_run["resources"]["warehouse"].connect() as con:
        mode = read_evaluation_design(con)
        n = con.sql("SELECT count(*) FROM profile.availability").fetchone()[0]
        test = con.sql(
            "SELECT strategy, count(*), count(DISTINCT patient_id), min(n_models) "
            "FROM eval.predictions WHERE split = 'test' GROUP BY 1"
        ).fetchall()
        oof = con.sql(
            "SELECT strategy, repeat, count(DISTINCT patient_id) FROM eval.oof_predictions "
            "WHERE role = 'test' GROUP BY ALL"
        ).fetchall()
        has_validation = con.sql(
            "SELECT count(DISTINCT strategy) FROM eval.predictions WHERE split = 'validation'"
        ).fetchone()[0]
    assert mode.mode == CV and n == N_PATIENTS
    expected = set(STRATEGIES) | {f"single:{m}" for m in MODALITIES}
    assert {row[0] for row in test} == expected
    assert all(row[1:] == (n, n, REPEATS) for row in test)
    assert len(oof) == len(expected) * REPEATS and all(row[2] == n for row in oof)
    assert has_validation == len(expected)


@pytest.mark.slow
def test_cv_no_fold_model_predicts_a_patient_it_was_trained_on(cv_run) -> None:
    with cv_run["resources"]["warehouse"].connect() as con:
        leaked = con.sql(
            """SELECT count(*) FROM eval.oof_predictions o JOIN profile.folds f
               USING (repeat, fold, patient_id) WHERE o.role = 'test' AND f.role <> 'test'"""
        ).fetchone()[0]
        misplaced = con.sql(
            """SELECT count(*) FROM eval.oof_predictions o LEFT JOIN profile.folds f
               USING (repeat, fold, patient_id)
               WHERE f.role IS NULL OR f.role <> o.role"""
        ).fetchone()[0]
        stress_folds = con.sql(
            """SELECT count(*) FROM eval.stress_predictions s JOIN profile.folds f
               ON f.repeat = 0 AND f.fold = s.fold AND f.patient_id = s.patient_id
               WHERE f.role <> 'test'"""
        ).fetchone()[0]
    assert leaked == 0 and misplaced == 0 and stress_folds == 0
    # Each fold model recorded the plan it was trained on; the predictions asset checked it.
    # (the fold models are part of each registered version; the store caches the versions read)
    root = Path(cv_run["resources"]["model_store"].path)
    markers = sorted(root.glob("*/v1/artifacts/folds/folds.json"))
    # every strategy (references included) and every single-modality model
    from fusion_assets.models.strategies import STRATEGIES

    assert len(markers) == len(list(STRATEGIES)) + 5
    assert len(list(root.glob("synthetic.late/v1/artifacts/folds/r*_f*"))) == 6


@pytest.mark.slow
def test_cv_report_says_cross_validation(cv_run) -> None:
    report = cv_run["resources"]["reports"] / "latest" / "report.md"
    text = report.read_text()
    assert f"{FOLDS}-fold cross-validation ({FOLDS} folds x {REPEATS} repeats" in text
    assert "out-of-fold" in text and "intervals are still wide" in text
    assert "Cross-validation: AUROC per repeat" in text
    with cv_run["resources"]["warehouse"].connect() as con:
        overall = con.sql(
            "SELECT strategy, auroc_ci_low, auroc, auroc_ci_high FROM eval.subgroup_metrics "
            "WHERE subgroup_type = 'all'"
        ).fetchall()
        repeats = con.sql("SELECT min(repeats) FROM eval.cv_repeat_metrics").fetchone()[0]
    assert repeats == REPEATS
    assert all(lo <= auc <= hi for _, lo, auc, hi in overall)
    # the cost table counts the fold models' fits beside the deployed refit's
    with cv_run["resources"]["warehouse"].connect() as con:
        folds = con.sql("SELECT min(fold_models_seconds) FROM eval.model_cost").fetchone()[0]
    assert folds > 0 and "fold models s" in text.split("\n## Cost\n")[1]


def _latest_metadata(instance: dg.DagsterInstance, asset: str, partition: str) -> dict:

    record = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=SYNTHETIC.key(asset), asset_partitions=[partition]),
        limit=1,
    ).records[0]
    return {k: v.value for k, v in record.asset_materialization.metadata.items()}


@pytest.mark.slow
def test_cv_log_metadata_and_report_give_the_same_auroc(cv_run) -> None:
    """Issue 11: the AUROC in the fold models' log line, in ``fused_model``'s metadata and
    in the report's headline is one number (the per-repeat single-model estimate)."""
    import re

    from fusion_assets.models.strategies import STRATEGIES

    instance = cv_run["instance"]
    with cv_run["resources"]["warehouse"].connect() as con:
        report = dict(
            con.sql(
                "SELECT strategy, auroc FROM eval.subgroup_metrics WHERE subgroup_type = 'all'"
            ).fetchall()
        )
    md = (cv_run["resources"]["reports"] / "latest" / "report.md").read_text()
    logged = {}
    for result in cv_run["results"]:
        for event in instance.all_logs(result.run_id):
            found = re.search(
                r"^(\S+): \d+ fold models .* out-of-fold AUROC (\d\.\d{3}) "
                r"\(per-repeat single-model estimate",
                event.user_message or "",
            )
            if found:
                logged[found.group(1)] = float(found.group(2))
    for strategy in STRATEGIES:
        metadata = _latest_metadata(instance, "fused_model", strategy)["cv_oof_auroc"]
        assert metadata == round(report[strategy], 3), strategy  # metadata is rounded
        assert logged[strategy] == round(report[strategy], 3), strategy
        assert f"| {strategy} | {N_PATIENTS} | {report[strategy]:.3f} [" in md, strategy
    assert "per-repeat single-model estimate" in md


@pytest.mark.slow
def test_cv_deployed_refit_is_trained_like_its_fold_models(cv_run) -> None:
    """Issue 11 item 5: each deployed model is refitted on every patient for its fold models'
    median epoch (no early stopping), and its in-sample AUROC is in line with theirs; the
    asset check says so, and the report states how the refit was done."""
    import json

    import numpy as np

    from fusion_assets.evaluation.refit import REFIT_TOLERANCE, RefitRecord
    from fusion_assets.models.api import load_model
    from fusion_assets.models.strategies import STRATEGIES

    store = cv_run["resources"]["model_store"]
    for kind, name in [("fusion", s) for s in STRATEGIES] + [("encoders", "single:ehr")]:
        record = RefitRecord.read(store.model_dir(kind, name))
        assert record is not None and record.n_patients == N_PATIENTS, name
        assert record.train_auroc >= record.fold_train_auroc - REFIT_TOLERANCE, (name, record)
        assert record.in_line
        folds = [
            int(r["best_epoch"])
            for r in json.loads((store.fold_root(kind, name) / "folds.json").read_text())["folds"]
        ]
        assert record.epochs == int(round(float(np.median(folds)))), name
        fitted = load_model(store.model_dir(kind, name))
        assert fitted.recalibration.n == REPEATS * N_PATIENTS  # the out-of-fold rows
    meta = _latest_metadata(cv_run["instance"], "fused_model", "intermediate")
    assert (
        meta["refit_epochs"] == RefitRecord.read(store.model_dir("fusion", "intermediate")).epochs
    )
    checks = [
        e
        for r in cv_run["results"]
        for e in r.get_asset_check_evaluations()
        if e.check_name == "deployed_refit_in_line_with_fold_models"
        and e.asset_key == SYNTHETIC.key("fused_model")
    ]
    assert checks and all(c.passed for c in checks)
    md = (cv_run["resources"]["reports"] / "latest" / "report.md").read_text()
    assert "median epoch at which their fold models stopped early" in md
