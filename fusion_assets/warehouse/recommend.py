"""``profile.recommendation``: the decision matrix's ranking in the warehouse.

The matrix itself is pure code in ``fusion_assets.decision_matrix``.
"""

from __future__ import annotations

import json
from typing import Any

import duckdb

from fusion_assets.decision_matrix import RecommendationThresholds
from fusion_assets.warehouse.sql import table_exists


def write_recommendation(
    con: duckdb.DuckDBPyConnection,
    recommendations: list[dict[str, Any]],
    thresholds: RecommendationThresholds | None = None,
) -> None:
    """``profile.recommendation``: rank, strategy, score, reasons, thresholds used (JSON)."""
    used = json.dumps((thresholds or RecommendationThresholds()).model_dump(), sort_keys=True)
    con.execute("CREATE SCHEMA IF NOT EXISTS profile")
    con.execute(
        "CREATE OR REPLACE TABLE profile.recommendation "
        "(rank INTEGER, strategy VARCHAR, score DOUBLE, reasons VARCHAR[], thresholds VARCHAR)"
    )
    con.executemany(
        "INSERT INTO profile.recommendation VALUES (?, ?, ?, ?, ?)",
        [[r["rank"], r["strategy"], r["score"], r["reasons"], used] for r in recommendations],
    )


def read_recommendation(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """The ranking, best first (empty before the recommendation asset ran)."""
    if not table_exists(con, "profile", "recommendation"):
        return []
    return con.sql("SELECT * FROM profile.recommendation ORDER BY rank").df().to_dict("records")
