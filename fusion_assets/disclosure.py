"""Disclosure control: the one small-cell limit of every table, report and metric log.

Cells (subgroups, bins, event counts) under this many patients are suppressed
before anything leaves the warehouse; 11 is the usual limit of health-data
release rules (counts of 1-10 are never published).
"""

from __future__ import annotations

SMALL_CELL_LIMIT = 11
