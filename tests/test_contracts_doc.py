"""The column descriptions of the Dagster metadata and docs/data-contracts.md describe the same columns."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fusion_assets.warehouse.contracts import COLUMN_DESCRIPTIONS

DOC = (Path(__file__).resolve().parents[1] / "docs" / "data-contracts.md").read_text()


@pytest.mark.parametrize("table", sorted(COLUMN_DESCRIPTIONS))
def test_every_described_column_is_in_the_data_contracts(table: str) -> None:
    schema, name = table.split(".")
    # The paragraphs that name the table (`aligned.patients`, or raw's `raw.<name>` list).
    paragraphs = [p for p in DOC.split("\n\n") if f"`{table}`" in p or f"{table}," in p]
    assert paragraphs, f"docs/data-contracts.md does not describe {table}"
    text = "\n".join(paragraphs)
    if schema == "raw":  # "the landing columns plus batch_id": the landing table lists them
        text += "\n" + DOC.split("## 2.")[0]
    missing = [c for c in COLUMN_DESCRIPTIONS[table] if not re.search(rf"\b{c}\b", text)]
    assert not missing, f"{table}: {missing} described in code, not in docs/data-contracts.md"


def test_the_metadata_carries_the_descriptions(tmp_path) -> None:
    import duckdb

    from fusion_assets.assets.metadata import table_metadata

    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute(
        "CREATE SCHEMA profile; CREATE TABLE profile.splits (patient_id VARCHAR, split VARCHAR)"
    )
    schema = table_metadata(con, "profile.splits")["dagster/column_schema"]
    assert {c.name: c.description for c in schema.columns} == COLUMN_DESCRIPTIONS["profile.splits"]
