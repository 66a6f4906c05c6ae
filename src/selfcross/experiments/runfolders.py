"""Run folders written by ``selfcross train`` -> rows of a results store, so ``report`` reads them.

A grid records each run in the store as it finishes; a run trained on its own (``train --out
RUN_DIR``) has the same folder contents (``config.json``, ``metrics.json``,
``predictions.npz``), so it is recorded the same way: its run key comes from its config
(model kind, modality set, pooling, preset, seed) and the fold it was trained on (``foldNN``
in the recorded data path; 1 otherwise), its config hash and data fingerprint from
``config.json``. A run the store already holds is left as it is.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfcross.errors import StoreError

#: Files a finished run folder holds (what ``train`` writes last).
REQUIRED: tuple[str, ...] = ("config.json", "metrics.json", "predictions.npz")


@dataclass
class AddedRuns:
    """What :func:`add_run_folders` did: run keys added, and folders already in the store."""

    db: Path
    added: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)


def run_key_of(config: dict[str, Any], run_dir: Path) -> Any:
    """The store's :class:`RunKey` of a run folder's ``config.json``."""
    from selfcross.experiments.grid import set_code
    from selfcross.experiments.store import RunKey

    model, train = config.get("model") or {}, config.get("train") or {}
    if not model.get("kind") or not model.get("modalities"):
        raise StoreError(f"{run_dir / 'config.json'}: names no model kind or modalities; not a run folder "
                         "written by selfcross train")
    fold_dir = str((config.get("data") or {}).get("fold_dir") or "")
    found = re.search(r"fold(\d+)$", fold_dir.rstrip("/\\"))
    fold = int(found.group(1)) if found else 1
    return RunKey(model["kind"], set_code(model["modalities"]), model.get("pooling", "stat"),
                  config.get("preset", "paper"), fold, int(train.get("seed", 1)))


def _checked_folder(run_dir: Path) -> None:
    if not run_dir.is_dir():
        raise StoreError(f"{run_dir}: no such run folder")
    missing = [f for f in REQUIRED if not (run_dir / f).is_file()]
    if missing:
        raise StoreError(f"{run_dir}: not a finished run folder ({', '.join(missing)} missing); "
                         "train it to the end first")


def add_run_folders(db: str | Path, run_dirs: Sequence[str | Path]) -> AddedRuns:
    """Record finished run folders in the results store ``db`` (created if missing).

    Every folder is checked before anything is written, so a bad folder adds nothing.

    Raises:
        StoreError: a folder that is missing or unfinished, or an unusable database.
    """
    from selfcross.config import config_hash
    from selfcross.experiments.executors import _read_run_folder
    from selfcross.experiments.store import ResultsStore

    if not run_dirs:
        raise StoreError("no run folder given")
    folders = [Path(d) for d in run_dirs]
    for d in folders:
        _checked_folder(d)
    read = [(d, *_read_run_folder(d)) for d in folders]
    result = AddedRuns(Path(db))
    with ResultsStore.open(db, lock=True) as store:
        for d, config, metrics, preds in read:
            key = run_key_of(config, d)
            h, fp = config_hash(config), str((config.get("data") or {}).get("fingerprint", ""))
            if store.status_of(key, h, fp) == "done":
                result.already.append(str(key))
                continue
            run_id = store.record_started(key, config, h, fp, str(d.resolve()))
            store.record_done(run_id, metrics, preds, list(config.get("class_names") or []),
                              float(metrics.get("wall_time_s", 0.0)), config=config)
            result.added.append(str(key))
    return result
