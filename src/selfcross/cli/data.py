"""Data commands: ``selfcross make-synthetic``, ``validate-data`` and ``import-features``."""

from __future__ import annotations

import argparse
from pathlib import Path

from selfcross.folds.reader import is_fold, list_folds, read_fold
from selfcross.synthetic.generator import PRESETS, make_synthetic


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the data sub-commands to the ``selfcross`` parser."""
    p = subparsers.add_parser(
        "make-synthetic",
        help="write the synthetic IEMOCAP-shaped benchmark (a data root of fold01..foldK)",
        description="Write the synthetic benchmark in the processed fold layout (see docs/synthetic.md).",
    )
    p.add_argument("out", type=Path, help="data root to create")
    p.add_argument("--preset", choices=sorted(PRESETS), default="small",
                   help="small: seconds per training run; paper: the paper's shapes (~5.6 GB per fold)")
    p.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    p.add_argument("--folds", type=int, default=5, help="number of folds, 1..5 (default 5)")
    p.add_argument("--utterances", type=int, default=None, help="override the preset's utterance count")
    p.set_defaults(func=_make_synthetic)

    v = subparsers.add_parser(
        "validate-data",
        help="read and check a data root or fold folder, print a summary",
        description="Read every fold and split, check all files (shapes, labels, NaN/inf, lengths) "
        "and print counts per class, shapes and dropped utterances.",
    )
    v.add_argument("path", type=Path, help="a data root (fold01..foldK) or one fold folder")
    v.add_argument("--modalities", default=None,
                   help="only these modalities (e.g. atv, at); default: all present")
    v.set_defaults(func=_validate)
    _register_import(subparsers)


def _register_import(subparsers: argparse._SubParsersAction) -> None:
    from selfcross.prepare.feature_formats import FORMATS  # start-up cost: loaded when the command runs
    from selfcross.sentiment import BINNINGS  # start-up cost: loaded when the command runs

    p = subparsers.add_parser(
        "import-features",
        help="turn published MMSA / MulT / MFN feature files into a data root (official split)",
        description=(
            "Read the feature files multimodal-sentiment work is done on (CMU-MOSI, CMU-MOSEI, "
            "CH-SIMS, IEMOCAP, ICT-MMMO...) and write a data root with one fold holding the official "
            "train/dev/test split, sentiment scores, binned classes and a report. FORMAT: mmsa "
            "(MMSA's aligned_50.pkl / unaligned_*.pkl), mult (MulT's *_data.pkl), mfn (a folder of "
            "the Memory Fusion Network's .h5 files). Pickles are read only with --trust-pickle."
        ),
    )
    p.add_argument("format", choices=FORMATS, metavar="FORMAT", help=f"one of {', '.join(FORMATS)}")
    p.add_argument("src", type=Path, metavar="SRC", help="the .pkl file (mmsa, mult) or .h5 folder (mfn)")
    p.add_argument("out", type=Path, metavar="OUT", help="data root to create")
    p.add_argument("--labels", choices=sorted(BINNINGS), default=None,
                   help="classes from the scores: sentiment2 = negative vs non-negative (MMSA's Has0), "
                        "sentiment2-non0 = negative vs positive without score-0 utterances (Non0), "
                        "sentiment3/5/7 = round(clip(score)) (default sentiment2)")
    p.add_argument("--center", type=float, default=0.0,
                   help="subtract this from every score first (e.g. 3 for ICT-MMMO's 1..5 ratings)")
    p.add_argument("--modalities", default=None, help="only these modalities (e.g. av); default: all present")
    p.add_argument("--trust-pickle", action="store_true",
                   help="allow reading a pickle (unpickling runs code named by the file; selfcross "
                        "rebuilds only NumPy arrays, dicts, lists, strings and numbers)")
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty OUT")
    p.set_defaults(func=_import_features)


def _import_features(args: argparse.Namespace) -> int:
    # start-up cost: loaded when the command runs
    from selfcross.prepare.feature_import import import_features, summarize

    result = import_features(args.format, args.src, args.out, labels=args.labels, center=args.center,
                             modalities=args.modalities, trust_pickle=args.trust_pickle,
                             overwrite=args.overwrite)
    print(summarize(result))
    return 0


def _make_synthetic(args: argparse.Namespace) -> int:
    root = make_synthetic(args.out, preset=args.preset, seed=args.seed, n_folds=args.folds,
                          n_utterances=args.utterances)
    print(f"wrote synthetic data root {root} (preset {args.preset}, seed {args.seed}, {args.folds} folds)")
    return 0


def _validate(args: argparse.Namespace) -> int:
    folds = [args.path] if is_fold(args.path) else list_folds(args.path)
    for fold_dir in folds:
        fold = read_fold(fold_dir, args.modalities)
        shapes = ", ".join(f"{m} {'x'.join(map(str, shp))}" for m, shp in fold.shapes.items())
        text = f"; text as {fold.text_form}" if fold.text_form else ""
        print(f"{fold_dir}: {len(fold.class_names)} classes; {shapes}{text}")
        header = "  split  " + " ".join(f"{c[:10]:>10}" for c in fold.class_names) + "      total  dropped"
        print(header)
        for name, split in fold.splits.items():
            counts = split.class_counts(fold.n_classes)
            cells = " ".join(f"{int(c):>10}" for c in counts)
            print(f"  {name:<6} {cells} {len(split):>10} {split.n_dropped:>8}")
    print(f"ok: {len(folds)} fold(s) valid")
    return 0
