"""Asset checks: data quality of the aligned cohort and leakage of the evaluation.

Each check hangs on the asset whose table it reads: the patient checks on
``aligned_patients``, the leakage check on every ``aligned_<modality>``, the
availability checks on ``availability_profile`` and the oracle check on
``subgroup_metrics``, the deployed-refit check on ``modality_encoder`` and
``fused_model`` (cross-validated cohorts: ``evaluation/refit.py``) (the landing validation is the ingest step's own check,
assets/ingest.py). The rules live in pure code (pandera schemas in
``warehouse/checks.py``, the oracle comparison in ``metrics/leakage.py``); these
wrappers only run them against the cohort's warehouse and report their metadata.
"""

import dagster as dg
import pandas as pd
from pydantic import Field

from fusion_assets.assets.metadata import frame_table
from fusion_assets.cohorts import ModalitySpec
from fusion_assets.location.cohort import Cohort
from fusion_assets.names import ENCODER_STORE, FUSION_STORE, unimodal_name
from fusion_assets.warehouse import checks as rules
from fusion_assets.warehouse.eval_tables import read_eval_table
from resources import ModelStoreResource, WarehouseResource


class AvailabilityFloorConfig(dg.Config):
    floor: float = Field(
        default=0.05, ge=0.0, le=1.0, description="Least share of patients with each modality"
    )


def _result(outcome: tuple[bool, dict], description: str) -> dg.AssetCheckResult:
    passed, metadata = outcome
    return dg.AssetCheckResult(
        passed=bool(passed),
        metadata={
            k: dg.MetadataValue.json(v) if isinstance(v, dict | list) else v
            for k, v in metadata.items()
        },
        description=description,
    )


def _patient_checks(cohort: Cohort) -> list[dg.AssetChecksDefinition]:
    db = cohort.name

    @dg.asset_check(asset=cohort.key("aligned_patients"), pool=cohort.writer_pool, blocking=True)
    def unique_patient_ids(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        """Every patient appears once in aligned.patients."""
        with warehouse.for_cohort(db).connect() as con:
            return _result(rules.check_unique_patient_ids(con), "patient_id is unique")

    @dg.asset_check(asset=cohort.key("aligned_patients"), pool=cohort.writer_pool, blocking=True)
    def labels_and_index_times(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        """Every patient has a 0/1 label and an index time."""
        with warehouse.for_cohort(db).connect() as con:
            return _result(
                rules.check_labels_and_index_times(con), "label in {0,1} and index_time set"
            )

    return [unique_patient_ids, labels_and_index_times]


def _no_rows_after_index_time(cohort: Cohort, modality: ModalitySpec) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=cohort.key(f"aligned_{modality.name}"),
        name="no_rows_after_index_time",
        pool=cohort.writer_pool,
        blocking=True,
        description=(
            f"No row of aligned.{modality.name} comes from at or after the patient's index "
            "time (leakage)."
        ),
    )
    def _check(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        with warehouse.for_cohort(cohort.name).connect() as con:
            return _result(
                rules.check_no_future_rows(con, [modality]),
                f"no row of aligned.{modality.name} from after index time",
            )

    return _check


def _availability_checks(cohort: Cohort) -> list[dg.AssetChecksDefinition]:
    spec, profile = cohort.spec, cohort.key("availability_profile")

    @dg.asset_check(asset=profile, pool=cohort.writer_pool)
    def availability_above_floor(
        config: AvailabilityFloorConfig, warehouse: WarehouseResource
    ) -> dg.AssetCheckResult:
        """Each modality is present for at least `floor` of patients."""
        with warehouse.for_cohort(cohort.name).connect() as con:
            return _result(
                rules.check_availability_floor(con, spec, config.floor),
                f"every modality available for >= {config.floor:.0%} of patients",
            )

    @dg.asset_check(asset=profile, pool=cohort.writer_pool)
    def label_prevalence_not_degenerate(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        """No availability pattern with >= 100 patients is (almost) all one class."""
        with warehouse.for_cohort(cohort.name).connect() as con:
            return _result(
                rules.check_label_prevalence(con), "prevalence within [1%, 99%] per large pattern"
            )

    return [availability_above_floor, label_prevalence_not_degenerate]


def _oracle_check(cohort: Cohort) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=cohort.key("subgroup_metrics"), pool=cohort.writer_pool)
    def no_strategy_beats_oracle(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        """Fails when a strategy's AUROC beats the Bayes oracle beyond its CI: leakage."""
        from fusion_assets.metrics.leakage import describe_leaks, leakage_flags

        with warehouse.for_cohort(cohort.name).connect() as con:
            table = read_eval_table(con, "subgroup_metrics")
        if table["oracle_auroc"].isna().all():
            return dg.AssetCheckResult(
                passed=True,
                description="No oracle for this cohort (real data): the check does not apply.",
                metadata={"applicable": False},
            )
        flags = leakage_flags(table)
        return dg.AssetCheckResult(
            passed=flags.empty,
            description=describe_leaks(flags),
            metadata={
                "rows_flagged": len(flags),
                "flagged": frame_table(flags) if len(flags) else "none",
            },
        )

    return no_strategy_beats_oracle


def _refit_check(cohort: Cohort, asset: str, store_kind: str, names: list[str]):
    @dg.asset_check(asset=cohort.key(asset), name="deployed_refit_in_line_with_fold_models")
    def _check(model_store: ModelStoreResource) -> dg.AssetCheckResult:
        """Cross-validated cohorts: each deployed model (refitted on every patient) reaches an
        in-sample AUROC on its training patients within REFIT_TOLERANCE of its fold models'
        median in-sample AUROC on theirs. No patient is held out from the deployed model, so
        like is compared with like; a refit that stopped too early or diverged fails."""
        from fusion_assets.evaluation.refit import REFIT_TOLERANCE, RefitRecord

        store = model_store.for_cohort(cohort.name)
        rows = []
        for name in names:
            if not store.exists(store_kind, name):  # a partition not fitted (yet)
                continue
            record = RefitRecord.read(store.model_dir(store_kind, name))
            if record is not None:
                rows.append({"model": name, **{k: getattr(record, k) for k in _REFIT_COLUMNS}})
                rows[-1]["in_line"] = record.in_line
        if not rows:
            return dg.AssetCheckResult(
                passed=True,
                description="No refitted deployed model (held-out design): the deployed model "
                "is the evaluated one.",
                metadata={"applicable": False},
            )
        table = pd.DataFrame(rows)
        far = table.loc[~table["in_line"], "model"].tolist()
        return dg.AssetCheckResult(
            passed=not far,
            description=(
                f"deployed refits far below their fold models (in-sample AUROC more than "
                f"{REFIT_TOLERANCE} below): {', '.join(far)}"
                if far
                else f"every deployed refit within {REFIT_TOLERANCE} of its fold models"
            ),
            metadata={"refits": frame_table(table), "tolerance": REFIT_TOLERANCE},
        )

    return _check


_REFIT_COLUMNS = ("epochs", "train_auroc", "fold_train_auroc", "fold_val_auroc")


def _refit_checks(cohort: Cohort) -> list[dg.AssetChecksDefinition]:
    from fusion_assets.models.strategies import STRATEGIES

    singles = [unimodal_name(m) for m in cohort.spec.modality_names]
    return [
        _refit_check(cohort, "modality_encoder", ENCODER_STORE, singles),
        _refit_check(cohort, "fused_model", FUSION_STORE, list(STRATEGIES)),
    ]


def build_checks(cohort: Cohort) -> list[dg.AssetChecksDefinition]:
    """Every data-quality and leakage check of the cohort."""
    return [
        *_patient_checks(cohort),
        *(_no_rows_after_index_time(cohort, m) for m in cohort.spec.modalities),
        *_availability_checks(cohort),
        _oracle_check(cohort),
        *_refit_checks(cohort),
    ]
