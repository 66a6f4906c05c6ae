"""Report figures (matplotlib, headless).

Why ``matplotlib.figure.Figure`` and not ``pyplot``: no global backend state is touched, so
the figures render on machines without a display and inside worker processes, and nothing
leaks between reports.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from selfcross.errors import ConfigError
from selfcross.labels import PAPER_MODALITY_SETS, parse_modalities

#: Colours of the model variants (self, cross, others; the linear floor grey), colour-blind safe (Okabe-Ito).
COLOURS: dict[str, str] = {"self": "#0072B2", "cross": "#E69F00", "self+cross": "#009E73",
                           "linear": "#999999"}
_GROUP_NAMES = {1: "uni-modal", 2: "bi-modal", 3: "tri-modal"}
_FALLBACK = ("#CC79A7", "#56B4E9", "#D55E00", "#999999")


def modality_label(code: str) -> str:
    """``"atv" -> "A+V+T"`` (the paper's row labels, canonical modality order)."""
    try:
        names = parse_modalities(code)
    except ConfigError:
        return code
    return "+".join(m[0].upper() for m in names)


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def bar_chart(
    cells: dict[tuple[str, str], dict[str, tuple[float, float, int]]],
    metrics: Sequence[str],
    metric_labels: dict[str, str],
    path: Path,
    title: str = "",
    chance: float | None = None,
    majority: dict[str, float] | None = None,
) -> Path:
    """Grouped bars like the paper's figure: modality sets on x (uni | bi | tri), one bar per model.

    The bars of each modality set are centred on its tick, whatever models it has (uni-modal
    sets have no cross-attention bar).

    Args:
        cells: (model label, modality code) -> {metric: (mean, std, n)}.
        metrics: metrics to draw, one panel each (e.g. accuracy, balanced_accuracy).
        metric_labels: metric -> axis label.
        path: PNG to write.
        chance: score of a uniform random guess (1 / classes), drawn as a dashed line.
        majority: metric -> score of always predicting the test set's most frequent class,
            drawn as a dotted line on that metric's panel (far above chance on skewed data).
    """
    majority = majority or {}
    codes = [c for c in PAPER_MODALITY_SETS if any(k[1] == c for k in cells)]
    codes += sorted({k[1] for k in cells} - set(codes))
    models = []
    for k in cells:
        if k[0] not in models:
            models.append(k[0])
    models.sort(key=lambda m: (list(COLOURS).index(m) if m in COLOURS else 99, m))
    fig = Figure(figsize=(max(6.0, 1.1 * len(codes) + 2), 3.4 * len(metrics)))
    width = 0.8 / max(1, len(models))
    x = np.arange(len(codes))
    for row, metric in enumerate(metrics):
        ax = fig.add_subplot(len(metrics), 1, row + 1)
        _draw_bars(ax, cells, models, codes, metric, x, width)
        if chance is not None:
            ax.axhline(100 * chance, color="black", linestyle="--", linewidth=1,
                       label=f"chance 1/K ({100 * chance:.1f}%)")
        if metric in majority:
            ax.axhline(100 * majority[metric], color="#D55E00", linestyle=":", linewidth=1.5,
                       label=f"majority class ({100 * majority[metric]:.1f}%)")
        _mark_groups(ax, codes)
        ax.set_xticks(x, [modality_label(c) for c in codes])
        ax.set_ylabel(f"{metric_labels.get(metric, metric)} (%)")
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
        if row == 0 or metric in majority:  # each panel with a line of its own names it
            ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False,
                      ncols=len(models) + (chance is not None) + (metric in majority))
        top = np.nanmax([100 * v[0] + 100 * (v[1] if np.isfinite(v[1]) else 0)
                         for c in cells.values() for m, v in c.items() if m == metric]
                        + [1.0, 100 * (chance or 0.0), 100 * majority.get(metric, 0.0)])
        ax.set_ylim(0, min(100.0, top * 1.15 + 2))
    if title:  # above the legend, not beside it
        fig.suptitle(title, x=0.01, ha="left", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def _draw_bars(
    ax: Axes,
    cells: dict[tuple[str, str], dict[str, tuple[float, float, int]]],
    models: Sequence[str],
    codes: Sequence[str],
    metric: str,
    x: np.ndarray,
    width: float,
) -> None:
    """One bar (mean, std whisker) per model and modality set, centred on the set's tick."""
    present = {code: [m for m in models if metric in cells.get((m, code), {})] for code in codes}
    for j, model in enumerate(models):
        xs, means, stds = [], [], []
        for i, code in enumerate(codes):
            v = cells.get((model, code), {}).get(metric)
            if v is None:
                continue
            slot, k = present[code].index(model), len(present[code])
            xs.append(x[i] + (slot - (k - 1) / 2) * width)
            means.append(100 * v[0])
            stds.append(100 * v[1] if np.isfinite(v[1]) else 0.0)
        colour = COLOURS.get(model, _FALLBACK[j % len(_FALLBACK)])
        ax.bar(xs, means, width, yerr=stds, capsize=3, label=model, color=colour,
               edgecolor="black", linewidth=0.5)


def _mark_groups(ax: Axes, codes: Sequence[str]) -> None:
    """Dotted lines between the uni-, bi- and tri-modal groups, each group named above its bars."""
    for boundary in _group_boundaries(codes):
        ax.axvline(boundary, color="grey", linestyle=":", linewidth=1)
    for size in sorted({len(c) for c in codes}):
        xs = [i for i, c in enumerate(codes) if len(c) == size]
        ax.text(float(np.mean(xs)), 0.97, _GROUP_NAMES.get(size, f"{size} modalities"), ha="center",
                va="top", fontsize=8, color="dimgrey", transform=ax.get_xaxis_transform())


def _group_boundaries(codes: Sequence[str]) -> list[float]:
    """x positions between uni-, bi- and tri-modal groups."""
    return [i - 0.5 for i in range(1, len(codes)) if len(codes[i]) != len(codes[i - 1])]


def confusion_plot(cm: np.ndarray, class_names: Sequence[str], title: str, path: Path) -> Path:
    """Row-normalized confusion matrix (rows = true class, each row sums to 1).

    Each row is labelled with its number of test items, so that a class with a handful of
    items is not read like one with hundreds.

    Args:
        cm: int [C, C] counts (pooled over runs).
    """
    cm = np.asarray(cm, dtype=np.float64)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    n = len(class_names)
    # Cells of at least ~0.55 inch keep "0.53" apart from "0.47"; the width also fits the
    # title's longest line (about 0.075 inch per character at 10 pt) and the row labels.
    label = max((len(f"{c} (n={int(k)})") for c, k in zip(class_names, rows[:, 0])), default=0)
    title_w = 0.075 * max((len(line) for line in title.splitlines()), default=0) + 0.4
    width = max(title_w, 0.07 * label + 0.6 * n + 1.6)
    longest = max((len(c) for c in class_names), default=0)
    height = 0.06 * longest + 0.6 * n + 1.2 + 0.2 * len(title.splitlines())
    fig = Figure(figsize=(width, height))
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
    for i in range(n):
        for j in range(n):
            ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=8,
                    color="white" if norm[i, j] > 0.55 else "black")
    ax.set_xticks(range(n), class_names, rotation=45, ha="right")
    ax.set_yticks(range(n), [f"{c} (n={int(k)})" for c, k in zip(class_names, rows[:, 0])])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true (test items)")
    fig.suptitle(title, fontsize=10)  # centred on the figure, not on the (narrow) matrix
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return _save(fig, path)


def recall_plot(
    recalls: dict[str, tuple[np.ndarray, np.ndarray]], class_names: Sequence[str], title: str, path: Path,
    chance: bool = True,
) -> Path:
    """Per-class recall bars, one bar per model, error bars = std over runs.

    Args:
        recalls: model label -> (mean [C], std [C]) recall per class.
        chance: draw the recall of a uniform random guess (1 / classes) as a dashed line.
    """
    n = len(class_names)
    models = list(recalls)
    width = 0.8 / max(1, len(models))
    x = np.arange(n)
    fig = Figure(figsize=(max(6.0, 0.9 * n + 2), 3.6))
    ax = fig.add_subplot(1, 1, 1)
    for j, model in enumerate(models):
        mean, std = (np.nan_to_num(np.asarray(v, dtype=np.float64)) for v in recalls[model])
        # a recall lies in [0, 1]: the whisker stops at the bound instead of running past it
        err = np.vstack([np.minimum(std, mean), np.minimum(std, 1.0 - mean)])
        ax.bar(x + (j - (len(models) - 1) / 2) * width, 100 * mean, width,
               yerr=100 * err, capsize=3, label=model,
               color=COLOURS.get(model, _FALLBACK[j % len(_FALLBACK)]), edgecolor="black", linewidth=0.5)
    if chance and n:
        ax.axhline(100 / n, color="black", linestyle="--", linewidth=1, label=f"chance 1/K ({100 / n:.1f}%)")
    ax.set_xticks(x, class_names, rotation=30, ha="right")
    ax.set_ylabel("recall (%)")
    ax.set_ylim(0, 105)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), fontsize=8, ncols=len(models) + bool(chance),
              frameon=False)
    fig.suptitle(title, x=0.01, ha="left", fontsize=10)  # above the legend, not beside it
    fig.tight_layout()
    return _save(fig, path)


def robustness_chart(
    changes: dict[str, dict[str, tuple[float, float | None, float | None]]], path: Path, title: str = "",
    ylabel: str = "accuracy change vs clean (points)", scale: float = 100,
) -> Path:
    """Bars of the mean test-accuracy change per perturbation, one bar per model, with the
    interval of the mean as error bars (none where a model has one run).

    Args:
        changes: model label -> {perturbation spec: (mean change, low, high)} in the metric's units.
        path: PNG to write.
        ylabel, scale: the axis label, and the factor to its units (100: fractions in points).
    """
    specs = sorted({s for c in changes.values() for s in c})
    models = sorted(changes, key=lambda m: (list(COLOURS).index(m) if m in COLOURS else 99, m))
    fig = Figure(figsize=(max(6.0, 0.9 * len(specs) + 2), 3.6))
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / max(1, len(models))
    x = np.arange(len(specs))
    for j, model in enumerate(models):
        got = [changes[model].get(s, (np.nan, None, None)) for s in specs]
        values = np.array([scale * v for v, _, _ in got])
        err = np.array([[0.0, 0.0] if lo is None or hi is None else [scale * (v - lo), scale * (hi - v)]
                        for v, lo, hi in got]).T
        ax.bar(x + (j - (len(models) - 1) / 2) * width, values, width, yerr=err, capsize=3, label=model,
               color=COLOURS.get(model, _FALLBACK[j % len(_FALLBACK)]), edgecolor="black", linewidth=0.5)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(x, specs, rotation=30, ha="right")
    ax.set_xlabel("test-time perturbation (bars: 95% interval of the mean over runs)")
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), fontsize=8, ncols=len(models), frameon=False)
    if title:  # above the legend, not beside it
        fig.suptitle(title, x=0.01, ha="left", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def score_scatter(
    y_true: np.ndarray, y_pred: np.ndarray, title: str, path: Path, mae: float | None = None
) -> Path:
    """Predicted vs true sentiment scores (every test prediction of the runs pooled), with y = x."""
    fig = Figure(figsize=(4.2, 4.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.scatter(y_true, y_pred, s=10, alpha=0.35, edgecolors="none")
    lo = float(min(np.min(y_true), np.min(y_pred)))
    hi = float(max(np.max(y_true), np.max(y_pred)))
    ax.plot([lo, hi], [lo, hi], color="0.4", linewidth=1, linestyle="--", label="y = x")
    ax.set_xlabel("true score")
    ax.set_ylabel("predicted score")
    ax.set_title(title + (f" (MAE {mae:.3f})" if mae is not None else ""), fontsize=9)
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, path)


def curves_chart(
    panels: dict[str, list[tuple[str, list[dict], int | None]]],
    path: Path,
    title: str = "",
    score: str = "dev_accuracy",
    percent: bool = True,
) -> Path:
    """Learning curves: one column per model, rows = loss (train solid, dev dashed) and a dev score.

    Args:
        panels: model label -> [(run label e.g. ``f01-s02``, history rows, best epoch), ...];
            a run label keeps its colour in every column, the best epoch is marked on the score.
        path: PNG to write.
        score: the history key of the second row (the task's main dev metric, e.g. ``dev_accuracy``
            or ``dev_mae``).
        percent: the score is a fraction, drawn in %.
    """
    name = score.removeprefix("dev_")
    scale, score_label = (100.0, f"dev {name} (%)") if percent else (1.0, f"dev {name.upper()}")
    models = list(panels)
    labels = sorted({label for runs in panels.values() for label, _, _ in runs})
    cmap = _run_colours(len(labels))
    colour = dict(zip(labels, cmap))
    legend_w = 1.3 if len(labels) <= 12 else 0.0  # a column of its own, right of the panels
    fig = Figure(figsize=(4.2 * len(models) + 1.0 + legend_w, 6.0))
    axes = fig.subplots(2, len(models), sharex=True, sharey="row", squeeze=False)
    for j, model in enumerate(models):
        loss_ax, acc_ax = axes[0, j], axes[1, j]
        for label, history, best in panels[model]:
            epochs = [h["epoch"] for h in history]
            c = colour[label]
            loss_ax.plot(epochs, [h["train_loss"] for h in history], color=c, lw=1.0)
            loss_ax.plot(epochs, [h["dev_loss"] for h in history], color=c, lw=1.0, ls="--")
            acc = [np.nan if h.get(score) is None else scale * h[score] for h in history]
            acc_ax.plot(epochs, acc, color=c, lw=1.0, label=label)
            if best is not None and 1 <= best <= len(history):
                acc_ax.plot([best], [acc[best - 1]], "o", color=c, ms=4)
        n = len(panels[model])
        loss_ax.set_title(f"{model} ({n} run{'s' if n != 1 else ''})", fontsize=10,
                          color=COLOURS.get(model, "black"))
        acc_ax.set_xlabel("epoch")
        acc_ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        for ax in (loss_ax, acc_ax):
            ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("loss\n(train solid, dev dashed)")
    axes[1, 0].set_ylabel(f"{score_label}\n(dot: best epoch, restored)")
    if len(labels) <= 12:
        handles, names = axes[1, 0].get_legend_handles_labels()
        fig.legend(handles, names, loc="center right", bbox_to_anchor=(1.0, 0.5), fontsize=7,
                   frameon=False, title="fold-seed", title_fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10, x=0.02, ha="left")
    fig.tight_layout(rect=(0, 0, 1 - legend_w / fig.get_figwidth(), 1))
    return _save(fig, path)


def _run_colours(n: int) -> list[tuple[float, ...]]:
    """``n`` distinguishable colours (tab10/tab20, then a sampled viridis for larger studies)."""
    from matplotlib import colormaps

    if n <= 10:
        return [colormaps["tab10"](i) for i in range(n)]
    if n <= 20:
        return [colormaps["tab20"](i) for i in range(n)]
    return [colormaps["viridis"](x) for x in np.linspace(0, 0.95, n)]
