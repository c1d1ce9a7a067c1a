"""Retraining as automation conditions: one cron tick requests the whole chain, nothing else does."""

from __future__ import annotations

from datetime import datetime

import dagster as dg
import pytest

from fusion_assets.location.build import build_location
from fusion_assets.models.strategies import STRATEGIES
from tests.fixtures.pipeline import SYNTHETIC, temp_resources

SATURDAY = datetime(2025, 1, 4, 12, 0)
SUNDAY_AFTER_TICK = datetime(2025, 1, 5, 3, 1)  # the default retrain_cron: Sundays 03:00
MONDAY = datetime(2025, 1, 6, 9, 0)
MODALITIES = SYNTHETIC.spec.modality_names

RETRAINED = [
    "availability_profile",
    "fusion_recommendation",
    "splits",
    "folds",
    "evaluation_mode",
    "modality_encoder",
    "fused_model",
    "predictions",
    "stress_predictions",
    "oof_predictions",
    "model_cost",
    "subgroup_report",
    "subgroup_metrics",
    "degradation",
    "degradation_summary",
    "complete_case",
    "cv_repeat_metrics",
    "net_benefit",
    "deployment_metrics",
    "availability_by_group",
    "promotion",
]


@pytest.fixture
def defs(tmp_path) -> dg.Definitions:
    return build_location([SYNTHETIC], temp_resources(tmp_path))


def _materialized(instance: dg.DagsterInstance, defs: dg.Definitions, names=None) -> None:
    """What a finished pipeline leaves: a materialization of every (partition of every) asset."""
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        if names is not None and key.path[-1] not in names:
            continue
        partitions = graph.get(key).partitions_def
        if isinstance(partitions, dg.DynamicPartitionsDefinition):
            instance.add_dynamic_partitions(partitions.name, ["b1"])
        keys = (
            partitions.get_partition_keys(dynamic_partitions_store=instance)
            if partitions
            else [None]
        )
        for partition in keys:
            instance.report_runless_asset_event(dg.AssetMaterialization(key, partition=partition))


def _requested(result) -> dict[str, set]:
    out = {}
    for key in {k for k in result._requested_partitions_by_asset_key}:
        out[key.path[-1]] = set(result.get_requested_partitions(key))
    return out


# The retraining, stage by stage: what each evaluation requests once the previous ones ran.
# Unpartitioned steps that follow each other are requested together (one run, in order).
CHAIN = [
    {"availability_profile", "fusion_recommendation", "splits", "folds", "evaluation_mode"},
    {"modality_encoder"},
    {"fused_model"},
    {
        "predictions",
        "stress_predictions",
        "oof_predictions",
        "model_cost",
        "subgroup_report",
        "subgroup_metrics",
        "degradation",
        "degradation_summary",
        "complete_case",
        "cv_repeat_metrics",
        "net_benefit",
        "deployment_metrics",
        "availability_by_group",
        "promotion",
    },
]


def test_a_cron_tick_runs_the_retraining_in_dependency_order(defs):
    with dg.DagsterInstance.ephemeral() as instance:
        _materialized(instance, defs)
        result = dg.evaluate_automation_conditions(defs, instance, evaluation_time=SATURDAY)
        assert result.total_requested == 0  # no tick since the sensor started
        when = SUNDAY_AFTER_TICK
        for stage in CHAIN:
            result = dg.evaluate_automation_conditions(
                defs, instance, evaluation_time=when, cursor=result.cursor
            )
            requested = _requested(result)
            assert set(requested) == stage
            if "modality_encoder" in requested:
                assert requested["modality_encoder"] == set(MODALITIES)
            if "fused_model" in requested:
                assert requested["fused_model"] == set(STRATEGIES)
            _materialized(instance, defs, stage)  # the requested runs succeed
            when = when.replace(minute=when.minute + 5)
        done = dg.evaluate_automation_conditions(
            defs, instance, evaluation_time=when, cursor=result.cursor
        )
        assert done.total_requested == 0, _requested(done)  # once per tick

        # Monday a batch lands: ingest and re-evaluation refresh the raw and aligned
        # tables and score the batch. That starts no retraining.
        _materialized(instance, defs, [n for n in _all_names(defs) if n not in RETRAINED])
        later = dg.evaluate_automation_conditions(
            defs, instance, evaluation_time=MONDAY, cursor=done.cursor
        )
        assert later.total_requested == 0, _requested(later)


def _all_names(defs: dg.Definitions) -> list[str]:
    return [k.path[-1] for k in defs.resolve_asset_graph().get_all_asset_keys()]


def test_the_retraining_sensor_ships_stopped_and_the_batch_sensors_running(defs):
    sensors = {s.name: s for s in defs.sensors}
    assert sensors["synthetic_retraining"].default_status == dg.DefaultSensorStatus.STOPPED
    assert isinstance(sensors["synthetic_retraining"], dg.AutomationConditionSensorDefinition)
    for name in ("landing_sensor", "reevaluation_sensor"):
        assert sensors[f"synthetic_{name}"].default_status == dg.DefaultSensorStatus.RUNNING
    assert not [s for s in defs.schedules or []]


def test_the_report_and_the_batch_evaluation_have_freshness_policies(defs):
    specs = {s.key.path[-1]: s for s in defs.resolve_all_asset_specs()}
    for name in ("subgroup_report", "batch_evaluation"):
        assert isinstance(specs[name].freshness_policy, dg.FreshnessPolicy), name
    assert specs["predictions"].freshness_policy is None


def test_a_failed_fit_check_holds_the_retraining_back(defs):
    """A fused model whose blocking fit check failed was not registered: the evaluation
    stage is not requested on it (fusion_assets/fit_checks.py)."""
    with dg.DagsterInstance.ephemeral() as instance:
        _materialized(instance, defs)
        result = dg.evaluate_automation_conditions(defs, instance, evaluation_time=SATURDAY)
        when = SUNDAY_AFTER_TICK
        for stage in CHAIN[:-1]:
            result = dg.evaluate_automation_conditions(
                defs, instance, evaluation_time=when, cursor=result.cursor
            )
            _materialized(instance, defs, stage)
            when = when.replace(minute=when.minute + 5)
        instance.report_runless_asset_event(
            dg.AssetCheckEvaluation(
                asset_key=SYNTHETIC.key("fused_model"),
                check_name="not_worse_than_best_single_modality",
                passed=False,
                partition="early",
                blocking=True,
            )
        )
        held = dg.evaluate_automation_conditions(
            defs, instance, evaluation_time=when, cursor=result.cursor
        )
        assert held.total_requested == 0, _requested(held)
