"""Choose the ``strong`` preset's switches on DEV splits only (RAVDESS audio, MELD text).

Each variant is the ``strong`` preset with some switches changed (``base`` = the preset as
it is). Every run trains on a fold's training split and selects its epoch on the dev split
as usual; this script prints **dev** numbers only (the runs also evaluate test once at the
end, as every run does, but it never reads them), so the choice cannot leak test data.

Data roots are the ones the benchmark scripts prepare (``ravdess_audio.py``,
``meld_text.py``); pass ``--root`` for another (e.g. an eGeMAPS or ComParE frame root).

Run, e.g. (2 folds x 1 seed while screening)::

    .venv-full/bin/python benchmarks/real/tune_strong.py ravdess --folds 2 --seeds 1 \\
        --variants base,conv,no_spec,no_weights

Prints one line per run and a table: variant, dev accuracy, balanced accuracy, macro and
weighted F1 (mean over runs), best epochs, seconds per run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

#: Variants: switches changed from the ``strong`` preset ("section.key": value).
VARIANTS: dict[str, dict[str, Any]] = {
    "base": {},
    "improved": {
        "preset": "improved",
        "train.max_epochs": 16,
        "train.patience": 6,
        "train.plateau_patience": 6,
    },
    "conv": {"model.time_mixing": "conv"},
    "none": {"model.time_mixing": "none"},
    "stride10": {"model.pool_stride": 10},
    "stride40": {"model.pool_stride": 40},
    "no_spec": {"model.spec_time_masks": 0, "model.spec_feat_masks": 0},
    "more_spec": {"model.spec_time_masks": 4, "model.spec_feat_masks": 4},
    "no_wdrop": {"model.word_dropout": 0.0},
    "wdrop2": {"model.word_dropout": 0.2},
    "tune_wv": {"model.tune_word_vectors": True},
    "balanced": {"train.class_weights": "balanced", "train.select_on": "f1_macro"},
    "no_weights": {"train.class_weights": "none"},
    "sqrt_weights": {"train.class_weights": "sqrt"},
    "sqrtw_f1w": {"train.class_weights": "sqrt", "train.select_on": "f1_weighted"},
    "sel_acc": {"train.select_on": "accuracy"},
    "sel_f1w": {"train.select_on": "f1_weighted"},
    "sel_bal": {"train.select_on": "balanced_accuracy"},
    "adam": {"train.optimizer": "adam", "train.weight_decay": 0.0},
    "wd05": {"train.weight_decay": 0.05},
    "plateau": {"train.schedule": "plateau", "train.warmup_epochs": 0},
    "lr3e-3": {"train.lr": 3e-3},
    "lr5e-4": {"train.lr": 5e-4},
    "hidden120": {"model.hidden": 120},
    "ep20": {"train.max_epochs": 20},
    "ep40": {"train.max_epochs": 40},
    "bs16": {"train.batch_size": 16},
    "lr1e-3": {"train.lr": 1e-3},
    # the preset before its budget was counted in updates (and its windows in frames)
    "epoch_budget": {"train.max_updates": 0, "train.warmup_updates": 0, "train.patience_updates": 0,
                     "train.min_updates": 0, "train.select_window": 1, "model.pool_steps": 0,
                     "model.spec_time_share": 0.0},
    "window1": {"train.select_window": 1},
}


def make_config(corpus: str, variant: dict[str, Any], seed: int, threads: int) -> Any:
    """The run config of one variant (strong preset, then the variant's switches)."""
    from selfcross.config import ModalityShape, ModelConfig, RunConfig, TrainConfig, apply_preset

    if corpus == "ravdess":
        model = ModelConfig(kind="self", modalities=("audio",), shapes={"audio": ModalityShape(500, 120, 25)})
        train = TrainConfig(seed=seed, num_threads=threads, device="cpu")
    elif corpus == "synthetic":
        model = ModelConfig(kind="self", modalities=("audio", "video", "text"))
        train = TrainConfig(seed=seed, num_threads=threads, device="cpu")
    else:
        model = ModelConfig(kind="self", modalities=("text",))
        train = TrainConfig(seed=seed, batch_size=64, num_threads=threads, device="cpu")
    cfg = apply_preset(RunConfig(model=model, train=train), variant.get("preset", "strong"))
    for name, value in variant.items():
        if name != "preset":
            section, key = name.split(".")
            setattr(getattr(cfg, section), key, value)
    cfg.model.validate()
    cfg.train.validate()
    return cfg


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("corpus", choices=("ravdess", "meld", "synthetic"))
    ap.add_argument("--root", type=Path, default=None, help="prepared data root (default: the benchmark's)")
    ap.add_argument("--variants", default="base", help=f"comma list of: {', '.join(VARIANTS)}")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=JSON",
        help="extra switch for every variant, e.g. train.max_epochs=20",
    )
    ap.add_argument("--folds", type=int, default=2, help="first N folds (RAVDESS, synthetic)")
    ap.add_argument("--seeds", default="1")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--log", type=Path, default=None, help="append one JSON line per run")
    args = ap.parse_args(argv)

    from selfcross.folds import list_folds
    from selfcross.training import train_run

    default_root = Path(tempfile.gettempdir()) / "selfcross-real" / args.corpus / "data"
    root = args.root or default_root
    folds = list_folds(root)[: args.folds] if args.corpus != "meld" else [root / "fold01"]
    extra = {k: json.loads(v) for k, v in (s.split("=", 1) for s in args.set)}
    rows = []
    for name in args.variants.split(","):
        variant = {**VARIANTS[name], **extra}
        runs = []
        for fold in folds:
            for seed in (int(s) for s in args.seeds.split(",")):
                cfg = make_config(args.corpus, variant, seed, args.threads)
                t = time.perf_counter()
                with tempfile.TemporaryDirectory() as out:
                    m = train_run(cfg, fold, Path(out) / "run", progress=False)
                dev = {k: m["dev"][k] for k in ("accuracy", "balanced_accuracy", "f1_macro", "f1_weighted")}
                run = {
                    "root": str(root),
                    "variant": name,
                    "extra": extra,
                    "fold": Path(fold).name,
                    "seed": seed,
                    **dev,
                    "best": m["best_epoch"],
                    "epochs": m["epochs_run"],
                    "s": time.perf_counter() - t,
                }
                runs.append(run)
                print(json.dumps(run), flush=True)
                if args.log:
                    with args.log.open("a") as f:
                        f.write(json.dumps(run) + "\n")
        mean = {k: 100 * float(np.mean([r[k] for r in runs])) for k in dev}
        rows.append(
            f"| {name} | {mean['accuracy']:.1f} | {mean['balanced_accuracy']:.1f} | "
            f"{mean['f1_macro']:.1f} | {mean['f1_weighted']:.1f} | {[r['best'] for r in runs]} | "
            f"{np.mean([r['s'] for r in runs]):.0f} |"
        )
    print(
        f"| variant ({args.corpus} dev, {root.name}) | accuracy | balanced | F1 macro | F1 weighted | "
        "best epochs | s/run |"
    )
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
