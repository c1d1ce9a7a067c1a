"""The one prediction API: ``FittedModel.prepare`` / ``predict_proba``, ``save_model`` / ``load_model``.

The same interface serves unimodal models (``single:<modality>``), the four
neural fusion strategies and the gradient-boosting reference, so prediction,
stress tests and batch re-evaluation never special-case a strategy.

On disk a model is a folder: ``model.json`` (strategy, spec, config, fitted
preprocessing with arrays referenced by key), ``preprocessing.npz`` (those
arrays) and either ``weights.pt`` (a torch ``state_dict``) or, for a
non-neural reference, ``reference.pkl`` (the pickled ``NonNeuralModel``; load
only models you trust).
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from fusion_assets.cohorts.spec import CohortSpec, ModalitySpec
from fusion_assets.kinds import kind_names
from fusion_assets.models.base import PatientModel
from fusion_assets.models.batch import make_batch
from fusion_assets.models.config import (
    EncoderConfig,
    FusionConfig,
    config_from_dict,
    config_to_dict,
)
from fusion_assets.models.device import resolve_device
from fusion_assets.models.fusion import Bagged
from fusion_assets.models.inputs import PreparedInputs, State, prepare
from fusion_assets.models.masked import changed_pairs, pair_probabilities
from fusion_assets.models.recalibration import IDENTITY, Recalibration
from fusion_assets.models.reference_features import NonNeuralModel
from fusion_assets.models.strategies import STRATEGIES
from fusion_assets.models.threads import limit_threads
from fusion_assets.models.unimodal import UnimodalModel
from fusion_assets.names import UNIMODAL_PREFIX, is_unimodal

FORMAT_VERSION = 1


@dataclass
class FittedModel:
    """A trained model with everything needed to score new patients."""

    strategy: (
        str  # "single:<modality>", "early", "intermediate", "late", "attention", "reference", ...
    )
    spec: CohortSpec
    preprocessing: dict[str, State]
    predictor: PatientModel | NonNeuralModel
    config: EncoderConfig | FusionConfig
    # fitted on patients the model was not fitted on (models/recalibration.py)
    recalibration: Recalibration = IDENTITY
    # what the fit cost (models/cost.py: seconds, peak memory, parameters); {} if not measured
    cost: dict[str, Any] = field(default_factory=dict)

    @property
    def modalities(self) -> list[str]:
        """The modalities this model reads, in spec order."""
        return [m for m in self.spec.modality_names if m in self.preprocessing]

    def prepare(
        self, frames: dict[str, pd.DataFrame], patient_ids: Sequence[str]
    ) -> PreparedInputs:
        """Apply the fitted preprocessing once to the aligned frames of ``patient_ids``."""
        return prepare(self.spec, self.preprocessing, frames, patient_ids)

    def predict_proba(
        self,
        prepared: PreparedInputs,
        keep: np.ndarray | None = None,
        num_threads: int = 1,
        recalibrated: bool = True,
        device: str = "cpu",
    ) -> np.ndarray:
        """P(label = 1) per patient, float64 [n], after the model's recalibration
        (``recalibrated=False``: as the predictor gives them, what a recalibration is fitted on).

        ``keep`` (bool [n, n_modalities], spec order) is AND-ed with actual presence:
        a removed modality is treated exactly like an absent one. A patient with no
        usable modality gets the model's prior. ``num_threads`` bounds torch / OpenMP
        threads while scoring. ``device`` (``cpu``, ``cuda``, ``auto``) is where a torch
        model scores, batch by batch; it is back on the CPU afterwards.
        """
        present = effective_presence(prepared, keep)
        missing = [m for m in self.modalities if m not in prepared.arrays]
        if missing:
            raise ValueError(
                f"Prepared inputs lack modalities {missing} that model {self.strategy!r} reads; "
                "prepare them with this model's prepare()."
            )
        if len(prepared) == 0:
            return np.zeros(0)  # e.g. no validation patients; estimators refuse empty input
        with limit_threads(num_threads):
            if isinstance(self.predictor, NonNeuralModel):
                prob = self.predictor.predict_proba(prepared, present)
            else:
                prob = 1.0 / (1.0 + np.exp(-self._logits_on(device, prepared, present)))
        return self.recalibration.apply(prob) if recalibrated else prob

    def predict_proba_masks(
        self, prepared: PreparedInputs, keeps: np.ndarray, num_threads: int = 1
    ) -> np.ndarray:
        """P(label = 1) [K, n] under each of the masks ``keeps`` (bool [K, n, n_modalities]):
        row k equals ``predict_proba(prepared, keeps[k])`` (to float rounding), at about the
        cost of one pass (``models/masked.py``: only the pairs a mask changes, deduplicated;
        encoders run once per patient)."""
        keeps = np.asarray(keeps, dtype=bool)
        full = self.predict_proba(prepared, num_threads=num_threads)
        if len(prepared) == 0:
            return np.zeros((len(keeps), 0))
        changed, rows, masks, inverse = changed_pairs(prepared.present, keeps)
        raw = pair_probabilities(self.predictor, prepared, rows, masks, num_threads)
        out = np.repeat(full[None, :], len(keeps), axis=0)
        out[changed] = self.recalibration.apply(raw)[inverse]
        return out

    def _logits_on(self, device: str, prepared: PreparedInputs, present: np.ndarray) -> np.ndarray:
        target = resolve_device(device)
        if target.type == "cpu":
            return predict_logits(self.predictor, prepared, present)
        self.predictor.to(target)
        try:
            return predict_logits(self.predictor, prepared, present)
        finally:
            self.predictor.to("cpu")


def effective_presence(prepared: PreparedInputs, keep: np.ndarray | None) -> np.ndarray:
    """Actual presence AND ``keep`` (validated), bool [n, n_modalities]."""
    if keep is None:
        return prepared.present.copy()
    keep = np.asarray(keep, dtype=bool)
    if keep.shape != prepared.present.shape:
        raise ValueError(
            f"keep must be bool [n_patients, n_modalities] = {prepared.present.shape} "
            f"(modalities {prepared.modality_names}), got shape {keep.shape}."
        )
    return prepared.present & keep


@torch.no_grad()
def predict_logits(
    model: PatientModel, prepared: PreparedInputs, present: np.ndarray, batch_size: int = 1024
) -> np.ndarray:
    """Calibrated logits [n] of a torch model, in eval mode, batch by batch, on the device
    the model is on (each batch moved there)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters(), torch.empty(0)).device
    out = []
    for start in range(0, len(prepared), batch_size):
        idx = np.arange(start, min(start + batch_size, len(prepared)))
        batch = make_batch(prepared, idx, present).to(device)
        out.append(model(batch).double().cpu().numpy())
    model.train(was_training)
    return np.concatenate(out) if out else np.zeros(0)


def build_predictor(
    strategy: str,
    spec: CohortSpec,
    preprocessing: dict[str, State],
    config: EncoderConfig | FusionConfig,
) -> PatientModel | NonNeuralModel:
    """An untrained model with the architecture a strategy / config / preprocessing implies."""
    if is_unimodal(strategy):
        modality = strategy[len(UNIMODAL_PREFIX) :]
        return UnimodalModel(spec, modality, preprocessing[modality], config)
    if strategy not in STRATEGIES:
        raise ValueError(
            f"Unknown strategy {strategy!r}; expected 'single:<modality>' or one of "
            f"{sorted(STRATEGIES)} (a plug-in strategy must be registered with "
            "fusion_assets.models.strategies.register_strategy first)."
        )
    registered = STRATEGIES[strategy]
    model_class = registered.model_class()
    n_seeds = getattr(config, "n_seeds", 1)
    if registered.bagged and n_seeds > 1:
        return Bagged(spec, [model_class(spec, preprocessing, config) for _ in range(n_seeds)])
    return model_class(spec, preprocessing, config)


# --------------------------------------------------------------------------- persistence


def spec_to_dict(spec: CohortSpec) -> dict[str, Any]:
    """The spec as saved with a model: names, kinds, timing and options (no sources)."""
    return {
        "name": spec.name,
        "modalities": [
            {
                "name": m.name,
                "kind": m.kind,
                "timed": m.timed,
                "options": m.options.model_dump(mode="json", exclude_none=True),
            }
            for m in spec.modalities
        ],
    }


def spec_from_dict(data: dict[str, Any], where: Path | str = "model.json") -> CohortSpec:
    """The spec of a saved model; a kind this process does not know is a clear error."""
    missing = sorted({m["kind"] for m in data["modalities"]} - set(kind_names()))
    if missing:
        raise ValueError(
            f"{where}: the model reads modalities of kind(s) {missing}, which are not registered "
            f"here (registered: {', '.join(kind_names())}); import the plug-in that registers "
            "them (fusion_assets.kinds.register_kind) before loading the model."
        )
    return CohortSpec(
        name=data["name"],
        modalities=tuple(ModalitySpec(**m) for m in data["modalities"]),
    )


def _split_arrays(obj: Any, arrays: dict[str, np.ndarray], path: str) -> Any:
    """Replace numpy arrays in a nested structure by references into ``arrays``."""
    if isinstance(obj, np.ndarray):
        arrays[path] = obj
        return {"__array__": path}
    if isinstance(obj, dict):
        return {k: _split_arrays(v, arrays, f"{path}/{k}") for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_split_arrays(v, arrays, f"{path}/{i}") for i, v in enumerate(obj)]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _join_arrays(obj: Any, arrays: Any) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {"__array__"}:
            return arrays[obj["__array__"]]
        return {k: _join_arrays(v, arrays) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_join_arrays(v, arrays) for v in obj]
    return obj


def save_model(fitted: FittedModel, directory: Path) -> Path:
    """Write a fitted model to ``directory`` (created if needed); returns the directory."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    meta = {
        "format_version": FORMAT_VERSION,
        "strategy": fitted.strategy,
        "spec": spec_to_dict(fitted.spec),
        "config_class": type(fitted.config).__name__,
        "config": config_to_dict(fitted.config),
        "preprocessing": _split_arrays(fitted.preprocessing, arrays, "p"),
        "recalibration": fitted.recalibration.to_dict(),
        "cost": fitted.cost,
    }
    np.savez(directory / "preprocessing.npz", **arrays)
    if isinstance(fitted.predictor, NonNeuralModel):
        with open(directory / "reference.pkl", "wb") as f:
            pickle.dump(fitted.predictor, f)
    else:
        torch.save(fitted.predictor.state_dict(), directory / "weights.pt")
    (directory / "model.json").write_text(json.dumps(meta, indent=1))
    return directory


def load_model(directory: Path) -> FittedModel:
    """Read a model written by ``save_model``."""
    directory = Path(directory)
    meta_path = directory / "model.json"
    if not meta_path.exists():
        raise FileNotFoundError(
            f"No model.json in {directory}: not a folder written by save_model."
        )
    meta = json.loads(meta_path.read_text())
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{meta_path}: format_version {meta.get('format_version')} is not the supported "
            f"{FORMAT_VERSION}; re-train or re-save the model."
        )
    spec = spec_from_dict(meta["spec"], meta_path)
    config_cls = {"EncoderConfig": EncoderConfig, "FusionConfig": FusionConfig}[
        meta["config_class"]
    ]
    config = config_from_dict(config_cls, meta["config"])
    with np.load(directory / "preprocessing.npz", allow_pickle=False) as npz:
        preprocessing = _join_arrays(meta["preprocessing"], {k: npz[k] for k in npz.files})
    strategy = meta["strategy"]
    pickled = directory / "reference.pkl"
    if pickled.exists():
        with open(pickled, "rb") as f:
            predictor: PatientModel | NonNeuralModel = pickle.load(f)
    else:
        predictor = build_predictor(strategy, spec, preprocessing, config)
        # map_location: a model saved from a GPU loads where there is none
        weights = torch.load(directory / "weights.pt", weights_only=True, map_location="cpu")
        predictor.load_state_dict(weights)
        predictor.eval()
    # a model saved before recalibration existed predicts as it always did
    recalibration = Recalibration.from_dict(meta.get("recalibration"))
    cost = meta.get("cost") or {}  # saved before costs were measured: none
    return FittedModel(strategy, spec, preprocessing, predictor, config, recalibration, cost)
