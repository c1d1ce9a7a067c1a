"""``image``: one image (or a derived embedding) per row, height × width × channels.

Landing ``pixels`` (a list of floats, row-major height × width × channels);
aligned: the most recent image before the index time plus ``days_since_last``;
per-channel standardization; a small CNN with a linear path on the
block-averaged grid.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import numpy as np
import pandas as pd
from pydantic import model_validator

from fusion_assets.kinds.arrays import safe_mean, safe_std, stack_lists
from fusion_assets.kinds.base import (
    Arrays,
    ImportContext,
    LandingPayload,
    ListColumnRule,
    ModalityKind,
    State,
)
from fusion_assets.kinds.limits import MAX_IMAGE_CHANNELS, MAX_IMAGE_SIDE, MAX_IMAGE_VALUES
from fusion_assets.kinds.options import (
    Column,
    KindOptions,
    OptionalColumn,
    positive_int_at_most,
    spec_problem,
)
from fusion_assets.kinds.sql import latest_list_sql, with_days_since_last

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa_arrow

    from fusion_assets.cohorts.spec import ModalitySpec
    from fusion_assets.models.config import EncoderConfig, FusionConfig
    from fusion_assets.models.encoders import Encoder

PIXELS = "pixels"  # landing and aligned payload
GRID = 8  # the reference block-averages images to at most 8 × 8 per channel
Side = positive_int_at_most(MAX_IMAGE_SIDE, "downsample the images (or give an embedding)")
Channels = positive_int_at_most(MAX_IMAGE_CHANNELS, "give at most 16 channels per pixel")


class ImageOptions(KindOptions):
    """The image size, and (spec files) the source column holding the pixels."""

    pixels_column: OptionalColumn = None
    height: Side
    width: Side
    channels: Channels = 1

    @model_validator(mode="after")
    def _bounded_size(self) -> ImageOptions:
        if self.size > MAX_IMAGE_VALUES:
            raise spec_problem(
                f"height x width x channels = {self.size:,} values per image, over the limit "
                f"of {MAX_IMAGE_VALUES:,}",
                "downsample the images (or give an embedding)",
                "height",
            )
        return self

    @property
    def size(self) -> int:
        return self.height * self.width * self.channels


class ImageFileOptions(ImageOptions):
    pixels_column: Column


def _options(modality: ModalitySpec) -> ImageOptions:
    return cast(ImageOptions, modality.options)


def _pixels(modality: ModalitySpec, rows: pd.DataFrame) -> np.ndarray:
    o = _options(modality)
    flat = stack_lists(rows[PIXELS], o.size, modality.name, PIXELS)
    # the contract stores height × width × channels row-major; torch wants [C, H, W]
    return flat.reshape(-1, o.height, o.width, o.channels).transpose(0, 3, 1, 2)


def pool_image(x: np.ndarray) -> np.ndarray:
    """Block-average [n, C, H, W] to a ≤ 8 × 8 grid (full size if not divisible)."""
    n, c, h, w = x.shape
    fh, fw = max(h // GRID, 1), max(w // GRID, 1)
    if h % fh or w % fw:
        return x.reshape(n, -1)
    return x.reshape(n, c, h // fh, fh, w // fw, fw).mean(axis=(3, 5)).reshape(n, -1)


class ImageKind(ModalityKind):
    name = "image"
    Options = ImageOptions
    FileOptions = ImageFileOptions
    transform_columns = (PIXELS,)

    def import_payload(self, ctx: ImportContext, modality: ModalitySpec) -> dict[str, str] | None:
        o = _options(modality)
        assert o.pixels_column is not None
        fix = "resize those images (height x width x channels) or fix the spec's size"
        return ctx.list_payload(o.pixels_column, "pixels_column", PIXELS, o.size, fix)

    def landing_payload(
        self, modality: ModalitySpec, arrow_schema: pa_arrow.Schema
    ) -> LandingPayload:
        return LandingPayload(lists=(ListColumnRule(PIXELS, _options(modality).size),))

    def aligned_sql(self, con: duckdb.DuckDBPyConnection, modality: ModalitySpec) -> str:
        return latest_list_sql(modality, PIXELS, PIXELS, with_days=True)

    def empty_aligned_columns(self, modality: ModalitySpec) -> str:
        return "patient_id VARCHAR, days_since_last DOUBLE, pixels FLOAT[]"

    def has_days_since_last(self, modality: ModalitySpec) -> bool:
        return True

    def dimensionality(
        self, con: duckdb.DuckDBPyConnection, modality: ModalitySpec, table: str | None
    ) -> int:
        return _options(modality).size

    def drift_summaries(self, modality: ModalitySpec, columns: dict[str, str]) -> dict[str, str]:
        summaries = {"mean_pixel": "list_avg(pixels)", "sd_pixel": "list_stddev_samp(pixels)"}
        return with_days_since_last(columns, summaries)

    def fit(self, modality: ModalitySpec, rows: pd.DataFrame, config: EncoderConfig) -> State:
        pixels = _pixels(modality, rows)
        return {"mean": safe_mean(pixels, axis=(0, 2, 3)), "std": safe_std(pixels, axis=(0, 2, 3))}

    def transform_rows(self, modality: ModalitySpec, state: State, rows: pd.DataFrame) -> Arrays:
        pixels = _pixels(modality, rows)
        x = (pixels - state["mean"][None, :, None, None]) / state["std"][None, :, None, None]
        return {"x": np.nan_to_num(x, nan=0.0).astype(np.float32)}

    def build_encoder(self, modality: ModalitySpec, state: State, config: EncoderConfig) -> Encoder:
        from fusion_assets.models.encoders import ImageEncoder

        return ImageEncoder(_options(modality).channels, config)

    def flat_width(self, modality: ModalitySpec, state: State) -> int:
        return _options(modality).size

    def reference_features(
        self, state: State, arrays: Arrays, config: FusionConfig, screen: np.ndarray | None
    ) -> np.ndarray:
        return pool_image(arrays["x"])
