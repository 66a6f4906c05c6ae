"""Sentiment regression: metrics against hand-computed values, and a run end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from feature_files import write_mfn
from selfcross.cli import main
from selfcross.config import ModelConfig, RunConfig, TrainConfig
from selfcross.prepare import import_features
from selfcross.tasks import n_outputs, regression_metrics, task_loss
from selfcross.training import train_run


def test_regression_metrics_equal_hand_computed_values():
    y_true = np.array([-3.0, -1.2, 0.0, 0.4, 2.6, 3.5])
    y_pred = np.array([-2.5, 0.6, -0.4, 0.5, 3.4, 1.5])
    m = regression_metrics(y_true, y_pred)
    # |errors| = 0.5, 1.8, 0.4, 0.1, 0.8, 2.0 -> 5.6 / 6
    assert m["mae"] == pytest.approx(5.6 / 6)
    dt, dp = y_true - y_true.mean(), y_pred - y_pred.mean()
    assert m["pearson_r"] == pytest.approx((dt @ dp) / np.sqrt((dt @ dt) * (dp @ dp)))
    # has-0: truth >= 0 = F F T T T T, pred >= 0 = F T F T T T -> 4 / 6 right
    assert m["acc2_has0"] == pytest.approx(4 / 6)
    # non-0 drops the 0.0 truth: truth > 0 = F F T T T, pred > 0 = F T T T T -> 4 / 5
    assert m["acc2_non0"] == pytest.approx(4 / 5)
    # Acc-7: clip to [-3, 3], round half to even: truth -3 -1 0 0 3 3, pred -2 1 -0 0 3 2 -> 3 / 6
    assert m["acc7"] == pytest.approx(3 / 6)
    # Acc-5: clip to [-2, 2]: truth -2 -1 0 0 2 2, pred -2 1 0 0 2 2 -> 5 / 6
    assert m["acc5"] == pytest.approx(5 / 6)
    # weighted F1 of has-0: class "non-negative" (4 true, 4 predicted, 3 hit) F1 = 3/4,
    # class "negative" (2 true, 2 predicted, 1 hit) F1 = 1/2; weights 4/6 and 2/6
    assert m["f1_has0"] == pytest.approx(4 / 6 * 3 / 4 + 2 / 6 * 1 / 2)
    assert m["n"] == 6


def test_acc7_rounds_half_to_even_like_mmsa():
    m = regression_metrics(np.array([0.5, 1.5, 2.5, -0.5]), np.array([0.0, 2.0, 2.0, 0.0]))
    assert m["acc7"] == 1.0


def test_pearson_r_is_none_for_constant_predictions():
    assert regression_metrics(np.array([1.0, 2.0]), np.array([0.5, 0.5]))["pearson_r"] is None


def test_regression_has_one_output_and_l1_loss():
    assert n_outputs("regression", 2) == 1 and n_outputs("classification", 2) == 2
    out = torch.tensor([[1.0], [-2.0]])
    assert task_loss("regression", out, torch.tensor([0.0, 0.0])).item() == pytest.approx(1.5)


@pytest.mark.slow
def test_regression_run_selects_on_dev_mae_and_feature_sizes_come_from_the_data(tmp_path):
    write_mfn(tmp_path / "mfn")
    root = import_features("mfn", tmp_path / "mfn", tmp_path / "root", center=3).root
    config = RunConfig(model=ModelConfig(kind="cross", modalities=("audio", "video")),
                       train=TrainConfig(seed=1, max_epochs=4, patience=2, num_threads=1, task="regression"))
    metrics = train_run(config, root / "fold01", tmp_path / "run", progress=False)
    saved = json.loads(Path(tmp_path / "run" / "config.json").read_text())
    assert saved["model"]["n_classes"] == 1
    feat = {m: saved["model"]["shapes"][m]["feat_dim"] for m in ("audio", "video")}
    assert feat == {"audio": 5, "video": 3}
    maes = [h["dev_mae"] for h in metrics["history"]]
    assert metrics["best_epoch"] == 1 + int(np.argmin(maes))
    assert metrics["dev"]["mae"] == pytest.approx(min(maes))
    rc = main(["evaluate", "--run", str(tmp_path / "run"), "--data", str(root / "fold01"), "--json"])
    assert rc == 0


def test_regression_without_scores_is_one_line_exit_2(tmp_path, capsys):
    from feature_files import write_mult

    write_mult(tmp_path / "iemocap_data.pkl", iemocap=True)
    root = import_features("mult", tmp_path / "iemocap_data.pkl", tmp_path / "root", trust_pickle=True).root
    rc = main(["train", "--data", str(root / "fold01"), "--modalities", "av", "--task", "regression",
               "--out", str(tmp_path / "run"), "--max-epochs", "1", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "no sentiment scores" in err and len(err.splitlines()) == 1


@pytest.mark.slow
def test_grid_and_report_of_a_regression_study(tmp_path):
    from selfcross.analysis.report import make_report
    from selfcross.experiments.grid import run_grid
    from selfcross.experiments.store import ResultsStore

    write_mfn(tmp_path / "mfn")
    root = import_features("mfn", tmp_path / "mfn", tmp_path / "root", center=3).root
    summary = run_grid(root, models=("self", "cross"), modalities=("av",), seeds="1-2",
                       db=tmp_path / "r.sqlite", workers=1, device="cpu", progress=False, max_epochs=2,
                       threads_per_worker=1, task="regression", log=lambda _: None)
    assert summary.done == 4 and summary.failed == 0
    with ResultsStore.open(tmp_path / "r.sqlite", create=False) as store:
        run = store.runs()[0]
        preds = store.predictions(run.id)
    truth = np.load(root / "fold01" / "test_score.npy")
    np.testing.assert_allclose(preds.y_true, truth, rtol=1e-6)  # scores, not class indices
    assert preds.y_pred.dtype == np.float64 and preds.probs.shape == (len(truth), 0)
    assert run.test_metrics["mae"] == pytest.approx(np.mean(np.abs(preds.y_pred - preds.y_true)), abs=1e-5)
    md = make_report(tmp_path / "r.sqlite", tmp_path / "report").read_text()
    assert "Self vs cross (test MAE, lower is better)" in md and "| paper | A+V | 2 |" in md
    assert (tmp_path / "report" / "figures" / "scatter_paper_self_av.png").is_file()
    assert "![curves_av](figures/curves_av.png)" in md  # learning curves with the dev MAE
    assert (tmp_path / "report" / "figures" / "curves_av.png").is_file()
    results = json.loads((tmp_path / "report" / "results.json").read_text())
    assert results["task"] == "regression" and results["comparisons"][0]["n_pairs"] == 2


def test_scores_with_the_wrong_row_count_name_the_file(tmp_path):
    from selfcross.errors import DataError
    from selfcross.folds import read_fold

    write_mfn(tmp_path / "mfn")
    fold = import_features("mfn", tmp_path / "mfn", tmp_path / "root", center=3).fold
    np.save(fold / "dev_score.npy", np.zeros(3, dtype=np.float32))
    with pytest.raises(DataError, match=r"dev_score\.npy: has 3 rows but the labels have 6"):
        read_fold(fold)
