"""Which epoch to keep on a small dev split: split-half evidence on dev data only.

Each fold's dev split is cut in two halves (stratified by label, alternate rows): *A* plays the
dev split (the run selects on it), *B* plays the test split (a half-dev view written under
``--work``; the fold's real test split is never opened). Every epoch the model is scored on
both halves (the epoch scores on B are recorded, never used by the run), and the run trains to
its epoch cap without early stopping, so that one trajectory answers every selection rule:
the epoch a rule picks from the A scores and that epoch's B score. Then A and B swap. Rules:
``last`` (the last epoch), ``window W`` (the best trailing mean of W epochs of A's selection
metric, W = 1 the paper's rule), ``loss`` (the lowest A loss), each optionally only among the
epochs after ``min`` updates.

Run::

    .venv-full/bin/python benchmarks/real/selection_evidence.py --root ROOT --folds 1 --seeds 1

Prints one table (mean over folds x seeds x the two halves) and the per-run choices as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

RULES = (("window 1", 1), ("window 3", 3), ("window 5", 5))


def half_views(fold: Path, work: Path) -> list[Path]:
    """Two views of ``fold``: dev = half A / test = half B, and swapped (train files linked)."""
    from selfcross.folds import read_fold

    labels = read_fold(fold, modalities=None).dev.labels
    halves = [np.zeros(len(labels), bool), np.zeros(len(labels), bool)]
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        halves[0][rows[0::2]], halves[1][rows[1::2]] = True, True
    views = []
    for name, (a, b) in (("AB", halves), ("BA", halves[::-1])):
        view = work / f"{fold.parent.name}-{fold.name}-{name}" / fold.name
        view.mkdir(parents=True, exist_ok=True)
        for f in fold.parent.iterdir():
            if f.is_file() and not (view.parent / f.name).exists():
                (view.parent / f.name).symlink_to(f.resolve())
        for f in fold.iterdir():
            _write(f, view, a, b)
        views.append(view)
    return views


def _write(f: Path, view: Path, a: np.ndarray, b: np.ndarray) -> None:
    """Link a train/shared file; cut a dev file into dev (rows a) and test (rows b)."""
    if f.name.startswith("test_") or (view / f.name).exists():
        return
    if not f.name.startswith("dev_"):
        (view / f.name).symlink_to(f.resolve())
        return
    rest = f.name[len("dev_"):]
    if f.suffix == ".txt":
        lines = np.array(f.read_text().splitlines())
        (view / f.name).write_text("\n".join(lines[a]) + "\n")
        (view / f"test_{rest}").write_text("\n".join(lines[b]) + "\n")
    else:
        arr = np.load(f)
        np.save(view / f.name, arr[a])
        np.save(view / f"test_{rest}", arr[b])


def record_half_b() -> None:
    """Make every epoch's dev scores also carry the held-out half's (``heldout_*``)."""
    from selfcross.training import loop
    from selfcross.training.batches import SplitData

    original = loop._dev_scores

    def scores(session: Any) -> dict[str, float]:
        out = original(session)
        if not hasattr(session, "_heldout"):
            m = tuple(session.config.model.modalities)
            session._heldout = SplitData(session.fold.test, m, session.dtype, session.device,
                                         session.standardizer, task=session.config.train.task,
                                         text_ids=session.config.model.owns_word_vectors)
        ev = loop.evaluate_model(session.model, session._heldout, session.config.class_names)
        out.update({f"heldout_{k}": ev["metrics"][k] for k in ("accuracy", "f1_weighted")})
        return out

    loop._dev_scores = scores


def choices(history: list[dict], metric: str, min_epoch: int) -> dict[str, dict]:
    """Per rule: the epoch it keeps (among epochs >= ``min_epoch``) and that epoch's held-out scores."""
    a = np.array([h[f"dev_{metric}"] for h in history])
    eligible = np.arange(len(a)) + 1 >= min_epoch
    out = {}
    for name, w in RULES:
        smooth = np.array([a[max(0, i - w + 1): i + 1].mean() for i in range(len(a))])
        smooth[~eligible] = -np.inf
        out[name] = int(np.argmax(smooth))
    loss = np.array([h["dev_loss"] for h in history])
    loss[~eligible] = np.inf
    out["loss"], out["last"] = int(np.argmin(loss)), len(a) - 1
    return {k: {"epoch": i + 1, "acc": history[i]["heldout_accuracy"],
                "f1w": history[i]["heldout_f1_weighted"]} for k, i in out.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", type=Path, required=True, help="a prepared data root")
    ap.add_argument("--modalities", default=None, help="modality letters (default: the fold's)")
    ap.add_argument("--work", type=Path, required=True, help="half-dev views and runs")
    ap.add_argument("--folds", default="1")
    ap.add_argument("--seeds", default="1")
    ap.add_argument("--train", default="{}", help="JSON of train switches on top of strong")
    ap.add_argument("--log", type=Path, default=None, help="append one JSON line per run")
    args = ap.parse_args(argv)
    from selfcross.config import ModelConfig, RunConfig, TrainConfig, apply_preset
    from selfcross.folds import fold_modalities, list_folds
    from selfcross.labels import parse_modalities
    from selfcross.training import train_run
    from selfcross.training.budget import resolve_budget

    record_half_b()
    rows = []
    for k in (int(f) for f in args.folds.split(",")):
        fold = list_folds(args.root)[k - 1]
        mods = parse_modalities(args.modalities) if args.modalities else fold_modalities(fold)
        for view in half_views(fold, args.work / "views"):
            for seed in (int(s) for s in args.seeds.split(",")):
                train = TrainConfig(seed=seed, num_threads=1, device="cpu")
                cfg = apply_preset(RunConfig(model=ModelConfig(modalities=mods), train=train), "strong")
                for key, value in json.loads(args.train).items():
                    setattr(cfg.train, key, value)
                cfg.train.patience, cfg.train.patience_updates = 10**6, 0  # to the cap: every rule sees all
                m = train_run(cfg, view, args.work / "runs" / f"{view.parent.name}-s{seed}", progress=False,
                              overwrite=True)
                from selfcross.folds import read_fold

                n_train = len(read_fold(view, modalities=mods).train)
                min_epoch = resolve_budget(cfg.train, n_train).min_epochs
                row = {"view": view.parent.name, "seed": seed, "epochs": len(m["history"]),
                       "min_epoch": min_epoch,
                       "rules": choices(m["history"], cfg.train.select_on, 1),
                       "rules_after_min": choices(m["history"], cfg.train.select_on, min_epoch)}
                print(json.dumps(row), flush=True)
                if args.log:
                    with args.log.open("a") as f:
                        f.write(json.dumps(row) + "\n")
                rows.append(row)
    for key in ("rules", "rules_after_min"):
        print(f"\n{key}: held-out half, mean over {len(rows)} runs")
        for rule in rows[0][key]:
            acc = np.mean([r[key][rule]["acc"] for r in rows]) * 100
            f1 = np.mean([r[key][rule]["f1w"] for r in rows]) * 100
            ep = np.mean([r[key][rule]["epoch"] for r in rows])
            print(f"| {rule} | {acc:.1f} | {f1:.1f} | {ep:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
