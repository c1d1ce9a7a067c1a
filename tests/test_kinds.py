"""The kinds' own contracts: typed options, drift summaries, saved-model specs, the spec schema."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from pydantic import ValidationError

from fusion_assets.cli import main
from fusion_assets.cohorts.spec import CohortSpec, ModalitySpec, synthetic_spec
from fusion_assets.cohorts.spec_file import parse_spec
from fusion_assets.kinds import kind_of
from fusion_assets.models.api import load_model, save_model, spec_from_dict, spec_to_dict
from fusion_assets.models.config import EncoderConfig
from fusion_assets.models.inputs import fit_modality, transform_modality
from fusion_assets.models.training import train_unimodal
from fusion_assets.warehouse.sql import qident
from tests.fixtures.cohort import SPARSE, suite_spec
from tests.fixtures.user_files import user_spec


# ------------------------------------------------------------------ typed options
def test_options_are_the_kinds_typed_models():
    spec = synthetic_spec()
    wearables = spec.modality("wearables")
    assert type(wearables.options).__name__ == "TimeseriesOptions"
    assert (wearables.options.n_bins, wearables.options.window_days) == (28, 28)
    assert spec.modality("imaging").options.size == 32 * 32
    assert spec.modality("genomics").option("format") == "dense"
    assert ModalitySpec("v", "timeseries", options={"channels": ["hr"]}).options.n_bins == 28


def test_bad_options_are_refused_with_every_problem():
    with pytest.raises(ValidationError) as info:
        ModalitySpec("scan", "image", options={"height": 0, "depth": 3})
    problems = {(e["loc"], e["type"]) for e in info.value.errors()}
    assert problems == {
        (("options", "height"), "spec_problem"),
        (("options", "width"), "missing"),
        (("options", "depth"), "extra_forbidden"),
    }
    with pytest.raises(ValidationError, match="did you mean `tabular`"):
        ModalitySpec("labs", "tabluar")
    with pytest.raises(ValidationError, match="unique"):
        CohortSpec(name="x", modalities=(ModalitySpec("a", "text"), ModalitySpec("a", "text")))


def test_a_spec_file_reports_all_problems_at_once(tmp_path: Path):
    raw = user_spec()
    raw["patients"]["label_colum"] = raw["patients"].pop("label_column")
    raw["modalities"]["labs"]["features"] = ["lab_a", "lab_a"]
    raw["modalities"]["genes"]["format"] = "densse"
    raw["modalities"]["memo"]["channels"] = ["x"]
    raw["modalities"]["watch"] = {"kind": "timeseries", "source": "w.csv", "id_column": "p"}
    with pytest.raises(ValueError) as info:
        parse_spec(raw, tmp_path / "cohort.yaml")
    problems = info.value.problems
    expected = [
        "key `patients.label_column`: missing -> name the column",
        "key `patients.label_colum`: unknown key -> did you mean `label_column`?",
        "key `modalities.labs.features`: columns listed twice: ['lab_a']",
        "key `modalities.genes.format`: 'densse' is not an omics format",
        "key `modalities.memo.channels`: not an option of a text modality",
        "key `modalities.watch.channels`: missing",
        "key `modalities.watch`: a timeseries modality is resampled",
    ]
    for fragment in expected:
        assert any(p.startswith(fragment) for p in problems), (fragment, problems)
    assert len(problems) == len(expected)


def test_the_complete_spec_of_the_docs_is_valid(tmp_path: Path):
    text = (Path(__file__).resolve().parents[1] / "docs" / "own-data.md").read_text()
    block = re.search(r"## A complete spec.*?```yaml\n(.*?)```", text, re.S).group(1)
    spec = parse_spec(yaml.safe_load(block), tmp_path / "cohort.yaml")
    kinds = {m.name: (m.kind, m.timed) for m in spec.modalities}
    assert kinds["watch"] == ("timeseries", True) and kinds["variants"] == ("omics", False)
    assert spec.modality("variants").options.n_features == 1_000_000
    assert spec.deployment is not None and spec.deployment.name == "emergency department"
    assert spec.deployment.target_mix(spec.modality_names).sum() == pytest.approx(1.0)


def test_spec_schema_command_writes_the_json_schema(tmp_path: Path, capsys):
    main(["spec-schema", "--output", str(tmp_path / "schema.json")])
    assert "Wrote the cohort spec JSON Schema" in capsys.readouterr().out
    schema = json.loads((tmp_path / "schema.json").read_text())
    modalities = schema["properties"]["modalities"]
    assert modalities["additionalProperties"] is False  # names must match the pattern
    (entries,) = modalities["patternProperties"].values()
    assert entries["discriminator"]["propertyName"] == "kind"
    assert set(entries["discriminator"]["mapping"]) >= {"tabular", "omics", "text"}
    image = schema["$defs"]["ImageModality"]
    assert {"pixels_column", "height", "width", "id_column", "source"} <= set(image["required"])
    assert image["additionalProperties"] is False
    main(["spec-schema"])
    assert json.loads(capsys.readouterr().out) == schema


# ------------------------------------------------------------------ drift summaries
def _summaries(con, modality) -> pd.DataFrame:
    table = f"aligned.{qident(modality.name)}"
    columns = dict(
        con.execute(f"SELECT column_name, column_type FROM (DESCRIBE {table})").fetchall()
    )
    sql = kind_of(modality).drift_summaries(modality, columns)
    select = ", ".join(f'{expr} AS "{name}"' for name, expr in sql.items())
    return con.execute(f"SELECT patient_id, {select} FROM {table} ORDER BY patient_id").df()


def test_drift_summaries_of_every_kind(handmade_warehouse, spec):
    con, _ = handmade_warehouse
    labs = _summaries(con, spec.modality("labs"))
    assert list(labs.columns) == ["patient_id", "days_since_last", "lab_a", "lab_b", "smoker"]
    genes = _summaries(con, spec.modality("genes")).set_index("patient_id")
    assert genes.loc["P02", "mean_value"] == pytest.approx(2.5)
    snps = _summaries(con, spec.modality(SPARSE)).set_index("patient_id")
    assert snps.loc["P01", "n_nonzero"] == 2 and snps.loc["P01", "mean_value"] == 1.5
    scan = _summaries(con, spec.modality("scan")).set_index("patient_id")
    assert list(scan.columns) == ["days_since_last", "mean_pixel", "sd_pixel"]
    assert scan.loc["P01", "mean_pixel"] == 2.0 and scan.loc["P01", "sd_pixel"] == 0.0
    watch = _summaries(con, spec.modality("watch")).set_index("patient_id")
    # P01: 3 samples in the window; observed cells hr bin0, steps bin0 and bin3 of 8
    assert watch.loc["P01", "n_samples"] == 3
    assert watch.loc["P01", "observed_share"] == pytest.approx(3 / 8)
    assert watch.loc["P01", "mean_observed"] == pytest.approx((65 + 100 + 10) / 3)
    memo = _summaries(con, spec.modality("memo")).set_index("patient_id")
    assert memo.loc["P01", "n_notes"] == 2
    assert memo.loc["P01", "text_length"] == len("first note\nsecond note")


# ------------------------------------------------------------------ saved models
def test_saved_specs_round_trip_and_name_unknown_kinds(tmp_path: Path):
    for spec in (synthetic_spec(), synthetic_spec("sparse"), suite_spec()):
        loaded = spec_from_dict(json.loads(json.dumps(spec_to_dict(spec))))
        assert (loaded.name, loaded.modalities) == (spec.name, spec.modalities)
    data = spec_to_dict(suite_spec())
    data["modalities"][0]["kind"] = "scalar_pair"
    with pytest.raises(ValueError, match="'scalar_pair'.*not registered.*register_kind"):
        spec_from_dict(data, tmp_path / "model.json")


def test_a_saved_model_keeps_its_kind_tag(tmp_path: Path, small_signal):
    cohort = small_signal
    fitted, _ = train_unimodal(
        cohort.spec,
        SPARSE,
        cohort.frames,
        cohort.labels,
        cohort.train_ids,
        [],
        EncoderConfig.tiny(),
    )
    meta = json.loads((save_model(fitted, tmp_path / "m") / "model.json").read_text())
    assert meta["preprocessing"][SPARSE]["kind"] == "omics_sparse"
    loaded = load_model(tmp_path / "m")
    assert loaded.spec == cohort.spec
    state = fit_modality(
        cohort.spec.modality("genes"),
        cohort.frames["genes"],
        cohort.train_ids,
        EncoderConfig.tiny(),
    )
    with pytest.raises(ValueError, match="fitted for another spec"):
        transform_modality(cohort.spec.modality(SPARSE), state, cohort.frames[SPARSE], ["pt-0001"])
    present, arrays = transform_modality(
        cohort.spec.modality(SPARSE), loaded.preprocessing[SPARSE], None, ["pt-0001"]
    )
    assert not present.any() and arrays["counts"].tolist() == [0] and np.all(arrays["offsets"] == 0)
