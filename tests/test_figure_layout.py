"""Every report figure reads at 2, 3, 7 and 8 classes and with 1-3 models: no text outside the
figure, no overlapping value labels or titles, legends off the curves, error bars within range."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from matplotlib.container import ErrorbarContainer
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.transforms import Bbox

from selfcross.analysis import plots

CLASS_COUNTS = (2, 3, 7, 8)
MODELS = (("self",), ("self", "cross"), ("self", "cross", "self+cross"))
NAMES = ["neutral", "frustrated", "angry", "sad", "happy", "excited", "surprised", "fearful"]
TITLE = "ICT-MMMO (an imported data root), 8 classes\nself, A+V+T, row-normalized, 10 run(s) pooled"


@pytest.fixture()
def drawn(monkeypatch: pytest.MonkeyPatch) -> list[Figure]:
    """The figures the plot functions save (their PNGs are written as usual)."""
    figures: list[Figure] = []
    save = plots._save

    def keep(fig: Figure, path: Path) -> Path:
        out = save(fig, path)
        figures.append(fig)
        return out

    monkeypatch.setattr(plots, "_save", keep)
    return figures


def _texts(fig: Figure) -> list[Text]:
    return [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]


def _box(artist, renderer) -> Bbox:
    return artist.get_window_extent(renderer)


def _overlap(a: Bbox, b: Bbox, tol: float = 1.0) -> bool:
    return a.x0 < b.x1 - tol and b.x0 < a.x1 - tol and a.y0 < b.y1 - tol and b.y0 < a.y1 - tol


def check_layout(fig: Figure) -> None:
    """Nothing clipped at the figure's edge; value labels, titles and legends apart; legends
    off every axes' plotting area."""
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    edge = fig.bbox.padded(1.0)
    for t in _texts(fig):
        box = _box(t, r)
        assert edge.contains(box.x0, box.y0) and edge.contains(box.x1, box.y1), f"clipped: {t.get_text()!r}"
    for ax in fig.axes:
        values = [_box(t, r) for t in ax.texts if t.get_visible() and t.get_text().strip()]
        for a, b in itertools.combinations(values, 2):
            assert not _overlap(a, b), "value labels overlap"
    heads = [_box(t, r) for t in ([fig._suptitle] if fig._suptitle else []) + [ax.title for ax in fig.axes]
             if t.get_text().strip()]
    legends = [_box(lg, r) for lg in [*fig.legends, *(ax.get_legend() for ax in fig.axes)] if lg is not None]
    for a, b in itertools.combinations(heads + legends, 2):
        assert not _overlap(a, b), "a title and a legend (or two of them) overlap"
    plotting = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    for lg, ax in itertools.product(legends, plotting):
        assert not _overlap(lg, _box(ax.patch, r)), "a legend covers a plotting area"


def _errorbar_ys(fig: Figure) -> list[np.ndarray]:
    ys = []
    for ax in fig.axes:
        for c in ax.containers:
            if isinstance(c, ErrorbarContainer):
                for col in c.lines[2]:
                    ys.extend(np.asarray(seg)[:, 1] for seg in col.get_segments())
    return ys


@pytest.mark.parametrize("k", CLASS_COUNTS)
def test_confusion_matrix(k: int, tmp_path: Path, drawn: list[Figure]) -> None:
    rng = np.random.default_rng(k)
    cm = rng.integers(0, 40, size=(k, k)) + np.eye(k, dtype=int) * 30
    plots.confusion_plot(cm, NAMES[:k], TITLE, tmp_path / "cm.png")
    check_layout(drawn[-1])


@pytest.mark.parametrize(("k", "models"), list(itertools.product(CLASS_COUNTS, MODELS)))
def test_recall_bars_stay_within_0_and_100(k: int, models: tuple[str, ...], tmp_path: Path,
                                           drawn: list[Figure]) -> None:
    rng = np.random.default_rng(k)
    recalls = {m: (np.r_[0.97, 0.02, rng.random(k - 2)], np.full(k, 0.2)) for m in models}
    plots.recall_plot(recalls, NAMES[:k], TITLE, tmp_path / "recall.png")
    fig = drawn[-1]
    check_layout(fig)
    ys = _errorbar_ys(fig)
    assert len(ys) == k * len(models)
    assert min(y.min() for y in ys) >= 0.0 and max(y.max() for y in ys) <= 100.0


@pytest.mark.parametrize("models", MODELS)
def test_scores_chart_with_chance_and_majority(models: tuple[str, ...], tmp_path: Path,
                                               drawn: list[Figure]) -> None:
    cells = {(m, code): {"accuracy": (0.6, 0.05, 5), "balanced_accuracy": (0.55, 0.04, 5)}
             for m in models for code in ("a", "v", "av", "atv") if m == "self" or len(code) > 1}
    plots.bar_chart(cells, ("accuracy", "balanced_accuracy"), {}, tmp_path / "s.png",
                    title=TITLE, chance=0.5, majority={"accuracy": 0.703})
    fig = drawn[-1]
    check_layout(fig)
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "chance 1/K (50.0%)" in legend and "majority class (70.3%)" in legend
    assert [line.get_ydata()[0] for line in fig.axes[0].lines
            if line.get_label().startswith("majority")] == pytest.approx([70.3])


@pytest.mark.parametrize("models", MODELS)
def test_robustness_chart_has_interval_bars(models: tuple[str, ...], tmp_path: Path,
                                            drawn: list[Figure]) -> None:
    changes = {m: {"drop:a": (-0.10, -0.14, -0.05), "noise:a=10": (-0.02, -0.03, 0.01),
                   "shuffle:a": (-0.06, None, None)} for m in models}
    plots.robustness_chart(changes, tmp_path / "r.png", title="Accuracy change under a perturbed "
                           "modality, A+V+T (preset paper)")
    fig = drawn[-1]
    check_layout(fig)
    ys = sorted((round(float(y.min()), 6), round(float(y.max()), 6)) for y in _errorbar_ys(fig))
    assert (-14.0, -5.0) in ys and (-3.0, 1.0) in ys  # the intervals, not symmetric whiskers


@pytest.mark.parametrize(("models", "runs"), [(("self",), 1), (("self",), 6), (("self", "cross"), 4),
                                              (("self", "cross", "self+cross"), 12)])
def test_learning_curves_legend_off_the_curves(models: tuple[str, ...], runs: int, tmp_path: Path,
                                               drawn: list[Figure]) -> None:
    history = [{"epoch": e, "train_loss": 1 / e, "dev_loss": 1.2 / e, "dev_accuracy": 0.5 + 0.04 * e}
               for e in range(1, 9)]
    panels = {m: [(f"f{i // 3 + 1:02d}-s{i % 3 + 1:02d}", history, 8) for i in range(runs)] for m in models}
    plots.curves_chart(panels, tmp_path / "c.png", title="Learning curves, A+V+T (preset paper), one line "
                       "per (fold, seed) run")
    check_layout(drawn[-1])
