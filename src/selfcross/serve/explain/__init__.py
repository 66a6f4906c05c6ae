"""``selfcross explain``: what every attention block of a trained run attends to, per utterance.

For each utterance it writes ``<id>.png`` (a figure) and ``<id>.npz`` (the numbers):

- the weights of every block, per head (``<block>.weights`` ``[H, Tq, Tk]``) and averaged
  over heads (``<block>.weights_mean``), the weight each key receives averaged over the
  model's queries (``<block>.received`` ``[H, Tk]``, ``<block>.received_mean``), the valid
  query and key masks, and, where the source branch mixes time with its convolution, the
  projection of the received weights back onto input frames (``<block>.frames``);
- the axis of every modality (``axis.<m>``: seconds, words or positions) and its label
  (``axis_label.<m>``);
- the predicted class probabilities (``probabilities``, ``class_names``).

The maps come from the reference attention path (see :mod:`selfcross.models.maps`); the
figure is drawn by :mod:`selfcross.serve.explain.figure`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from selfcross.errors import ConfigError, DataError
from selfcross.serve.explain.axes import ModalityAxis, modality_axes

__all__ = ["Explanation", "explain"]


@dataclass
class Utterance:
    """The model's inputs for one utterance plus what the figure needs to label them."""

    id: str
    inputs: dict[str, np.ndarray]  # modality -> float [1, T, F], before standardization
    lengths: dict[str, np.ndarray]  # modality -> int64 [1]
    words: list[str] | None = None
    waveform: np.ndarray | None = None
    label: str | None = None


@dataclass
class Explanation:
    """What :func:`explain` wrote for one utterance."""

    id: str
    figure_path: Path
    npz_path: Path
    probabilities: dict[str, float]
    figure: Any = field(repr=False, default=None)  # matplotlib Figure
    #: blocks whose attention is uniform (every weight ~ 1/T): their maps say nothing of the clip
    uniform_blocks: list[str] = field(default_factory=list)
    n_blocks: int = 0


def explain(
    run_dir: str | Path,
    out_dir: str | Path,
    data: str | Path | None = None,
    ids: list[str] | None = None,
    audio: str | Path | None = None,
    video: str | Path | None = None,
    transcript: str | None = None,
    device: str = "cpu",
) -> list[Explanation]:
    """Attention maps and predictions of a trained run, one figure + ``.npz`` per utterance.

    Args:
        run_dir: trained run folder.
        out_dir: folder for ``<id>.png`` and ``<id>.npz`` (created).
        data, ids: a fold folder and utterance ids found in any of its splits; or
        audio, video, transcript: one new clip (features extracted with the run's settings;
            the audio axis is then drawn under a log-mel spectrogram of the clip).
        device: torch device.

    Raises:
        ConfigError: neither or both input forms given. DataError: an id not in the fold.
        CheckpointError: unreadable run folder.
    """
    from selfcross.serve.explain.figure import draw_explanation, is_uniform
    from selfcross.serve.explain.inputs import clip_utterance, fold_utterances, load_explained_run

    raw = any(v is not None for v in (audio, video, transcript))
    if (data is None) == (not raw):
        raise ConfigError("give either --data FOLD with --ids, or --audio/--video/--transcript (one clip)")
    run = load_explained_run(Path(run_dir), device)
    if data is not None:
        if not ids:
            raise ConfigError("--data needs --ids ID[,ID...] (utterance ids of the fold)")
        utterances = fold_utterances(run, Path(data), ids)
    else:
        utterances = [clip_utterance(run, audio, video, transcript)]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for utt in utterances:
        probs, maps = _run_model(run, utt)
        axes = modality_axes(run, utt)
        stem = _safe_stem(utt.id)
        npz_path = _save_npz(out / f"{stem}.npz", run, maps, axes, probs)
        fig = draw_explanation(run, utt, maps, axes, probs)
        fig_path = out / f"{stem}.png"
        fig.savefig(fig_path, dpi=110)
        named = dict(zip(run.class_names, map(float, probs)))
        results.append(Explanation(utt.id, fig_path, npz_path, named, fig,
                                   [b.name for b in maps if is_uniform(b)], len(maps)))
    return results


def _run_model(run: Any, utt: Utterance) -> tuple[np.ndarray, list[Any]]:
    """Class probabilities ``[K]`` and the block maps of one utterance."""
    import torch

    from selfcross.models.maps import attention_maps
    from selfcross.training.batches import model_arrays

    dtype = torch.float64 if run.config.train.dtype == "float64" else torch.float32
    arrays = model_arrays(utt.inputs, utt.lengths, run.modalities, dtype, run.standardizer)
    x = {m: torch.from_numpy(np.ascontiguousarray(a)).to(run.device) for m, a in arrays.items()}
    lens = {m: torch.as_tensor(utt.lengths[m]).to(run.device) for m in run.modalities}
    lengths = lens if run.pass_lengths else None
    with torch.no_grad():
        logits = run.model(**x, lengths=lengths)[0].double().cpu()
        maps = attention_maps(run.model, **x, lengths=lengths)
    return torch.softmax(logits, dim=0).numpy(), maps


def _save_npz(
    path: Path, run: Any, maps: list[Any], axes: dict[str, ModalityAxis], probs: np.ndarray
) -> Path:
    from selfcross.models.maps import project_to_frames

    arrays: dict[str, np.ndarray] = {
        "probabilities": probs.astype(np.float64),
        "class_names": np.array(run.class_names),
    }
    for m, ax in axes.items():
        arrays[f"axis.{m}"] = np.asarray(ax.ticks)
        arrays[f"axis_label.{m}"] = np.array(ax.label)
        if ax.mixed_len is not None:
            arrays[f"axis_label.{m}_mixed"] = np.array(ax.mixed_label)
    for b in maps:
        w = b.weights[0].double().cpu().numpy()
        arrays[f"{b.name}.weights"] = w
        arrays[f"{b.name}.weights_mean"] = w.mean(axis=0)
        received = b.received[0].double().cpu()
        arrays[f"{b.name}.received"] = received.numpy()
        arrays[f"{b.name}.received_mean"] = received.mean(dim=0).numpy()
        arrays[f"{b.name}.query_valid"] = b.query_valid[0].cpu().numpy()
        arrays[f"{b.name}.key_valid"] = b.key_valid[0].cpu().numpy()
        conv = run.model.encoders[b.source].conv
        if conv is not None:
            frames = project_to_frames(conv, received.mean(dim=0).to(conv.weight.dtype))
            arrays[f"{b.name}.frames"] = frames.detach().double().cpu().numpy()
    np.savez_compressed(path, **arrays)
    return path


def _safe_stem(utt_id: str) -> str:
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in utt_id).strip(".")
    if not stem:
        raise DataError(None, f"utterance id {utt_id!r} cannot name a file")
    return stem
