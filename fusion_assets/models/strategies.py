"""The fusion strategies ``fused_model`` fits, each registered once.

A strategy is a name (its ``fused_model`` partition, its model-store folder and
MLflow run, its rows in every evaluation table) and the model class that
implements it, built as ``cls(spec, preprocessing, config)``. The four neural
strategies and the three non-neural references (gradient boosting, logistic
regression, per-modality boosting stacked) register below, under the
spellings of ``fusion_assets.names``; a plug-in calls ``register_strategy``
before ``fusion_assets.definitions`` builds the code location (the partitions
are read then). ``train_fusion`` trains any registered torch strategy as it
trains intermediate fusion (minibatches, modality dropout if the class asks for
it, encoders from the unimodal models if it has ``init_from_unimodal``); late
fusion's stacking is its own path, and a strategy registered with
``neural=False`` is a ``NonNeuralModel`` (``fit`` / ``predict_proba`` on the
prepared inputs, pickled when saved).

Torch-free at import, so the code location can read the names: a built-in class
is named by its import path and imported when first built.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from fusion_assets.names import (
    ATTENTION,
    EARLY,
    INTERMEDIATE,
    LATE,
    REFERENCE,
    REFERENCE_LOGISTIC,
    REFERENCE_STACKED,
)


@dataclass(frozen=True)
class FusionStrategy:
    """One strategy: its name and model class (or ``"module:Class"``, imported on use)."""

    name: str
    model: type | str
    # ``FusionConfig.n_seeds`` copies trained from different seeds, their logits averaged
    bagged: bool = False
    # False: a scikit-learn style reference (models.reference_features.NonNeuralModel)
    neural: bool = True

    def model_class(self) -> type:
        if not isinstance(self.model, str):
            return self.model
        module, _, cls = self.model.partition(":")
        return getattr(importlib.import_module(module), cls)


class StrategyRegistry(Mapping[str, FusionStrategy]):
    """Registered strategies by name, in registration order (the partition order)."""

    def __init__(self) -> None:
        self._strategies: dict[str, FusionStrategy] = {}

    def register(self, strategy: FusionStrategy) -> FusionStrategy:
        if strategy.name in self._strategies:
            raise ValueError(f"fusion strategy {strategy.name!r} is already registered")
        if ":" in strategy.name:
            raise ValueError(f"{strategy.name!r}: ':' is reserved for 'single:<modality>'")
        self._strategies[strategy.name] = strategy
        return strategy

    def unregister(self, name: str) -> None:
        del self._strategies[name]

    def __getitem__(self, name: str) -> FusionStrategy:
        return self._strategies[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._strategies)

    def __len__(self) -> int:
        return len(self._strategies)

    def __repr__(self) -> str:
        return repr(tuple(self._strategies))


STRATEGIES = StrategyRegistry()
register_strategy = STRATEGIES.register
unregister_strategy = STRATEGIES.unregister

_FUSION = "fusion_assets.models.fusion"
register_strategy(FusionStrategy(EARLY, f"{_FUSION}:EarlyFusion"))
register_strategy(FusionStrategy(INTERMEDIATE, f"{_FUSION}:IntermediateFusion", bagged=True))
register_strategy(FusionStrategy(LATE, f"{_FUSION}:LateFusion"))
register_strategy(FusionStrategy(ATTENTION, f"{_FUSION}:AttentionFusion", bagged=True))
_MODELS = "fusion_assets.models"
register_strategy(FusionStrategy(REFERENCE, f"{_MODELS}.reference:ReferenceModel", neural=False))
register_strategy(
    FusionStrategy(
        REFERENCE_LOGISTIC, f"{_MODELS}.logistic_reference:LogisticReference", neural=False
    )
)
register_strategy(
    FusionStrategy(REFERENCE_STACKED, f"{_MODELS}.stacked_reference:StackedReference", neural=False)
)
