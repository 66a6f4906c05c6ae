"""The SQLite results store: schema, one-transaction writes, refusal of foreign files."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from selfcross.errors import StoreError
from selfcross.experiments.store import SCHEMA_VERSION, Predictions, ResultsStore, RunKey


def _preds(n=5, c=3, seed=0):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(c), n)
    return Predictions(rng.integers(0, c, n), p.argmax(1), p, [f"u{i}" for i in range(n)])


def _metrics(acc=0.5):
    return {"dev": {"accuracy": acc}, "test": {"accuracy": acc, "balanced_accuracy": acc - 0.1,
                                                 "f1_macro": 0.3}, "best_epoch": 2, "epochs_run": 3}


KEY = RunKey("self", "atv", "stat", "paper", 1, 1)


def test_roundtrip_and_version(tmp_path):
    db = tmp_path / "r.sqlite"
    with ResultsStore.open(db, lock=True) as s:
        assert s.schema_version() == SCHEMA_VERSION
        rid = s.record_started(KEY, {"a": 1}, "h1", "fp", str(tmp_path / "run"))
        assert s.status_of(KEY, "h1", "fp") == "running"
        p = _preds()
        s.record_done(rid, _metrics(), p, ["x", "y", "z"], 1.5)
    with ResultsStore.open(db, create=False) as s:
        (row,) = s.runs()
        assert row.status == "done" and row.test_accuracy == 0.5 and row.class_names == ["x", "y", "z"]
        assert row.test_metrics["f1_macro"] == 0.3 and row.config == {"a": 1}
        assert str(KEY) == row.run_key == "self-atv-stat-paper-f01-s01"
        back = s.predictions(rid)
        np.testing.assert_array_equal(back.y_true, p.y_true)
        np.testing.assert_allclose(back.probs, p.probs, atol=1e-6)
        assert back.ids == p.ids
    jm = sqlite3.connect(db).execute("PRAGMA journal_mode").fetchone()[0]
    assert jm == "wal"


def test_failed_then_restart_clears(tmp_path):
    with ResultsStore.open(tmp_path / "r.sqlite") as s:
        rid = s.record_started(KEY, {}, "h", "fp", "d")
        s.record_failed(rid, "boom", 0.1)
        assert s.runs("failed")[0].error == "boom"
        rid2 = s.record_started(KEY, {}, "h", "fp", "d")
        assert rid2 == rid
        row = s.runs(None)[0]
        assert row.status == "running" and row.error is None and row.attempts == 2
        s.record_done(rid, _metrics(), _preds(), ["a", "b", "c"], 1.0)
        with pytest.raises(StoreError, match="already done"):
            s.record_started(KEY, {}, "h", "fp", "d")
        # another config hash is another row
        s.record_started(KEY, {}, "h2", "fp", "d")
        assert s.counts() == {"running": 1, "done": 1, "failed": 0}


def test_record_done_is_one_transaction(tmp_path):
    with ResultsStore.open(tmp_path / "r.sqlite") as s:
        rid = s.record_started(KEY, {}, "h", "fp", "d")
        bad = _metrics()
        bad["test"]["oops"] = object()  # fails after the prediction rows were inserted
        with pytest.raises(TypeError):
            s.record_done(rid, bad, _preds(), ["a"], 1.0)
        assert s.runs(None)[0].status == "running"
        assert len(s.predictions(rid).y_true) == 0


def test_not_sqlite_refused_untouched(tmp_path):
    db = tmp_path / "notes.sqlite"
    content = b"my precious notes\n" * 10
    db.write_bytes(content)
    with pytest.raises(StoreError, match="not an SQLite database"):
        ResultsStore.open(db)
    assert db.read_bytes() == content


def test_newer_schema_refused_untouched(tmp_path):
    db = tmp_path / "r.sqlite"
    ResultsStore.open(db).close()
    con = sqlite3.connect(db)
    con.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    con.commit()
    con.close()
    before = db.read_bytes()
    with pytest.raises(StoreError, match="newer"):
        ResultsStore.open(db)
    assert db.read_bytes() == before


def test_foreign_sqlite_refused(tmp_path):
    db = tmp_path / "other.sqlite"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="not a selfcross results database"):
        ResultsStore.open(db)


def test_second_writer_refused(tmp_path):
    db = tmp_path / "r.sqlite"
    with ResultsStore.open(db, lock=True):
        with pytest.raises(StoreError, match="another selfcross grid"):
            ResultsStore.open(db, lock=True)
        with ResultsStore.open(db, create=False) as reader:  # readers need no lock
            assert reader.counts()["done"] == 0
    ResultsStore.open(db, lock=True).close()


def test_missing_db_without_create(tmp_path):
    with pytest.raises(StoreError, match="no such"):
        ResultsStore.open(tmp_path / "nope.sqlite", create=False)
