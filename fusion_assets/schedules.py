"""Schedules of the code location: the weekly retraining.

A retraining refreshes, on every ingested batch: alignment and profile
(availability, recommendation, splits), the encoders (one partition per
modality), the fused models (one partition per strategy), then predictions and
the subgroup report. A Dagster run has a single partition, so no single run can
cover these stages. The schedule starts stage 1 and tags it with a retraining
id; ``retraining_chain_sensor`` (sensors.py) requests each next stage, one run
per partition, once every run of the previous stage succeeded. Run keys
``<retrain id>:<stage>:<partition>`` make every step of the chain idempotent.

Default status STOPPED: a retraining replaces the models that batch
re-evaluation and the reports compare against, and in a clinical setting that
is a reviewed decision, not a side effect of starting ``dagster dev``. Turn it
on in the UI (or set ``FUSION_RETRAIN_SCHEDULE=RUNNING``) once that decision is
made; ``FUSION_RETRAIN_CRON`` moves it (default: Sundays 03:00).
"""

from __future__ import annotations

import os

import dagster as dg

from fusion_assets.jobs import RETRAIN_STAGES
from fusion_assets.sensors import RETRAIN_STAGE_TAG, RETRAIN_TAG

RETRAIN_CRON_ENV = "FUSION_RETRAIN_CRON"
RETRAIN_STATUS_ENV = "FUSION_RETRAIN_SCHEDULE"
DEFAULT_RETRAIN_CRON = "0 3 * * 0"  # Sundays 03:00, when nobody waits for the CPU


def retrain_cron() -> str:
    """The retraining cron expression (``FUSION_RETRAIN_CRON``), validated at load time."""
    cron = os.environ.get(RETRAIN_CRON_ENV, DEFAULT_RETRAIN_CRON).strip()
    # Dagster validates the fields themselves; this names the variable to fix.
    if len(cron.split()) != 5:
        raise dg.DagsterInvalidDefinitionError(
            f"{RETRAIN_CRON_ENV}={cron!r} is not a valid cron expression "
            f"(five fields, e.g. {DEFAULT_RETRAIN_CRON!r} for Sundays 03:00)."
        )
    return cron


def retrain_default_status() -> dg.DefaultScheduleStatus:
    """STOPPED unless ``FUSION_RETRAIN_SCHEDULE=RUNNING`` (see the module docstring)."""
    value = os.environ.get(RETRAIN_STATUS_ENV, "STOPPED").strip().upper()
    if value not in ("RUNNING", "STOPPED"):
        raise dg.DagsterInvalidDefinitionError(
            f"{RETRAIN_STATUS_ENV}={value!r}: expected RUNNING or STOPPED."
        )
    return dg.DefaultScheduleStatus[value]


_prepare_stage, _prepare_job = RETRAIN_STAGES[0]


@dg.schedule(
    name="retraining_schedule",
    job=_prepare_job,
    cron_schedule=retrain_cron(),
    default_status=retrain_default_status(),
    description=(
        "Weekly retraining on all ingested batches: align + profile, encoders, fused models, "
        "predictions + subgroup report (stages chained by retraining_chain_sensor)."
    ),
)
def retraining_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """Start stage 1 of a retraining whose id is the scheduled time."""
    retrain_id = context.scheduled_execution_time.strftime("%Y%m%dT%H%M")
    return dg.RunRequest(
        run_key=f"{retrain_id}:{_prepare_stage}:-",
        tags={RETRAIN_TAG: retrain_id, RETRAIN_STAGE_TAG: _prepare_stage},
    )


SCHEDULES: list[dg.ScheduleDefinition] = [retraining_schedule]
