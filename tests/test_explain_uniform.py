"""explain: uniform attention is named on the figure (and printed); numeric ticks are regular;
the header's text block is short."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from matplotlib.text import Text
from safetensors.torch import load_file, save_file

from selfcross.cli import main
from selfcross.config import ModelConfig, RunConfig, TrainConfig
from selfcross.serve.explain import explain
from selfcross.training import train_run
from tiny_runs import write_tiny_fold


def _scaled_query_key(run: Path, to: Path, factor: float) -> Path:
    """A copy of ``run`` with every query and key projection multiplied by ``factor``."""
    shutil.copytree(run, to)
    state = load_file(to / "model.safetensors")
    for name, t in state.items():
        if name.endswith(("in_proj_weight", "in_proj_bias")):
            e = t.shape[0] // 3
            t[: 2 * e] *= factor  # rows of the query and key projections
    save_file(state, to / "model.safetensors")
    return to


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(fold, the trained cross run with query and key projections x 30: peaked weights, and
    zeroed: equal scores, so every weight is exactly 1/T)."""
    root = tmp_path_factory.mktemp("uniform")
    fold = write_tiny_fold(root)
    run = root / "run"
    train_run(RunConfig(model=ModelConfig(kind="cross", modalities=("audio", "text")),
                        train=TrainConfig(max_epochs=1, num_threads=1)), fold, run, progress=False)
    return fold, _scaled_query_key(run, root / "peaked", 30.0), _scaled_query_key(run, root / "flat", 0.0)


def _texts(fig) -> list[str]:
    return [t.get_text() for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]


def test_uniform_attention_is_said_on_the_figure_and_printed(runs, tmp_path: Path, capsys) -> None:
    fold, _, flat = runs
    ids = (fold / "test_ids.txt").read_text().split()[:2]
    out = explain(flat, tmp_path / "x", data=fold, ids=ids)
    for e in out:
        assert e.n_blocks == 2 and sorted(e.uniform_blocks) == ["audio_from_text", "text_from_audio"]
        texts = " ".join(_texts(e.figure))
        assert "attention is uniform in every block" in texts.lower()
        assert texts.count("UNIFORM, every weight = 1/") == 2
    assert main(["explain", "--run", str(flat), "--data", str(fold), "--ids", ids[0], "--out",
                 str(tmp_path / "cli")]) == 0
    assert "attention uniform in 2 of 2 blocks" in capsys.readouterr().out


def test_peaked_attention_is_not_called_uniform(runs, tmp_path: Path) -> None:
    fold, peaked, _ = runs
    ids = (fold / "test_ids.txt").read_text().split()[:1]
    e = explain(peaked, tmp_path / "x", data=fold, ids=ids)[0]
    z = np.load(e.npz_path)
    assert all(np.ptp(z[f"{b}.weights"]) > 0.1 for b in ("audio_from_text", "text_from_audio"))
    assert e.uniform_blocks == []
    assert "uniform" not in " ".join(_texts(e.figure)).lower()


def test_numeric_ticks_are_regular_and_the_text_block_short(runs, tmp_path: Path) -> None:
    fold, run, _ = runs
    ids = (fold / "test_ids.txt").read_text().split()[:2]
    for e in explain(run, tmp_path / "x", data=fold, ids=ids):
        checked = 0
        for ax in e.figure.axes:
            for ticks in (ax.get_xticklabels(), ax.get_yticklabels()):
                labels = [t.get_text().replace("\u2212", "-") for t in ticks if t.get_text()]
                try:
                    values = np.array([float(v) for v in labels])
                except ValueError:
                    continue  # words
                if len(values) >= 3:
                    np.testing.assert_allclose(np.diff(values), np.diff(values)[0], atol=1e-9)
                    checked += 1
        assert checked >= 2
        header = e.figure.axes[0]
        lines = [line for t in header.texts for line in t.get_text().splitlines()]
        assert 1 <= len(lines) <= 2 and all(len(line) <= 90 for line in lines)
