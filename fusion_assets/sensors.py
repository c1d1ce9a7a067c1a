"""Sensors of the code location (filled in by the automation work)."""

from __future__ import annotations

import dagster as dg

SENSORS: list[dg.SensorDefinition] = []
