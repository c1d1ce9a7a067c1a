"""End to end under ``dagster dev``: batches land, the daemon ingests, re-evaluates and retrains.

Nothing is run in process and nothing is clicked. ``dagster dev`` starts on a
throwaway DAGSTER_HOME (its own process group, loopback, a free port) with a
code location serving the synthetic cohort with tiny run-config defaults and a
retraining cron that ticks about a minute after start. The test then:

1. lands a batch: the landing sensor ingests it, the re-evaluation sensor
   re-aligns (no models yet: drift only);
2. turns the STOPPED retraining sensor on, as an operator would
   (``dagster sensor start synthetic_retraining``): at the cron tick the
   automation conditions retrain profile → encoders → fused models →
   predictions + report, the partitions two at a time;
3. lands two batches at the same moment: both are ingested once and scored
   with the retrained models, and the champion's risk scores of their patients
   are written (``eval.risk_scores``) when the promotion step left a champion.

It prints the time of each step.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import dagster as dg
import duckdb
import pytest

from fusion_assets.models.strategies import STRATEGIES
from resources import ModelStoreResource
from tests.fixtures.dagster_dev import (
    DaemonSession,
    land,
    runs_of,
    wait_for_runs,
)

pytestmark = pytest.mark.slow

NEW_BATCHES = ("landed-a", "landed-b")
SCORED = list(STRATEGIES)


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    with DaemonSession.start(tmp_path_factory.mktemp("e2e")) as started:
        yield started


def test_landing_retraining_and_reevaluation_need_no_click(session: DaemonSession):
    instance = session.instance
    t0 = time.time()
    land(session, "first", n_patients=300, seed=1)
    wait_for_runs(session, "synthetic_ingest", ["first"])
    wait_for_runs(session, "synthetic_reevaluate_batch", ["first"])
    print(f"\n[e2e] first batch ingested and re-evaluated {time.time() - t0:.0f} s after landing")

    session.retrain_and_wait()
    retraining = [r for r in instance.get_runs() if r.tags.get("fusion_assets/retrain")]
    print(f"[e2e] retraining: {len(retraining)} runs, done {time.time() - t0:.0f} s after landing")
    session.assert_retrained_by_the_daemon()
    _promote_if_no_champion(session)

    # Two batches at the same moment: each ingested once, each scored by the new models.
    landed_at = time.time()
    for seed, batch in enumerate(NEW_BATCHES, start=2):
        land(session, batch, n_patients=150, seed=seed, missingness="mnar")
    wait_for_runs(session, "synthetic_ingest", NEW_BATCHES)
    evaluations = wait_for_runs(session, "synthetic_reevaluate_batch", NEW_BATCHES)
    keys = sorted(r.tags.get("dagster/run_key") for r in runs_of(instance, "synthetic_ingest"))
    assert keys == sorted(["first", *NEW_BATCHES]), "each batch is ingested exactly once"
    assert set(instance.get_dynamic_partitions("synthetic_landing_batches")) == {
        "first",
        *NEW_BATCHES,
    }
    for batch in NEW_BATCHES:
        stats = instance.get_run_stats(evaluations[batch].run_id)
        print(f"[e2e] {batch}: landed → re-evaluated {stats.end_time - landed_at:.1f} s")
    _assert_batches_scored(session)


def _assert_batches_scored(session: DaemonSession) -> None:
    with duckdb.connect(str(session.cohort_dir / "warehouse.duckdb"), read_only=True) as con:
        table = con.execute(
            "SELECT batch_id, strategy, kind, metric, subgroup, value, suppressed "
            "FROM eval.batch_metrics"
        ).df()
    # The first batch came before any model or split: nothing to score it against.
    assert set(NEW_BATCHES) <= set(table["batch_id"])
    new = table[table["batch_id"].isin(NEW_BATCHES)]
    auroc = new[(new["metric"] == "auroc") & (new["subgroup"] == "all")]
    assert set(auroc["strategy"]) == set(SCORED)
    assert auroc["value"].between(0, 1).all()
    assert (new["metric"] == "pattern_total_variation").sum() == len(NEW_BATCHES)
    assert (new["metric"] == "psi").sum() > 0
    assert new[new["suppressed"]]["value"].isna().all()

    key = dg.AssetKey(["synthetic", "batch_evaluation"])
    event = session.instance.get_latest_materialization_event(key)
    assert event.asset_materialization.metadata["strategies_scored"].value == ",".join(SCORED)
    checks = session.instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [dg.AssetCheckKey(key, "batch_evaluation_within_reference")]
    )
    assert checks, "the batch_evaluation_within_reference check did not run"
    _assert_risk_scores(session)


def _promote_if_no_champion(session: DaemonSession) -> None:
    """Tiny models may fail the calibration rule: then an operator names the champion by
    hand (``fusion-assets promote``), which the instance records for the sensors."""
    promotion = session.instance.get_latest_materialization_event(
        dg.AssetKey(["synthetic", "promotion"])
    )
    if promotion.asset_materialization.metadata["champion"].value != "none":
        return
    store = ModelStoreResource(data_dir=str(session.data)).for_cohort("synthetic")
    version = store.newest_version("late")
    env = {**os.environ, **session.env, "DAGSTER_HOME": str(session.home)}
    env.pop("MLFLOW_TRACKING_URI", None)
    command = [sys.executable, "-m", "fusion_assets.cli", "--data-dir", str(session.data)]
    done = subprocess.run(
        [*command, "promote", "--version", str(version), "--model", "late"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    print(f"[e2e] no champion after the retraining; {done.stdout.strip()}")


def _assert_risk_scores(session: DaemonSession) -> None:
    """The sensor path wrote the champion's risk scores of each new batch."""
    promotion = session.instance.get_latest_materialization_event(
        dg.AssetKey(["synthetic", "promotion"])
    )
    assert promotion is not None, "the retraining did not run its promotion step"
    champion = promotion.asset_materialization.metadata["champion"].value
    with duckdb.connect(str(session.cohort_dir / "warehouse.duckdb"), read_only=True) as con:
        exists = con.execute(
            "SELECT count(*) FROM duckdb_tables() "
            "WHERE schema_name = 'eval' AND table_name = 'risk_scores'"
        ).fetchone()[0]
        scores = (
            con.execute(
                "SELECT batch_id, model_name, model_version, count(*) AS n "
                "FROM eval.risk_scores GROUP BY ALL"
            ).df()
            if exists
            else None
        )
    print(f"[e2e] champion that scored the new batches: {champion}")
    strategy, version = champion.rsplit(" v", 1)
    assert scores is not None and set(NEW_BATCHES) <= set(scores["batch_id"])
    new = scores[scores["batch_id"].isin(NEW_BATCHES)]
    assert set(new["model_name"]) == {f"synthetic.{strategy}"}
    assert set(new["model_version"]) == {int(version)}
    assert (new["n"] == 150).all()
