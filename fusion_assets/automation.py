"""Retraining as declarative automation, and the freshness of what people read.

A retraining refreshes, in dependency order: the availability profile, the
recommendation and the evaluation design, the encoders (one partition per
modality), the fused models (one per strategy), the predictions, the
subgroup report and the promotion decision. Nothing here lists that order:

- the root, ``availability_profile``, is cron-gated (the cohort's
  ``retrain_cron``, default Sundays 03:00): once per tick, when its inputs are
  present and not being refreshed;
- everything downstream is ``on_cron`` with the same cron: once per tick, as
  soon as every input was updated since the tick and none is still running. So
  the profile's refresh starts the design tables, those the encoders (every
  modality partition at once, a run each), the last encoder the fused models, the last
  fused model the predictions, and those the report. (``eager`` would not do:
  it fires on the first updated input, e.g. the predictions on the new
  encoders before the fused models are refitted.)
- the aligned tables are ignored by these conditions: the re-evaluation of each
  landed batch refreshes them, which must not start a retraining. The chain of
  one tick has until the next tick to finish (a week by default).

Freshness policies (evaluated by the daemon when ``freshness: enabled`` in
dagster.yaml) say when the report and the batch evaluation are overdue.

The cohort's automation sensor ships STOPPED (a retraining replaces the models
that re-evaluation and the report compare against: a reviewed decision); turn it
on in the UI (Automation → ``<cohort>_retraining``) or with
``dagster sensor start <cohort>_retraining``. Re-evaluation of landed batches is
the landing and re-evaluation sensors' job (sensors.py), RUNNING by default.
"""

from __future__ import annotations

from datetime import timedelta

import dagster as dg

from fusion_assets.location.cohort import Cohort

RETRAIN_TAG = "fusion_assets/retrain"
# The report is refreshed by the weekly retraining: a day of slack before it is overdue.
REPORT_FRESHNESS = timedelta(days=8)
# Landing batches are expected at least weekly; none evaluated for longer is worth a look.
BATCH_EVALUATION_FRESHNESS = timedelta(days=7)
# Each stage of a retraining waits for the next evaluation: keep the hop short (it is cheap).
AUTOMATION_INTERVAL_S = 15


def retraining_root_condition(cohort: Cohort) -> dg.AutomationCondition:
    """Once per tick of ``cohort.retrain_cron``, when the inputs exist and are not being written."""
    return (
        dg.AutomationCondition.cron_tick_passed(cohort.retrain_cron).since_last_handled()
        & ~dg.AutomationCondition.any_deps_missing()
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
    ).with_label(f"retraining cron {cohort.retrain_cron!r}")


def retraining_condition(cohort: Cohort) -> dg.AutomationCondition:
    """Once per tick, after every input but the aligned tables was updated since the tick."""
    aligned = dg.AssetSelection.groups(cohort.group("align"))
    fits = dg.AssetSelection.assets(cohort.key("modality_encoder"), cohort.key("fused_model"))
    return (
        dg.AutomationCondition.on_cron(cohort.retrain_cron).ignore(aligned)
        # A partitioned input (encoders, fused models) is refitted partition by partition:
        # wait until none is running, so the step sees them all.
        & ~dg.AutomationCondition.any_deps_in_progress().ignore(aligned)
        # A fit whose blocking fit checks failed was not registered: nothing downstream
        # refreshes on it (fusion_assets/fit_checks.py) until it is refitted and passes
        & ~dg.AutomationCondition.any_deps_match(
            dg.AutomationCondition.any_checks_match(
                dg.AutomationCondition.check_failed(), blocking_only=True
            )
        )
        .allow(fits)
        .with_label("no input's fit check failed")
        & ~dg.AutomationCondition.in_progress()
    ).with_label(f"after its inputs, once per {cohort.retrain_cron!r} tick")


def retraining_sensor(cohort: Cohort) -> dg.AutomationConditionSensorDefinition:
    return dg.AutomationConditionSensorDefinition(
        name=cohort.sensor("retraining"),
        target=dg.AssetSelection.key_prefixes(cohort.prefix),
        default_status=dg.DefaultSensorStatus.STOPPED,
        minimum_interval_seconds=AUTOMATION_INTERVAL_S,
        run_tags={RETRAIN_TAG: cohort.name},
        # One run per partition, submitted by the sensor itself (no backfill daemon hop);
        # the queue runs them in parallel up to the instance's limits.
        emit_backfills=False,
        description=(
            f"Retraining of cohort {cohort.name!r}: on each tick of {cohort.retrain_cron!r}, the "
            "profile, encoders, fused models, predictions, report and promotion, in dependency order "
            "(shipped STOPPED: a retraining replaces the models; see docs/operations.md)."
        ),
    )


def report_freshness() -> dg.FreshnessPolicy:
    """The report is refreshed by the weekly retraining: WARN after a week, FAIL after eight days."""
    return dg.FreshnessPolicy.time_window(
        fail_window=REPORT_FRESHNESS, warn_window=timedelta(days=7)
    )


def batch_evaluation_freshness() -> dg.FreshnessPolicy:
    """Batches are expected at least weekly: WARN when none was evaluated for a week."""
    return dg.FreshnessPolicy.time_window(
        fail_window=2 * BATCH_EVALUATION_FRESHNESS, warn_window=BATCH_EVALUATION_FRESHNESS
    )
