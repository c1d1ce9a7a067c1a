"""Jobs of a cohort: one per pipeline group, and the batch re-evaluation.

A run is named after its job, so each run says what it does: ``<cohort>_ingest``
(one landing batch), ``<cohort>_align``, ``<cohort>_profile``,
``<cohort>_encoders`` (one modality), ``<cohort>_fusion`` (one strategy),
``<cohort>_evaluation`` (predictions and the report) and
``<cohort>_reevaluate_batch`` (re-align, then re-evaluate and risk-score one batch). The landing
sensor launches the ingest job, the re-evaluation sensor the last one;
``fusion-assets demo`` runs the group jobs in the asset graph's order. The
retraining is not a job: its automation conditions request the assets
(automation.py).

Every job runs its steps in one process (``in_process_executor``): importing
torch, mlflow and dagster costs seconds per process on a laptop, and the
DuckDB writers are serialized by the cohort's pool anyway. The deployment's
code location (``fusion_assets.deploy``) builds the same jobs with the
multiprocess executor.
"""

from __future__ import annotations

import dagster as dg

from fusion_assets.location.cohort import GROUP_NUMBERS, Cohort


def batch_evaluation_selection(cohort: Cohort) -> dg.AssetSelection:
    """The per-batch assets: ``batch_evaluation`` and ``risk_scores`` (driven by the sensors)."""
    # By key rather than by asset object, so the selection resolves in any code location.
    return dg.AssetSelection.assets(*cohort.keys("batch_evaluation", "risk_scores"))


def group_selection(cohort: Cohort, stage: str) -> dg.AssetSelection:
    """The assets of one pipeline group (the per-batch assets are driven by their sensor)."""
    selection = dg.AssetSelection.groups(cohort.group(stage))
    return selection - batch_evaluation_selection(cohort) if stage == "evaluation" else selection


def build_jobs(
    cohort: Cohort, executor: dg.ExecutorDefinition = dg.in_process_executor
) -> dict[str, dg.UnresolvedAssetJobDefinition]:
    """Stage name (``ingest`` … ``evaluation``, ``reevaluate_batch``) -> job."""
    jobs = {
        stage: dg.define_asset_job(
            cohort.job(stage),
            selection=group_selection(cohort, stage),
            executor_def=executor,
            description=f"{cohort.name}: materialize the {stage} group ({cohort.group(stage)}).",
            tags={"cohort": cohort.name},
        )
        for stage in GROUP_NUMBERS
    }
    # After a batch is ingested: re-align every patient (the aligned tables are
    # unpartitioned full refreshes), re-evaluate the current fused models on the batch and
    # write the champion's risk scores of its patients. One run, so alignment always
    # finishes before scoring.
    jobs["reevaluate_batch"] = dg.define_asset_job(
        cohort.job("reevaluate_batch"),
        selection=dg.AssetSelection.groups(cohort.group("align"))
        | batch_evaluation_selection(cohort),
        executor_def=executor,
        description=(
            f"{cohort.name}: refresh the aligned tables, then score one landing batch with the "
            "current fused models, measure drift against the training split (no retraining) "
            "and write the champion's risk scores of its patients."
        ),
        tags={"cohort": cohort.name},
    )
    return jobs
