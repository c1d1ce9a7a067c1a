"""Run configs: one pydantic model per knob set, reused by the Dagster Config classes."""

from __future__ import annotations

import dagster as dg
import pytest
from pydantic import ValidationError

from fusion_assets.assets.batch_evaluation import BatchEvaluationConfig
from fusion_assets.assets.evaluation import ReportConfig, StressTestConfig
from fusion_assets.assets.profile import RecommendationConfig, SplitConfig
from fusion_assets.assets.risk_scores import RiskScoresConfig
from fusion_assets.assets.training_run import TrainingConfig
from fusion_assets.evaluation import SplitSettings, StressSettings
from fusion_assets.reevaluation.settings import BatchEvaluationSettings
from fusion_assets.training_settings import TrainingSettings
from tests.fixtures.pipeline import SYNTHETIC, temp_resources

CONFIGS = [
    BatchEvaluationConfig,
    RecommendationConfig,
    ReportConfig,
    RiskScoresConfig,
    SplitConfig,
    StressTestConfig,
    TrainingConfig,
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.__name__)
def test_launchpad_schema_describes_every_field(config) -> None:
    fields = config.to_config_schema().config_type.fields
    assert fields
    missing = [name for name, field in fields.items() if not field.description]
    assert not missing, f"{config.__name__}: no description for {missing}"


def test_presets_are_an_enum_in_the_launchpad() -> None:
    preset = TrainingConfig.to_config_schema().config_type.fields["preset"].config_type
    assert sorted(v.config_value for v in preset.enum_values) == [
        "auto",
        "default",
        "small_n",
        "tiny",
    ]


@pytest.mark.parametrize(
    ("model", "values", "field"),
    [
        (TrainingSettings, {"max_epochs": 0}, "max_epochs"),
        (TrainingSettings, {"modality_dropout": 1.5}, "modality_dropout"),
        (SplitSettings, {"folds": 1}, "folds"),
        (SplitSettings, {"inner_validation": 1.0}, "inner_validation"),
        (StressSettings, {"rates": [0.0, 1.2]}, "rates"),
        (StressSettings, {"mask_seeds": 0}, "mask_seeds"),
        (BatchEvaluationSettings, {"strategies": ["erly"]}, "strategies"),
        (BatchEvaluationSettings, {"pattern_tv_threshold": 2.0}, "pattern_tv_threshold"),
    ],
)
def test_out_of_range_knobs_are_refused(model, values, field) -> None:
    with pytest.raises(ValidationError, match=field):
        model(**values)


def test_training_overrides_build_the_dataclasses() -> None:
    settings = TrainingSettings(preset="tiny", max_epochs=2, modality_dropout=0.0, seed=4)
    fusion = settings.fusion_config()
    assert fusion.train.max_epochs == 2 and fusion.encoder.train.max_epochs == 2
    assert fusion.modality_dropout == 0.0 and fusion.train.seed == 4
    assert (
        settings.encoder_config().embedding_dim
        == TrainingSettings(preset="tiny").encoder_config().embedding_dim
    )


def _materialize_encoder(resources: dict, config: dict) -> dg.ExecuteInProcessResult:
    from fusion_assets.location.build import cohort_assets

    return dg.materialize(
        cohort_assets(SYNTHETIC),
        selection=dg.AssetSelection.assets(SYNTHETIC.key("modality_encoder")),
        partition_key="ehr",
        resources=resources,
        instance=dg.DagsterInstance.ephemeral(),
        run_config=SYNTHETIC.run_config({"modality_encoder": {"config": config}}),
        raise_on_error=False,
    )


def test_a_misspelled_preset_is_refused_before_the_run(resources) -> None:
    with pytest.raises(dg.DagsterInvalidConfigError, match="tinny"):
        _materialize_encoder(resources, {"preset": "tinny"})


def test_negative_max_epochs_fail_the_step_with_the_field_and_the_bound(
    tmp_path, resources
) -> None:
    result = _materialize_encoder(resources, {"preset": "tiny", "max_epochs": -1})
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    message = str(failure.step_failure_data.error)
    assert "max_epochs" in message and "greater than or equal to 1" in message
    # Refused before the body ran: nothing was fitted.
    assert not (tmp_path / "synthetic" / "models").exists()


def test_a_cohort_sets_the_launchpad_defaults_of_its_assets() -> None:
    from fusion_assets.location import Cohort

    cohort = Cohort(
        "smoke",
        SYNTHETIC.spec,
        config_defaults={"fused_model": {"preset": "tiny", "max_epochs": 3}},
    )
    config = cohort.config_class("fused_model", TrainingConfig)
    fields = config.to_config_schema().config_type.fields
    assert fields["preset"].default_value == "tiny" and fields["max_epochs"].default_value == 3
    assert fields["max_epochs"].description  # ranges and descriptions are kept
    encoder = cohort.config_class("modality_encoder", TrainingConfig).to_config_schema()
    # no defaults set ('auto' is an option: benchmarks/results/presets.md)
    assert encoder.config_type.fields["preset"].default_value == "default"
    with pytest.raises(ValueError, match="no field"):
        Cohort(
            "smoke", SYNTHETIC.spec, config_defaults={"fused_model": {"epochs": 3}}
        ).config_class("fused_model", TrainingConfig)
    with pytest.raises(ValidationError, match="max_epochs"):
        Cohort(
            "smoke", SYNTHETIC.spec, config_defaults={"fused_model": {"max_epochs": 0}}
        ).config_class("fused_model", TrainingConfig)


def test_the_launchpad_shows_each_knob_with_its_range() -> None:
    """Dagster's config schema has no bounds: each bounded field's description carries it."""
    from pathlib import Path

    from fusion_assets.location.build import build_location

    defs = build_location([SYNTHETIC], temp_resources(Path("/unused")))
    schema = defs.resolve_assets_def(SYNTHETIC.key("fused_model")).op.config_schema
    fields = schema.config_type.fields
    assert fields["max_epochs"].description.endswith("(>= 1)")
    assert fields["modality_dropout"].description.endswith("(in [0.0, 1.0])")
    assert fields["learning_rate"].description.endswith("(> 0.0)")
    splits = defs.resolve_assets_def(SYNTHETIC.key("splits")).op.config_schema.config_type
    assert splits.fields["inner_validation"].description.endswith("(in (0.0, 1.0))")
