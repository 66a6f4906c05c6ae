"""The results store: one SQLite file per study, written by the grid driver only.

Why SQLite (stdlib ``sqlite3``): a study of hundreds of runs must survive ``kill -9`` at any
moment, be resumable, and be queried later (tables, significance tests on per-utterance
predictions). SQLite gives atomic transactions and a single portable file; WAL mode lets a
report be generated while a grid is still writing.

Rules this module enforces:

* **One writer.** Only the grid driver process writes; workers send results back to it.
  :meth:`ResultsStore.open` with ``lock=True`` takes an exclusive ``flock`` on
  ``<db>.lock`` so a second driver on the same file fails with :class:`StoreError`.
* **No half rows.** A run's result (metrics, scalar columns, every prediction row) is written
  in ONE transaction (:meth:`ResultsStore.record_done`); a crash leaves either the old row
  (``running``) or the complete new one.
* **Never overwrite what we do not understand.** Opening a file that is not SQLite, or a
  store whose ``schema_version`` is newer than :data:`SCHEMA_VERSION`, raises
  :class:`StoreError` before anything is written.

The schema is documented in ``docs/results-store.md`` and in :data:`SCHEMA_SQL`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from selfcross.errors import StoreError
from selfcross.tasks import DEFAULT_TASK, Task, clean_json, get_task, task_of_config

try:  # POSIX only; on other systems the one-writer rule is by convention only
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

#: Version of the schema below; bump on any incompatible change (and migrate older files).
#: 2: ``runs.task`` and ``runs.data_root`` (a run's task is part of its identity; version-1
#: files are migrated when opened, see :func:`_migrate_v1`).
SCHEMA_VERSION = 2

#: Run status values.
STATUSES: tuple[str, ...] = ("running", "done", "failed")

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id                      INTEGER PRIMARY KEY,
    run_key                 TEXT NOT NULL,     -- e.g. self-atv-stat-paper-f01-s01 (+ the task's suffix)
    task                    TEXT NOT NULL DEFAULT 'classification',  -- selfcross.tasks name
    data_root               TEXT,              -- fingerprint of the whole data root (NULL: not recorded)
    model_kind              TEXT NOT NULL,     -- self | cross | self+cross
    modalities              TEXT NOT NULL,     -- modality code in canonical order: a, vt, atv
    pooling                 TEXT NOT NULL,     -- stat | concat | mean
    preset                  TEXT NOT NULL,     -- paper | improved
    fold                    INTEGER NOT NULL,  -- 1-based fold number (fold01 = 1)
    seed                    INTEGER NOT NULL,
    config_json             TEXT NOT NULL,     -- RunConfig.to_dict() as submitted
    config_hash             TEXT NOT NULL,     -- sha256 of the result-relevant config
    data_fingerprint        TEXT NOT NULL,     -- selfcross.data.fingerprint(fold_dir)
    status                  TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed')),
    error                   TEXT,              -- failed runs: the error text
    attempts                INTEGER NOT NULL DEFAULT 0,
    started_at              TEXT,              -- ISO 8601 UTC
    finished_at             TEXT,
    wall_time_s             REAL,
    run_dir                 TEXT,              -- the run folder (config.json, model.safetensors, ...)
    class_names             TEXT,              -- JSON list, label order
    dev_metrics             TEXT,              -- JSON: the task's metrics on dev (strict: NaN is null)
    test_metrics            TEXT,              -- JSON: the task's metrics on test
    dev_accuracy            REAL,
    dev_balanced_accuracy   REAL,
    test_accuracy           REAL,
    test_balanced_accuracy  REAL,
    test_f1_macro           REAL,
    best_epoch              INTEGER,
    epochs_run              INTEGER,
    UNIQUE (run_key, config_hash, data_fingerprint)
);
CREATE INDEX IF NOT EXISTS runs_cell ON runs (model_kind, modalities, pooling, preset, status);
CREATE TABLE IF NOT EXISTS predictions (
    run_id        INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    idx           INTEGER NOT NULL,   -- position in the fold's test split
    utterance_id  TEXT,               -- S_ids.txt entry when the fold has one
    y_true        INTEGER NOT NULL,   -- class index, or a score (a REAL) for regression
    y_pred        INTEGER NOT NULL,
    probs         TEXT NOT NULL,      -- JSON list of class probabilities (label order), [] for regression
    PRIMARY KEY (run_id, idx)
);
CREATE TABLE IF NOT EXISTS robustness (
    run_id        INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    perturbation  TEXT NOT NULL,      -- canonical spec: drop:t, noise:a=10, shuffle:v, swap:a
    seed          INTEGER NOT NULL,   -- seed of the perturbation's randomness
    test_metrics  TEXT NOT NULL,      -- JSON: the task's metrics on the perturbed test split
    y_pred        TEXT NOT NULL,      -- JSON list: class or score per test utterance, split order
    PRIMARY KEY (run_id, perturbation, seed)
);
CREATE TABLE IF NOT EXISTS history (
    run_id        INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    epoch         INTEGER NOT NULL,   -- 1-based
    row_json      TEXT NOT NULL,      -- JSON: the metrics.json history row (train_loss, dev_loss, lr, ...)
    PRIMARY KEY (run_id, epoch)
);
"""


@dataclass(frozen=True)
class RunKey:
    """The identity of one grid cell x fold x seed x task (what a run *is*, not how it was
    configured). The task's ``key_suffix`` keeps the keys of two tasks apart."""

    model_kind: str
    modalities: str
    pooling: str
    preset: str
    fold: int
    seed: int
    task: str = DEFAULT_TASK

    def __str__(self) -> str:
        kind = self.model_kind.replace("+", "_")
        return (f"{kind}-{self.modalities}-{self.pooling}-{self.preset}-f{self.fold:02d}-s{self.seed:02d}"
                f"{get_task(self.task).key_suffix}")


@dataclass
class RunRow:
    """One row of ``runs`` (metrics decoded from JSON)."""

    id: int
    run_key: str
    task: str
    data_root: str | None
    model_kind: str
    modalities: str
    pooling: str
    preset: str
    fold: int
    seed: int
    config: dict[str, Any]
    config_hash: str
    data_fingerprint: str
    status: str
    error: str | None
    attempts: int
    started_at: str | None
    finished_at: str | None
    wall_time_s: float | None
    run_dir: str | None
    class_names: list[str]
    dev_metrics: dict[str, Any]
    test_metrics: dict[str, Any]
    test_accuracy: float | None
    test_balanced_accuracy: float | None
    best_epoch: int | None
    epochs_run: int | None


@dataclass
class Predictions:
    """Per-utterance test predictions of one run.

    Attributes:
        y_true: int64 [N]; y_pred: int64 [N]; probs: float64 [N, C]; ids: N strings or ``None``.
        A regression run's ``y_true`` / ``y_pred`` are float64 scores and ``probs`` is [N, 0].
    """

    y_true: np.ndarray
    y_pred: np.ndarray
    probs: np.ndarray
    ids: list[str] | None


@dataclass
class Robustness:
    """One run's test scores with one modality perturbed (``selfcross grid --robustness``)."""

    run_id: int
    perturbation: str
    seed: int
    test_metrics: dict[str, Any]
    y_pred: np.ndarray


def now_iso() -> str:
    """Current UTC time, ISO 8601 with seconds."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _check_sqlite_file(path: Path) -> None:
    """Refuse a non-empty file whose header is not SQLite's (so we never write into it)."""
    if not path.exists():
        return
    if path.is_dir():
        raise StoreError(f"{path}: is a folder, not a results database")
    if path.stat().st_size == 0:
        return
    with open(path, "rb") as f:
        head = f.read(16)
    if head != b"SQLite format 3\x00":
        raise StoreError(f"{path}: not an SQLite database (refusing to touch it; give another --db path)")


class ResultsStore:
    """A results database. Use :meth:`open` (or :func:`open_store`), then :meth:`close`.

    Reading methods work on any store; writing methods are for the single driver process.
    """

    def __init__(self, path: Path, conn: sqlite3.Connection, lock_fd: int | None) -> None:
        self.path = path
        self._conn = conn
        self._lock_fd = lock_fd

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, path: str | Path, create: bool = True, lock: bool = False) -> ResultsStore:
        """Open (and with ``create`` initialise) the store at ``path``.

        Args:
            path: the SQLite file.
            create: create the file and schema if absent; ``False`` = it must exist.
            lock: take the exclusive writer lock (``<path>.lock``); the grid driver does.

        Raises:
            StoreError: not an SQLite file, newer schema version, missing file with
                ``create=False``, or another driver holds the lock.
        """
        path = Path(path)
        if not path.exists() and not create:
            raise StoreError(f"{path}: no such results database")
        _check_sqlite_file(path)
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
        lock_fd = _take_lock(path) if lock else None
        try:
            conn = sqlite3.connect(str(path), timeout=30.0, isolation_level=None)
            conn.row_factory = sqlite3.Row
            try:
                if _check_version(path, conn) == 1:
                    _migrate_v1(conn)
                conn.execute("PRAGMA foreign_keys = ON")
                if create:
                    conn.execute("PRAGMA journal_mode = WAL")
                    conn.execute("PRAGMA synchronous = NORMAL")
                    _init_schema(path, conn)
            except sqlite3.DatabaseError as e:
                conn.close()
                raise StoreError(f"{path}: cannot be used as a results database ({e})") from None
            except StoreError:
                conn.close()
                raise
        except BaseException:
            _release_lock(lock_fd)
            raise
        return cls(path, conn, lock_fd)

    def close(self) -> None:
        """Close the connection and release the writer lock."""
        self._conn.close()
        _release_lock(self._lock_fd)
        self._lock_fd = None

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: all statements inside commit together or not at all."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    # ------------------------------------------------------------------ writing
    def record_started(
        self, key: RunKey, config: dict[str, Any], config_hash: str, data_fingerprint: str, run_dir: str,
        data_root: str | None = None,
    ) -> int:
        """Mark a run ``running`` (new row, or reuse of a stale running/failed row); return its id.

        ``data_root``: the data root's fingerprint (which runs form one study). The run's task
        is its config's (``train.task``), whatever ``key`` says: the config is what trains. Any
        predictions of a reused row are deleted in the same transaction.
        """
        key = dataclasses.replace(key, task=task_of_config(config).name)
        with self._tx() as c:
            row = c.execute(
                "SELECT id, status FROM runs WHERE run_key=? AND config_hash=? AND data_fingerprint=?",
                (str(key), config_hash, data_fingerprint),
            ).fetchone()
            if row is not None and row["status"] == "done":
                raise StoreError(f"{self.path}: run {key} is already done; refusing to restart it")
            values = (
                key.model_kind, key.modalities, key.pooling, key.preset, key.fold, key.seed,
                json.dumps(config, sort_keys=True), now_iso(), run_dir, get_task(key.task).name, data_root,
            )
            if row is None:
                cur = c.execute(
                    "INSERT INTO runs (run_key, config_hash, data_fingerprint, model_kind, modalities, "
                    "pooling, preset, fold, seed, config_json, started_at, run_dir, task, data_root, status, "
                    "attempts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'running', 1)",
                    (str(key), config_hash, data_fingerprint, *values),
                )
                return int(cur.lastrowid)
            run_id = int(row["id"])
            c.execute("DELETE FROM predictions WHERE run_id=?", (run_id,))
            c.execute("DELETE FROM history WHERE run_id=?", (run_id,))
            c.execute(
                "UPDATE runs SET model_kind=?, modalities=?, pooling=?, preset=?, fold=?, seed=?, "
                "config_json=?, started_at=?, run_dir=?, task=?, data_root=?, status='running', error=NULL, "
                "finished_at=NULL, wall_time_s=NULL, dev_metrics=NULL, test_metrics=NULL, "
                "dev_accuracy=NULL, dev_balanced_accuracy=NULL, test_accuracy=NULL, "
                "test_balanced_accuracy=NULL, test_f1_macro=NULL, best_epoch=NULL, epochs_run=NULL, "
                "attempts=attempts+1 WHERE id=?",
                (*values, run_id),
            )
            return run_id

    def record_done(
        self,
        run_id: int,
        metrics: dict[str, Any],
        predictions: Predictions,
        class_names: Sequence[str],
        wall_time_s: float,
        config: dict[str, Any] | None = None,
    ) -> None:
        """Store a finished run: metrics, scalar columns, all predictions and the per-epoch
        history in ONE transaction.

        Args:
            metrics: ``metrics.json`` content (``dev``, ``test``, ``best_epoch``, ``epochs_run``,
                ``history``).
            predictions: the test split's predictions (``probs`` [N, C]).
            config: the run folder's ``config.json`` (replaces the planned config when given:
                it has the fitted shapes, the data path and the environment).
        """
        dev, test = metrics.get("dev", {}), metrics.get("test", {})
        n = len(predictions.y_true)
        if len(predictions.y_pred) != n or len(predictions.probs) != n:
            raise StoreError(f"run {run_id}: y_true, y_pred and probs have different lengths")
        ids = predictions.ids if predictions.ids is not None else [None] * n
        task = self._task_of(run_id)
        truth, pred = task.stored(predictions.y_true), task.stored(predictions.y_pred)
        rows = [
            (run_id, i, None if ids[i] is None else str(ids[i]), truth[i], pred[i],
             json.dumps([round(float(p), 6) for p in predictions.probs[i]]))
            for i in range(n)
        ]
        epochs = [(run_id, int(h["epoch"]), _json(h)) for h in metrics.get("history", [])]
        with self._tx() as c:
            c.execute("DELETE FROM predictions WHERE run_id=?", (run_id,))
            c.executemany(
                "INSERT INTO predictions (run_id, idx, utterance_id, y_true, y_pred, probs) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
            c.execute("DELETE FROM history WHERE run_id=?", (run_id,))
            c.executemany("INSERT INTO history (run_id, epoch, row_json) VALUES (?, ?, ?)", epochs)
            if config is not None:
                c.execute(
                    "UPDATE runs SET config_json=? WHERE id=?", (json.dumps(config, sort_keys=True), run_id)
                )
            c.execute(
                "UPDATE runs SET status='done', error=NULL, finished_at=?, wall_time_s=?, class_names=?, "
                "dev_metrics=?, test_metrics=?, dev_accuracy=?, dev_balanced_accuracy=?, test_accuracy=?, "
                "test_balanced_accuracy=?, test_f1_macro=?, best_epoch=?, epochs_run=? WHERE id=?",
                (
                    now_iso(), float(wall_time_s), json.dumps(list(class_names)), _json(dev), _json(test),
                    _num(dev.get("accuracy")), _num(dev.get("balanced_accuracy")),
                    _num(test.get("accuracy")), _num(test.get("balanced_accuracy")),
                    _num(test.get("f1_macro")), metrics.get("best_epoch"), metrics.get("epochs_run"),
                    run_id,
                ),
            )

    def record_failed(self, run_id: int, error: str, wall_time_s: float | None = None) -> None:
        """Mark a run ``failed`` with its error text (it is retried only with ``retry_failed``)."""
        with self._tx() as c:
            c.execute("DELETE FROM predictions WHERE run_id=?", (run_id,))
            c.execute("DELETE FROM history WHERE run_id=?", (run_id,))
            c.execute(
                "UPDATE runs SET status='failed', error=?, finished_at=?, wall_time_s=? WHERE id=?",
                (error, now_iso(), wall_time_s, run_id),
            )

    # ------------------------------------------------------------------ reading
    def status_of(self, key: RunKey, config_hash: str, data_fingerprint: str) -> str | None:
        """Status of this exact run (key + config hash + data fingerprint), ``None`` if never started."""
        row = self._conn.execute(
            "SELECT status FROM runs WHERE run_key=? AND config_hash=? AND data_fingerprint=?",
            (str(key), config_hash, data_fingerprint),
        ).fetchone()
        return None if row is None else str(row["status"])

    def runs(self, status: str | None = "done", task: str | None = None) -> list[RunRow]:
        """All runs (``status=None``) or those with one status (and of one ``task``), oldest first."""
        where = {"status": status, "task": task}
        clauses = [f"{k}=?" for k, v in where.items() if v is not None]
        sql = "SELECT * FROM runs" + (" WHERE " + " AND ".join(clauses) if clauses else "")
        args = tuple(v for v in where.values() if v is not None)
        return [_row(r) for r in self._conn.execute(sql + " ORDER BY id", args)]

    def predictions(self, run_id: int) -> Predictions:
        """The stored test predictions of one run, in split order."""
        rows = self._conn.execute(
            "SELECT utterance_id, y_true, y_pred, probs FROM predictions WHERE run_id=? ORDER BY idx",
            (run_id,),
        ).fetchall()
        ids = [r["utterance_id"] for r in rows]
        kind = self._task_of(run_id).prediction_dtype
        return Predictions(
            y_true=np.array([r["y_true"] for r in rows], dtype=kind),
            y_pred=np.array([r["y_pred"] for r in rows], dtype=kind),
            probs=_probs([json.loads(r["probs"]) for r in rows]),
            ids=None if not ids or any(i is None for i in ids) else [str(i) for i in ids],
        )

    def record_robustness(
        self, run_id: int, perturbation: str, seed: int, metrics: dict[str, Any], y_pred: np.ndarray
    ) -> None:
        """Store (or replace) one run's test scores under one perturbation, in one transaction
        (predictions as the run's task stores them: classes, or float scores)."""
        stored = self._task_of(run_id).stored(y_pred)
        with self._tx() as c:
            c.execute(
                "INSERT OR REPLACE INTO robustness (run_id, perturbation, seed, test_metrics, y_pred) "
                "VALUES (?, ?, ?, ?, ?)",
                (run_id, perturbation, int(seed), _json(metrics), json.dumps(stored, allow_nan=False)),
            )

    def robustness(self) -> list[Robustness]:
        """Every stored perturbed evaluation (empty for a store written before they existed)."""
        tables = {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "robustness" not in tables:
            return []
        rows = self._conn.execute(
            "SELECT b.run_id, b.perturbation, b.seed, b.test_metrics, b.y_pred, r.task FROM robustness b "
            "JOIN runs r ON r.id = b.run_id ORDER BY b.run_id, b.perturbation, b.seed"
        )
        return [
            Robustness(int(r["run_id"]), str(r["perturbation"]), int(r["seed"]),
                       json.loads(r["test_metrics"]),
                       np.array(json.loads(r["y_pred"]), dtype=get_task(r["task"]).prediction_dtype))
            for r in rows
        ]

    def _task_of(self, run_id: int) -> Task:
        row = self._conn.execute("SELECT task FROM runs WHERE id=?", (run_id,)).fetchone()
        if row is None:
            raise StoreError(f"{self.path}: no run with id {run_id}")
        return get_task(row["task"])

    def history(self, run_id: int) -> list[dict[str, Any]]:
        """One run's per-epoch history rows (as in its ``metrics.json``), by epoch; empty when
        the run was stored before histories were kept."""
        tables = {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "history" not in tables:
            return []
        rows = self._conn.execute("SELECT row_json FROM history WHERE run_id=? ORDER BY epoch", (run_id,))
        return [json.loads(r["row_json"]) for r in rows]

    def counts(self) -> dict[str, int]:
        """Number of runs per status."""
        out = dict.fromkeys(STATUSES, 0)
        for r in self._conn.execute("SELECT status, COUNT(*) AS n FROM runs GROUP BY status"):
            out[str(r["status"])] = int(r["n"])
        return out

    def schema_version(self) -> int:
        """The file's schema version."""
        row = self._conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        return int(row["value"])


def results_versions(runs: Iterable[RunRow]) -> dict[str, int]:
    """Finished runs per recorded ``results_version`` (``"unrecorded"`` for runs that predate it)."""
    counts: dict[str, int] = {}
    for r in runs:
        v = (r.config.get("environment") or {}).get("results_version")
        name = "unrecorded" if v is None else str(v)
        counts[name] = counts.get(name, 0) + 1
    return counts


def mixed_versions_notice(runs: Iterable[RunRow]) -> str | None:
    """One line when ``runs`` come from more than one results version, else ``None``."""
    counts = results_versions(runs)
    if len(counts) < 2:
        return None
    parts = ", ".join(f"{v}: {n} run(s)" for v, n in sorted(counts.items()))
    return (f"these results mix code versions whose numbers can differ (results_version {parts}); "
            "use a new --db, or retrain the older runs, before comparing them")


def open_store(path: str | Path, create: bool = True, lock: bool = False) -> ResultsStore:
    """Shorthand for :meth:`ResultsStore.open`."""
    return ResultsStore.open(path, create=create, lock=lock)


def _probs(rows: list[list[float]]) -> np.ndarray:
    """[N, C] class probabilities; [N, 0] for a task without classes (empty lists stored)."""
    if not rows or not rows[0]:
        return np.zeros((len(rows), 0))
    return np.array(rows, dtype=np.float64)


def _num(x: Any) -> float | None:
    return None if x is None else float(x)


def _json(x: Any) -> str:
    """Strict JSON (NaN/inf as null), readable by SQLite's json_extract and by any JSON parser."""
    return json.dumps(clean_json(x), sort_keys=True, allow_nan=False)


def _row(r: sqlite3.Row) -> RunRow:
    return RunRow(
        id=int(r["id"]), run_key=r["run_key"], task=r["task"], data_root=r["data_root"],
        model_kind=r["model_kind"], modalities=r["modalities"],
        pooling=r["pooling"], preset=r["preset"], fold=int(r["fold"]), seed=int(r["seed"]),
        config=json.loads(r["config_json"]), config_hash=r["config_hash"],
        data_fingerprint=r["data_fingerprint"], status=r["status"], error=r["error"],
        attempts=int(r["attempts"]), started_at=r["started_at"], finished_at=r["finished_at"],
        wall_time_s=r["wall_time_s"], run_dir=r["run_dir"],
        class_names=json.loads(r["class_names"]) if r["class_names"] else [],
        dev_metrics=json.loads(r["dev_metrics"]) if r["dev_metrics"] else {},
        test_metrics=json.loads(r["test_metrics"]) if r["test_metrics"] else {},
        test_accuracy=r["test_accuracy"], test_balanced_accuracy=r["test_balanced_accuracy"],
        best_epoch=r["best_epoch"], epochs_run=r["epochs_run"],
    )


def _check_version(path: Path, conn: sqlite3.Connection) -> int | None:
    """The file's schema version (``None``: an empty file); StoreError if the file holds tables
    but not ours, or a newer schema version."""
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if not tables:
        return None
    if "meta" not in tables:
        raise StoreError(f"{path}: an SQLite file, but not a selfcross results database (no meta table)")
    row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    if row is None:
        raise StoreError(f"{path}: results database without a schema_version")
    try:
        version = int(row[0])
    except ValueError:
        raise StoreError(f"{path}: unreadable schema_version {row[0]!r}") from None
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path}: schema version {version} is newer than this selfcross understands "
            f"({SCHEMA_VERSION}); upgrade selfcross (the file was not modified)"
        )
    if version < 1:
        raise StoreError(f"{path}: schema version {version} is older and has no migration")
    return version


def _migrate_v1(conn: sqlite3.Connection) -> None:
    """Version 1 -> 2, in one transaction: every run gets its task (from its stored config; none
    named = the default) and, for a task with a key suffix, that suffix on its run key, so
    that runs of two tasks no longer share a key. ``data_root`` stays NULL (not recorded)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(f"ALTER TABLE runs ADD COLUMN task TEXT NOT NULL DEFAULT '{DEFAULT_TASK}'")
        conn.execute("ALTER TABLE runs ADD COLUMN data_root TEXT")
        for row in conn.execute("SELECT id, run_key, config_json FROM runs").fetchall():
            task = task_of_config(json.loads(row["config_json"]))
            conn.execute("UPDATE runs SET task=?, run_key=? WHERE id=?",
                         (task.name, row["run_key"] + task.key_suffix, row["id"]))
        conn.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),))
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _init_schema(path: Path, conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        for stmt in SCHEMA_SQL.split(";"):
            if stmt.strip():
                conn.execute(stmt)
        conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
        )
        conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('created_at', ?)", (now_iso(),))
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _take_lock(path: Path) -> int | None:
    if fcntl is None:  # pragma: no cover
        return None
    lock_path = path.with_name(path.name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise StoreError(
            f"{path}: another selfcross grid is writing to this database (lock {lock_path}); "
            "only one driver may write at a time"
        ) from None
    return fd


def _release_lock(fd: int | None) -> None:
    if fd is None or fcntl is None:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
