"""Training: unimodal models, the four neural strategies and the reference.

Entry points ``train_unimodal`` and ``train_fusion`` take aligned frames, labels
and the train / validation patient ids, and return ``(FittedModel, TrainResult)``.
Progress goes through ``on_epoch(epoch, train_loss, val_loss, val_auroc)`` so the
caller (a Dagster asset) can log and track metrics; nothing here logs anywhere.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import torch
from torch import nn

from fusion_assets.cohorts.spec import CohortSpec
from fusion_assets.metrics.classification import auroc
from fusion_assets.models.api import FittedModel, build_predictor, predict_logits
from fusion_assets.models.base import PatientModel
from fusion_assets.models.batch import make_batch, subset_inputs
from fusion_assets.models.config import EncoderConfig, FusionConfig, TrainConfig
from fusion_assets.models.fusion import Bagged, LateFusion
from fusion_assets.models.inputs import PreparedInputs, State, fit_modality, prepare, presence
from fusion_assets.models.reference import ReferenceModel
from fusion_assets.models.threads import limit_threads
from fusion_assets.models.unimodal import UnimodalModel
from fusion_assets.names import STRATEGIES as STRATEGY_NAMES

EpochCallback = Callable[[int, float, float, float], None]


@dataclass
class TrainResult:
    """What a fit did: per-epoch history, the restored best epoch and its validation scores.

    ``late`` and ``reference`` have no epochs (empty history, best_epoch 0). Late
    fusion's stacking weights are fitted on the validation split, so its
    ``val_auroc`` is in-sample: compare strategies on the test split.
    """

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    val_loss: float = float("nan")
    val_auroc: float = float("nan")
    n_parameters: int = 0
    train_seconds: float = 0.0
    n_train: int = 0
    n_val: int = 0


# --------------------------------------------------------------------------- small helpers


def label_vector(labels: Mapping[str, int] | pd.Series, patient_ids: Sequence[str]) -> np.ndarray:
    """Labels (0/1 float32) in ``patient_ids`` order; a missing label is an error."""
    series = labels if isinstance(labels, pd.Series) else pd.Series(dict(labels))
    series = series.copy()
    series.index = series.index.astype(str)
    values = series.reindex([str(p) for p in patient_ids])
    if values.isna().any():
        missing = values.index[values.isna()][:5].tolist()
        raise ValueError(
            f"{int(values.isna().sum())} of {len(values)} patients have no label "
            f"(e.g. {missing}); pass labels for every train and validation patient."
        )
    return values.to_numpy(np.float32)


def log_loss(labels: np.ndarray, logits: np.ndarray) -> float:
    """Mean unweighted binary cross-entropy of calibrated logits."""
    if len(labels) == 0:
        return float("nan")
    z = torch.as_tensor(logits, dtype=torch.float64)
    y = torch.as_tensor(labels, dtype=torch.float64)
    return float(nn.functional.binary_cross_entropy_with_logits(z, y))


def count_parameters(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def modality_dropout_mask(
    present: torch.Tensor, rate: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Drop each present modality with probability ``rate``, keeping at least one per patient.

    Returns a bool mask ⊆ ``present``; a patient with no modality stays empty.
    """
    if rate <= 0:
        return present
    keep = present & (torch.rand(present.shape, generator=generator) >= rate)
    lost = present.any(1) & ~keep.any(1)
    if lost.any():
        # restore one present modality, chosen uniformly, for patients that lost them all
        score = torch.rand(present.shape, generator=generator).masked_fill(~present, -1.0)
        pick = nn.functional.one_hot(score.argmax(1), present.shape[1]).bool()
        keep = torch.where(lost.unsqueeze(1), pick, keep)
    return keep


def _seed(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - third-party code may draw from the global state
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------- the loop


def fit_module(
    model: PatientModel,
    train: PreparedInputs,
    y_train: np.ndarray,
    val: PreparedInputs,
    y_val: np.ndarray,
    config: TrainConfig,
    train_rows: np.ndarray | None = None,
    val_rows: np.ndarray | None = None,
    modality_dropout: float = 0.0,
    on_epoch: EpochCallback | None = None,
) -> TrainResult:
    """Minibatch AdamW on pos-weighted BCE; early stopping on validation loss (best restored).

    ``train_rows`` / ``val_rows`` restrict the patients used (e.g. those with the
    modality, for a unimodal model).
    """
    start = time.perf_counter()
    train_rows = np.arange(len(train)) if train_rows is None else train_rows
    val_rows = np.arange(len(val)) if val_rows is None else val_rows
    generator = _seed(config.seed)
    rng = np.random.default_rng(config.seed)
    y_fit = y_train[train_rows]
    n_pos = max(float(y_fit.sum()), 1.0)
    pos_weight = max(len(y_fit) - n_pos, 1.0) / n_pos if config.balance_classes else 1.0
    model.set_calibration(pos_weight, float(y_train.mean()) if len(y_train) else 0.5)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pos_weight))
    optimizer = torch.optim.AdamW(
        model.param_groups(config.learning_rate), weight_decay=config.weight_decay
    )
    val_prepared = subset_inputs(val, val_rows)
    y_val_rows = y_val[val_rows]
    result = TrainResult(
        n_parameters=count_parameters(model), n_train=len(train_rows), n_val=len(val_rows)
    )
    best_state, best_loss, stale = None, math.inf, 0
    with limit_threads(config.num_threads):
        for epoch in range(1, config.max_epochs + 1):
            model.train()
            order = rng.permutation(train_rows)
            losses = []
            for i in range(0, len(order), config.batch_size):
                idx = order[i : i + config.batch_size]
                batch = make_batch(train, idx, train.present)
                if model.uses_modality_dropout:
                    batch = batch.with_present(
                        modality_dropout_mask(batch.present, modality_dropout, generator)
                    )
                # the loss sees uncalibrated logits; the offset only shifts predictions
                loss = loss_fn(model(batch) - model.logit_offset, torch.from_numpy(y_train[idx]))
                optimizer.zero_grad()
                (loss + model.penalty()).backward()
                optimizer.step()
                losses.append(loss.item())
            logits = predict_logits(model, val_prepared, val_prepared.present)
            val_loss, val_auc = log_loss(y_val_rows, logits), auroc(y_val_rows, logits)
            train_loss = float(np.mean(losses)) if losses else float("nan")
            result.history.append(
                {
                    "epoch": epoch,
                    "train_loss": train_loss,
                    "val_loss": val_loss,
                    "val_auroc": val_auc,
                }
            )
            if on_epoch is not None:
                on_epoch(epoch, train_loss, val_loss, val_auc)
            if val_loss < best_loss - 1e-4 or best_state is None:
                best_state, best_loss, stale = copy.deepcopy(model.state_dict()), val_loss, 0
                result.best_epoch, result.val_loss, result.val_auroc = epoch, val_loss, val_auc
            else:
                stale += 1
                if stale >= config.patience:
                    break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    result.train_seconds = time.perf_counter() - start
    return result


# --------------------------------------------------------------------------- unimodal


def train_unimodal(
    spec: CohortSpec,
    modality: str,
    frames: Mapping[str, pd.DataFrame],
    labels: Mapping[str, int] | pd.Series,
    train_ids: Sequence[str],
    val_ids: Sequence[str],
    config: EncoderConfig | None = None,
    on_epoch: EpochCallback | None = None,
) -> tuple[FittedModel, TrainResult]:
    """Fit one modality's preprocessing (train only) and encoder + head on patients that have it."""
    config = config or EncoderConfig()
    start = time.perf_counter()
    state = fit_modality(spec.modality(modality), frames.get(modality), train_ids, config)
    preprocessing = {modality: state}
    train = prepare(spec, preprocessing, dict(frames), train_ids)
    val = prepare(spec, preprocessing, dict(frames), val_ids)
    column = spec.modality_names.index(modality)
    with limit_threads(config.train.num_threads):
        _seed(config.train.seed)
        model = UnimodalModel(spec, modality, state, config)
    result = fit_module(
        model,
        train,
        label_vector(labels, train_ids),
        val,
        label_vector(labels, val_ids),
        config.train,
        train_rows=np.flatnonzero(train.present[:, column]),
        val_rows=np.flatnonzero(val.present[:, column]),
        on_epoch=on_epoch,
    )
    result.train_seconds = time.perf_counter() - start
    return FittedModel(f"single:{modality}", spec, preprocessing, model, config), result


# --------------------------------------------------------------------------- fusion


def _shared_preprocessing(
    spec: CohortSpec,
    frames: Mapping[str, pd.DataFrame],
    train_ids: Sequence[str],
    unimodal: Mapping[str, FittedModel],
    config: FusionConfig,
) -> tuple[dict[str, State], FusionConfig]:
    """Reuse the unimodal models' preprocessing (and encoder config) where available.

    A modality without a unimodal model gets preprocessing fitted here; one that no
    training patient has is left out (nothing could be learned from it).
    """
    for name, u in unimodal.items():
        if not isinstance(u.config, EncoderConfig) or name not in u.preprocessing:
            raise ValueError(
                f"unimodal[{name!r}] is a {u.strategy!r} model; pass train_unimodal's "
                f"model for modality {name!r}."
            )
    # only the architecture must agree; how each was trained may differ
    encoder_configs = {repr(replace(u.config, train=TrainConfig())) for u in unimodal.values()}
    if len(encoder_configs) > 1:
        raise ValueError(
            "The unimodal models were trained with different EncoderConfigs; fusion needs one "
            "shared encoder configuration to rebuild and initialise its encoders."
        )
    if unimodal:
        config = replace(config, encoder=next(iter(unimodal.values())).config)
    preprocessing: dict[str, State] = {}
    for name in spec.modality_names:
        if name in unimodal:
            preprocessing[name] = unimodal[name].preprocessing[name]
        elif presence(spec, {name: frames.get(name)}, train_ids).any():
            preprocessing[name] = fit_modality(
                spec.modality(name), frames[name], train_ids, config.encoder
            )
    return preprocessing, config


def fit_late_stacking(
    model: LateFusion, val: PreparedInputs, y_val: np.ndarray, l2: float, num_threads: int = 2
) -> None:
    """Fit b, w_m, c_m of late fusion on the validation split (LBFGS, ridge-penalized)."""
    with limit_threads(num_threads), torch.no_grad():
        model.eval()
        batch = make_batch(val, np.arange(len(val)), val.present)
        unimodal = model.unimodal_logits(batch).double()
        present = model.present(batch)
    n = unimodal.shape[1]
    weight = torch.ones(n, dtype=torch.float64, requires_grad=True)
    shift = torch.zeros(n, dtype=torch.float64, requires_grad=True)
    p = min(max(float(y_val.mean()) if len(y_val) else 0.5, 1e-4), 1 - 1e-4)
    bias = torch.tensor(math.log(p / (1 - p)), dtype=torch.float64, requires_grad=True)
    y = torch.from_numpy(y_val.astype(np.float64))
    optimizer = torch.optim.LBFGS(
        [weight, shift, bias], max_iter=200, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        z = bias + ((weight * unimodal + shift) * present.double()).sum(1)
        # ridge toward "trust each unimodal model as is" (w = 1, c = 0)
        loss = nn.functional.binary_cross_entropy_with_logits(z, y, reduction="sum")
        loss = loss + 0.5 * l2 * (((weight - 1) ** 2).sum() + (shift**2).sum())
        loss.backward()
        return loss

    if len(y_val):
        optimizer.step(closure)
    model.stack_weight.copy_(weight.detach().float())
    model.stack_shift.copy_(shift.detach().float())
    model.stack_bias.copy_(bias.detach().float())


def train_fusion(
    strategy: str,
    spec: CohortSpec,
    frames: Mapping[str, pd.DataFrame],
    labels: Mapping[str, int] | pd.Series,
    train_ids: Sequence[str],
    val_ids: Sequence[str],
    unimodal: Mapping[str, FittedModel] | None = None,
    config: FusionConfig | None = None,
    on_epoch: EpochCallback | None = None,
) -> tuple[FittedModel, TrainResult]:
    """Train one fusion strategy (``early``, ``intermediate``, ``late``, ``attention``, ``reference``).

    ``unimodal`` (modality → model from ``train_unimodal``) supplies shared
    preprocessing and initial encoder weights; ``late`` requires one per modality
    it should use. Modalities without a unimodal model get preprocessing fitted here.
    """
    if strategy not in STRATEGY_NAMES:
        raise ValueError(f"Unknown fusion strategy {strategy!r}; expected one of {STRATEGY_NAMES}.")
    config = config or FusionConfig()
    unimodal = dict(unimodal or {})
    if strategy == "late" and not unimodal:
        raise ValueError("Late fusion stacks unimodal models: pass unimodal={modality: model}.")
    start = time.perf_counter()
    preprocessing, config = _shared_preprocessing(spec, frames, train_ids, unimodal, config)
    if strategy == "late":
        preprocessing = {m: s for m, s in preprocessing.items() if m in unimodal}
    train = prepare(spec, preprocessing, dict(frames), train_ids)
    val = prepare(spec, preprocessing, dict(frames), val_ids)
    y_train, y_val = label_vector(labels, train_ids), label_vector(labels, val_ids)

    if strategy == "reference":
        with limit_threads(config.train.num_threads):
            reference = ReferenceModel(spec, preprocessing, config)
            reference.fit(train, y_train, train.present)
            val_p = reference.predict_proba(val, val.present)
        result = TrainResult(
            val_auroc=auroc(y_val, val_p),
            val_loss=log_loss(y_val, np.log(val_p / (1 - val_p))),
            n_parameters=reference.n_parameters,
            n_train=len(train),
            n_val=len(val),
        )
        result.train_seconds = time.perf_counter() - start
        return FittedModel(strategy, spec, preprocessing, reference, config), result

    with limit_threads(config.train.num_threads):
        _seed(config.train.seed)
        model = build_predictor(strategy, spec, preprocessing, config)
    modules = {
        m: u.predictor for m, u in unimodal.items() if isinstance(u.predictor, UnimodalModel)
    }
    if isinstance(model, LateFusion):
        for part in model.unimodal:
            part.load_state_dict(modules[part.modality].state_dict())
        fit_late_stacking(model, val, y_val, config.late_l2, config.train.num_threads)
        logits = predict_logits(model, val, val.present)
        result = TrainResult(
            val_auroc=auroc(y_val, logits),
            val_loss=log_loss(y_val, logits),
            n_parameters=count_parameters(model) + 2 * len(model.modalities) + 1,
            n_train=len(train),
            n_val=len(val),
        )
    else:
        members = list(model.members) if isinstance(model, Bagged) else [model]
        for k, member in enumerate(members):
            if k > 0:  # bagging: each member starts from its own seed's initialisation
                with limit_threads(config.train.num_threads):
                    _seed(config.train.seed + k)
                    members[k] = member = build_predictor(
                        strategy, spec, preprocessing, replace(config, n_seeds=1)
                    )
            if hasattr(member, "init_from_unimodal"):
                member.init_from_unimodal(modules)
            member_result = fit_module(
                member,
                train,
                y_train,
                val,
                y_val,
                replace(config.train, seed=config.train.seed + k),
                modality_dropout=config.modality_dropout,
                on_epoch=on_epoch if k == 0 else None,
            )
            result = member_result if k == 0 else result
        if isinstance(model, Bagged):
            model.members = nn.ModuleList(members)
            model.logit_offset.copy_(members[0].logit_offset)
            model.prior_logit.copy_(members[0].prior_logit)
            logits = predict_logits(model, val, val.present)
            result.val_auroc, result.val_loss = auroc(y_val, logits), log_loss(y_val, logits)
            result.n_parameters = count_parameters(model)
    result.train_seconds = time.perf_counter() - start
    return FittedModel(strategy, spec, preprocessing, model, config), result
