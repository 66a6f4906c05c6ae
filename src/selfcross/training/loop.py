"""The authors' training protocol (docs/paper.md, Training), one run at a time, and evaluation.

Protocol (``TrainConfig`` defaults are the authors' values):

1. Adam(lr), mini-batches of 32 in an order shuffled every epoch by a generator seeded
   with the run's seed; cross-entropy loss.
2. After each epoch: loss and accuracy on dev. ``ReduceLROnPlateau`` watches the dev
   *loss* (patience 10, factor 0.1); early stopping watches the dev *plain accuracy* and
   stops after ``patience`` epochs without a strict improvement.
3. The weights of the best dev-accuracy epoch are restored, and the test split is
   evaluated **once**, at the end (the authors evaluated test every epoch; it was not used
   for selection, so the result is the same, but looking at test during training invites
   misuse).

The ``strong`` switches of ``TrainConfig`` (``select_on``, ``class_weights``, ``optimizer``,
``weight_decay``, ``schedule``) replace the parts named above; their defaults are the
protocol above (see :mod:`selfcross.training.optimizer`).

``improved`` switches handled here: ``standardize`` (statistics from the training split,
valid frames only, stored with the run, applied to every split) and ``amp`` (bf16 autocast
on CUDA; a documented no-op on CPU and in float64, where autocast would only lose
precision or is unsupported).

The task (``TrainConfig.task``, a :class:`~selfcross.tasks.Task`) owns the output width, the
loss, the dev numbers and the selection, and the metrics: this module never branches on it.

A dev selection metric that is NaN (a diverged model) never selects an epoch; a run none of
whose epochs has a finite one fails with one line naming the first such epoch (see
docs/architecture.md, "Tasks").

Reproducibility: same seed + same device + same thread count => identical metrics. Seeds
are set for torch, NumPy and ``random``; torch's deterministic algorithms are on during the
run (restored afterwards).
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from selfcross.config import ModalityShape, ModelConfig, RunConfig, paper_shapes
from selfcross.errors import DataError, TrainingError
from selfcross.folds import fingerprint, read_fold
from selfcross.models import FusionModel
from selfcross.models.kernels import set_kernels
from selfcross.tasks import Task, get_task
from selfcross.training.batches import SplitData
from selfcross.training.budget import Budget, resolve_budget
from selfcross.training.callbacks import EpochCallback
from selfcross.training.environment import (
    DTYPES,
    environment_info,
    resolve_device,
    runtime,
    seed_everything,
    tune_malloc,
)
from selfcross.training.modality_dropout import drop_modalities
from selfcross.training.optimizer import EpochSchedule, class_weights, make_optimizer
from selfcross.training.perturb import PerturbedSplit, check_applies, parse_perturbation
from selfcross.training.rundir import check_out_dir, load_run, save_run
from selfcross.training.standardize import Standardizer, standardized_table

#: Files copied from the data into ``RUN_DIR/features/`` (fold first, then data root).
FEATURE_FILES: tuple[str, ...] = ("features.json", "vocab.txt", "W_embedding.npy", "speaker_stats.npz")


# ----------------------------------------------------------------------------- data access
def _read_fold(fold_dir: Path, modalities: tuple[str, ...]) -> Any:
    return read_fold(fold_dir, modalities=modalities)


def _fingerprint(fold_dir: Path) -> str:
    return fingerprint(fold_dir)


def _split(fold: Any, name: str, fold_dir: Path) -> Any:
    if name not in ("train", "dev", "test"):
        raise DataError(fold_dir, f"unknown split {name!r}; use train, dev or test")
    return getattr(fold, name)


# --------------------------------------------------------------------------- model config
def fit_model_config(config: ModelConfig, shapes: dict[str, tuple[int, ...]], n_classes: int) -> ModelConfig:
    """A copy of ``config`` whose input shapes and class count are the fold's.

    A modality whose configured ``(seq_len, feat_dim)`` already matches the fold keeps its
    configured ``mixed_len``. Otherwise the time-mixing length is scaled with the paper's
    ratio (audio 500/1000, video 25/32): ``mixed_len = max(1, round(seq_len * ratio))``, which
    gives the paper's value for the paper's lengths; text has no time mixing. A ``(T, L, F)``
    shape (stacked encoder layers) sets ``layers = L``.
    """
    paper = paper_shapes()
    new: dict[str, ModalityShape] = {}
    for m in config.modalities:
        t, *frame = (int(v) for v in shapes[m])
        f, layers = frame[-1], (frame[0] if len(frame) == 2 else None)
        cur = config.shapes.get(m)
        if cur is not None and (cur.seq_len, *cur.frame_shape) == (t, *frame):
            new[m] = ModalityShape(t, f, cur.mixed_len, layers)
            continue
        ref = paper[m]
        mixed = None if ref.mixed_len is None else max(1, round(t * ref.mixed_len / ref.seq_len))
        new[m] = ModalityShape(t, f, mixed, layers)
    out = copy.deepcopy(config)
    out.shapes = new
    out.n_classes = int(n_classes)
    out.validate()
    return out


def _autocast(device: torch.device, dtype: torch.dtype, amp: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA in float32 when ``amp``; otherwise nothing."""
    if amp and device.type == "cuda" and dtype == torch.float32:
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _feature_files(fold_dir: Path) -> list[Path]:
    found = []
    for name in FEATURE_FILES:
        for base in (fold_dir, fold_dir.parent):
            if (base / name).is_file():
                found.append(base / name)
                break
    return found


# ------------------------------------------------------------------------------ evaluation
def _forward_all(
    model: torch.nn.Module, data: SplitData, batch_size: int, amp: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits ``[N, K]`` of every row in file order and the summed loss (both on device)."""
    params = next(model.parameters())
    pass_lengths = model.config.needs_lengths
    logits_parts = []
    total = torch.zeros((), dtype=torch.float64, device=params.device)
    model.eval()
    with torch.inference_mode(), _autocast(params.device, params.dtype, amp):
        for inputs, lengths, labels in data.batches(None, batch_size):
            logits = model(**inputs, lengths=lengths if pass_lengths else None).to(params.dtype)
            total += data.task.loss(logits, labels, reduction="sum").double()
            logits_parts.append(logits)
    return torch.cat(logits_parts), total


def evaluate_model(
    model: torch.nn.Module,
    data: SplitData | Any,
    class_names: tuple[str, ...] | list[str],
    standardizer: Standardizer | None = None,
    batch_size: int = 128,
    amp: bool = False,
    task: str | Task | None = None,
) -> dict[str, Any]:
    """Evaluate a model on one split.

    Args:
        model: a :class:`~selfcross.models.FusionModel` (its device and dtype are used).
        data: a :class:`SplitData`, or a reader ``Split`` (wrapped, with ``standardizer``).
        class_names: names of the label indices.
        standardizer: train-split statistics, applied when ``data`` is a raw ``Split``.
        batch_size: evaluation batch size (no effect on the numbers for a given device).
        amp: bf16 autocast (CUDA, float32 only), as in training.
        task: a task or its name; default: ``data.task`` (a :class:`SplitData`), else the
            default task.

    Returns:
        The task's :meth:`~selfcross.tasks.Task.evaluate` dict (``metrics``, ``y_true``,
        ``y_pred``; classification adds ``probs`` [N, K]) with ``loss`` (the mean loss) and
        ``ids`` (list or ``None``): class indices for classification, float scores for regression.
    """
    task = get_task(task or getattr(data, "task", None))
    if not isinstance(data, SplitData):
        p = next(model.parameters())
        data = SplitData(data, model.config.modalities, p.dtype, p.device, standardizer, task=task,
                         text_ids=model.config.owns_word_vectors)
    logits, total = _forward_all(model, data, batch_size, amp)
    return {**task.evaluate(logits, data, class_names), "loss": float(total) / max(1, len(data)),
            "ids": data.ids}


# -------------------------------------------------------------------------------- training
@dataclass
class _Session:
    """What one run needs while it trains: config, fold, device, data and model."""

    config: RunConfig
    fold: Any
    fold_dir: Path
    device: torch.device
    dtype: torch.dtype
    standardizer: Standardizer | None = None
    train: Any = None
    dev: Any = None
    model: Any = None


def _dev_scores(session: _Session) -> dict[str, float]:
    """Dev loss and every metric ``select_on`` can choose, for the model as it is now."""
    tc = session.config.train
    logits, total = _forward_all(session.model, session.dev, tc.eval_batch_size, tc.amp)
    scores = {"dev_loss": float(total) / len(session.dev)}
    scores.update(session.dev.task.dev_summary(logits, session.dev))
    return scores


def _smoothed(values: list[float], window: int) -> float:
    """Mean of the last ``window`` values (fewer at the start): ``window=1`` is the last value,
    bit for bit, so the paper's selection is unchanged."""
    tail = values[-window:]
    return tail[0] if len(tail) == 1 else float(np.mean(tail))


def _epochs(budget: Budget) -> Any:
    """Epoch numbers 1, 2, ... up to the budget's cap (unbounded when it is 0)."""
    return range(1, budget.max_epochs + 1) if budget.max_epochs else itertools.count(1)


def _train_epoch(
    session: _Session,
    optimizer: torch.optim.Optimizer,
    order: torch.Tensor,
    weight: torch.Tensor | None,
    drop_gen: torch.Generator | None,
) -> float:
    """One pass over the training split in ``order``; returns the mean training loss."""
    model, tc = session.model, session.config.train
    pass_lengths = session.config.model.needs_lengths
    model.train()
    total = torch.zeros((), dtype=torch.float64, device=session.device)
    for inputs, lengths, labels in session.train.batches(order, tc.batch_size):
        if drop_gen is not None:
            inputs, lengths = drop_modalities(inputs, lengths, tc.modality_dropout, drop_gen)
        optimizer.zero_grad(set_to_none=True)
        with _autocast(session.device, session.dtype, tc.amp):
            logits = model(**inputs, lengths=lengths if pass_lengths else None)
        loss = session.train.task.loss(logits.to(session.dtype), labels, weight=weight)
        loss.backward()
        optimizer.step()
        total += loss.detach().double() * labels.shape[0]
    return float(total) / len(session.train)


def _fit(
    session: _Session, progress: bool, callbacks: Sequence[EpochCallback] = ()
) -> tuple[list[dict[str, Any]], int]:
    """Train with early stopping on dev ``select_on``; load the best epoch's weights.

    Returns the per-epoch history and the best epoch (1-based).
    """
    tc, model, task = session.config.train, session.model, session.train.task
    budget = resolve_budget(tc, len(session.train))
    optimizer = make_optimizer(model.parameters(), tc)
    schedule = EpochSchedule(optimizer, tc, budget)
    mode = task.class_weight_mode(tc)
    weights = (
        None
        if mode == "none"
        else class_weights(session.train.labels_np, len(session.config.class_names), mode)
    )
    weight = None if weights is None else torch.as_tensor(weights, dtype=session.dtype, device=session.device)
    order_gen = torch.Generator().manual_seed(tc.seed)
    # a generator of its own, so that the batch order stays the same with and without drops
    drop_gen = torch.Generator().manual_seed(tc.seed + 1) if tc.modality_dropout > 0 else None
    history: list[dict[str, Any]] = []
    selection: list[float] = []
    best, best_epoch, best_state, stale, first_nan = -math.inf, 0, None, 0, None
    bar = tqdm(_epochs(budget), desc="train", unit="epoch", disable=not progress)
    for epoch in bar:
        epoch_t0 = time.perf_counter()
        train_loss = _train_epoch(
            session, optimizer, torch.randperm(len(session.train), generator=order_gen), weight, drop_gen
        )
        scores = _dev_scores(session)
        lr = optimizer.param_groups[0]["lr"]
        schedule.step(scores["dev_loss"])
        history.append({"epoch": epoch, "train_loss": train_loss, **scores, "lr": lr,
                        "epoch_time_s": time.perf_counter() - epoch_t0})
        for callback in callbacks:
            callback.on_epoch(history[-1])
        value = task.selection(tc, scores)
        if math.isnan(value):  # never selected: NaN compares False, state it explicitly
            first_nan = first_nan or epoch
        selection.append(value)
        if _smoothed(selection, tc.select_window) > best:
            best, best_epoch, stale = _smoothed(selection, tc.select_window), epoch, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
        bar.set_postfix(  # a dict keeps this order (keyword arguments would be sorted)
            {
                "train_loss": f"{train_loss:.4f}",
                "dev_loss": f"{scores['dev_loss']:.4f}",
                **{k: f"{v:.4f}" for k, v in scores.items() if k != "dev_loss"},
                "best_epoch": best_epoch,
            }
        )
        if budget.may_stop(epoch, stale):
            break
    bar.close()
    if best_state is None:  # every epoch's selection metric was NaN (or -inf)
        raise TrainingError(f"{task.selection_name(tc)} is not a number at every epoch (first at epoch "
                            f"{first_nan or 1}): the model diverged; lower the learning rate")
    model.load_state_dict(best_state)
    return history, best_epoch


def _open_session(config: RunConfig, fold_dir: Path) -> _Session:
    """Read the fold, fit the model config to it and resolve device and dtype."""
    config = copy.deepcopy(config)
    fold = _read_fold(fold_dir, tuple(config.model.modalities))
    if config.train.task == "classification":
        _refuse_one_class(fold, fold_dir)
    config.class_names = tuple(fold.class_names)
    config.model = fit_model_config(
        config.model, fold.shapes, get_task(config.train.task).n_outputs(len(config.class_names))
    )
    if config.model.owns_word_vectors:
        config.model.vocab_size = int(_word_vector_matrix(fold, fold_dir).shape[0])
    return _Session(config, fold, fold_dir, resolve_device(config.train.device), DTYPES[config.train.dtype])


def _refuse_one_class(fold: Any, fold_dir: Path) -> None:
    """:class:`DataError` when the training labels hold one class: every model would predict
    it and score the share of that class, which reads as success (accuracy 1.0) and is none."""
    present = np.unique(np.asarray(fold.train.labels))
    if present.size == 1 and len(fold.class_names) > 1:
        name = fold.class_names[int(present[0])]
        raise DataError(fold_dir, f"the training split holds one class ({name!r}, all {len(fold.train)} "
                                  "rows); a classifier cannot learn from it. Check how the labels were "
                                  "made (import-features: --labels and --center)")


def _record_provenance(session: _Session) -> None:
    """Fill ``config.environment`` and ``config.data`` (how to reproduce the run)."""
    tc, fold, device = session.config.train, session.fold, session.device
    session.config.environment = environment_info(device)
    session.config.environment["amp_active"] = bool(
        tc.amp and device.type == "cuda" and session.dtype == torch.float32
    )
    session.config.data = {
        "fold_dir": str(session.fold_dir.resolve()),
        "fingerprint": _fingerprint(session.fold_dir),
        "n_train": len(fold.train),
        "n_dev": len(fold.dev),
        "n_test": len(fold.test),
        "n_dropped": {s: int(getattr(getattr(fold, s), "n_dropped", 0)) for s in ("train", "dev", "test")},
    }


def _word_vector_matrix(fold: Any, fold_dir: Path) -> np.ndarray:
    """The fold's ``W_embedding`` [V, F], which ``tune_word_vectors`` starts from."""
    if fold.text_form != "ids" or fold.embedding is None:
        raise DataError(fold_dir, "tune_word_vectors needs text stored as word ids (S_nlp_trans.npy + "
                                  "W_embedding.npy); this fold stores word vectors (S_text.npy)")
    return fold.embedding


def _build_model(session: _Session) -> None:
    """Standardizer, train/dev tensors and the model, in this order (the seeded RNG order)."""
    tc, modalities = session.config.train, tuple(session.config.model.modalities)
    session.standardizer = Standardizer.fit(session.fold.train, modalities) if tc.standardize else None
    text_ids = session.config.model.owns_word_vectors
    # the text statistics go into the tuned table's starting values instead of the inputs
    text_stats = session.standardizer.pop("text") if (text_ids and session.standardizer) else None
    session.train, session.dev = (
        SplitData(split, modalities, session.dtype, session.device, session.standardizer, task=tc.task,
                  text_ids=text_ids)
        for split in (session.fold.train, session.fold.dev)
    )
    model = FusionModel(session.config.model).to(device=session.device, dtype=session.dtype)
    if text_ids:
        table = _word_vector_matrix(session.fold, session.fold_dir)
        if text_stats is not None:
            table = standardized_table(table, *text_stats)
        model.load_word_vectors(torch.as_tensor(np.asarray(table)))
    session.model = set_kernels(model, tc.kernels)


def _final_evaluation(session: _Session) -> tuple[dict[str, Any], dict[str, Any]]:
    """Dev and test evaluations of the restored best model (test looked at once, here)."""
    tc, names = session.config.train, session.config.class_names
    session.train = None  # free the training tensors before building the test split's
    dev_eval = evaluate_model(session.model, session.dev, names, batch_size=tc.eval_batch_size, amp=tc.amp)
    modalities = tuple(session.config.model.modalities)
    test = SplitData(
        session.fold.test,
        modalities,
        session.dtype,
        session.device,
        session.standardizer,
        task=session.config.train.task,
        text_ids=session.config.model.owns_word_vectors,
    )
    test_eval = evaluate_model(session.model, test, names, batch_size=tc.eval_batch_size, amp=tc.amp)
    return dev_eval, test_eval


def train_run(
    config: RunConfig,
    fold_dir: str | Path,
    out_dir: str | Path,
    progress: bool = True,
    overwrite: bool = False,
    tune_allocator: bool = False,
    callbacks: Sequence[EpochCallback] = (),
) -> dict[str, Any]:
    """Train one model on one fold with the authors' protocol and write a run folder.

    Args:
        config: model and training configuration; input shapes and class count are taken
            from the fold (see :func:`fit_model_config`); ``data`` and ``environment`` are
            filled in. The caller's object is not modified.
        fold_dir: a fold folder (``train_*``, ``dev_*``, ``test_*`` arrays).
        out_dir: the run folder to create (must not exist or be empty unless ``overwrite``).
        progress: show a tqdm bar (epoch, train loss, dev loss, dev acc / balanced acc).
        overwrite: replace an existing run folder at ``out_dir``.
        tune_allocator: call :func:`~selfcross.training.environment.tune_malloc` first (faster
            CPU steps; changes this process's allocator for good, hence off by default).
        callbacks: each gets every epoch's history row (:mod:`selfcross.training.callbacks`);
            the caller closes them.

    Returns:
        The ``metrics.json`` content: ``dev`` and ``test`` metric dicts, ``best_epoch``,
        ``epochs_run``, ``wall_time_s`` and ``history`` (per epoch: losses, dev accuracy,
        balanced accuracy and F1s, learning rate, epoch wall time).

    Raises:
        DataError: the fold is malformed. ConfigError: bad options or an existing ``out_dir``.
    """
    t0 = time.perf_counter()
    if tune_allocator:
        tune_malloc()
    fold_dir = Path(fold_dir)
    check_out_dir(out_dir, overwrite)
    session = _open_session(config, fold_dir)
    with runtime(session.config.train.num_threads, deterministic=True):
        seed_everything(session.config.train.seed)
        _record_provenance(session)
        _build_model(session)
        history, best_epoch = _fit(session, progress, callbacks)
        dev_eval, test_eval = _final_evaluation(session)
    metrics = {
        "dev": dev_eval["metrics"],
        "test": test_eval["metrics"],
        "dev_loss": dev_eval["loss"],
        "test_loss": test_eval["loss"],
        "best_epoch": best_epoch,
        "epochs_run": len(history),
        "wall_time_s": time.perf_counter() - t0,
        "history": history,
    }
    predictions = {k: test_eval[k] for k in ("y_true", "y_pred", "probs", "ids") if k in test_eval}
    save_run(out_dir, session.config, session.model, metrics, session.standardizer, predictions,
             feature_files=_feature_files(fold_dir), overwrite=overwrite)
    return metrics


def evaluate_run(
    run_dir: str | Path,
    fold_dir: str | Path,
    split: str = "test",
    device: str | None = None,
    perturb: str | None = None,
    perturb_seed: int = 0,
) -> dict[str, Any]:
    """Re-evaluate a saved run on one split of a fold; returns its metrics dict.

    With the run's own fold, device and thread count, ``split="test"`` reproduces
    ``metrics.json["test"]`` exactly (same weights, same standardizer, same batches).

    Args:
        run_dir: a run folder written by :func:`train_run` (or ``import-reference``).
        fold_dir: the fold to evaluate on.
        split: ``train``, ``dev`` or ``test``.
        device: ``auto``/``cpu``/``cuda``; default: the run's configured device setting.
        perturb: a test-time perturbation of one modality (``drop:t``, ``noise:a=10``,
            ``shuffle:v``, ``swap:a``; see :mod:`selfcross.training.perturb`), or ``None``.
        perturb_seed: seed of the perturbation's randomness.

    Raises:
        CheckpointError: the run folder is incomplete. DataError: the fold does not fit the
        model (input shapes, classes). ConfigError: a bad perturbation, or one of a modality
        the run does not use.
    """
    return evaluate_run_full(run_dir, fold_dir, split, device, perturb, perturb_seed)["metrics"]


def evaluate_run_full(
    run_dir: str | Path,
    fold_dir: str | Path,
    split: str = "test",
    device: str | None = None,
    perturb: str | None = None,
    perturb_seed: int = 0,
) -> dict[str, Any]:
    """:func:`evaluate_run` with predictions: the :func:`evaluate_model` dict plus
    ``fingerprint_matches`` (the fold is the one the run was trained on: True/False/None) and
    ``task`` (the run's task name)."""
    fold_dir = Path(fold_dir)
    perturbation = None if perturb is None else parse_perturbation(perturb)
    model, config, standardizer = load_run(run_dir)
    if perturbation is not None:
        check_applies(perturbation, tuple(config.model.modalities))
    tc = config.train
    target_device = resolve_device(device or tc.device)
    with runtime(tc.num_threads, deterministic=True):
        fold = _read_fold(fold_dir, tuple(config.model.modalities))
        for m in config.model.modalities:
            want = config.model.shapes[m]
            got = tuple(int(v) for v in fold.shapes[m])
            if got != (want.seq_len, *want.frame_shape):
                raise DataError(
                    fold_dir,
                    f"{m} frames are {'x'.join(map(str, got))} but the run's model expects "
                    f"{'x'.join(map(str, (want.seq_len, *want.frame_shape)))}",
                )
        names = tuple(fold.class_names)
        if config.class_names and names != tuple(config.class_names):
            raise DataError(
                fold_dir,
                f"classes {list(names)} differ from the run's classes {list(config.class_names)}",
            )
        if get_task(tc.task).n_outputs(len(names)) != config.model.n_classes:
            raise DataError(
                fold_dir, f"{len(names)} classes but the model has {config.model.n_classes} outputs"
            )
        model = model.to(target_device)
        rows = _split(fold, split, fold_dir)
        if perturbation is not None:
            rows = PerturbedSplit(rows, perturbation, perturb_seed)
        text_ids = config.model.owns_word_vectors
        if text_ids:
            _check_word_vector_rows(fold, fold_dir, config.model.vocab_size)
        data = SplitData(rows, config.model.modalities, DTYPES[tc.dtype], target_device, standardizer,
                         task=tc.task, text_ids=text_ids)
        result = evaluate_model(model, data, names, batch_size=tc.eval_batch_size, amp=tc.amp)
    recorded = config.data.get("fingerprint")
    result["fingerprint_matches"] = None if not recorded else recorded == _fingerprint(fold_dir)
    result["task"] = tc.task
    return result


def _check_word_vector_rows(fold: Any, fold_dir: Path, vocab_size: int | None) -> None:
    """A run that tuned its word vectors reads word ids, which must index its own table."""
    rows = _word_vector_matrix(fold, fold_dir).shape[0]
    if rows != vocab_size:
        raise DataError(fold_dir, f"W_embedding.npy has {rows} words but the run tuned a table of "
                                  f"{vocab_size}: word ids of another vocabulary")
