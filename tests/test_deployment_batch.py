"""A deployment profile "as in a named landed batch", and one profile for the whole evaluation
(issue 15 item 1): real landing batches in a real DuckDB file, the recommendation really
materialized, the report's profile read from a real instance's predictions metadata."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from fusion_assets.assets.evaluation import report_deployment
from fusion_assets.assets.metadata import STRESS_PROFILE, stress_profile_metadata
from fusion_assets.cohorts import CohortSpec, synthetic_spec
from fusion_assets.cohorts.deployment_profile import DeploymentProfile, DeploymentSettings
from fusion_assets.cohorts.synthetic import synthesize_batch
from fusion_assets.location import Cohort
from fusion_assets.metrics.config import ReportSettings
from fusion_assets.warehouse.align import align_all
from fusion_assets.warehouse.deployment import DeploymentBatchError, resolve_deployment
from fusion_assets.warehouse.ingest import ingest_batch
from fusion_assets.warehouse.profile import build_availability
from tests.fixtures.pipeline import cohort_stores, temp_resources

BATCHES = ("research-2026-01", "ed-pilot-2026-11")


def _cohort(deployment: DeploymentProfile | None) -> Cohort:
    spec = synthetic_spec()
    return Cohort("synthetic", CohortSpec(**{**dict(spec), "deployment": deployment}))


def _land(root: Path, cohort: Cohort) -> None:
    """Two synthetic batches (different missingness, so different mixes) landed and aligned."""
    stores = cohort_stores(root, cohort)
    with stores["warehouse"].connect() as con:
        for seed, (batch, missingness) in enumerate(zip(BATCHES, ("mar", "mcar"), strict=True)):
            path = synthesize_batch(
                stores["landing"].root,
                n_patients=60,
                missingness=missingness,
                seed=seed,
                batch_id=batch,
            )
            ingest_batch(con, path, cohort.spec)
        align_all(con, cohort.spec.modalities)
        build_availability(con, cohort.spec)


@pytest.fixture(scope="module")
def landed(tmp_path_factory) -> tuple[Path, Cohort]:
    """The ED-pilot cohort: its spec names the second landed batch."""
    root = tmp_path_factory.mktemp("landed")
    cohort = _cohort(DeploymentProfile(name="ED pilot", batch=BATCHES[1]))
    _land(root, cohort)
    return root, cohort


def _measured_mix(root: Path, cohort: Cohort, batch: str) -> pd.Series:
    """The batch's patients' patterns straight from profile.availability."""
    with cohort_stores(root, cohort)["warehouse"].connect(read_only=True) as con:
        patterns = con.execute(
            "SELECT a.pattern FROM profile.availability a JOIN raw.patients p USING (patient_id) "
            "WHERE p.batch_id = ?",
            [batch],
        ).df()["pattern"]
    return patterns.value_counts(normalize=True)


def test_a_spec_naming_a_batch_gets_that_batchs_measured_mix(landed) -> None:
    root, cohort = landed
    with cohort_stores(root, cohort)["warehouse"].connect(read_only=True) as con:
        profile = resolve_deployment(con, cohort.spec)
    assert profile is not None and profile.name == "ED pilot"
    assert profile.batch == BATCHES[1] and profile.batch_patients == 60
    expected = _measured_mix(root, cohort, BATCHES[1])
    mix = profile.target_mix(cohort.spec.modality_names)
    pd.testing.assert_series_equal(
        mix.sort_index(), expected.sort_index(), check_names=False, check_index_type=False
    )
    assert "ed-pilot-2026-11" in profile.source() and "(60 patients)" in profile.source()
    # the measured profile survives the trip through the predictions step's metadata
    assert DeploymentProfile(**profile.model_dump(exclude_none=True)) == profile


def test_the_runs_override_names_another_batch(landed) -> None:
    root, cohort = landed
    settings = DeploymentSettings(deployment_name="research", deployment_batch=BATCHES[0])
    with cohort_stores(root, cohort)["warehouse"].connect(read_only=True) as con:
        profile = resolve_deployment(con, cohort.spec, settings)
        spec_profile = resolve_deployment(con, cohort.spec, DeploymentSettings())
    assert profile is not None and spec_profile is not None
    assert (profile.name, profile.batch) == ("research", BATCHES[0])
    assert spec_profile.batch == BATCHES[1]  # no override: the spec's
    expected = _measured_mix(root, cohort, BATCHES[0])
    mix = profile.target_mix(cohort.spec.modality_names)
    assert mix.sort_index().to_dict() == pytest.approx(expected.sort_index().to_dict())


def test_a_batch_that_is_not_landed_is_named_with_the_landed_ones(landed) -> None:
    root, cohort = landed
    settings = DeploymentSettings(deployment_batch="ed-pilot-2027-01")
    warehouse = cohort_stores(root, cohort)["warehouse"]
    with warehouse.connect(read_only=True) as con, pytest.raises(DeploymentBatchError) as caught:
        resolve_deployment(con, cohort.spec, settings)
    message = str(caught.value)
    assert "'ed-pilot-2027-01'" in message and "not landed" in message
    assert "research-2026-01, ed-pilot-2026-11" in message


def test_a_batch_without_patients_is_refused(tmp_path: Path) -> None:
    """A ledger row whose patients never reached the warehouse (e.g. a load cut short)."""
    cohort = _cohort(DeploymentProfile(name="ED pilot", batch="empty-batch"))
    _land(tmp_path, cohort)
    with cohort_stores(tmp_path, cohort)["warehouse"].connect() as con:
        con.execute(
            "INSERT INTO raw.batches (batch_id, seq) "
            "SELECT 'empty-batch', max(seq) + 1 FROM raw.batches"
        )
        with pytest.raises(DeploymentBatchError, match="'empty-batch', which has no aligned"):
            resolve_deployment(con, cohort.spec)


def test_a_batch_under_the_small_cell_limit_is_refused(tmp_path: Path) -> None:
    cohort = _cohort(DeploymentProfile(name="ED pilot", batch=BATCHES[1]))
    _land(tmp_path, cohort)
    with cohort_stores(tmp_path, cohort)["warehouse"].connect() as con:
        con.execute(
            "DELETE FROM raw.patients WHERE batch_id = ? AND patient_id NOT IN "
            "(SELECT patient_id FROM raw.patients WHERE batch_id = ? ORDER BY 1 LIMIT 10)",
            [BATCHES[1], BATCHES[1]],
        )
        with pytest.raises(DeploymentBatchError, match="under 11 patients"):
            resolve_deployment(con, cohort.spec)


def test_the_recommendation_judges_the_named_batchs_availability(landed) -> None:
    """fusion_recommendation materialized for a spec that names a batch; and refused with the
    landed batches named when the spec names one that is not landed."""
    from fusion_assets.location.build import cohort_assets

    root, cohort = landed

    def materialize(c: Cohort) -> dg.ExecuteInProcessResult:
        return dg.materialize(
            cohort_assets(c),
            selection=dg.AssetSelection.assets(c.key("fusion_recommendation")),
            resources=temp_resources(root),
            instance=dg.DagsterInstance.ephemeral(),
            raise_on_error=False,
        )

    result = materialize(cohort)
    assert result.success
    [event] = result.get_asset_materialization_events()
    judged = event.materialization.metadata["availability_judged"].value
    assert "'ED pilot'" in judged and "ed-pilot-2026-11" in judged and "60 patients" in judged

    # the run's override reaches the matrix too (the same deployment_* fields as predictions)
    override = dg.materialize(
        cohort_assets(cohort),
        selection=dg.AssetSelection.assets(cohort.key("fusion_recommendation")),
        resources=temp_resources(root),
        instance=dg.DagsterInstance.ephemeral(),
        run_config={
            "ops": {
                cohort.op("fusion_recommendation"): {
                    "config": {"deployment_name": "research", "deployment_batch": BATCHES[0]}
                }
            }
        },
    )
    [event] = override.get_asset_materialization_events()
    judged = event.materialization.metadata["availability_judged"].value
    assert "'research'" in judged and BATCHES[0] in judged

    missing = materialize(_cohort(DeploymentProfile(name="ED", batch="ed-pilot-2099")))
    assert not missing.success
    failure = next(
        e for e in missing.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE
    )
    message = str(failure.step_failure_data.error)
    assert "'ed-pilot-2099'" in message and "research-2026-01, ed-pilot-2026-11" in message


def _report_profile(
    root: Path, cohort: Cohort, recorded: DeploymentProfile | None, settings: ReportSettings
) -> DeploymentProfile | None:
    """The report's profile after a predictions materialization that recorded ``recorded``."""
    instance = dg.DagsterInstance.ephemeral()
    metadata = stress_profile_metadata(recorded, cohort.spec.modality_names)
    if recorded is not None and recorded.batch is not None:
        assert "patterns" not in metadata.value["profile"]  # the batch's mix stays inside
    instance.report_runless_asset_event(
        dg.AssetMaterialization(cohort.key("predictions"), metadata={STRESS_PROFILE: metadata})
    )
    context = dg.build_asset_context(instance=instance)
    warehouse = cohort_stores(root, cohort)["warehouse"]
    return report_deployment(context, cohort, warehouse, settings)


def test_the_report_takes_the_profile_its_stress_tests_ran_toward(landed) -> None:
    root, cohort = landed
    with cohort_stores(root, cohort)["warehouse"].connect(read_only=True) as con:
        research = resolve_deployment(
            con, cohort.spec, DeploymentSettings(deployment_batch=BATCHES[0])
        )
    # the predictions step ran with an override: the report follows it without one of its own
    assert _report_profile(root, cohort, research, ReportSettings()) == research
    # the same override given to the report too: the same profile
    same = ReportSettings(deployment_batch=BATCHES[0])
    assert _report_profile(root, cohort, research, same) == research
    # another override in the report alone would make two deployments: refused with the fix
    rates = {m: 1.0 for m in cohort.spec.modality_names}
    with pytest.raises(ValueError, match="predictions step") as caught:
        _report_profile(root, cohort, research, ReportSettings(deployment_rates=rates))
    assert "ed-pilot" not in str(caught.value) and BATCHES[0] in str(caught.value)
    # stress tests run without a profile, none in the report: none
    assert _report_profile(root, cohort, None, ReportSettings()) is None


def test_without_a_recorded_profile_the_report_resolves_the_spec_s(landed) -> None:
    """Predictions from before the profile was recorded: the report resolves it itself."""
    root, cohort = landed
    context = dg.build_asset_context(instance=dg.DagsterInstance.ephemeral())
    warehouse = cohort_stores(root, cohort)["warehouse"]
    profile = report_deployment(context, cohort, warehouse, ReportSettings())
    assert profile is not None and profile.batch == BATCHES[1] and profile.batch_patients == 60


def test_a_batch_landed_again_since_the_stress_tests_is_refused(tmp_path: Path) -> None:
    """The report measures the recorded batch again: another mix than the stress tests'."""
    cohort = _cohort(DeploymentProfile(name="ED pilot", batch=BATCHES[1]))
    _land(tmp_path, cohort)
    warehouse = cohort_stores(tmp_path, cohort)["warehouse"]
    with warehouse.connect(read_only=True) as con:
        stressed = resolve_deployment(con, cohort.spec)
    assert _report_profile(tmp_path, cohort, stressed, ReportSettings()) == stressed
    with warehouse.connect() as con:  # the batch's imaging rows replaced by none
        con.execute(
            "DELETE FROM aligned.imaging WHERE patient_id IN "
            "(SELECT patient_id FROM raw.patients WHERE batch_id = ?)",
            [BATCHES[1]],
        )
    with pytest.raises(ValueError, match="no longer the mix"):
        _report_profile(tmp_path, cohort, stressed, ReportSettings())


def test_a_cohort_component_and_a_spec_file_may_name_a_batch(tmp_path: Path) -> None:
    """``deployment: {name, batch}`` in defs.yaml or in a spec file: accepted as it is (its mix
    is measured when a step needs it); a batch id that is no landing folder name is refused."""
    from fusion_assets.cohorts.spec_file import SpecError, read_spec_file
    from fusion_assets.location.component import SyntheticSettings, cohort_from_source
    from tests.fixtures.user_files import user_spec, write_user_files

    cohort = cohort_from_source(
        "synthetic",
        synthetic=SyntheticSettings(patients=100),
        deployment={"name": "ED pilot", "batch": "ed-pilot-2026-11"},
    )
    assert cohort.spec.deployment == DeploymentProfile(name="ED pilot", batch="ed-pilot-2026-11")
    document = user_spec()
    document["deployment"] = {"name": "clinic", "batch": "clinic-2026-11"}
    spec = read_spec_file(write_user_files(tmp_path / "ok", n=20, spec=document))
    assert spec.deployment is not None and spec.deployment.needs_measuring
    document["deployment"] = {"batch": "clinic-2026-11", "rates": {"labs": 1.0}}
    with pytest.raises(SpecError, match="deployment"):
        read_spec_file(write_user_files(tmp_path / "both", n=20, spec=document))
    document["deployment"] = {"batch": "../clinic"}
    with pytest.raises(SpecError, match="deployment"):
        read_spec_file(write_user_files(tmp_path / "path", n=20, spec=document))
