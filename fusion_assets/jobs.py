"""Jobs of the code location: what the sensors and the retraining schedule launch.

Every job runs its steps in one process (``in_process_executor``): importing
torch, mlflow and dagster costs seconds per process on a laptop, and the
DuckDB writers are serialized by the ``duckdb_writer`` pool anyway, so a
process per step would only add start-up time. A deployment that needs
parallel steps changes the executor here (see docs/operations.md).

Selections are by group or key, never by imported asset objects, so this
module (and the sensors importing it) stays cheap to import.
"""

from __future__ import annotations

import dagster as dg

BATCH_EVALUATION = "batch_evaluation"
# By key prefix rather than AssetSelection.assets: that one refuses to resolve while the
# asset is absent (a partial code location, or the stand-in definitions of the tests).
_batch_evaluation = dg.AssetSelection.key_prefixes([BATCH_EVALUATION])

# The landing sensor: one run per landing batch (partition of ``landing_batches``).
ingest_batch_job = dg.define_asset_job(
    "ingest_batch",
    selection=dg.AssetSelection.groups("ingest"),
    executor_def=dg.in_process_executor,
    description="Validate and load one landing batch into the raw schema (one partition).",
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

# Retraining, one job per stage: the stages have different partitionings
# (unpartitioned, modality, strategy, unpartitioned), and a run has one partition.
# The retraining schedule starts stage 1; the retraining chain sensor starts the
# next stage once every run of the previous one succeeded (see sensors.py).
retrain_prepare_job = dg.define_asset_job(
    "retrain_prepare",
    selection=dg.AssetSelection.groups("align", "profile"),
    executor_def=dg.in_process_executor,
    description="Retraining stage 1: re-align all ingested batches, re-profile and re-split.",
)
retrain_encoders_job = dg.define_asset_job(
    "retrain_encoders",
    selection=dg.AssetSelection.groups("encoders"),
    executor_def=dg.in_process_executor,
    description="Retraining stage 2: one run per modality partition of the encoders.",
)
retrain_fusion_job = dg.define_asset_job(
    "retrain_fusion",
    selection=dg.AssetSelection.groups("fusion"),
    executor_def=dg.in_process_executor,
    description="Retraining stage 3: one run per fusion strategy partition.",
)
retrain_evaluation_job = dg.define_asset_job(
    "retrain_evaluation",
    # batch_evaluation is partitioned by landing batch and driven by the sensors.
    selection=dg.AssetSelection.groups("evaluation") - _batch_evaluation,
    executor_def=dg.in_process_executor,
    description="Retraining stage 4: predictions and the subgroup report for the new models.",
)

# Stage order of a retraining; each entry is (stage name, job).
RETRAIN_STAGES: tuple[tuple[str, dg.UnresolvedAssetJobDefinition], ...] = (
    ("prepare", retrain_prepare_job),
    ("encoders", retrain_encoders_job),
    ("fusion", retrain_fusion_job),
    ("evaluation", retrain_evaluation_job),
)

JOBS: list[dg.UnresolvedAssetJobDefinition] = [
    ingest_batch_job,
    reevaluate_batch_job,
    *(job for _, job in RETRAIN_STAGES),
]
