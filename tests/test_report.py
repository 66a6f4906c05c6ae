"""Report generation from a small results database built in the test."""

from __future__ import annotations

import csv
import json
import zlib

import numpy as np
import pytest

from selfcross.analysis.report import make_report
from selfcross.errors import StoreError
from selfcross.experiments.store import Predictions, ResultsStore, RunKey

CLASSES = ["angry", "happy", "sad", "neutral"]


def _add_run(store, kind, mods, fold, seed, skill, pooling="stat", n=60):
    rng = np.random.default_rng(zlib.crc32(f"{kind}{mods}{fold}{seed}{pooling}".encode()))
    y = np.random.default_rng(fold).integers(0, 4, n)  # same test labels for a fold
    correct = rng.random(n) < skill
    pred = np.where(correct, y, (y + rng.integers(1, 4, n)) % 4)
    probs = np.full((n, 4), 0.1)
    probs[np.arange(n), pred] = 0.7
    acc = float(np.mean(pred == y))
    bacc = float(np.mean([np.mean(pred[y == c] == c) for c in range(4) if np.any(y == c)]))
    key = RunKey(kind, mods, pooling, "paper", fold, seed)
    cfg = {"model": {"kind": kind, "shapes": {"audio": {"seq_len": 20, "feat_dim": 8, "mixed_len": 5}}}}
    rid = store.record_started(key, cfg, "h", f"fp{fold}", f"/runs/{key}")
    store.record_done(rid, {"dev": {"accuracy": acc}, "test": {"accuracy": acc, "balanced_accuracy": bacc,
                                                                  "f1_macro": acc - 0.05},
                            "best_epoch": 3, "epochs_run": 5},
                      Predictions(y, pred, probs, [f"f{fold}_u{i}" for i in range(n)]), CLASSES, 2.0)
    return acc


@pytest.fixture()
def db(tmp_path):
    path = tmp_path / "results.sqlite"
    with ResultsStore.open(path, lock=True) as s:
        for fold in (1, 2, 3):
            for seed in (1, 2, 3):
                _add_run(s, "self", "a", fold, seed, 0.4)
                for mods in ("av", "atv"):
                    _add_run(s, "self", mods, fold, seed, 0.75)
                    _add_run(s, "cross", mods, fold, seed, 0.55)
                _add_run(s, "cross", "atv", fold, seed, 0.5, pooling="concat")
        rid = s.record_started(RunKey("self", "v", "stat", "paper", 1, 1), {}, "h", "fp1", "/r")
        s.record_failed(rid, "Traceback...\nRuntimeError: out of memory", 1.0)
    return path


def test_report_files_tables_and_figures(db, tmp_path):
    out = tmp_path / "rep"
    md_path = make_report(db, out)
    md = md_path.read_text()
    assert md_path == out / "report.md"
    assert "| A+V+T |" in md and "### Self vs cross" in md and "**Verdict**" in md
    assert "cross-noSP" in md  # ablation table present
    assert "out of memory" in md  # failed run listed
    assert "Compared with the paper" not in md  # 4 classes: not IEMOCAP-shaped
    # self (skill .75) vs cross (.55) over 9 pairs x 60 utterances: clearly different
    assert "- A+V+T accuracy: self-attention is significantly better (signed-rank, Holm p = " in md
    res = json.loads((out / "results.json").read_text())
    cells = {(c["variant"], c["modalities"]): c for c in res["cells"]}
    assert cells[("self", "atv")]["n_runs"] == 9 and cells[("self", "a")]["n_runs"] == 9
    comp = {c["modalities"]: c for c in res["comparisons"]}
    assert set(comp) == {"av", "atv"} and comp["atv"]["n_pairs"] == 9
    mc = comp["atv"]["mcnemar"]
    assert mc["n"] == mc["details"]["b"] + mc["details"]["c"] > 0
    holm_p = comp["atv"]["metrics"]["accuracy"]["wilcoxon_holm"]
    assert holm_p >= comp["atv"]["metrics"]["accuracy"]["wilcoxon"]["p_value"]
    rows = list(csv.DictReader(open(out / "results.csv")))
    self_atv = next(r for r in rows if r["model"] == "self" and r["modalities"] == "atv")
    with ResultsStore.open(db, create=False) as s:
        accs = [r.test_accuracy for r in s.runs() if r.run_key.startswith("self-atv-")]
    assert float(self_atv["accuracy_mean"]) == pytest.approx(np.mean(accs), abs=1e-6)
    assert float(self_atv["accuracy_std"]) == pytest.approx(np.std(accs, ddof=1), abs=1e-6)
    assert len(list(csv.DictReader(open(out / "runs.csv")))) == 6 * 9
    figs = sorted(p.name for p in (out / "figures").iterdir())
    assert figs == ["confusion_cross_atv.png", "confusion_self_atv.png", "recall_atv.png", "scores.png"]
    for f in (out / "figures").iterdir():
        assert f.stat().st_size > 5000 and f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Self vs cross" in (out / "summary.txt").read_text()


def test_paper_labels(db, tmp_path):
    md = make_report(db, tmp_path / "rep", paper_labels=True).read_text()
    assert "WA self" in md and "UA cross" in md and "WA = balanced accuracy" in md


def test_empty_or_bad_db(tmp_path):
    empty = tmp_path / "empty.sqlite"
    ResultsStore.open(empty).close()
    with pytest.raises(StoreError, match="no finished runs"):
        make_report(empty, tmp_path / "out")
    with pytest.raises(StoreError, match="no such"):
        make_report(tmp_path / "missing.sqlite", tmp_path / "out")
    assert not (tmp_path / "missing.sqlite").exists()


def test_cli_report_and_bad_db(db, tmp_path, capsys):
    from selfcross.cli import main

    assert main(["report", "--db", str(db), "--out", str(tmp_path / "cli")]) == 0
    assert "Self vs cross" in capsys.readouterr().out
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"\x00garbage" * 100)
    assert main(["report", "--db", str(bad), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "not an SQLite database" in err and str(bad) in err
    assert bad.read_bytes() == b"\x00garbage" * 100


def test_verdict_explains_an_inconclusive_design():
    from selfcross.analysis.report import _verdict
    from selfcross.analysis.stats import bootstrap_mean_diff, paired_t, wilcoxon_paired

    x, y = [0.6, 0.62, 0.64, 0.66, 0.68, 0.7], [0.5] * 6  # 6 pairs, all favour x
    m = {"wilcoxon": wilcoxon_paired(x, y).to_dict(), "paired_t": paired_t(x, y).to_dict(),
         "bootstrap": bootstrap_mean_diff(x, y).to_dict(), "wilcoxon_holm": 4 * 0.03125,
         "holm_reachable": False}
    v = _verdict(m, "accuracy")
    assert v.startswith("no significant difference") and "the bootstrap CI" in v
    from selfcross.analysis.report import _power_note

    note = _power_note([{"n_pairs": 6, "metrics": {"accuracy": m, "balanced_accuracy": m}}] * 4)
    assert "with 6 (fold, seed) pairs the smallest possible signed-rank p is 0.0312" in note
    assert "no difference could be called significant here" in note


def test_a_p_value_of_zero_stays_zero_through_holm(db, monkeypatch):
    from selfcross.analysis import report
    from selfcross.analysis.stats import TestResult

    def p_zero(x, y):
        return TestResult("wilcoxon", 0.0, 0.0, len(x), "", {"min_p": 0.0})

    monkeypatch.setattr(report, "wilcoxon_paired", p_zero)
    with ResultsStore.open(db, create=False) as s:
        comparisons = report.compare(s, report.collect(s))
    assert comparisons
    for e in comparisons:
        for metric in ("accuracy", "balanced_accuracy"):
            assert e["metrics"][metric]["wilcoxon_holm"] == 0.0
            assert e["metrics"][metric]["verdict"].startswith("self-attention is significantly better")


def test_mcnemar_is_printed_on_the_accuracy_row_only(db, tmp_path):
    md = make_report(db, tmp_path / "rep").read_text()
    header = next(line for line in md.splitlines() if "McNemar p" in line)
    col = [c.strip() for c in header.split("|")].index("McNemar p (b/c)")
    rows = [[c.strip() for c in line.split("|")] for line in md.splitlines()
            if line.startswith("| A+V") and len(line.split("|")) == len(header.split("|"))]
    by_metric = {(r[1], r[2]): r[col] for r in rows}
    assert by_metric[("A+V+T", "accuracy")].endswith(")")  # "p (b/c)"
    assert by_metric[("A+V+T", "balanced accuracy")] == "-"
    assert by_metric[("A+V", "balanced accuracy")] == "-"


def _add_versioned_run(store, seed, version):
    key = RunKey("self", "a", "stat", "paper", 1, seed)
    env = {} if version is None else {"results_version": version}
    rid = store.record_started(key, {"environment": env}, "h", "fp1", f"/runs/{key}")
    y = np.array([0, 1, 2, 3])
    store.record_done(rid, {"test": {"accuracy": 1.0, "balanced_accuracy": 1.0}},
                      Predictions(y, y, np.eye(4), None), CLASSES, 1.0, config={"environment": env})


def test_report_says_when_a_store_mixes_results_versions(tmp_path):
    import selfcross

    one, mixed = tmp_path / "one.sqlite", tmp_path / "mixed.sqlite"
    with ResultsStore.open(one, lock=True) as s:
        for seed in (1, 2):
            _add_versioned_run(s, seed, selfcross.RESULTS_VERSION)
    with ResultsStore.open(mixed, lock=True) as s:
        _add_versioned_run(s, 1, selfcross.RESULTS_VERSION)
        _add_versioned_run(s, 2, None)  # a run from before versions were recorded
    md = make_report(one, tmp_path / "r1").read_text()
    assert "mix code versions" not in md
    assert json.loads((tmp_path / "r1" / "results.json").read_text())["mixed_versions"] is None
    md = make_report(mixed, tmp_path / "r2").read_text()
    line = next(x for x in md.splitlines() if "mix code versions" in x)
    assert f"{selfcross.RESULTS_VERSION}: 1 run(s)" in line and "unrecorded: 1 run(s)" in line
    assert sum("mix code versions" in x for x in md.splitlines()) == 1
    assert "mix code versions" in (tmp_path / "r2" / "summary.txt").read_text()
