"""Training: unimodal models, the four neural strategies and the reference.

Entry points ``train_unimodal`` and ``train_fusion`` take aligned frames, labels
and the train / validation patient ids, and return ``(FittedModel, TrainResult)``.
Progress goes through ``on_epoch(epoch, train_loss, val_loss, val_auroc)`` so the
caller (a Dagster asset) can log and track metrics; nothing here logs anywhere.
"""

from __future__ import annotations

import copy
import functools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
from torch import nn

from fusion_assets.cohorts.spec import CohortSpec
from fusion_assets.metrics.classification import auroc
from fusion_assets.models.api import FittedModel, build_predictor, predict_logits
from fusion_assets.models.base import PatientModel
from fusion_assets.models.batch import TensorInputs, make_batch, to_tensors
from fusion_assets.models.config import EncoderConfig, FusionConfig, TrainConfig
from fusion_assets.models.crossfit import CROSSFIT_FOLDS, crossfit, crossfit_applies
from fusion_assets.models.device import autocast, resolve_device
from fusion_assets.models.fusion import Bagged, LateFusion
from fusion_assets.models.inputs import (
    PreparedInputs,
    State,
    fit_modality,
    prepare,
    presence,
    screen_modality,
)
from fusion_assets.models.recalibration import fit_recalibration
from fusion_assets.models.reference_features import NonNeuralModel
from fusion_assets.models.stacking import Stack, choose_stack
from fusion_assets.models.strategies import STRATEGIES as STRATEGY_NAMES
from fusion_assets.models.threads import limit_threads
from fusion_assets.models.unimodal import UnimodalModel
from fusion_assets.names import unimodal_name

EpochCallback = Callable[[int, float, float, float], None]
CPU = torch.device("cpu")


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
    # AUROC on the training patients (in-sample): how the deployed refit of a
    # cross-validated cohort is compared with its fold models (evaluation/refit.py)
    train_auroc: float = float("nan")
    details: dict[str, object] = field(default_factory=dict)  # e.g. late fusion's stacking
    # how the model was fitted, in words (shown in Dagster and MLflow), and whether the fit
    # iterates over epochs (a torch module) rather than being solved or boosted in one call
    fitted_by: str = ""
    iterative: bool = False
    device: str = "cpu"  # where it was trained

    @property
    def best_epoch_val_auroc(self) -> float:
        """The validation AUROC of the epoch whose state was kept (NaN without epochs)."""
        for row in self.history:
            if row["epoch"] == self.best_epoch:
                return float(row["val_auroc"])
        return float("nan")


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


@dataclass
class _Minibatches:
    """What one epoch of minibatch training needs besides the data."""

    model: PatientModel
    loss_fn: nn.Module
    optimizer: torch.optim.Optimizer
    batch_size: int
    modality_dropout: float
    generator: torch.Generator  # modality-dropout draws
    rng: np.random.Generator  # minibatch order
    device: torch.device = CPU
    mixed_precision: bool = False


@dataclass
class _EarlyStopping:
    """Early stopping on validation loss: the best state so far and the epochs since it."""

    patience: int
    best_state: dict | None = None
    best_loss: float = math.inf
    stale: int = 0

    def record(
        self, model: nn.Module, epoch: int, val_loss: float, val_auc: float, result: TrainResult
    ) -> bool:
        """Keep the epoch if it improves the loss (the first always does); True: stop now."""
        if val_loss < self.best_loss - 1e-4 or self.best_state is None:
            self.best_state, self.best_loss, self.stale = (
                copy.deepcopy(model.state_dict()),
                val_loss,
                0,
            )
            result.best_epoch, result.val_loss, result.val_auroc = epoch, val_loss, val_auc
            return False
        self.stale += 1
        return self.stale >= self.patience

    def restore_best(self, model: nn.Module) -> None:
        if self.best_state is not None:
            model.load_state_dict(self.best_state)


def fit_module(
    model: PatientModel,
    train: PreparedInputs | TensorInputs,
    y_train: np.ndarray,
    val: PreparedInputs | TensorInputs,
    y_val: np.ndarray,
    config: TrainConfig,
    train_rows: np.ndarray | None = None,
    val_rows: np.ndarray | None = None,
    modality_dropout: float = 0.0,
    on_epoch: EpochCallback | None = None,
) -> TrainResult:
    """Minibatch AdamW on pos-weighted BCE; early stopping on validation loss (best restored).

    ``train_rows`` / ``val_rows`` restrict the patients used (e.g. those with the
    modality, for a unimodal model). Inputs are converted to tensors once (pass
    ``TensorInputs`` to share them between fits, as bagged members do).

    On CUDA (``config.device``) the model lives on the GPU while it trains and each
    minibatch is moved there; the random draws (order, modality dropout) stay on the
    CPU, so a seed gives the same batches on either device. The model is handed back on
    the CPU.
    """
    start = time.perf_counter()
    device = resolve_device(config.device)
    train, val = _tensors(train), _tensors(val)
    train_rows = np.arange(len(train)) if train_rows is None else train_rows
    val_rows = np.arange(len(val)) if val_rows is None else val_rows
    generator = _seed(config.seed)
    rng = np.random.default_rng(config.seed)
    loss_fn = _class_weighted_loss(model, y_train, train_rows, config.balance_classes)
    model.to(device)
    loss_fn.to(device)
    # the fused kernel updates every parameter in one call: a quarter of the CPU time of
    # the per-tensor loop on these many small tensors (same update, other rounding)
    optimizer = torch.optim.AdamW(
        model.param_groups(config.learning_rate), weight_decay=config.weight_decay, fused=True
    )
    step = _Minibatches(
        model, loss_fn, optimizer, config.batch_size, modality_dropout, generator, rng,
        device, config.mixed_precision,
    )  # fmt: skip
    validation = _Validation(val, val_rows, y_val[val_rows], device, config.mixed_precision)
    result = TrainResult(
        n_parameters=count_parameters(model),
        n_train=len(train_rows),
        n_val=len(val_rows),
        iterative=True,
        device=device.type,
    )
    stopping = _EarlyStopping(config.patience)
    targets = torch.from_numpy(np.asarray(y_train, dtype=np.float32))
    with limit_threads(config.num_threads):
        for epoch in range(1, config.max_epochs + 1):
            train_loss = _train_epoch(step, train, targets, train_rows)
            val_loss, val_auc = validation.score(model)
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
            if not config.early_stopping:
                result.best_epoch, result.val_loss, result.val_auroc = epoch, val_loss, val_auc
            elif stopping.record(model, epoch, val_loss, val_auc, result):
                break
    if config.early_stopping:
        stopping.restore_best(model)
    model.to("cpu")
    model.eval()
    result.train_seconds = time.perf_counter() - start
    kept = (
        f"the state of epoch {result.best_epoch} (lowest validation loss) kept"
        if config.early_stopping
        else "the last state kept"
    )
    result.fitted_by = (
        f"minibatch AdamW on {device.type}, {len(result.history)} epoch(s) of at most "
        f"{config.max_epochs}; {kept}"
    )
    return result


def _tensors(inputs: PreparedInputs | TensorInputs) -> TensorInputs:
    return inputs if isinstance(inputs, TensorInputs) else to_tensors(inputs)


# rows per validation forward pass: with 512 instead of 1,024 the activations stay in
# cache (intermediate and attention fusion's validation pass ~15 % less CPU time)
VALIDATION_CHUNK = 512


class _Validation:
    """The early-stopping score of a model on fixed validation rows (eval mode, no grad)."""

    def __init__(
        self,
        val: TensorInputs,
        rows: np.ndarray,
        labels: np.ndarray,
        device: torch.device = CPU,
        mixed_precision: bool = False,
    ) -> None:
        self.val, self.labels = val, labels
        self.device, self.mixed_precision = device, mixed_precision
        index = torch.from_numpy(np.asarray(rows, dtype=np.int64))
        self.chunks = index.split(VALIDATION_CHUNK)

    def logits(self, model: PatientModel) -> np.ndarray:
        """Calibrated logits [len(rows)], float64."""
        was_training = model.training
        model.eval()
        with torch.no_grad(), autocast(self.device, self.mixed_precision):
            out = [
                model(self.val.batch(rows).to(self.device)).double().cpu() for rows in self.chunks
            ]
        model.train(was_training)
        return torch.cat(out).numpy() if out else np.zeros(0)

    def score(self, model: PatientModel) -> tuple[float, float]:
        """(validation log loss, validation AUROC)."""
        logits = self.logits(model)
        return log_loss(self.labels, logits), auroc(self.labels, logits)


def _class_weighted_loss(
    model: PatientModel, y_train: np.ndarray, train_rows: np.ndarray, balance_classes: bool
) -> nn.BCEWithLogitsLoss:
    """BCE with positives weighted to balance the classes (if asked); the model records
    the weight and the prevalence so its predictions stay calibrated."""
    y_fit = y_train[train_rows]
    n_pos = max(float(y_fit.sum()), 1.0)
    pos_weight = max(len(y_fit) - n_pos, 1.0) / n_pos if balance_classes else 1.0
    model.set_calibration(pos_weight, float(y_train.mean()) if len(y_train) else 0.5)
    return nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pos_weight))


def _train_epoch(
    step: _Minibatches, train: TensorInputs, targets: torch.Tensor, train_rows: np.ndarray
) -> float:
    """One pass over ``train_rows`` in a fresh random order; the mean minibatch loss."""
    model = step.model
    model.train()
    order = torch.from_numpy(step.rng.permutation(train_rows).astype(np.int64))
    losses = []
    for idx in order.split(step.batch_size):
        batch = train.batch(idx)
        if model.uses_modality_dropout:  # drawn on the CPU: the same masks on any device
            batch = batch.with_present(
                modality_dropout_mask(batch.present, step.modality_dropout, step.generator)
            )
        batch, target = batch.to(step.device), targets[idx].to(step.device)
        with autocast(step.device, step.mixed_precision):
            # the loss sees uncalibrated logits; the offset only shifts predictions
            loss = step.loss_fn(model(batch) - model.logit_offset, target)
        step.optimizer.zero_grad()
        (loss + model.penalty()).backward()
        step.optimizer.step()
        losses.append(loss.item())
    return float(np.mean(losses)) if losses else float("nan")


# --------------------------------------------------------------------------- unimodal


class _SplitInputs(NamedTuple):
    """Prepared train and validation inputs with their labels, in ``fit_module``'s order."""

    train: PreparedInputs
    y_train: np.ndarray
    val: PreparedInputs
    y_val: np.ndarray


def _split_inputs(
    spec: CohortSpec,
    preprocessing: Mapping[str, State],
    frames: Mapping[str, pd.DataFrame],
    labels: Mapping[str, int] | pd.Series,
    train_ids: Sequence[str],
    val_ids: Sequence[str],
) -> _SplitInputs:
    return _SplitInputs(
        prepare(spec, preprocessing, dict(frames), train_ids),
        label_vector(labels, train_ids),
        prepare(spec, preprocessing, dict(frames), val_ids),
        label_vector(labels, val_ids),
    )


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
    state = screen_modality(
        spec.modality(modality),
        state,
        frames.get(modality),
        train_ids,
        label_vector(labels, train_ids),
        config,
    )
    preprocessing = {modality: state}
    data = _split_inputs(spec, preprocessing, frames, labels, train_ids, val_ids)
    column = spec.modality_names.index(modality)
    with limit_threads(config.train.num_threads):
        _seed(config.train.seed)
        model = UnimodalModel(spec, modality, state, config)
    result = fit_module(
        model,
        *data,
        config.train,
        train_rows=np.flatnonzero(data.train.present[:, column]),
        val_rows=np.flatnonzero(data.val.present[:, column]),
        on_epoch=on_epoch,
    )
    fitted = FittedModel(unimodal_name(modality), spec, preprocessing, model, config)
    _recalibrate(fitted, data, config.train, result)
    result.train_seconds = time.perf_counter() - start
    return fitted, result


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
) -> Stack:
    """Fit b, w_m, c_m of late fusion on the validation split, shrunk toward the best single
    modality on those patients (``models/stacking.py``); returns what was chosen."""
    with limit_threads(num_threads), torch.no_grad():
        model.eval()
        batch = make_batch(val, np.arange(len(val)), val.present)
        unimodal = model.unimodal_logits(batch).double().numpy()
        present = model.present(batch).numpy()
    with limit_threads(num_threads):
        stack = choose_stack(unimodal, present, y_val, l2)
    model.stack_weight.copy_(torch.from_numpy(stack.weight).float())
    model.stack_shift.copy_(torch.from_numpy(stack.shift).float())
    model.stack_bias.fill_(stack.bias)
    return stack


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
    data = _split_inputs(spec, preprocessing, frames, labels, train_ids, val_ids)
    held_out = None
    if not STRATEGY_NAMES[strategy].neural:

        def everyone() -> PreparedInputs:  # training then validation patients, as prepared
            return prepare(spec, preprocessing, dict(frames), [*train_ids, *val_ids])

        model, result, held_out = _train_reference(
            strategy, spec, preprocessing, config, data, everyone
        )
    else:
        model, result = _train_neural(
            strategy, spec, preprocessing, config, data, unimodal, on_epoch
        )
    fitted = FittedModel(strategy, spec, preprocessing, model, config)
    _recalibrate(fitted, data, config.train, result, held_out)
    result.train_seconds = time.perf_counter() - start
    return fitted, result


def _recalibrate(
    fitted: FittedModel,
    data: _SplitInputs,
    train: TrainConfig,
    result: TrainResult,
    held_out: tuple[np.ndarray, np.ndarray, PreparedInputs, np.ndarray] | None = None,
) -> None:
    """Fit the model's recalibration on patients it was not fitted on, for every strategy
    alike, and record the in-sample training AUROC.

    Those patients are the validation split, or ``held_out`` = (cross-fitted probabilities,
    their labels, the inputs the model was fitted on, their labels) for a reference fitted
    on the training and validation patients together (``models/crossfit.py``)."""
    if held_out is not None:
        raw_held, y_held, fitted_on, y_fitted = held_out
    else:
        with limit_threads(train.num_threads):
            raw_held = fitted.predict_proba(data.val, recalibrated=False)
        y_held, fitted_on, y_fitted = data.y_val, data.train, data.y_train
    with limit_threads(train.num_threads):
        raw_train = fitted.predict_proba(fitted_on, recalibrated=False)
    fitted.recalibration = fit_recalibration(
        raw_held, y_held, train.recalibration, train.recalibration_min_events
    )
    result.train_auroc = auroc(y_fitted, raw_train)
    result.details["recalibration"] = fitted.recalibration.describe()


def _train_reference(
    strategy: str,
    spec: CohortSpec,
    preprocessing: dict[str, State],
    config: FusionConfig,
    data: _SplitInputs,
    everyone: Callable[[], PreparedInputs],
) -> tuple[NonNeuralModel, TrainResult, tuple | None]:
    """A non-neural reference: fitted on the training split and scored on validation, or,
    on a small cohort (``models/crossfit.py``), fitted on training and validation patients
    together with cross-fitted probabilities for its recalibration and validation AUROC
    (returned as ``_recalibrate``'s ``held_out``)."""

    def new_reference() -> NonNeuralModel:
        return build_predictor(strategy, spec, preprocessing, config)

    held_out = None
    with limit_threads(config.train.num_threads):
        if crossfit_applies(data.y_train, data.y_val):
            fitted_rows, y_all = everyone(), np.concatenate([data.y_train, data.y_val])
            reference, oof = crossfit(new_reference, fitted_rows, y_all, config.train.seed)
            held_out = (oof, y_all, fitted_rows, y_all)
            val_p = oof[len(data.train) :]
            fitted_on = (
                f"training and validation patients together ({len(y_all)}); validation "
                f"AUROC and recalibration from {CROSSFIT_FOLDS}-fold cross-fitted predictions"
            )
        else:
            reference = new_reference().fit(data.train, data.y_train, data.train.present)
            # no validation patients: the deployed refit of a cross-validated cohort
            val_p = reference.predict_proba(data.val, data.val.present) if len(data.val) else []
            fitted_on = f"training patients ({len(data.train)})"
        val_p = np.clip(np.asarray(val_p, dtype=np.float64), 1e-7, 1 - 1e-7)
    result = TrainResult(
        val_auroc=auroc(data.y_val, val_p),
        val_loss=log_loss(data.y_val, np.log(val_p / (1 - val_p))),
        n_parameters=reference.n_parameters,
        n_train=len(data.train) + (len(data.val) if held_out is not None else 0),
        n_val=len(data.val),
        details={"fitted_on": fitted_on},
        fitted_by=f"{reference.describe()}; fitted on the {fitted_on}",
    )
    return reference, result, held_out


def _train_neural(
    strategy: str,
    spec: CohortSpec,
    preprocessing: dict[str, State],
    config: FusionConfig,
    data: _SplitInputs,
    unimodal: Mapping[str, FittedModel],
    on_epoch: EpochCallback | None,
) -> tuple[PatientModel, TrainResult]:
    """Build the strategy's torch model and fit it: late stacking or (bagged) minibatch training."""
    new_predictor = functools.partial(build_predictor, strategy, spec, preprocessing)
    with limit_threads(config.train.num_threads):
        _seed(config.train.seed)
        model = new_predictor(config)
    modules = {
        m: u.predictor for m, u in unimodal.items() if isinstance(u.predictor, UnimodalModel)
    }
    if isinstance(model, LateFusion):
        return model, _stack_late(model, modules, config, data)
    members = list(model.members) if isinstance(model, Bagged) else [model]
    result = _train_members(members, new_predictor, modules, config, data, on_epoch)
    if isinstance(model, Bagged):
        _assemble_bag(model, members, data, result)
        result.fitted_by += f"; {len(members)} seeds trained alike and averaged"
    return model, result


def _stack_late(
    model: LateFusion,
    modules: Mapping[str, UnimodalModel],
    config: FusionConfig,
    data: _SplitInputs,
) -> TrainResult:
    """Copy the unimodal heads in and fit the stacking weights on validation."""
    for part in model.unimodal:
        part.load_state_dict(modules[part.modality].state_dict())
    stack = fit_late_stacking(model, data.val, data.y_val, config.late_l2, config.train.num_threads)
    logits = predict_logits(model, data.val, data.val.present)
    toward = model.modalities[stack.toward] if model.modalities else ""
    return TrainResult(
        val_auroc=auroc(data.y_val, logits),
        val_loss=log_loss(data.y_val, logits),
        n_parameters=count_parameters(model) + 2 * len(model.modalities) + 1,
        n_train=len(data.train),
        n_val=len(data.val),
        details={"stacked_toward": toward, "stacking_l2": stack.l2},
        fitted_by=(
            "stacking weights over the fitted unimodal heads, fitted on the validation "
            f"patients by penalised likelihood (LBFGS, l2 {stack.l2:g}, shrunk toward the best "
            "single modality); no epochs"
        ),
    )


def _train_members(
    members: list[PatientModel],
    new_predictor: Callable[[FusionConfig], PatientModel],
    modules: Mapping[str, UnimodalModel],
    config: FusionConfig,
    data: _SplitInputs,
    on_epoch: EpochCallback | None,
) -> TrainResult:
    """Fit each member (in place in ``members``) with seed ``seed + k``; the first one's result.

    Member 0 is the model as built; each later member is rebuilt from its own
    seed's initialisation. Only member 0 reports epochs to ``on_epoch``.
    """
    # converted once: every member gathers its minibatches from the same tensors
    train, val = to_tensors(data.train), to_tensors(data.val)
    results = []
    for k, member in enumerate(members):
        if k > 0:
            with limit_threads(config.train.num_threads):
                _seed(config.train.seed + k)
                members[k] = member = new_predictor(replace(config, n_seeds=1))
        if hasattr(member, "init_from_unimodal"):
            member.init_from_unimodal(modules)
        fitted = fit_module(
            member,
            train,
            data.y_train,
            val,
            data.y_val,
            replace(config.train, seed=config.train.seed + k),
            modality_dropout=config.modality_dropout,
            on_epoch=on_epoch if k == 0 else None,
        )
        results.append(fitted)
    return results[0]


def _assemble_bag(
    model: Bagged, members: list[PatientModel], data: _SplitInputs, result: TrainResult
) -> None:
    """Put the fitted members into the bag and score the bag on validation (in place)."""
    model.members = nn.ModuleList(members)
    model.logit_offset.copy_(members[0].logit_offset)
    model.prior_logit.copy_(members[0].prior_logit)
    logits = predict_logits(model, data.val, data.val.present)
    result.val_auroc, result.val_loss = auroc(data.y_val, logits), log_loss(data.y_val, logits)
    result.n_parameters = count_parameters(model)
