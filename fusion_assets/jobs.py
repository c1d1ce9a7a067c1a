"""Jobs of the code location and the stage order of the pipeline, defined once.

``STAGES`` is the order every full run follows: ingest one landing batch, then
prepare (align + profile), encoders, fusion, evaluation. The retraining jobs
are those stages' selections (the retraining schedule starts stage 1, the
retraining chain sensor the next ones), and ``fusion-assets demo`` runs the
very same selections in the same order (``demo.materialize_pipeline``).

Every job runs its steps in one process (``in_process_executor``): importing
torch, mlflow and dagster costs seconds per process on a laptop, and the
DuckDB writers are serialized by the ``duckdb_writer`` pool anyway, so a
process per step would only add start-up time. A deployment that needs
parallel steps changes the executor here (see docs/operations.md).

Selections are by group or key, never by imported asset objects, so this
module (and the sensors importing it) stays cheap to import.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

BATCH_EVALUATION = "batch_evaluation"
# By key prefix rather than AssetSelection.assets: that one refuses to resolve while the
# asset is absent (a partial code location, or the stand-in definitions of the tests).
_batch_evaluation = dg.AssetSelection.key_prefixes([BATCH_EVALUATION])


@dataclass(frozen=True)
class Stage:
    """One stage of a full run: the assets it materializes, one run per partition."""

    name: str
    title: str
    selection: dg.AssetSelection


INGEST = Stage(
    "ingest",
    "Validate and load one landing batch into the raw schema (one partition).",
    dg.AssetSelection.groups("ingest"),
)
# The stages have different partitionings (unpartitioned, modality, strategy,
# unpartitioned), and a run has one partition, so each is its own job.
STAGES: tuple[Stage, ...] = (
    Stage(
        "prepare",
        "re-align all ingested batches, re-profile and re-split",
        dg.AssetSelection.groups("align", "profile"),
    ),
    Stage(
        "encoders",
        "one run per modality partition of the encoders",
        dg.AssetSelection.groups("encoders"),
    ),
    Stage("fusion", "one run per fusion strategy partition", dg.AssetSelection.groups("fusion")),
    Stage(
        "evaluation",
        "predictions and the subgroup report for the new models",
        # batch_evaluation is partitioned by landing batch and driven by the sensors.
        dg.AssetSelection.groups("evaluation") - _batch_evaluation,
    ),
)

# The landing sensor: one run per landing batch (partition of ``landing_batches``).
ingest_batch_job = dg.define_asset_job(
    "ingest_batch",
    selection=INGEST.selection,
    executor_def=dg.in_process_executor,
    description=INGEST.title,
)

# The re-evaluation sensor: after a batch is ingested, re-align every patient (the
# aligned tables are unpartitioned full refreshes) and score the batch with the
# current fused models. One run, so alignment always finishes before scoring.
reevaluate_batch_job = dg.define_asset_job(
    "reevaluate_batch",
    selection=dg.AssetSelection.groups("align") | _batch_evaluation,
    executor_def=dg.in_process_executor,
    description=(
        "Refresh the aligned tables, then score one landing batch with the current fused "
        "models and measure drift against the training split (no retraining)."
    ),
)


def _retrain_job(number: int, stage: Stage) -> dg.UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        f"retrain_{stage.name}",
        selection=stage.selection,
        executor_def=dg.in_process_executor,
        description=f"Retraining stage {number}: {stage.title}.",
    )


# Stage order of a retraining; each entry is (stage name, job).
RETRAIN_STAGES: tuple[tuple[str, dg.UnresolvedAssetJobDefinition], ...] = tuple(
    (stage.name, _retrain_job(i, stage)) for i, stage in enumerate(STAGES, start=1)
)

JOBS: list[dg.UnresolvedAssetJobDefinition] = [
    ingest_batch_job,
    reevaluate_batch_job,
    *(job for _, job in RETRAIN_STAGES),
]
