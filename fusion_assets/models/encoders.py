"""The torch encoders the kinds build, each mapping a modality to ``embedding_dim``.

Which encoder a modality gets, and its size, is its kind's choice
(``fusion_assets.kinds``: ``kind.build_encoder``). Every encoder takes the
modality's tensor dict from a ``Batch`` (see ``inputs.transform_modality`` for
the keys) and returns [b, d]. It does not look
at presence; the model around it decides what an absent modality contributes.
``penalty()`` returns an extra loss term (the omics L1), zero for the others.
"""

from __future__ import annotations

import torch
from torch import nn

from fusion_assets.kinds.image import GRID as IMAGE_GRID
from fusion_assets.kinds.text import PAD_TOKEN
from fusion_assets.models.config import EncoderConfig


class Encoder(nn.Module):
    """Base class: ``forward(inputs) -> [b, d]`` and an optional regularization penalty."""

    def penalty(self) -> torch.Tensor:
        return torch.zeros(())


def _mlp(in_dim: int, hidden: int, out_dim: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, out_dim)
    )


class TabularEncoder(Encoder):
    """Standardized numerics + missing indicators + one-hots → MLP."""

    def __init__(self, n_features: int, config: EncoderConfig) -> None:
        super().__init__()
        self.net = _mlp(n_features, config.hidden_dim, config.embedding_dim, config.dropout)

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.net(inputs["x"])


def _omics_head(config: EncoderConfig) -> nn.Sequential:
    """From an omics encoder's bottleneck to the shared embedding size (dense and sparse)."""
    return nn.Sequential(
        nn.GELU(),
        nn.Dropout(config.dropout),
        nn.Linear(config.omics_bottleneck, config.embedding_dim),
    )


class DenseOmicsEncoder(Encoder):
    """A narrow, L1-penalized first layer behind input dropout: 10^3+ features, few patients."""

    def __init__(self, n_features: int, config: EncoderConfig) -> None:
        super().__init__()
        self.input_dropout = nn.Dropout(config.omics_input_dropout)
        self.bottleneck = nn.Linear(n_features, config.omics_bottleneck)
        self.out = _omics_head(config)
        self.l1 = config.omics_l1

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.out(self.bottleneck(self.input_dropout(inputs["x"])))

    def penalty(self) -> torch.Tensor:
        return self.l1 * self.bottleneck.weight.abs().sum()


class SparseOmicsEncoder(Encoder):
    """Sparse variants via ``EmbeddingBag(mode="sum")``: a linear layer on the non-zeros only."""

    def __init__(self, vocab_size: int, config: EncoderConfig) -> None:
        super().__init__()
        self.bag = nn.EmbeddingBag(vocab_size, config.omics_bottleneck, mode="sum")
        nn.init.normal_(self.bag.weight, std=0.05)
        self.bias = nn.Parameter(torch.zeros(config.omics_bottleneck))
        self.out = _omics_head(config)
        self.l1 = config.omics_l1

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        bag = self.bag(inputs["index"], inputs["offsets"], per_sample_weights=inputs["weight"])
        return self.out(bag + self.bias)

    def penalty(self) -> torch.Tensor:
        return self.l1 * self.bag.weight.abs().sum()


class ImageEncoder(Encoder):
    """A small CNN: conv-GELU-maxpool blocks, global average pooling, a linear map."""

    def __init__(self, in_channels: int, config: EncoderConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for i, width in enumerate(config.image_channels):
            layers += [nn.Conv2d(channels, width, kernel_size=3, padding=1), nn.GELU()]
            if i < len(config.image_channels) - 1:
                layers.append(nn.MaxPool2d(2))
            channels = width
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(config.dropout)]
        self.net = nn.Sequential(*layers, nn.Linear(channels, config.embedding_dim))
        # global average pooling forgets *where* intensity is; a linear map of the
        # block-averaged grid keeps it (and averages pixel noise down)
        self.linear = (
            nn.Sequential(
                nn.AdaptiveAvgPool2d(IMAGE_GRID),
                nn.Flatten(),
                nn.Linear(in_channels * IMAGE_GRID * IMAGE_GRID, config.embedding_dim),
            )
            if config.linear_path
            else None
        )

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        out = self.net(inputs["x"])
        return out if self.linear is None else out + self.linear(inputs["x"])


class TimeseriesEncoder(Encoder):
    """A GRU over [values, mask] per bin, read out by its last state and a masked mean."""

    def __init__(self, n_channels: int, config: EncoderConfig) -> None:
        super().__init__()
        hidden = config.timeseries_hidden
        # the mask is an input so the GRU can tell "observed 0" from "not observed"
        self.gru = nn.GRU(2 * n_channels, hidden, batch_first=True)
        self.out = nn.Sequential(
            nn.Dropout(config.dropout), nn.Linear(2 * hidden, config.embedding_dim)
        )
        self.linear = (
            nn.Linear(3 * n_channels, config.embedding_dim) if config.linear_path else None
        )

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        values, mask = inputs["values"], inputs["mask"]
        states, last = self.gru(torch.cat([values, mask], dim=-1))
        observed = (mask.sum(-1, keepdim=True) > 0).float()  # [b, T, 1]
        pooled = (states * observed).sum(1) / observed.sum(1).clamp(min=1.0)
        out = self.out(torch.cat([last[-1], pooled], dim=-1))
        return out if self.linear is None else out + self.linear(series_summary(values, mask))


def series_summary(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per channel: masked mean, masked least-squares trend over the bins, coverage; [b, 3C].

    A channel's level and trend are what the data carry; their least-squares
    estimates over the observed bins are linear in the values.
    """
    n_bins = values.shape[1]
    t = torch.linspace(-1.0, 1.0, n_bins).view(1, -1, 1)
    count = mask.sum(1)  # [b, C]
    mean = (values * mask).sum(1) / count.clamp(min=1.0)
    t_mean = (t * mask).sum(1) / count.clamp(min=1.0)
    tc = (t - t_mean.unsqueeze(1)) * mask
    trend = (tc * values).sum(1) / (tc * tc).sum(1).clamp(min=1e-2)
    return torch.cat([mean, trend, count / n_bins], dim=1)


class TextEncoder(Encoder):
    """Bag of embeddings: the mean of the token embeddings (padding excluded)."""

    def __init__(self, vocab_size: int, config: EncoderConfig) -> None:
        super().__init__()
        self.bag = nn.EmbeddingBag(
            vocab_size, config.text_embedding_dim, mode="mean", padding_idx=PAD_TOKEN
        )
        # small init: with N(0, 1) the filler words' random vectors drown a rare signal word
        nn.init.normal_(self.bag.weight, std=0.1)
        with torch.no_grad():
            self.bag.weight[PAD_TOKEN].zero_()
        self.out = nn.Sequential(
            nn.Dropout(config.dropout), nn.Linear(config.text_embedding_dim, config.embedding_dim)
        )
        # the mean forgets how many words there are; evidence adds up per word, so a
        # linear map of the term counts (a sum-mode bag) sits beside it
        self.counts = (
            nn.EmbeddingBag(vocab_size, config.embedding_dim, mode="sum", padding_idx=PAD_TOKEN)
            if config.linear_path
            else None
        )
        if self.counts is not None:
            nn.init.normal_(self.counts.weight, std=0.01)
            with torch.no_grad():
                self.counts.weight[PAD_TOKEN].zero_()

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        out = self.out(self.bag(inputs["tokens"]))
        return out if self.counts is None else out + self.counts(inputs["tokens"])
