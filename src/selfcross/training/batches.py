"""Mini-batches of one split as tensors on the training device.

Why a class: the training step must not pay for data handling. When a split fits in
memory (the ``small`` synthetic folds, most real bi-modal folds) it is read once with
``Split.load_all``, standardized once, converted once and, on CUDA, moved to the GPU
once, so a batch is one gather on the device. Paper-size folds (full IEMOCAP audio is
~3.6 GB) stay memory-mapped and are read batch by batch with ``Split.get_batch``.

Both paths apply the same element-wise operations in the same dtype, so they give
bit-identical tensors; the choice changes speed, never numbers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from selfcross.tasks import Task, get_task
from selfcross.training.standardize import Standardizer

#: Fraction of the currently available RAM a split may take to be loaded whole.
RAM_FRACTION = 0.25
#: Fraction of the free GPU memory a split may take to be kept on the GPU whole.
GPU_FRACTION = 0.25


def default_ram_limit() -> int:
    """Bytes a split may take in RAM: a quarter of the available memory (256 MiB if unknown)."""
    try:
        avail = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 256 * 2**20
    return int(avail * RAM_FRACTION)


def default_gpu_limit(device: torch.device) -> int:
    """Bytes a split may take on ``device`` (CUDA): a quarter of its free memory."""
    if device.type != "cuda":
        return 0
    free, _total = torch.cuda.mem_get_info(device)
    return int(free * GPU_FRACTION)


Batch = tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], torch.Tensor]


def split_nbytes(split: Any, modalities: Sequence[str], dtype: torch.dtype, text_ids: bool = False) -> int:
    """Bytes the split's selected modalities take once converted to ``dtype`` (text as int64
    word ids with ``text_ids``)."""
    item = torch.empty((), dtype=dtype).element_size()
    n = len(split)
    total = 0
    for m in modalities:
        t, f = split_shape(split, m)
        if m == "text" and text_ids:
            f, step = 1, 8  # one int64 id per word
        else:
            step = item
        total += n * t * f * step  # f: every value of a step ([L, F] counts L * F)
    return total


def model_arrays(
    inputs: dict[str, np.ndarray],
    lengths: dict[str, np.ndarray],
    modalities: Sequence[str],
    dtype: torch.dtype,
    standardizer: Standardizer | None = None,
) -> dict[str, np.ndarray]:
    """What the model reads: features in ``dtype``, standardized with the training statistics;
    word ids (integer arrays, for a model that tunes its word vectors) pass unchanged."""
    np_dtype = np.float64 if dtype == torch.float64 else np.float32
    raw = {m: np.asarray(inputs[m]) for m in modalities}
    ids = {m: a for m, a in raw.items() if a.dtype.kind in "iu"}
    arrays = {m: a.astype(np_dtype, copy=False) for m, a in raw.items() if m not in ids}
    if standardizer is not None:
        arrays = standardizer.transform(arrays, lengths)
    return {m: (ids[m] if m in ids else arrays[m]) for m in modalities}


def split_shape(split: Any, modality: str) -> tuple[int, int]:
    """``(T, F)`` of one modality of a split (from ``split.shapes`` or one read row); F counts
    every value of a step (``L * F`` for stacked encoder layers)."""
    shapes = getattr(split, "shapes", None)
    if shapes and modality in shapes:
        t, *frame = shapes[modality]
        return int(t), int(np.prod(frame))
    x = split.get_batch(np.arange(1), (modality,))[0][modality]
    return int(x.shape[1]), int(np.prod(x.shape[2:]))


def load_split_arrays(
    split: Any, modalities: Sequence[str], text_ids: bool = False
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """All rows of a split, read once in file order.

    Equivalent to ``Split.load_all`` followed by one whole-split ``get_batch``, but without
    keeping the reader's own RAM copy alive next to ours (which would double the memory).
    """
    return _get_batch(split, np.arange(len(split)), tuple(modalities), text_ids)


def _get_batch(
    split: Any, rows: np.ndarray, modalities: tuple[str, ...], text_ids: bool
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    # only ask for ids when needed: split-like objects of the paper's path need not know the keyword
    if text_ids and "text" in modalities:
        return split.get_batch(rows, modalities, text_as_ids=True)
    return split.get_batch(rows, modalities)


class SplitData:
    """One split, ready to be cut into batches of tensors.

    Args:
        split: a :class:`selfcross.data.Split`.
        modalities: the modalities the model uses.
        dtype: float dtype of the inputs (the model's dtype).
        device: where batches must end up.
        standardizer: applied to every row (train statistics), or ``None``.
        ram_limit: load the split whole when it takes at most this many bytes (default:
            :func:`default_ram_limit`).
        gpu_limit: on CUDA, keep the whole split on the GPU when at most this many bytes
            (default: :func:`default_gpu_limit`); otherwise batches are copied per step.
        task: a :class:`~selfcross.tasks.Task` or its name; its ``targets`` are what batches
            carry (class indices, or sentiment scores in ``dtype``).
        text_ids: text as int64 word ids ``[N, T]`` (for a model that tunes its word
            vectors) instead of word vectors.

    Attributes:
        labels: the batch targets on ``device`` (the task's ``targets``).
        task: the resolved :class:`~selfcross.tasks.Task`.
        labels_np: class indices as a NumPy ``int64`` array (for metrics).
        scores_np: float64 [N] scores, or ``None`` when the split has none.
        ids: utterance ids or ``None``.
        in_memory: whether the split was loaded whole.
    """

    def __init__(
        self,
        split: Any,
        modalities: Sequence[str],
        dtype: torch.dtype,
        device: torch.device,
        standardizer: Standardizer | None = None,
        ram_limit: int | None = None,
        gpu_limit: int | None = None,
        task: str | Task | None = None,
        text_ids: bool = False,
    ) -> None:
        self.split = split
        self.text_ids = text_ids
        self.task = get_task(task)
        self.modalities = tuple(modalities)
        self.dtype = dtype
        self.device = device
        self.standardizer = standardizer
        self.labels_np = np.asarray(split.labels, dtype=np.int64)
        scores = getattr(split, "scores", None)
        self.scores_np = None if scores is None else np.asarray(scores, dtype=np.float64)
        self.labels = self.task.targets(split, dtype, device)
        self.ids = getattr(split, "ids", None)
        nbytes = split_nbytes(split, self.modalities, dtype, text_ids)
        self.in_memory = nbytes <= (default_ram_limit() if ram_limit is None else ram_limit)
        self._inputs: dict[str, torch.Tensor] = {}
        self._lengths: dict[str, torch.Tensor] = {}
        if self.in_memory:
            inputs, lengths = self._prepare(*load_split_arrays(split, self.modalities, text_ids))
            if gpu_limit is None:
                gpu_limit = default_gpu_limit(device)
            target = device if (device.type != "cuda" or nbytes <= gpu_limit) else torch.device("cpu")
            self._inputs = {m: x.to(target) for m, x in inputs.items()}
            self._lengths = {m: x.to(target) for m, x in lengths.items()}

    def __len__(self) -> int:
        return int(self.labels_np.shape[0])

    def _prepare(
        self, inputs: dict[str, np.ndarray], lengths: dict[str, np.ndarray]
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        arrays = model_arrays(inputs, lengths, self.modalities, self.dtype, self.standardizer)
        x = {m: torch.from_numpy(np.ascontiguousarray(a)) for m, a in arrays.items()}
        n = {
            m: torch.from_numpy(np.asarray(v, dtype=np.int64).copy())
            for m, v in lengths.items()
            if m in self.modalities
        }
        return x, n

    def batch(self, index: torch.Tensor) -> Batch:
        """Rows ``index`` (``LongTensor [B]``) as ``(inputs, lengths, labels)`` on the device.

        ``inputs[m]`` is ``[B, T, F]`` in ``dtype`` (text ids ``[B, T]`` int64 with
        ``text_ids``); ``lengths[m]`` is ``LongTensor [B]``;
        ``labels`` is ``LongTensor [B]``.
        """
        if self.in_memory:
            idx = index.to(next(iter(self._inputs.values())).device) if self._inputs else index
            inputs = {
                m: x.index_select(0, idx).to(self.device, non_blocking=True) for m, x in self._inputs.items()
            }
            lengths = {
                m: x.index_select(0, idx).to(self.device, non_blocking=True) for m, x in self._lengths.items()
            }
        else:
            rows = index.detach().cpu().numpy()
            inputs, lengths = self._prepare(*_get_batch(self.split, rows, self.modalities, self.text_ids))
            pin = self.device.type == "cuda"
            inputs = {
                m: (x.pin_memory() if pin else x).to(self.device, non_blocking=True)
                for m, x in inputs.items()
            }
            lengths = {m: x.to(self.device, non_blocking=True) for m, x in lengths.items()}
        labels = self.labels.index_select(0, index.to(self.labels.device))
        return inputs, lengths, labels

    def batches(self, order: torch.Tensor | None, batch_size: int) -> Iterator[Batch]:
        """Consecutive batches of ``batch_size`` rows in ``order`` (default: file order)."""
        if order is None:
            order = torch.arange(len(self))
        for start in range(0, len(order), batch_size):
            yield self.batch(order[start : start + batch_size])
