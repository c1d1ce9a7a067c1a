"""``text``: free-text notes.

Landing ``text``, one note per row; aligned: the notes before the index time,
oldest first, joined by newlines, and their count.  Preprocessing: a
vocabulary of the most frequent words (document frequency on train), the most
recent tokens kept; encoder: a bag of embeddings beside a word-count path.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import TYPE_CHECKING, cast

import numpy as np
import pandas as pd

from fusion_assets.kinds.base import (
    Arrays,
    ImportContext,
    LandingColumn,
    LandingPayload,
    ModalityKind,
    State,
)
from fusion_assets.kinds.options import Column, KindOptions, OptionalColumn
from fusion_assets.kinds.sql import scalar
from fusion_assets.warehouse.sql import qident

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa_arrow
    import torch

    from fusion_assets.cohorts.spec import ModalitySpec
    from fusion_assets.models.config import EncoderConfig, FusionConfig
    from fusion_assets.models.encoders import Encoder

TEXT_COLUMN = "text"  # landing and aligned payload
PAD_TOKEN = 0  # padding id, ignored by the bag-of-embeddings
OOV_TOKEN = 1  # any token outside the fitted vocabulary
N_SPECIAL_TOKENS = 2
_WORD = re.compile(r"[a-z0-9]+")


class TextOptions(KindOptions):
    """(spec files) the source column holding the note."""

    text_column: OptionalColumn = None


class TextFileOptions(TextOptions):
    text_column: Column


def tokenize(text: str) -> list[str]:
    """Lowercase word split (letters and digits); no external tokenizer."""
    return _WORD.findall(str(text).lower()) if isinstance(text, str) else []


def text_vocab_size(state: State) -> int:
    """Embedding rows a text modality needs (vocabulary plus padding and OOV)."""
    return len(state["vocab"]) + N_SPECIAL_TOKENS


def _term_frequencies(tokens: np.ndarray, k: int) -> np.ndarray:
    """Term frequencies of the k most frequent vocabulary entries plus the OOV share."""
    n_tokens = np.maximum((tokens != PAD_TOKEN).sum(1, keepdims=True), 1)
    out = np.zeros((len(tokens), k + 1), dtype=np.float32)
    for j in range(k):
        out[:, j] = (tokens == j + N_SPECIAL_TOKENS).sum(1)
    out[:, k] = (tokens == OOV_TOKEN).sum(1)
    return out / n_tokens


class TextKind(ModalityKind):
    name = "text"
    Options = TextOptions
    FileOptions = TextFileOptions
    transform_columns = (TEXT_COLUMN,)

    def import_payload(self, ctx: ImportContext, modality: ModalitySpec) -> dict[str, str] | None:
        column = cast(TextOptions, modality.options).text_column
        if not ctx.need("text_column", column):
            return None
        assert column is not None
        if not ctx.flat_columns([column], "the text column"):
            return None
        ctx.text_lengths([column])
        return {TEXT_COLUMN: f"CAST({qident(str(column))} AS VARCHAR)"}

    def landing_payload(
        self, modality: ModalitySpec, arrow_schema: pa_arrow.Schema
    ) -> LandingPayload:
        return LandingPayload({TEXT_COLUMN: LandingColumn("string")})

    def aligned_sql(self, con: duckdb.DuckDBPyConnection, modality: ModalitySpec) -> str:
        col = qident(TEXT_COLUMN)
        order = " ORDER BY event_time" if modality.timed else ""
        return f"""
        SELECT patient_id,
               CAST(count({col}) AS INTEGER) AS n_notes,
               string_agg({col}, chr(10){order}) AS text
        FROM used
        WHERE {col} IS NOT NULL
        GROUP BY patient_id"""

    def empty_aligned_columns(self, modality: ModalitySpec) -> str:
        return "patient_id VARCHAR, n_notes INTEGER, text VARCHAR"

    def dimensionality(
        self, con: duckdb.DuckDBPyConnection, modality: ModalitySpec, table: str | None
    ) -> int:
        if table is None:
            return 0
        # Vocabulary size: distinct lower-case alphanumeric tokens in the aligned text.
        return int(
            scalar(
                con,
                f"""
                WITH tokens AS (
                    SELECT unnest(regexp_split_to_array(lower(text), '[^a-z0-9]+')) AS token
                    FROM {table}
                )
                SELECT count(DISTINCT token) FROM tokens WHERE token <> ''
                """,
            )
        )

    def drift_summaries(self, modality: ModalitySpec, columns: dict[str, str]) -> dict[str, str]:
        return {"n_notes": "n_notes", "text_length": "length(text)"}

    def fit(self, modality: ModalitySpec, rows: pd.DataFrame, config: EncoderConfig) -> State:
        document_frequency: Counter[str] = Counter()
        for text in rows[TEXT_COLUMN] if len(rows) else []:
            document_frequency.update(set(tokenize(text)))
        ranked = sorted(
            (w for w, df in document_frequency.items() if df >= config.text_min_df),
            key=lambda w: (-document_frequency[w], w),
        )
        return {"vocab": ranked[: config.text_vocab_size], "max_tokens": config.text_max_tokens}

    def transform_rows(self, modality: ModalitySpec, state: State, rows: pd.DataFrame) -> Arrays:
        lookup = {w: i + N_SPECIAL_TOKENS for i, w in enumerate(state["vocab"])}
        max_tokens = state["max_tokens"]
        tokens = np.full((len(rows), max_tokens), PAD_TOKEN, dtype=np.int64)
        for i, text in enumerate(rows[TEXT_COLUMN] if len(rows) else []):
            # notes are oldest first: keep the most recent tokens
            ids = [lookup.get(w, OOV_TOKEN) for w in tokenize(text)][-max_tokens:]
            tokens[i, : len(ids)] = ids
        return {"tokens": tokens}

    def build_encoder(self, modality: ModalitySpec, state: State, config: EncoderConfig) -> Encoder:
        from fusion_assets.models.encoders import TextEncoder

        return TextEncoder(text_vocab_size(state), config)

    def flat_width(self, modality: ModalitySpec, state: State) -> int:
        return text_vocab_size(state)

    def flat_features(self, inputs: dict[str, torch.Tensor], width: int) -> torch.Tensor:
        """Term frequencies [b, vocabulary] (padding excluded)."""
        import torch

        tokens = inputs["tokens"]
        counts = torch.zeros(tokens.shape[0], width).scatter_add_(
            1, tokens, torch.ones_like(tokens, dtype=torch.float32)
        )
        counts[:, PAD_TOKEN] = 0.0
        return counts / counts.sum(1, keepdim=True).clamp(min=1.0)

    def reference_features(
        self, state: State, arrays: Arrays, config: FusionConfig, screen: np.ndarray | None
    ) -> np.ndarray:
        k = min(config.reference_text_top_k, len(state["vocab"]))
        return _term_frequencies(arrays["tokens"], k)
