"""``selfcross train`` and ``selfcross evaluate``: one run of the paper's protocol, and its re-check.

The options are named after the paper's vocabulary: the model kinds are its "Self",
"Cross" and "Cross+Self" rows, ``--no-stat-pool`` is its "noSP" ablation, ``--seed`` is one
of the ten repetitions per fold. Both commands print the metrics by what they are
(``accuracy``, ``balanced_accuracy``); ``--paper-labels`` adds the paper's WA/UA labels.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from selfcross.cli.options import add_config_argument, add_no_progress, config_file_or_preset
from selfcross.cli.trackers import add_logger_arguments, logger_options
from selfcross.config import (
    ModelConfig,
    RunConfig,
    TrainConfig,
    apply_config_file,
    choices,
    set_epoch_cap,
)
from selfcross.labels import modality_code, parse_modalities
from selfcross.tasks import DEFAULT_TASK, TASKS, get_task, task_help


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` and ``evaluate`` sub-commands."""
    _register_train(subparsers)
    _register_evaluate(subparsers)


# ----------------------------------------------------------------------------------- train
def _register_train(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train one model on one fold with the paper's protocol",
        description=(
            "Train one self-/cross-attention model on one fold, as the authors did: Adam "
            "(lr 1e-3), batches of 32, cross-entropy; the learning rate drops 10x after 10 "
            "epochs without a lower dev loss; training stops after 10 epochs without a higher "
            "dev accuracy; the best dev-accuracy weights are restored and the test split is "
            "evaluated once. Writes RUN_DIR/config.json, model.safetensors, metrics.json (with "
            "the per-epoch history, also as history.csv) and predictions.npz (a run folder is "
            "complete or absent)."
        ),
    )
    _add_run_arguments(p)
    _add_model_switches(p)
    _add_runtime_arguments(p)
    _add_output_arguments(p)
    add_logger_arguments(p)
    p.set_defaults(func=_cmd_train)


def _add_run_arguments(p: argparse.ArgumentParser) -> None:
    """What one run is: the fold, the model, its modalities, the seed, the run folder."""
    p.add_argument(
        "--data",
        required=True,
        metavar="FOLD_DIR",
        help="one fold folder (train/dev/test arrays in the processed IEMOCAP layout). The paper "
        "trains and tests each of IEMOCAP's 5 session folds separately",
    )
    p.add_argument(
        "--model",
        choices=choices(ModelConfig, "kind"),
        default="self",
        help="self: each modality attends to itself (the paper's 'Self' rows); cross: each "
        "modality queries every other one (its 'Cross' rows, 6 attention blocks for A+V+T; "
        "needs 2+ modalities); self+cross: both sets of attention vectors pooled together "
        "(its 'Cross+Self' ablation) (default: %(default)s)",
    )
    p.add_argument(
        "--modalities",
        default=None,
        metavar="SET",
        help="letters of the modalities to use: a = audio (MFCC frames), v = video (ResNet "
        "frame features), t = text (word vectors); the paper's table has a, v, t, av, at, "
        "vt, atv (default: every modality the fold has, atv for the paper's folds)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=1,
        help="seeds weight initialisation, dropout and batch order; the paper repeats every "
        "fold with seeds 1..10 and reports the mean (its seed-to-seed std is ~2 points) "
        "(default: %(default)s)",
    )
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="run folder to create")
    p.add_argument("--task", choices=TASKS, default=DEFAULT_TASK, help=task_help())


def _add_model_switches(p: argparse.ArgumentParser) -> None:
    """The paper's noSP ablation and the preset of switches."""
    p.add_argument(
        "--no-stat-pool",
        action="store_true",
        help="replace statistical pooling ([std, mean] across the attention vectors) by their "
        "concatenation: the paper's 'noSP' ablation. Uni-modal self models never pool",
    )
    add_config_argument(p)
    p.add_argument(
        "--preset",
        choices=choices(RunConfig, "preset"),
        default=None,
        help="paper: the authors' computation, quirks included (padding attended and averaged, "
        "raw MFCC values); improved: padding masks, length-aware GRUs, masked means, "
        "train-split standardization, bf16 autocast on CUDA; strong: improved plus choices for small real "
        "corpora (order-preserving temporal pooling instead of the time-mixing conv, SpecAugment-style "
        "masks and word dropout, AdamW, warm-up + cosine schedule with a budget counted in optimizer "
        "updates, model selection on dev weighted F1; docs/improved.md) (default: paper, or the --config "
        "file's)",
    )
    p.add_argument(
        "--tune-word-vectors",
        action="store_true",
        help="train the word vectors with the model, starting from the fold's W_embedding (frozen "
        "GloVe vectors know nothing of emotion; fine-tuning lets them learn it); needs text stored "
        "as word ids",
    )


def _add_runtime_arguments(p: argparse.ArgumentParser) -> None:
    """Where and how fast the run computes (the recorded ones can change the numbers)."""
    p.add_argument(
        "--device",
        default="auto",
        metavar="auto|cpu|cuda",
        help="where to train (auto = CUDA when present); same seed + device + threads give identical metrics",
    )
    p.add_argument(
        "--dtype",
        choices=choices(TrainConfig, "dtype"),
        default="float32",
        help="float precision; the authors trained in float64, float32 is faster (default: %(default)s)",
    )
    p.add_argument(
        "--kernels",
        choices=choices(TrainConfig, "kernels"),
        default="fast",
        help="fast = our CPU attention/GRU kernels (same function, much faster); reference = the "
        "authors' ops (nn.MultiheadAttention with weights requested, nn.GRU) (default: %(default)s)",
    )
    p.add_argument(
        "--max-epochs",
        type=int,
        default=None,
        metavar="N",
        help=f"cap on epochs, exactly (the budget is then counted in epochs: a preset's update counts "
        f"are dropped); early stopping usually "
        f"ends sooner; 0 = no cap, as in the authors' loop: refused with the strong preset's cosine "
        f"schedule, which decays to 0 at the cap "
        f"(default: {TrainConfig.max_epochs}, the strong preset's own budget with --preset strong)",
    )
    p.add_argument(
        "--modality-dropout",
        type=float,
        default=0.0,
        metavar="P",
        help="drop each modality of each training utterance with probability P (zeroed, length 0; "
        "every utterance keeps one), for robustness to a missing modality (default: 0, off)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help="torch CPU threads (default: torch's choice); recorded, since it can change the numbers",
    )
    p.add_argument(
        "--no-tune-malloc",
        action="store_true",
        help="leave glibc's allocator settings alone (by default freed training buffers are kept "
        "for reuse, which makes CPU steps faster; results are the same either way)",
    )


def _add_output_arguments(p: argparse.ArgumentParser) -> None:
    """What the command prints and whether it may replace a run folder."""
    p.add_argument(
        "--paper-labels",
        action="store_true",
        help="also label balanced accuracy 'WA' and plain accuracy 'UA', as the paper does "
        "(most speech-emotion papers use the opposite names)",
    )
    add_no_progress(p, "no progress bar and no header line (metrics are still printed)")
    p.add_argument("--overwrite", action="store_true", help="replace RUN_DIR if it already holds a run")


def build_run_config(args: argparse.Namespace) -> RunConfig:
    """The :class:`RunConfig` described by ``train``'s options (preset switches applied)."""
    if args.modalities is None:
        from selfcross.folds.reader import fold_modalities  # start-up cost: loaded when the command runs

        modalities = fold_modalities(args.data)
    else:
        modalities = parse_modalities(args.modalities)
    model = ModelConfig(
        kind=args.model,
        modalities=modalities,
        pooling="concat" if args.no_stat_pool else "stat",
    )
    train = TrainConfig(
        seed=args.seed,
        dtype=args.dtype,
        kernels=args.kernels,
        device=args.device,
        num_threads=args.threads,
        modality_dropout=args.modality_dropout,
        task=args.task,
    )
    config = apply_config_file(RunConfig(model=model, train=train), config_file_or_preset(args))
    if args.tune_word_vectors:
        config.model.tune_word_vectors = True
    if args.max_epochs is not None:
        set_epoch_cap(config, args.max_epochs)
    return config


def _cmd_train(args: argparse.Namespace) -> int:
    # start-up cost: loaded when the command runs
    from selfcross.training import format_metrics_table, train_run
    from selfcross.training.callbacks import run_params  # start-up cost: loaded when the command runs

    config = build_run_config(args)
    loggers = logger_options(args)
    loggers.check()
    if not args.no_progress:
        code = modality_code(config.model.modalities).upper()
        print(
            f"training {config.model.kind} {code} seed {config.train.seed} ({config.preset} preset) "
            f"on {args.data}"
        )
    callbacks = loggers.open(Path(args.out).name, run_params(config.to_dict()))
    try:
        metrics = train_run(
            config,
            args.data,
            args.out,
            progress=not args.no_progress,
            overwrite=args.overwrite,
            tune_allocator=not args.no_tune_malloc,
            callbacks=callbacks,
        )
    finally:
        for callback in callbacks:
            callback.close()
    print(
        format_metrics_table({"dev": metrics["dev"], "test": metrics["test"]}, paper_labels=args.paper_labels,
                             metrics=get_task(config.train.task).metrics)
    )
    print(
        f"best epoch {metrics['best_epoch']} of {metrics['epochs_run']}, "
        f"wall time {metrics['wall_time_s']:.1f} s -> {Path(args.out)}"
    )
    return 0


# -------------------------------------------------------------------------------- evaluate
def _register_evaluate(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="re-evaluate a run folder on a fold split",
        description=(
            "Rebuild a trained model from RUN_DIR (config.json + model.safetensors, with its "
            "stored standardization) and score one split of a fold. On the run's own fold, "
            "device and thread count, --split test reproduces metrics.json exactly."
        ),
    )
    p.add_argument("--run", required=True, metavar="RUN_DIR", help="a run folder written by train")
    p.add_argument("--data", required=True, metavar="FOLD_DIR", help="the fold folder to evaluate on")
    p.add_argument(
        "--split",
        choices=("train", "dev", "test"),
        default="test",
        help="which split to score (default: %(default)s)",
    )
    p.add_argument(
        "--device",
        default=None,
        metavar="auto|cpu|cuda",
        help="where to evaluate (default: the run's own device setting)",
    )
    p.add_argument(
        "--paper-labels",
        action="store_true",
        help="also label balanced accuracy 'WA' and plain accuracy 'UA', as the paper does",
    )
    p.add_argument(
        "--perturb",
        metavar="SPEC",
        help=(
            "score with one modality perturbed on the raw features: drop:m (zeroed, length 0), "
            "noise:m=SNR_DB (Gaussian noise at that SNR), shuffle:m (frames in random order) or "
            "swap:m (taken from another utterance of the split); m = a, v or t"
        ),
    )
    p.add_argument("--perturb-seed", type=int, default=0, metavar="N", help="seed of the perturbation")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON only")
    p.set_defaults(func=_cmd_evaluate)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from selfcross.training import format_metrics_table  # start-up cost: loaded when the command runs
    from selfcross.training.loop import evaluate_run_full  # start-up cost: loaded when the command runs
    from selfcross.training.rundir import METRICS_FILE, clean_json  # start-up cost: loaded when it runs

    result = evaluate_run_full(args.run, args.data, split=args.split, device=args.device,
                               perturb=args.perturb, perturb_seed=args.perturb_seed)
    metrics = result["metrics"]
    if args.json:
        print(json.dumps(clean_json(metrics), indent=2, sort_keys=True, allow_nan=False))
        return 0
    title = args.split if args.perturb is None else f"{args.split} {args.perturb}"
    print(format_metrics_table({title: metrics}, paper_labels=args.paper_labels,
                               metrics=get_task(result["task"]).metrics))
    stored = _stored_metrics(Path(args.run) / METRICS_FILE)
    if args.perturb is None and args.split in stored:
        same = stored[args.split] == metrics
        print(f"{'matches' if same else 'DIFFERS FROM'} {METRICS_FILE} ({args.split})")
    if result["fingerprint_matches"] is False:
        print("note: this fold's fingerprint differs from the data the run was trained on")
    return 0


def _stored_metrics(path: Path) -> dict[str, Any]:
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return d if isinstance(d, dict) else {}
