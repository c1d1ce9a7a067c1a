"""The four neural fusion strategies, each a ``PatientModel`` built as ``cls(spec, preprocessing, config)``
(registered under their names in ``strategies.py``).

- ``EarlyFusion``: minimally encoded inputs concatenated → one MLP; absent = zeros.
- ``IntermediateFusion``: per-modality encoders → embeddings (absent → a learned
  missing embedding) + presence mask → head.
- ``LateFusion``: unimodal logits stacked over the modalities a patient has.
- ``AttentionFusion``: modality tokens + time-step tokens + CLS through a masked
  transformer encoder.

The non-neural reference lives in ``reference.py``.
"""

from __future__ import annotations

import torch
from torch import nn

from fusion_assets.cohorts.spec import CohortSpec
from fusion_assets.kinds import ModalityKind, kind_of
from fusion_assets.models.base import Cache, PatientModel
from fusion_assets.models.batch import Batch
from fusion_assets.models.config import FusionConfig
from fusion_assets.models.inputs import State
from fusion_assets.models.unimodal import UnimodalModel


def _used(spec: CohortSpec, preprocessing: dict[str, State]) -> list[str]:
    """The modalities with fitted preprocessing, in spec order."""
    return [m for m in spec.modality_names if m in preprocessing]


def _head(in_dim: int, hidden: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, 1)
    )


def _kinds(spec: CohortSpec, modalities: list[str]) -> list[ModalityKind]:
    return [kind_of(spec.modality(m)) for m in modalities]


# --------------------------------------------------------------------------- early


class EarlyFusion(PatientModel):
    """Concatenated minimally encoded inputs → one MLP.

    An absent modality is zero-filled, which the model cannot tell from a present
    all-zero one: early fusion's documented failure mode under missingness.
    ``availability_indicators`` appends the presence bits to the concatenation.
    A kind with a ``flat_bag_size`` (sparse omics) enters through an
    ``EmbeddingBag(mode="sum")``, which equals a linear layer applied to the
    (never built) dense vector.
    """

    uses_modality_dropout = True

    def __init__(
        self, spec: CohortSpec, preprocessing: dict[str, State], config: FusionConfig
    ) -> None:
        super().__init__(spec, _used(spec, preprocessing))
        self.kinds = _kinds(spec, self.modalities)
        self.widths = [
            kind.flat_width(spec.modality(m), preprocessing[m])
            for kind, m in zip(self.kinds, self.modalities, strict=True)
        ]
        bags = [
            kind.flat_bag_size(preprocessing[m])
            for kind, m in zip(self.kinds, self.modalities, strict=True)
        ]
        self.indicators = config.availability_indicators
        width = sum(self.widths) + (len(self.modalities) if self.indicators else 0)
        first = config.early_first_layer
        self.dense = nn.Linear(max(width, 1), first)
        self.sparse = nn.ModuleDict(
            {
                str(j): nn.EmbeddingBag(rows, first, mode="sum")
                for j, rows in enumerate(bags)
                if rows is not None
            }
        )
        for bag in self.sparse.values():
            nn.init.normal_(bag.weight, std=0.01)
        dropout = config.encoder.dropout
        self.head = nn.Sequential(
            nn.GELU(), nn.Dropout(dropout), _head(first, config.head_hidden, dropout)
        )

    def logits(self, batch: Batch) -> torch.Tensor:
        present = self.present(batch).float()
        blocks, hidden = [], 0.0
        for j, m in enumerate(self.modalities):
            on = present[:, j : j + 1]
            if str(j) in self.sparse:
                x = batch.inputs[m]
                bag = self.sparse[str(j)](x["index"], x["offsets"], per_sample_weights=x["weight"])
                hidden = hidden + bag * on  # zero-filled: an absent bag contributes nothing
            else:
                blocks.append(self.kinds[j].flat_features(batch.inputs[m], self.widths[j]) * on)
        if self.indicators:
            blocks.append(present)
        if not blocks:
            blocks.append(torch.zeros(present.shape[0], 1))
        return self.head(self.dense(torch.cat(blocks, dim=1)) + hidden).squeeze(-1)


# --------------------------------------------------------------------------- intermediate


def _split_groups(model: PatientModel, encoders: nn.Module, lr: float, scale: float) -> list[dict]:
    """Encoders (and unimodal heads) at ``lr × scale`` (they start from fitted unimodal
    weights), the rest at ``lr``."""
    residual = getattr(model, "residual", None)
    if residual is not None:
        encoders = nn.ModuleList([encoders, residual.heads])
    inner = {id(p) for p in encoders.parameters()}
    rest = [p for p in model.parameters() if id(p) not in inner]
    return [
        {"params": list(encoders.parameters()), "lr": lr * scale},
        {"params": rest, "lr": lr},
    ]


class _Encoders(nn.Module):
    """Per-modality encoders keyed by position (modality names may be any string)."""

    def __init__(
        self,
        spec: CohortSpec,
        modalities: list[str],
        preprocessing: dict[str, State],
        config: FusionConfig,
    ) -> None:
        super().__init__()
        self.encoders = nn.ModuleList(
            kind.build_encoder(spec.modality(m), preprocessing[m], config.encoder)
            for kind, m in zip(_kinds(spec, modalities), modalities, strict=True)
        )

    def embed(self, modalities: list[str], batch: Batch) -> torch.Tensor:
        """[b, M, d] embeddings of every used modality (computed even when absent)."""
        return torch.stack(
            [enc(batch.inputs[m]) for enc, m in zip(self.encoders, modalities, strict=True)], dim=1
        )


def init_encoders_from_unimodal(
    encoders: _Encoders, modalities: list[str], unimodal: dict[str, UnimodalModel]
) -> None:
    """Copy fitted unimodal encoder weights (where given) into a joint model's encoders."""
    for enc, m in zip(encoders.encoders, modalities, strict=True):
        if m in unimodal:
            enc.load_state_dict(unimodal[m].encoder.state_dict())


class UnimodalResidual(nn.Module):
    """Late fusion inside a joint model: Σ_{m present} (w_m · head_m(e_m) + c_m).

    ``head_m`` has the unimodal head's architecture and starts from its fitted
    weights, so a joint model whose own head starts at zero starts as late fusion.
    """

    def __init__(self, n_modalities: int, config: FusionConfig) -> None:
        super().__init__()
        d, dropout = config.encoder.embedding_dim, config.encoder.dropout
        self.heads = nn.ModuleList(
            nn.Sequential(nn.GELU(), nn.Dropout(dropout), nn.Linear(d, 1))
            for _ in range(n_modalities)
        )
        self.weight = nn.Parameter(torch.ones(n_modalities))
        self.shift = nn.Parameter(torch.zeros(n_modalities))

    def init_from_unimodal(self, modalities: list[str], unimodal: dict[str, UnimodalModel]) -> None:
        for head, m in zip(self.heads, modalities, strict=True):
            if m in unimodal:
                head.load_state_dict(unimodal[m].head.state_dict())

    def forward(self, embedded: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        logits = torch.cat([h(embedded[:, j]) for j, h in enumerate(self.heads)], dim=1)
        return ((self.weight * logits + self.shift) * present.float()).sum(1)


def _residual(n_modalities: int, config: FusionConfig, head: nn.Sequential) -> nn.Module | None:
    """The late-fusion residual (and a zeroed last layer of ``head``), if configured."""
    if not config.unimodal_residual:
        return None
    with torch.no_grad():
        head[-1].weight.zero_()
        head[-1].bias.zero_()
    return UnimodalResidual(n_modalities, config)


class _PretrainedEncoders(PatientModel):
    """Shared by intermediate and attention fusion: encoders copied from the unimodal
    models (plus the unimodal-head residual), fine-tuned at a lower learning rate."""

    encoders: _Encoders
    residual: nn.Module | None
    encoder_lr_scale: float

    def init_from_unimodal(self, unimodal: dict[str, UnimodalModel]) -> None:
        init_encoders_from_unimodal(self.encoders, self.modalities, unimodal)
        if self.residual is not None:
            self.residual.init_from_unimodal(self.modalities, unimodal)

    def param_groups(self, learning_rate: float) -> list[dict]:
        return _split_groups(self, self.encoders, learning_rate, self.encoder_lr_scale)


class IntermediateFusion(_PretrainedEncoders):
    """Per-modality embeddings, a learned embedding for absent ones, presence bits → head."""

    uses_modality_dropout = True

    def __init__(
        self, spec: CohortSpec, preprocessing: dict[str, State], config: FusionConfig
    ) -> None:
        super().__init__(spec, _used(spec, preprocessing))
        d, n = config.encoder.embedding_dim, len(self.modalities)
        self.encoders = _Encoders(spec, self.modalities, preprocessing, config)
        self.encoder_lr_scale = config.encoder_lr_scale
        self.missing = nn.Parameter(torch.zeros(n, d))
        self.head = _head(n * d + n, config.head_hidden, config.encoder.dropout)
        self.residual = _residual(n, config, self.head)

    def encode(self, batch: Batch) -> Cache:
        return {"embedded": self.encoders.embed(self.modalities, batch)}

    def logits_from(self, cache: Cache, present: torch.Tensor) -> torch.Tensor:
        embedded = cache["embedded"]
        late = 0.0 if self.residual is None else self.residual(embedded, present)
        embedded = torch.where(present.unsqueeze(-1), embedded, self.missing.expand_as(embedded))
        joint = self.head(torch.cat([embedded.flatten(1), present.float()], dim=1)).squeeze(-1)
        return joint + late


# --------------------------------------------------------------------------- late


class LateFusion(PatientModel):
    """p = sigmoid(b + Σ_{m present} (w_m · logit_m + c_m)) over the unimodal models.

    The stacking parameters are buffers fitted on the validation split (see
    ``training.fit_late_stacking``); no imputation, and a patient with no
    modality gets sigmoid(b).
    """

    parameters_counted = "torch parameters of its single-modality models + stacking weights"

    def __init__(
        self, spec: CohortSpec, preprocessing: dict[str, State], config: FusionConfig
    ) -> None:
        super().__init__(spec, _used(spec, preprocessing))
        self.unimodal = nn.ModuleList(
            UnimodalModel(spec, m, preprocessing[m], config.encoder) for m in self.modalities
        )
        n = len(self.modalities)
        self.register_buffer("stack_weight", torch.ones(n))
        self.register_buffer("stack_shift", torch.zeros(n))
        self.register_buffer("stack_bias", torch.zeros(()))

    def encode(self, batch: Batch) -> Cache:
        """Each unimodal model's calibrated logit [b, M], computed as if present."""
        logits = [u.logit_if_present(u.encode(batch)) for u in self.unimodal]
        return {"unimodal": torch.stack(logits, dim=1)}

    def _unimodal(self, cache: Cache, present: torch.Tensor) -> torch.Tensor:
        """[b, M] calibrated logits of each unimodal model (its prior where absent)."""
        priors = torch.stack([u.prior_logit for u in self.unimodal])
        return torch.where(present, cache["unimodal"], priors)

    def unimodal_logits(self, batch: Batch) -> torch.Tensor:
        """[b, M] calibrated logits of each unimodal model (its prior where absent)."""
        return self._unimodal(self.encode(batch), self.present(batch))

    def combine(self, unimodal_logits: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        terms = (self.stack_weight * unimodal_logits + self.stack_shift) * present.float()
        return self.stack_bias + terms.sum(1)

    def logits_from(self, cache: Cache, present: torch.Tensor) -> torch.Tensor:
        return self.combine(self._unimodal(cache, present), present)

    def forward_from(self, cache: Cache, present: torch.Tensor) -> torch.Tensor:
        return self.logits_from(cache, present)  # stacking is fitted unweighted: already calibrated

    def adopt_from_folds(self, fold_models: list[PatientModel]) -> None:
        """The mean stack of the fold models (each fitted on its inner validation patients):
        the deployed refit of a cross-validated cohort has no patient left to fit one on."""
        stacks = [m for m in fold_models if isinstance(m, LateFusion)]
        if not stacks or any(m.modalities != self.modalities for m in stacks):
            return
        for name in ("stack_weight", "stack_shift", "stack_bias"):
            mean = torch.stack([getattr(m, name) for m in stacks]).mean(0)
            getattr(self, name).copy_(mean)


# --------------------------------------------------------------------------- attention


class AttentionFusion(_PretrainedEncoders):
    """A CLS token, one token per modality and one per time step, through a masked transformer.

    Modality tokens come from the per-modality encoders; modalities whose kind
    has time steps (time series) also contribute a token per step (the kind's
    step features, projected, + a positional embedding). ``src_key_padding_mask`` hides the tokens of absent modalities
    and unobserved bins, so attention weights are spread only over what exists.
    """

    uses_modality_dropout = True

    def __init__(
        self, spec: CohortSpec, preprocessing: dict[str, State], config: FusionConfig
    ) -> None:
        super().__init__(spec, _used(spec, preprocessing))
        d = config.encoder.embedding_dim
        self.encoders = _Encoders(spec, self.modalities, preprocessing, config)
        self.encoder_lr_scale = config.encoder_lr_scale
        kinds = _kinds(spec, self.modalities)
        steps = [
            kind.time_steps(spec.modality(m))
            for kind, m in zip(kinds, self.modalities, strict=True)
        ]
        self.series = [j for j, s in enumerate(steps) if s is not None]
        self.step_kinds = [kinds[j] for j in self.series]
        self.step_proj = nn.ModuleList(nn.Linear(steps[j].width, d) for j in self.series)
        self.step_pos = nn.ModuleList(nn.Embedding(steps[j].n_steps, d) for j in self.series)
        # token types: one per modality, one per time-series modality's steps
        self.type_embedding = nn.Embedding(len(self.modalities) + len(self.series), d)
        self.cls = nn.Parameter(torch.zeros(1, 1, d))
        layer = nn.TransformerEncoderLayer(
            d,
            config.attention_heads,
            dim_feedforward=2 * d,
            dropout=config.encoder.dropout,
            batch_first=True,
            norm_first=True,
        )
        self.transformer = nn.TransformerEncoder(
            layer, config.attention_layers, enable_nested_tensor=False
        )
        self.norm = nn.LayerNorm(d)
        self.head = _head(d, config.head_hidden, config.encoder.dropout)
        self.residual = _residual(len(self.modalities), config, self.head)

    def encode(self, batch: Batch) -> Cache:
        """Modality embeddings and each time series' step tokens with their observed bins."""
        types, n = self.type_embedding.weight, len(self.modalities)
        cache = {"embedded": self.encoders.embed(self.modalities, batch)}
        for k, j in enumerate(self.series):
            features, observed = self.step_kinds[k].step_tokens(batch.inputs[self.modalities[j]])
            cache[f"steps{k}"] = (
                self.step_proj[k](features) + self.step_pos[k].weight + types[n + k]
            )
            cache[f"observed{k}"] = observed
        return cache

    def logits_from(self, cache: Cache, present: torch.Tensor) -> torch.Tensor:
        b, n = present.shape
        types = self.type_embedding.weight
        embedded = cache["embedded"]
        late = 0.0 if self.residual is None else self.residual(embedded, present)
        tokens = [self.cls.expand(b, -1, -1), embedded + types[:n]]
        hide = [torch.zeros(b, 1, dtype=torch.bool), ~present]
        for k, j in enumerate(self.series):
            tokens.append(cache[f"steps{k}"])
            hide.append(~(cache[f"observed{k}"] & present[:, j : j + 1]))
        out = self.transformer(
            torch.cat(tokens, dim=1), src_key_padding_mask=torch.cat(hide, dim=1)
        )
        return self.head(self.norm(out[:, 0])).squeeze(-1) + late


# --------------------------------------------------------------------------- bagging


class Bagged(PatientModel):
    """The mean calibrated logit of ``n_seeds`` independently trained copies of a strategy.

    Each member carries its own calibration (``logit_offset``); ``forward`` averages
    the members' calibrated logits.
    """

    parameters_counted = "torch parameters, all members"

    def __init__(self, spec: CohortSpec, members: list[PatientModel]) -> None:
        super().__init__(spec, members[0].modalities)
        self.members = nn.ModuleList(members)

    def logits(self, batch: Batch) -> torch.Tensor:
        return torch.stack([m.logits(batch) for m in self.members]).mean(0)

    def forward(self, batch: Batch) -> torch.Tensor:
        return torch.stack([m(batch) for m in self.members]).mean(0)

    @property
    def caches_encodings(self) -> bool:
        return all(m.caches_encodings for m in self.members)

    def encode(self, batch: Batch) -> Cache:
        return {
            f"{i}/{k}": v for i, m in enumerate(self.members) for k, v in m.encode(batch).items()
        }

    def _member_cache(self, cache: Cache, i: int) -> Cache:
        prefix = f"{i}/"
        return {k[len(prefix) :]: v for k, v in cache.items() if k.startswith(prefix)}

    def logits_from(self, cache: Cache, present: torch.Tensor) -> torch.Tensor:
        return torch.stack(
            [
                m.logits_from(self._member_cache(cache, i), present)
                for i, m in enumerate(self.members)
            ]
        ).mean(0)

    def forward_from(self, cache: Cache, present: torch.Tensor) -> torch.Tensor:
        return torch.stack(
            [
                m.forward_from(self._member_cache(cache, i), present)
                for i, m in enumerate(self.members)
            ]
        ).mean(0)
