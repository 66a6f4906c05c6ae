"""``selfcross baseline``: the linear floor, its store rows, its place in the report, bad input."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from selfcross.analysis.report import make_report
from selfcross.cli import main
from selfcross.experiments.baseline import run_baseline
from selfcross.experiments.store import Predictions, ResultsStore, RunKey
from selfcross.folds import read_fold
from selfcross.models.linear import C_GRID, split_features
from selfcross.synthetic import make_synthetic
from selfcross.training.metrics import classification_metrics


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return make_synthetic(tmp_path_factory.mktemp("syn") / "data", "small", seed=0, n_folds=2,
                          n_utterances=140)


def test_features_are_statistics_of_valid_frames_and_present_words(root):
    fold = read_fold(root / "fold01", "at")
    split = fold.train
    f = split_features(split, ("audio", "text"))
    audio = np.load(root / "fold01" / "train_audio_mfcc.npy").astype(np.float64)
    length = np.load(root / "fold01" / "train_audio_seqN.npy")
    ids = np.load(root / "fold01" / "train_nlp_trans.npy")
    emb = np.load(root / "fold01" / "W_embedding.npy").astype(np.float64)
    feat_dim = audio.shape[2]
    i = int(np.argmin(length))  # the shortest clip: padding would change its statistics most
    assert length[i] < audio.shape[1]
    valid = audio[split.rows[i], : length[split.rows[i]]]
    np.testing.assert_allclose(f.dense[i, :feat_dim], valid.mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(f.dense[i, feat_dim : 2 * feat_dim], valid.std(axis=0), atol=1e-6)
    words = ids[split.rows[i]][ids[split.rows[i]] != 0]
    np.testing.assert_allclose(f.dense[i, 2 * feat_dim :], emb[words].mean(axis=0), atol=1e-6)
    assert f.docs[i] == " ".join(str(w) for w in words)


def test_cli_writes_tables_runs_and_store_then_resumes(root, tmp_path, capsys):
    out, db = tmp_path / "bl", tmp_path / "results.sqlite"
    argv = ["baseline", "--data", str(root), "--out", str(out), "--modalities", "a,at", "--db", str(db)]
    assert main(argv) == 0
    with ResultsStore.open(db, create=False) as s:
        runs = s.runs("done")
        keys = sorted(r.run_key for r in runs)
        assert keys == [f"linear-{m}-stat-none-f0{k}-s00" for m in ("a", "at") for k in (1, 2)]
        run = next(r for r in runs if r.run_key == "linear-at-stat-none-f01-s00")
        preds = s.predictions(run.id)
    metrics = json.loads((out / "fold01-at" / "metrics.json").read_text())
    # C is the grid value with the best dev accuracy (first of equals), scored once on test
    by_c = metrics["dev_accuracy_by_C"]
    assert metrics["C"] == C_GRID[int(np.argmax([by_c[repr(c)] for c in C_GRID]))]
    assert metrics["n_features"]["tfidf"] > 0
    test = read_fold(root / "fold01", "at").test
    np.testing.assert_array_equal(preds.y_true, test.labels)
    assert run.test_metrics == classification_metrics(preds.y_true, preds.y_pred, run.class_names)
    assert metrics["test"] == run.test_metrics
    table = (out / "results.md").read_text()
    assert "| at | fold02 |" in table and "| at | mean (std), 2 folds |" in table
    assert (out / "results.csv").read_text().count("\n") == 5
    capsys.readouterr()
    assert main(argv) == 0
    assert capsys.readouterr().err.count("already done") == 4
    with ResultsStore.open(db, create=False) as s:
        assert [(r.id, r.finished_at) for r in s.runs("done")] == [(r.id, r.finished_at) for r in runs]


def test_cli_missing_modality_is_one_line_exit_2(root, tmp_path, capsys):
    audio_only = tmp_path / "audio_only"
    shutil.copytree(root / "fold01", audio_only / "fold01")
    for p in audio_only.glob("fold01/*"):
        if "video" in p.name or "nlp" in p.name or p.name == "W_embedding.npy":
            p.unlink()
    rc = main(["baseline", "--data", str(audio_only), "--out", str(tmp_path / "o"), "--modalities", "av"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "has no video" in err and "this fold has: audio" in err and "fold01" in err
    assert not (tmp_path / "o" / "results.sqlite").exists()
    # the same with the fold folder itself as --data
    one_fold = str(audio_only / "fold01")
    rc = main(["baseline", "--data", one_fold, "--out", str(tmp_path / "o"), "--modalities", "t"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "has no text" in err and "this fold has: audio" in err


def _add_deep(store, kind, fold, seed, floor, skill):
    """A deep run on the linear run's fold: same utterances and fingerprint, ``skill`` = share right."""
    rng = np.random.default_rng(100 * fold + seed + (kind == "cross"))
    y = floor["y"]
    k = len(floor["classes"])
    pred = np.where(rng.random(len(y)) < skill, y, (y + 1) % k)
    acc = float(np.mean(pred == y))
    metrics = classification_metrics(y, pred, floor["classes"])
    rid = store.record_started(RunKey(kind, "at", "stat", "improved", fold, seed), {}, "h", floor["fp"], "/r")
    store.record_done(rid, {"dev": {"accuracy": acc}, "test": metrics, "best_epoch": 1, "epochs_run": 2},
                      Predictions(y, pred, np.eye(k)[pred], None), floor["classes"], 1.0)


def test_report_shows_linear_beside_self_and_cross_with_paired_tests(root, tmp_path):
    db = tmp_path / "results.sqlite"
    run_baseline(root, tmp_path / "bl", modalities="at", db=db, log=lambda _: None)
    with ResultsStore.open(db, lock=True) as s:
        floors = {}
        for r in s.runs("done"):
            floors[r.fold] = {"y": s.predictions(r.id).y_true, "fp": r.data_fingerprint,
                              "classes": r.class_names, "acc": r.test_metrics["accuracy"]}
        assert min(f["acc"] for f in floors.values()) > 0.3  # the floor learns something
        for fold, floor in floors.items():
            for seed in (1, 2, 3):
                _add_deep(s, "self", fold, seed, floor, 1.0)
                _add_deep(s, "cross", fold, seed, floor, 0.0)
    out = tmp_path / "rep"
    md = make_report(db, out).read_text()
    res = json.loads((out / "results.json").read_text())
    assert "| modalities | accuracy self | accuracy cross | accuracy linear |" in md
    assert "### Against the linear floor" in md
    comp = {(e["a"], e["b"]): e for e in res["linear_comparisons"]}
    assert set(comp) == {("self", "linear"), ("cross", "linear")}
    assert {e["n_pairs"] for e in comp.values()} == {6}  # 2 folds x 3 seeds, the floor shared by seeds
    acc = comp[("cross", "linear")]["metrics"]["accuracy"]
    assert acc["linear_mean"] == pytest.approx(np.mean([f["acc"] for f in floors.values()]))
    assert acc["cross_mean"] == 0.0
    assert acc["verdict"].startswith("the linear floor is significantly better on accuracy")
    assert comp[("self", "linear")]["metrics"]["accuracy"]["verdict"].startswith(
        "self-attention is significantly better on accuracy")
    assert [c["n_runs"] for c in res["cells"] if c["variant"] == "linear"] == [2]
    assert any(f.startswith("figures/confusion_linear_at") for f in res["figures"])
    runs_csv = (out / "runs.csv").read_text()
    assert runs_csv.count("linear-at-stat-none") == 2
