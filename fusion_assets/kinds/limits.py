"""Bounds on what a cohort spec and its sources may ask for, each with its reason.

Work grows with these values (alignment builds one aggregate per time-series cell,
import one check per feature column), so an unbounded value is a hang, not a
slow run: ``n_bins: 200000`` planned for a quarter of an hour.  A spec over a
limit is refused when it is read, naming the key, the limit and what to do.
The figures are documented in docs/own-data.md ("Limits").
"""

from __future__ import annotations

# ------------------------------------------------------------------ the spec file
MAX_SPEC_BYTES = 1_000_000  # a spec is a page of YAML, not data
MAX_YAML_ALIASES = 64  # YAML anchors reused (*name) in one spec file
MAX_YAML_NODES = 100_000  # nodes after expanding aliases (a 9-line alias bomb has 10^9)
MAX_MODALITIES = 64

# ------------------------------------------------------------------ kind options
MAX_TABULAR_FEATURES = 10_000  # one aggregate per feature in alignment; wider: kind omics
MAX_DENSE_FEATURES = 200_000  # columns packed into (or lists of) one dense omics vector
MAX_OMICS_FEATURES = 10_000_000  # n_features of a sparse omics modality
MAX_CHANNELS = 64
MAX_N_BINS = 366  # daily bins over a year
# bins x channels: alignment plans one filtered aggregate per cell (measured on 2 cores:
# 300 cells 1.6 s, 600 cells 15 s, 900 cells 30 s for 1,000 patients)
MAX_SERIES_CELLS = 512
MAX_WINDOW_DAYS = 36_525  # a hundred years
MAX_IMAGE_SIDE = 4_096
MAX_IMAGE_CHANNELS = 16
MAX_IMAGE_VALUES = 4_194_304  # height x width x channels of one image or embedding

# ------------------------------------------------------------------ sources
MAX_SOURCE_BYTES = 64 * 1024**3  # all files of one source together
MAX_CSV_LINE_BYTES = 2_000_000  # DuckDB's max_line_size, stated here so it has one home
MAX_TEXT_BYTES = 1_000_000  # one note or one categorical value


def over_limit(what: str, value: int, limit: int, fix: str) -> tuple[str, str] | None:
    """(problem, fix) when ``value`` is over ``limit``, else None."""
    if value <= limit:
        return None
    return f"{what} is {value:,}, over the limit of {limit:,}", fix
