"""Plain-dataclass configuration for preprocessing, encoders, fusion and training.

Defaults are sized for a laptop: every encoder and strategy on a ~3,000-patient
training split trains in well under three minutes on two CPU cores. ``tiny()``
variants train in seconds and exist for tests.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal, get_args

from fusion_assets.models.recalibration import MIN_EVENTS_PER_CLASS

# where torch models train (models/device.py resolves them)
DeviceName = Literal["auto", "cpu", "cuda"]
DEVICES: tuple[str, ...] = get_args(DeviceName)


@dataclass
class TrainConfig:
    """How a torch module is fitted (shared by unimodal models and fusion strategies)."""

    max_epochs: int = 30
    batch_size: int = 128
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    patience: int = 4  # epochs without validation-loss improvement before stopping
    balance_classes: bool = True  # pos_weight = n_neg / n_pos from the training split
    seed: int = 0
    # torch / OpenMP threads while training; 1 is fastest for these small models on 2 shared cores
    num_threads: int = 1
    # False: train exactly max_epochs and keep the last state (the deployed refit of a
    # cross-validated cohort, at its fold models' epoch count); True: stop on validation loss
    early_stopping: bool = True
    # fitted on the validation patients after training: platt | isotonic | none
    # (models/recalibration.py); isotonic only for large cohorts
    recalibration: str = "platt"
    # below this many validation patients of either class, no recalibration is fitted
    recalibration_min_events: int = MIN_EVENTS_PER_CLASS
    # auto | cpu | cuda (models/device.py): auto trains on CUDA when torch sees a GPU
    device: str = "auto"
    # CUDA only: bfloat16 autocast in training and validation passes
    mixed_precision: bool = False

    def __post_init__(self) -> None:
        # the launchpad refuses these already (training_settings.py); code that builds a
        # TrainConfig directly must not get an untrained model either
        for name in ("max_epochs", "batch_size", "patience"):
            if getattr(self, name) < 1:
                raise ValueError(
                    f"TrainConfig.{name} must be at least 1, got {getattr(self, name)}."
                )
        if self.device not in DEVICES:
            raise ValueError(f"TrainConfig.device must be one of {DEVICES}, got {self.device!r}.")

    @classmethod
    def tiny(cls) -> TrainConfig:
        """A few large steps: what the tiny encoder and fusion presets train with."""
        return cls(max_epochs=6, batch_size=16, learning_rate=1e-2, patience=3)


@dataclass
class EncoderConfig:
    """Preprocessing and encoder architecture per modality kind, plus unimodal training."""

    embedding_dim: int = 32  # the shared size every encoder maps to
    hidden_dim: int = 64
    dropout: float = 0.2
    # omics: a narrow first layer with an L1 penalty keeps 10^3-10^6 features from
    # overfitting a few thousand patients. Input dropout (dense only) is off: on the 5k
    # cohort's 2,000 genes 0.2 cost 0.05 validation AUROC (0.585 → 0.539)
    omics_bottleneck: int = 16
    omics_input_dropout: float = 0.0
    omics_l1: float = 1e-4
    # dense omics: keep only the k features most correlated with the label in the training
    # fold (None: all); the small-n preset sets it for p >> n blocks (models.presets)
    omics_screen_top_k: int | None = None
    # sparse omics: variants carried by at least max(min_count, min_frequency × train
    # patients) get an embedding row (most frequent first, at most max_vocab); the rest
    # share one OOV bucket fed with their mean dosage
    sparse_max_vocab: int = 20_000
    sparse_min_count: int = 2
    sparse_min_frequency: float = 0.01
    # image
    image_channels: tuple[int, ...] = (8, 16, 32)
    # timeseries
    timeseries_hidden: int = 32
    # text
    text_vocab_size: int = 2_000  # top-k tokens by training document frequency
    text_min_df: int = 2
    text_max_tokens: int = 256  # the most recent tokens are kept
    text_embedding_dim: int = 32
    tabular_max_categories: int = 30  # per categorical column, by training frequency
    # a linear path beside each encoder's nonlinear one, added to the embedding: the
    # class evidence of linear-Gaussian data is linear in summary features (image: an
    # 8 × 8 block-averaged grid, which keeps *where* intensity is; timeseries: masked
    # per-channel mean, trend and coverage; text: term counts, which keep note length)
    linear_path: bool = True
    train: TrainConfig = field(default_factory=TrainConfig)

    @classmethod
    def tiny(cls) -> EncoderConfig:
        """A configuration that trains in seconds (tests)."""
        return cls(
            embedding_dim=8,
            hidden_dim=16,
            omics_bottleneck=8,
            sparse_max_vocab=2_000,
            image_channels=(4, 8),
            timeseries_hidden=8,
            text_vocab_size=200,
            text_min_df=1,
            text_max_tokens=64,
            text_embedding_dim=8,
            train=TrainConfig.tiny(),
        )


@dataclass
class FusionConfig:
    """Strategy-level settings; encoder sizes come from the ``EncoderConfig``."""

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    head_hidden: int = 64
    # training-time modality dropout (early / intermediate / attention): each present
    # modality is dropped independently per sample, keeping at least one
    modality_dropout: float = 0.3
    availability_indicators: bool = False  # early fusion: append presence bits
    # intermediate / attention: learning-rate multiplier of the encoders, which start
    # from the fitted unimodal weights
    encoder_lr_scale: float = 0.3
    early_first_layer: int = 64  # width of early fusion's first (linear-on-concat) layer
    attention_layers: int = 1
    attention_heads: int = 2
    # intermediate / attention: the logit is late fusion's Σ_present (w_m · head_m(e_m) + c_m)
    # over the (fine-tuned) unimodal heads plus the joint head, which starts at zero: the
    # joint model starts from late fusion and learns what the modalities say together
    unimodal_residual: bool = True
    late_l2: float = 1.0  # ridge penalty on the stacking weights
    # intermediate / attention: bagging over seeds. n_seeds copies (training seeds
    # seed, seed + 1, ...) are trained independently and their calibrated logits averaged.
    # They stop after an epoch or two, so seed variance is large (±0.01 AUROC): on the 5k
    # cohort 3 seeds lifted validation AUROC 0.776 → 0.778 (intermediate) and 0.775 →
    # 0.777 (attention) for 3× their training time
    n_seeds: int = 3
    # the gradient-boosting references use scikit-learn's HGB defaults (100 iterations at
    # 0.1, unweighted): 200 class-weighted iterations lost to the default on real cohorts
    reference_max_iter: int = 100
    reference_learning_rate: float = 0.1
    # features given to the reference: sparse omics variants (by train frequency) and
    # vocabulary entries (as term frequencies); every feature costs binning time
    reference_sparse_top_k: int = 200
    reference_text_top_k: int = 100
    reference_dense_top_k: int = 100  # dense omics columns, by |correlation| with the train label
    # joint models start from fitted encoders and overfit within an epoch or two at 3e-3;
    # 1e-3 had the best mean validation AUROC of intermediate and attention on the 5k cohort
    train: TrainConfig = field(default_factory=lambda: TrainConfig(learning_rate=1e-3))

    @classmethod
    def tiny(cls) -> FusionConfig:
        """A configuration that trains in seconds (tests)."""
        return cls(
            encoder=EncoderConfig.tiny(),
            head_hidden=16,
            early_first_layer=16,
            reference_max_iter=30,
            reference_sparse_top_k=50,
            reference_text_top_k=50,
            reference_dense_top_k=20,
            n_seeds=1,
            train=TrainConfig.tiny(),
        )


def config_to_dict(config: Any) -> dict[str, Any]:
    """A json-able dict of a (nested) config dataclass."""
    return asdict(config)


# Architecture fields added after models were first saved: a saved config without the
# field was trained without the feature, so it gets this value rather than the default.
LEGACY_VALUES: dict[str, dict[str, Any]] = {
    "EncoderConfig": {"linear_path": False},
    "FusionConfig": {"unimodal_residual": False, "n_seeds": 1},
}


def config_from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Rebuild a config dataclass (and its nested configs) from ``config_to_dict`` output."""
    kwargs: dict[str, Any] = {}
    for name, value in LEGACY_VALUES.get(cls.__name__, {}).items():
        if name not in data:
            kwargs[name] = value
    nested = {"train": TrainConfig, "encoder": EncoderConfig}
    for f in fields(cls):
        if f.name not in data:
            continue  # a field added later keeps its default
        value = data[f.name]
        if f.name in nested and isinstance(value, dict):
            value = config_from_dict(nested[f.name], value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[f.name] = value
    return cls(**kwargs)
