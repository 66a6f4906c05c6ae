"""report: run folders made by train reach it; every stored perturbation is reported per model
(also for one-model grids); the scores figure carries the majority-class line."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pytest

from selfcross.analysis.report import collect, majority_baseline
from selfcross.cli import main
from selfcross.experiments.store import Predictions, ResultsStore, RunKey
from tiny_runs import write_tiny_fold

CLASSES = ["negative", "positive"]


def _add(store: ResultsStore, kind: str, fold: int, seed: int, y: np.ndarray) -> tuple[int, float]:
    rng = np.random.default_rng(zlib.crc32(f"{kind}{fold}{seed}".encode()))
    pred = np.where(rng.random(y.size) < 0.7, y, 1 - y)
    acc = float(np.mean(pred == y))
    key = RunKey(kind, "a", "stat", "paper", fold, seed)
    rid = store.record_started(key, {"model": {"kind": kind}}, "h", f"fp{fold}", f"/runs/{key}")
    probs = np.eye(2)[pred] * 0.8 + 0.1
    store.record_done(rid, {"test": {"accuracy": acc, "balanced_accuracy": acc}, "best_epoch": 2,
                            "epochs_run": 3}, Predictions(y, pred, probs, None), CLASSES, 1.0)
    return rid, acc


@pytest.fixture()
def self_only(tmp_path: Path) -> tuple[Path, dict[str, list[float]]]:
    """Self on audio only (as `grid --models self --modalities a --robustness noise:a=10,shuffle:a`)."""
    db = tmp_path / "r.sqlite"
    changes: dict[str, list[float]] = {"noise:a=10": [], "shuffle:a": []}
    with ResultsStore.open(db, lock=True) as store:
        for fold in (1, 2):
            y = (np.random.default_rng(fold).random(40) < 0.7).astype(np.int64)  # skewed: ~70 % class 1
            for seed in (1, 2, 3):
                rid, acc = _add(store, "self", fold, seed, y)
                for spec, drop in (("noise:a=10", 0.05 * seed), ("shuffle:a", 0.2)):
                    perturbed = max(0.0, acc - drop)
                    store.record_robustness(rid, spec, 0, {"accuracy": perturbed}, np.zeros(40, np.int64))
                    changes[spec].append(perturbed - acc)
    return db, changes


def test_single_model_grid_reports_every_perturbation(self_only, tmp_path: Path, capsys) -> None:
    db, changes = self_only
    assert main(["report", "--db", str(db), "--out", str(tmp_path / "rep")]) == 0
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "### Robustness per model" in md
    for spec, d in changes.items():
        row = next(line for line in md.splitlines() if line.startswith(f"| self | A | `{spec}` |"))
        assert "| 6 |" in row and f"{100 * np.mean(d):+.1f}" in row
    by_model = json.loads((tmp_path / "rep" / "results.json").read_text())["robustness_by_model"]
    assert {(e["model"], e["perturbation"]) for e in by_model} == {("self", s) for s in changes}
    assert (tmp_path / "rep" / "figures" / "robustness_a.png").is_file()


def test_majority_class_baseline_is_the_pooled_test_majority(self_only) -> None:
    db, _ = self_only
    ys = [(np.random.default_rng(fold).random(40) < 0.7).astype(np.int64) for fold in (1, 2)]
    expected = sum(int(np.bincount(y).max()) for y in ys) / 80
    with ResultsStore.open(db, create=False) as store:
        got = majority_baseline(store, collect(store), "paper")
    assert got == {"accuracy": pytest.approx(expected)}
    assert expected > 0.5  # above chance 1/K: the line says something chance does not


@pytest.mark.slow
def test_runs_made_by_train_reach_a_report(tmp_path: Path, capsys) -> None:
    fold = write_tiny_fold(tmp_path / "data")
    runs = []
    for model in ("self", "cross"):
        for seed in ("1", "2"):
            run = tmp_path / f"{model}{seed}"
            assert main(["train", "--data", str(fold), "--out", str(run), "--model", model, "--modalities",
                         "at", "--seed", seed, "--max-epochs", "1", "--no-progress", "--threads", "1"]) == 0
            runs.append(str(run))
    assert main(["report", "--runs", *runs, "--out", str(tmp_path / "rep")]) == 0
    assert "4 run(s) added" in capsys.readouterr().out
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "4 finished runs" in md and "| A+T |" in md
    # the same through `store add`; adding again changes nothing
    db = tmp_path / "hand.sqlite"
    assert main(["store", "add", *runs[:2], "--db", str(db)]) == 0
    assert main(["store", "add", *runs, "--db", str(db)]) == 0
    assert "2 run(s) added, 2 already there" in capsys.readouterr().out
    with ResultsStore.open(db, create=False) as store:
        assert sorted(r.run_key for r in store.runs("done")) == sorted(
            f"{m}-at-stat-paper-f01-s0{s}" for m in ("self", "cross") for s in (1, 2))
    assert main(["store", "add", str(tmp_path / "nope"), "--db", str(db)]) == 2
    assert "no such run folder" in capsys.readouterr().err
