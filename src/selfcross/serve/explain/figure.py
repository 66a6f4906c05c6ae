"""The explanation figure: one row per attention block, predictions at the top right.

- top row: the clip's log-mel spectrogram (seconds axis) when the raw audio is given, and the
  predicted class probabilities;
- self blocks: the weight each step receives (mean over queries and heads) on the modality's
  own axis. For a time-mixing branch the keys are mixed positions, so the row shows them
  (right) and their projection onto input frames through the convolution's weights (left,
  signed: the GRU between the convolution and the attention is not inverted);
- cross blocks: the target x source map (mean over heads), each axis in its modality's units.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from selfcross.serve.explain.axes import ModalityAxis

#: Most words written as tick labels on one axis (longer transcripts show positions).
MAX_WORD_TICKS = 40
#: A block is drawn as uniform when every weight is within this share of 1/T (T = keys used):
#: its maps are then the same for every clip and carry no information about this one.
UNIFORM_RTOL = 0.02


def is_uniform(block: Any, rtol: float = UNIFORM_RTOL) -> bool:
    """Whether every head's weight from every valid query to every key the softmax uses is
    within ``rtol`` of ``1 / T`` (T = number of those keys)."""
    w = block.weights[0].double().cpu().numpy()  # [H, Tq, Tk]
    rows = np.flatnonzero(block.query_valid[0].cpu().numpy())
    cols = np.flatnonzero(block.key_valid[0].cpu().numpy())
    if rows.size == 0 or cols.size == 0:
        return False
    used = w[:, rows][:, :, cols]
    return bool(np.all(np.abs(used * cols.size - 1.0) <= rtol))


def draw_explanation(
    run: Any, utt: Any, maps: list[Any], axes: dict[str, ModalityAxis], probs: np.ndarray
) -> Figure:
    """The figure of one utterance (see the module doc)."""
    fig = Figure(figsize=(12, 2.6 * (len(maps) + 1)), layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(len(maps) + 1, 2, width_ratios=(3, 1))
    uniform = [b.name for b in maps if is_uniform(b)]
    _draw_header(fig.add_subplot(grid[0, 0]), run, utt, axes, uniform, len(maps))
    _draw_probabilities(fig.add_subplot(grid[0, 1]), run.class_names, probs)
    for row, block in enumerate(maps, start=1):
        ax = fig.add_subplot(grid[row, 0])
        if block.target == block.source:
            _draw_self(ax, fig.add_subplot(grid[row, 1]), run, block, axes[block.source])
        else:
            _draw_cross(ax, block, axes[block.target], axes[block.source])
            fig.add_subplot(grid[row, 1]).set_axis_off()
        if block.name in uniform:
            ax.set_title(f"{block.name}: UNIFORM, every weight = 1/{int(block.key_valid[0].sum())} "
                         f"(within {100 * UNIFORM_RTOL:g}%): nothing singled out", color="#D55E00")
    truth = f", label {utt.label}" if utt.label else ""
    top = run.class_names[int(np.argmax(probs))]
    fig.suptitle(f"{utt.id}: predicted {top}{truth} ({run.config.model.kind}-attention, "
                 f"{'+'.join(m[0].upper() for m in run.modalities)})")
    return fig


def _draw_header(ax: Any, run: Any, utt: Any, axes: dict[str, ModalityAxis], uniform: list[str],
                 n_blocks: int) -> None:
    if utt.waveform is None or "audio" not in axes:
        ax.set_axis_off()
        ax.text(0, 0.5, _caveat(run, uniform, n_blocks), va="center", fontsize=9)
        return
    import librosa

    cfg = run.feature_configs["audio"]
    sr, hop = cfg.sample_rate, cfg.hop_length
    mel = librosa.feature.melspectrogram(y=utt.waveform, sr=sr, n_fft=cfg.n_fft, hop_length=hop, n_mels=64)
    db = librosa.power_to_db(mel, ref=np.max)
    seconds = len(utt.waveform) / sr
    ax.imshow(db, origin="lower", aspect="auto", extent=(0, seconds, 0, db.shape[0]), cmap="magma")
    ax.set_xlabel("audio: time (s)")
    ax.set_ylabel("mel band")
    ax.set_title("log-mel spectrogram of the clip")
    ax.set_xlim(0, _axis_end(axes["audio"]))
    _shade_padding(ax, axes["audio"])
    if uniform:
        ax.set_title(f"log-mel spectrogram; {_uniform_note(uniform, n_blocks)}", color="#D55E00")


def _uniform_note(uniform: list[str], n_blocks: int) -> str:
    which = "every block" if len(uniform) == n_blocks else f"{len(uniform)} of {n_blocks} blocks"
    return (f"attention is uniform in {which} (each weight within {100 * UNIFORM_RTOL:g}% of 1/T): "
            "no step is singled out")


def _caveat(run: Any, uniform: list[str], n_blocks: int) -> str:
    """The header's text: at most two short lines (what the keys are; uniform attention)."""
    mixed = [m for m in run.modalities if run.model.encoders[m].conv is not None]
    lines = [f"{', '.join(mixed)} keys are conv-mixed positions (self rows also show input frames)"
             if mixed else "Every key is one input step."]
    if uniform:
        lines.append(_uniform_note(uniform, n_blocks).capitalize() + ".")
    return "\n".join(lines)


def _draw_probabilities(ax: Any, names: tuple[str, ...], probs: np.ndarray) -> None:
    y = np.arange(len(names))
    ax.barh(y, probs, color="#0072B2")
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("predicted probability")
    ax.set_title("prediction")


def _draw_self(left: Any, right: Any, run: Any, block: Any, axis: ModalityAxis) -> None:
    from selfcross.models.maps import project_to_frames

    received = block.received[0].double().mean(dim=0).cpu()
    conv = run.model.encoders[block.source].conv
    if conv is None:
        _bars_on_axis(left, received.numpy(), block.key_valid[0].cpu().numpy(), axis)
        left.set_title(f"{block.name}: weight each {block.source} step receives (mean over queries, heads)")
        right.set_axis_off()
        return
    frames = project_to_frames(conv, received.to(conv.weight.dtype)).detach().double().cpu().numpy()
    ticks = _numeric_ticks(axis)
    left.plot(ticks, frames, color="#0072B2", lw=1)
    left.axhline(0, color="grey", lw=0.5)
    _shade_padding(left, axis)
    left.set_xlim(ticks[0], _axis_end(axis))
    left.set_xlabel(axis.label)
    left.set_ylabel("coefficient")
    left.set_title(f"{block.name}: received weight projected onto input frames through the conv")
    right.bar(np.arange(1, len(received) + 1), received.numpy(), width=1.0, color="#E69F00")
    right.set_xlabel(axis.mixed_label)
    right.set_ylabel("weight")
    right.set_title("on mixed positions")


def _shade_padding(ax: Any, axis: ModalityAxis) -> None:
    ticks = _numeric_ticks(axis)
    if axis.valid < len(ticks):
        ax.axvspan(ticks[axis.valid], _axis_end(axis), color="grey", alpha=0.15, label="padding")


def _bars_on_axis(ax: Any, values: np.ndarray, used: np.ndarray, axis: ModalityAxis) -> None:
    """Weights on the keys the softmax uses (padding keys kept when the preset attends to them)."""
    x = np.flatnonzero(used)
    ax.bar(x, values[x], width=0.9, color=["#0072B2" if i < axis.valid else "#999999" for i in x])
    ax.set_ylabel("weight")
    ax.set_xlabel(axis.label)
    if axis.is_words and len(x) <= MAX_WORD_TICKS:
        ax.set_xticks(x, [axis.ticks[i] for i in x], rotation=45, ha="right", fontsize=8)
    elif not axis.is_words:
        _label_numeric(ax.set_xticks, axis, x)


def _draw_cross(ax: Any, block: Any, target: ModalityAxis, source: ModalityAxis) -> None:
    w = block.weights[0].double().mean(dim=0).cpu().numpy()
    rows = np.flatnonzero(block.query_valid[0].cpu().numpy())
    cols = np.flatnonzero(block.key_valid[0].cpu().numpy())
    image = ax.imshow(w[rows][:, cols], aspect="auto", cmap="viridis", interpolation="nearest")
    ax.figure.colorbar(image, ax=ax, fraction=0.03, pad=0.01)
    ax.set_ylabel(_cross_label(target, "query"), fontsize=8)
    ax.set_xlabel(_cross_label(source, "key"))
    _label_cross_axis(ax.set_yticks, "y", target, rows)
    _label_cross_axis(ax.set_xticks, "x", source, cols)
    ax.set_title(f"{block.name}: {block.target} queries x {block.source} keys (mean over heads)")


def _cross_label(axis: ModalityAxis, role: str) -> str:
    return f"{axis.mixed_label if axis.mixed_len is not None else axis.label} ({role})"


def _label_cross_axis(set_ticks: Any, which: str, axis: ModalityAxis, steps: np.ndarray) -> None:
    """Ticks at the image's positions ``0..len(steps)-1``, labelled by the steps they show."""
    n = len(steps)
    if axis.mixed_len is not None:
        _regular_ticks(set_ticks, np.arange(n, dtype=float), steps + 1.0, integer=True)
    elif axis.is_words and n <= MAX_WORD_TICKS:
        words = [axis.ticks[i] for i in steps]
        set_ticks(np.arange(n), words, rotation=45 if which == "x" else 0, fontsize=8)
    elif not axis.is_words:
        _regular_ticks(set_ticks, np.arange(n, dtype=float), _numeric_ticks(axis)[steps])


def _label_numeric(set_ticks: Any, axis: ModalityAxis, steps: np.ndarray) -> None:
    """Tick labels in the axis's units (seconds or indices) over the bars at ``steps``."""
    if len(steps) == 0:
        return
    _regular_ticks(set_ticks, steps.astype(float), _numeric_ticks(axis)[steps])


def _regular_ticks(set_ticks: Any, positions: np.ndarray, values: np.ndarray, integer: bool = False) -> None:
    """At most 7 ticks at round, evenly spaced values (0, 0.5, 1.0 s; 1, 5, 10...), placed at
    the positions those values fall on (``values`` increase along ``positions``)."""
    if len(values) == 0:
        return
    lo, hi = float(values[0]), float(values[-1])
    nice = MaxNLocator(nbins=6, integer=integer, steps=[1, 2, 2.5, 5, 10]).tick_values(lo, hi)
    nice = nice[(nice >= lo - 1e-9) & (nice <= hi + 1e-9)]
    if len(values) < 2 or len(nice) == 0:
        set_ticks(positions[:1], [f"{lo:g}"])
        return
    set_ticks(np.interp(nice, values, positions), [f"{v:g}" for v in nice])


def _numeric_ticks(axis: ModalityAxis) -> np.ndarray:
    if axis.is_words:
        return np.arange(len(axis.ticks), dtype=float)
    return np.asarray(axis.ticks, dtype=float)


def _axis_end(axis: ModalityAxis) -> float:
    ticks = _numeric_ticks(axis)
    if len(ticks) < 2:
        return float(ticks[0]) + 1.0 if len(ticks) else 1.0
    return float(ticks[-1] + (ticks[-1] - ticks[-2]))
