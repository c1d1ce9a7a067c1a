"""``timeseries``: irregular samples of numeric channels over the days before the index time.

Landing: one numeric column per channel, one row per sample.  Aligned: the
window of ``window_days`` before the index time resampled into ``n_bins`` bins
(bin means, time-major, bin 0 the oldest) plus an observation mask.
Preprocessing: per-channel standardization over observed bins; a masked GRU
with masked level/trend features; attention fusion gets one token per bin.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import numpy as np
import pandas as pd
from pydantic import model_validator

from fusion_assets.kinds.arrays import log_dropped, safe_mean, safe_std, stack_lists
from fusion_assets.kinds.base import (
    Arrays,
    ImportContext,
    LandingColumn,
    LandingPayload,
    ModalityKind,
    State,
    TimeSteps,
)
from fusion_assets.kinds.limits import MAX_CHANNELS, MAX_N_BINS, MAX_SERIES_CELLS, MAX_WINDOW_DAYS
from fusion_assets.kinds.options import (
    ColumnList,
    KindOptions,
    positive_int_at_most,
    refuse_reserved,
    spec_problem,
)
from fusion_assets.kinds.sql import US_PER_DAY, raw_payload
from fusion_assets.warehouse.sql import qident

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa_arrow
    import torch

    from fusion_assets.cohorts.spec import ModalitySpec
    from fusion_assets.models.config import EncoderConfig, FusionConfig
    from fusion_assets.models.encoders import Encoder

DEFAULT_WINDOW_DAYS = 28
DEFAULT_N_BINS = 28
WindowDays = positive_int_at_most(MAX_WINDOW_DAYS, "give a window of at most 100 years")
NBins = positive_int_at_most(
    MAX_N_BINS, "use fewer, wider bins (each is window_days / n_bins days)"
)


class TimeseriesOptions(KindOptions):
    """The channel columns and the resampling grid (``n_bins`` over ``window_days``)."""

    channels: ColumnList
    window_days: WindowDays = DEFAULT_WINDOW_DAYS
    n_bins: NBins = DEFAULT_N_BINS

    @model_validator(mode="after")
    def _bounded_grid(self) -> TimeseriesOptions:
        rename = "rename the channel column in the source or with a `query`"
        refuse_reserved(self.channels, rename, "channels")
        if len(self.channels) > MAX_CHANNELS:
            raise spec_problem(
                f"{len(self.channels)} channels, over the limit of {MAX_CHANNELS}",
                "keep the channels that matter, or describe the rest as a tabular modality",
                "channels",
            )
        cells = self.n_bins * len(self.channels)
        if cells > MAX_SERIES_CELLS:
            raise spec_problem(
                f"n_bins x channels = {self.n_bins} x {len(self.channels)} = {cells:,} cells, "
                f"over the limit of {MAX_SERIES_CELLS:,} (alignment computes one mean per cell)",
                f"use at most {MAX_SERIES_CELLS // len(self.channels)} bins for "
                f"{len(self.channels)} channel(s), or fewer channels",
                "n_bins",
            )
        return self


def _options(modality: ModalitySpec) -> TimeseriesOptions:
    return cast(TimeseriesOptions, modality.options)


def _window_us(modality: ModalitySpec) -> int:
    return int(float(_options(modality).window_days) * US_PER_DAY)


def _series(modality: ModalitySpec, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    t, c = _options(modality).n_bins, len(_options(modality).channels)
    values = stack_lists(rows["values"], t * c, modality.name, "values").reshape(-1, t, c)
    mask = stack_lists(rows["mask"], t * c, modality.name, "mask").reshape(-1, t, c)
    mask = (mask > 0).astype(np.float32)
    return np.nan_to_num(values, nan=0.0) * mask, mask


class TimeseriesKind(ModalityKind):
    name = "timeseries"
    Options = TimeseriesOptions
    transform_columns = ("values", "mask")

    def spec_problems(self, has_time_column: bool, has_index_time: bool) -> list[tuple[str, str]]:
        if has_time_column and has_index_time:
            return []
        return [
            (
                "a timeseries modality is resampled over the days before the index time, so it "
                "needs a `time_column` and a patients `index_time` column",
                "add both, or describe the series as a tabular modality",
            )
        ]

    @property
    def temporal(self) -> bool:
        return True

    # ------------------------------------------------------------ import and landing
    def import_payload(self, ctx: ImportContext, modality: ModalitySpec) -> dict[str, str] | None:
        channels = list(_options(modality).channels)
        if not all([ctx.need("channels", c) for c in channels]):
            return None
        if not ctx.numeric_only(channels, "timeseries channels"):
            return None
        ctx.empty_columns(channels, "channels")
        ctx.infinite_values(channels)
        return {c: f"CAST({qident(c)} AS DOUBLE)" for c in channels}

    def landing_payload(
        self, modality: ModalitySpec, arrow_schema: pa_arrow.Schema
    ) -> LandingPayload:
        return LandingPayload({c: LandingColumn("numeric") for c in _options(modality).channels})

    # ------------------------------------------------------------ alignment
    def timed_row_conditions(self, modality: ModalitySpec) -> list[str]:
        return [f"epoch_us(r.event_time) >= epoch_us(p.index_time) - {_window_us(modality)}"]

    def aligned_sql(self, con: duckdb.DuckDBPyConnection, modality: ModalitySpec) -> str:
        """Bin means per channel over the window, time-major, plus the observation mask.

        One hash aggregation with a filtered ``avg`` per (bin, channel): no grid join
        and no ordered list aggregate, which kept every patient's rows in memory and
        ran out of it at 10^5 patients.
        """
        n_bins, window = _options(modality).n_bins, _window_us(modality)
        chans = [qident(c) for c in raw_payload(con, modality, list(_options(modality).channels))]
        cells = [(b, i, c) for b in range(n_bins) for i, c in enumerate(chans)]
        means = ",\n               ".join(
            # CASE, not FILTER (WHERE ...): a filter per aggregate plans in quadratic time
            f"avg(CASE WHEN bin = {b} AND NOT isnan({c}) THEN {c} END) AS m{b}_{i}"
            for b, i, c in cells
        )
        values = ", ".join(f"coalesce(m{b}_{i}, 0)" for b, i, _ in cells)
        mask = ", ".join(f"CAST(m{b}_{i} IS NOT NULL AS FLOAT)" for b, i, _ in cells)
        return f""",
        binned_rows AS (  -- bin 0 is the oldest day range of the window
            SELECT *, least({n_bins - 1}, CAST(floor(
                       (epoch_us(event_time) - epoch_us(index_time) + {window})
                       * {n_bins} / {window}::DOUBLE) AS INTEGER)) AS bin
            FROM used
        ),
        per_patient AS (
            SELECT patient_id, count(*) AS n_samples,
               {means}
            FROM binned_rows
            GROUP BY patient_id
        )
        SELECT patient_id,
               CAST(n_samples AS INTEGER) AS n_samples,
               CAST([{values}] AS FLOAT[]) AS "values",
               CAST([{mask}] AS FLOAT[]) AS mask
        FROM per_patient"""

    def empty_aligned_columns(self, modality: ModalitySpec) -> str:
        return 'patient_id VARCHAR, n_samples INTEGER, "values" FLOAT[], mask FLOAT[]'

    # ------------------------------------------------------------ profile and drift
    def dimensionality(
        self, con: duckdb.DuckDBPyConnection, modality: ModalitySpec, table: str | None
    ) -> int:
        return _options(modality).n_bins * len(_options(modality).channels)

    def drift_summaries(self, modality: ModalitySpec, columns: dict[str, str]) -> dict[str, str]:
        return {
            "n_samples": "n_samples",
            "observed_share": "list_avg(mask)",
            "mean_observed": 'list_sum("values") / nullif(list_sum(mask), 0)',
        }

    # ------------------------------------------------------------ preprocessing
    def fit(self, modality: ModalitySpec, rows: pd.DataFrame, config: EncoderConfig) -> State:
        values, mask = _series(modality, rows)
        # A (bin, channel) cell no training patient has (a bin finer than the visits) stays
        # masked: the GRU and attention skip masked steps, and the references drop its
        # column (models.reference_features), so nothing is learned from or crashes on it.
        empty = np.argwhere(mask.sum(0) == 0)
        channels = _options(modality).channels
        log_dropped(
            modality.name,
            "(bin, channel) cells",
            [f"bin {b} {channels[c]}" for b, c in empty],
            len(rows),
        )
        # channel statistics over observed bins only: unobserved bins are zeros, not data
        observed = np.where(mask > 0, values, np.nan).reshape(-1, values.shape[-1])
        return {"mean": safe_mean(observed), "std": safe_std(observed)}

    def transform_rows(self, modality: ModalitySpec, state: State, rows: pd.DataFrame) -> Arrays:
        values, mask = _series(modality, rows)
        standardized = (values - state["mean"]) / state["std"] * mask
        return {"values": standardized.astype(np.float32), "mask": mask}

    # ------------------------------------------------------------ torch and reference
    def build_encoder(self, modality: ModalitySpec, state: State, config: EncoderConfig) -> Encoder:
        from fusion_assets.models.encoders import TimeseriesEncoder

        return TimeseriesEncoder(len(_options(modality).channels), config)

    def flat_width(self, modality: ModalitySpec, state: State) -> int:
        return 2 * _options(modality).n_bins * len(_options(modality).channels)

    def flat_features(self, inputs: dict[str, torch.Tensor], width: int) -> torch.Tensor:
        import torch

        return torch.cat([inputs["values"].flatten(1), inputs["mask"].flatten(1)], dim=1)

    def time_steps(self, modality: ModalitySpec) -> TimeSteps | None:
        return TimeSteps(_options(modality).n_bins, 2 * len(_options(modality).channels))

    def step_tokens(self, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        steps = torch.cat([inputs["values"], inputs["mask"]], dim=-1)
        return steps, inputs["mask"].sum(-1) > 0

    def reference_features(
        self, state: State, arrays: Arrays, config: FusionConfig, screen: np.ndarray | None
    ) -> np.ndarray:
        values = np.where(arrays["mask"] > 0, arrays["values"], np.nan)
        return np.concatenate([values.reshape(len(values), -1), arrays["mask"].mean(1)], axis=1)
