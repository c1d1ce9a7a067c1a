"""A fusion strategy added from this file alone is a partition, trains, saves and is evaluated.

``maxpool`` (the element-wise maximum of the present modalities' embeddings, one
linear head) is the recipe of docs/architecture.md ("How to add a fusion
strategy"): a ``PatientModel`` subclass registered with ``register_strategy``.
The test builds the code location (the ``fused_model`` partitions), trains every
registered strategy with ``train_fusion`` as the ``fused_model`` asset does,
saves them where the model store keeps them, and scores them with the held-out
design's ``predictions``, the call the ``predictions`` asset makes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from fusion_assets.cohorts.spec import CohortSpec
from fusion_assets.evaluation import CrossValSettings, HeldOut, StressSettings
from fusion_assets.kinds import kind_of
from fusion_assets.models.api import load_model, save_model
from fusion_assets.models.base import PatientModel
from fusion_assets.models.batch import Batch
from fusion_assets.models.config import EncoderConfig, FusionConfig
from fusion_assets.models.inputs import State
from fusion_assets.models.strategies import (
    STRATEGIES,
    FusionStrategy,
    register_strategy,
    unregister_strategy,
)
from fusion_assets.models.training import train_fusion, train_unimodal
from fusion_assets.names import ENCODER_STORE, FUSION_STORE, unimodal_name
from fusion_assets.reevaluation.settings import BatchEvaluationSettings

MAXPOOL = "maxpool"


class MaxPoolFusion(PatientModel):
    """Each modality's encoder, the element-wise max over the present ones, a linear head."""

    uses_modality_dropout = True

    def __init__(
        self, spec: CohortSpec, preprocessing: dict[str, State], config: FusionConfig
    ) -> None:
        super().__init__(spec, [m for m in spec.modality_names if m in preprocessing])
        self.encoders = nn.ModuleList(
            kind_of(spec.modality(m)).build_encoder(
                spec.modality(m), preprocessing[m], config.encoder
            )
            for m in self.modalities
        )
        self.head = nn.Linear(config.encoder.embedding_dim, 1)

    def logits(self, batch: Batch) -> torch.Tensor:
        present = self.present(batch)
        embedded = torch.stack(
            [enc(batch.inputs[m]) for enc, m in zip(self.encoders, self.modalities, strict=True)],
            dim=1,
        )
        pooled = embedded.masked_fill(~present[:, :, None], -torch.inf).amax(dim=1)
        pooled = torch.where(present.any(1, keepdim=True), pooled, torch.zeros_like(pooled))
        return self.head(pooled).squeeze(-1)


@pytest.fixture(scope="module", autouse=True)
def maxpool():
    strategy = register_strategy(FusionStrategy(MAXPOOL, MaxPoolFusion))
    yield strategy
    unregister_strategy(MAXPOOL)


def test_a_registered_strategy_is_a_fused_model_partition_and_a_known_name() -> None:
    from fusion_assets.location.build import build_location
    from tests.fixtures.pipeline import SYNTHETIC, temp_resources

    defs = build_location([SYNTHETIC], temp_resources(Path("/unused")))
    fused_model = defs.resolve_assets_def(SYNTHETIC.key("fused_model"))
    assert fused_model.partitions_def.get_partition_keys() == list(STRATEGIES)
    assert list(STRATEGIES)[-1] == MAXPOOL
    assert MAXPOOL in BatchEvaluationSettings(strategies=[MAXPOOL]).strategies
    with pytest.raises(ValueError, match="already registered"):
        register_strategy(FusionStrategy(MAXPOOL, MaxPoolFusion))


@dataclass(frozen=True)
class FolderStore:
    """Plain folders behind the evaluation's model-store protocol (no MLflow registry):
    a plug-in strategy is scored like any other whatever the store."""

    path: str

    def model_dir(self, kind: str, name: str) -> Path:
        return Path(self.path) / kind / name.replace(":", "_")

    def fold_root(self, kind: str, name: str) -> Path:
        return self.model_dir(f"{kind}_folds", name)

    def exists(self, kind: str, name: str) -> bool:
        return self.model_dir(kind, name).exists()


def _train_and_store(cohort, store: FolderStore) -> dict:
    """What modality_encoder and fused_model write: every encoder, every registered strategy."""
    encoders = {}
    for m in cohort.spec.modality_names:
        encoders[m], _ = train_unimodal(
            cohort.spec,
            m,
            cohort.frames,
            cohort.labels,
            cohort.train_ids,
            cohort.val_ids,
            EncoderConfig.tiny(),
        )
        save_model(encoders[m], store.model_dir(ENCODER_STORE, unimodal_name(m)))
    fused = {}
    for strategy in STRATEGIES:
        fused[strategy] = train_fusion(
            strategy,
            cohort.spec,
            cohort.frames,
            cohort.labels,
            cohort.train_ids,
            cohort.val_ids,
            encoders,
            FusionConfig.tiny(),
        )
        save_model(fused[strategy][0], store.model_dir(FUSION_STORE, strategy))
    return fused


def test_a_registered_strategy_trains_and_is_evaluated(tmp_path: Path, small_signal) -> None:
    cohort = small_signal
    store = FolderStore(str(tmp_path / "models"))
    fused = _train_and_store(cohort, store)
    fitted, result = fused[MAXPOOL]
    assert isinstance(fitted.predictor, MaxPoolFusion) and result.best_epoch >= 1
    assert result.val_auroc > 0.6, result.history

    loaded = load_model(store.model_dir(FUSION_STORE, MAXPOOL))
    test = fitted.prepare(cohort.frames, cohort.test_ids)
    np.testing.assert_array_equal(
        fitted.predict_proba(test),
        loaded.predict_proba(loaded.prepare(cohort.frames, cohort.test_ids)),
    )

    patients = pd.DataFrame(
        {
            "patient_id": cohort.val_ids + cohort.test_ids,
            "split": ["validation"] * len(cohort.val_ids) + ["test"] * len(cohort.test_ids),
        }
    )
    tables = HeldOut(len(cohort.all_ids), CrossValSettings()).predictions(
        store,
        cohort.spec.modality_names,
        cohort.frames,
        patients,
        StressSettings(rates=[0.0, 0.5], mask_seeds=1),
    )
    scored = tables.predictions[tables.predictions["strategy"] == MAXPOOL]
    assert len(scored) == len(patients) and scored["prob"].between(0, 1).all()
    assert MAXPOOL in set(tables.stress["strategy"])
    assert set(STRATEGIES) <= set(tables.predictions["strategy"])
