"""``grid --robustness``: perturbed test scores stored beside the clean ones, reported self vs cross."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from selfcross.analysis.report import make_report
from selfcross.cli import main
from selfcross.errors import ConfigError
from selfcross.experiments.grid import run_grid
from selfcross.experiments.store import ResultsStore
from selfcross.training import evaluate_run

TINY = {"max_epochs": 2, "progress": False, "threads_per_worker": 1, "device": "cpu", "log": lambda m: None}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from selfcross.synthetic import make_synthetic

    root = tmp_path_factory.mktemp("data") / "root"
    return make_synthetic(root, "small", seed=0, n_folds=1, n_utterances=140)


def test_bad_specs_fail_before_anything_runs(data_root: Path, tmp_path: Path, capsys) -> None:
    db = tmp_path / "r.sqlite"
    with pytest.raises(ConfigError, match="no planned run uses video"):
        run_grid(data_root, models=("self",), modalities=("a", "at"), seeds="1", db=db, robustness="drop:v",
                 **TINY)
    assert not db.exists()
    bad = (("drop:q", "unknown modality"), ("noise:a=x", "not a number"), ("mute:a", "use drop:m"))
    for spec, problem in bad:
        assert main(["grid", "--data", str(data_root), "--models", "self", "--modalities", "a",
                     "--seeds", "1", "--db", str(db), "--robustness", spec, "--no-progress"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and problem in err[0]
    assert not db.exists()


@pytest.mark.slow
def test_grid_stores_perturbed_scores_and_report_compares_them(data_root: Path, tmp_path: Path) -> None:
    db = tmp_path / "r.sqlite"
    args = {"models": ("self", "cross"), "modalities": ("a", "at"), "seeds": "1-2", "db": db, **TINY}
    s = run_grid(data_root, robustness="drop:a,drop:t", **args)
    # planned: self-a (cross needs two modalities), self-at, cross-at, 2 seeds each; a runs take no
    # drop (dropping their only modality would leave no input)
    assert s.complete and s.planned == 6 and s.robustness_scored == 4 * 2
    with ResultsStore.open(db, create=False) as store:
        rows = store.robustness()
        runs = {r.id: r for r in store.runs("done")}
        n_test = {i: len(store.predictions(i).y_true) for i in runs}
    assert len(rows) == 8 and {r.perturbation for r in rows} == {"drop:a", "drop:t"}
    # the stored score is the one evaluate --perturb gives for that run
    r = next(x for x in rows if x.perturbation == "drop:t")
    run = runs[r.run_id]
    again = evaluate_run(run.run_dir, Path(data_root) / "fold01", perturb="drop:t")
    assert r.test_metrics == json.loads(json.dumps(again))
    assert all(len(x.y_pred) == n_test[x.run_id] for x in rows)
    # resuming scores nothing twice
    assert run_grid(data_root, robustness="drop:a,drop:t", **args).robustness_scored == 0

    md = make_report(db, tmp_path / "rep").read_text()
    assert "### Robustness to a perturbed modality" in md
    table = [line for line in md.splitlines() if line.startswith("| A+T | `drop:t`")]
    assert len(table) == 1 and "| 2 |" in table[0]
    results = json.loads((tmp_path / "rep" / "results.json").read_text())
    entries = {(e["modalities"], e["perturbation"]): e for e in results["robustness"]}
    assert set(entries) == {("at", "drop:a"), ("at", "drop:t")}  # self vs cross needs both models
    e = entries[("at", "drop:t")]
    con = sqlite3.connect(db)
    clean = dict(con.execute("SELECT id, test_accuracy FROM runs").fetchall())
    con.close()
    self_changes = [x.test_metrics["accuracy"] - clean[x.run_id] for x in rows
                    if x.perturbation == "drop:t" and runs[x.run_id].model_kind == "self"]
    assert e["self_change"] == pytest.approx(float(np.mean(self_changes)))
    assert e["mcnemar"] is not None and e["n_pairs"] == 2
    assert (tmp_path / "rep" / "figures" / "robustness_at.png").is_file()
