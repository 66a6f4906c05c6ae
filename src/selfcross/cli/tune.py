"""``selfcross tune``: hyper-parameter search on the dev splits (Optuna; the ``[tune]`` extra)."""

from __future__ import annotations

import argparse
from pathlib import Path

from selfcross.cli.options import add_no_progress
from selfcross.config import MODEL_KINDS, PRESETS, load_config_file


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``tune`` sub-command."""
    p = subparsers.add_parser(
        "tune",
        help="search a preset's hyper-parameters on the dev splits (best.json for train/grid --config)",
        description=(
            "Search the hyper-parameters of a preset on the dev splits of a data root with Optuna "
            "(TPE sampler, median pruning by epoch). The test split is never read: every trial "
            "trains on a dev-only view of each fold. The objective is the dev metric the preset "
            "selects epochs on (strong: weighted F1; paper/improved: accuracy; regression: MAE), "
            "averaged over --folds x --seeds. The study is kept in SQLite beside the results store "
            "(a rerun continues it; kill -9 loses only the trial in flight); several workers or "
            "machines can share one --storage URL. Writes OUT/best.json (take it to "
            "'selfcross grid --config OUT/best.json') and OUT/report.md with figures. Needs "
            "pip install 'selfcross[tune]'."
        ),
    )
    p.add_argument("--data", required=True, type=Path, help="data root with fold01 .. foldK")
    p.add_argument("--preset", choices=PRESETS, default="strong",
                   help="the preset to start from and its search space (default: %(default)s)")
    p.add_argument("--model", choices=MODEL_KINDS, default="self", help="model kind (default: %(default)s)")
    p.add_argument("--modalities", default=None, metavar="SET",
                   help="modality letters, e.g. a or av (default: every modality of the folds)")
    p.add_argument("--folds", default="1", metavar="RANGE",
                   help="folds each trial trains, e.g. 1 or 1-2 (default: %(default)s)")
    p.add_argument("--seeds", default="1", metavar="RANGE", help="seeds per fold (default: %(default)s)")
    p.add_argument("--trials", type=int, default=20,
                   help="finished (complete or pruned) trials the study should hold (default: %(default)s)")
    p.add_argument("--task", choices=("classification", "regression"), default="classification")
    p.add_argument("--space", default=None, metavar="FILE",
                   help="JSON/YAML search-space overrides: {\"train.lr\": {\"type\": \"float\", \"low\": "
                   "1e-4, \"high\": 1e-2, \"log\": true}, \"model.hidden\": null} (null removes an entry)")
    p.add_argument("--fixed", default=None, metavar="FILE",
                   help="a config file whose model/train switches every trial keeps (e.g. batch_size)")
    p.add_argument("--max-epochs", type=int, default=None, metavar="N",
                   help="an exact epoch cap for every trial (a quick search; default: the preset's budget)")
    p.add_argument("--db", default="results.sqlite",
                   help="results database the study sits beside (default: %(default)s)")
    p.add_argument("--storage", default=None, metavar="URL",
                   help="Optuna storage URL (default: sqlite:///<db folder>/tune.sqlite; a shared "
                   "postgresql:// or mysql:// URL lets several machines work on one study)")
    p.add_argument("--study", default=None, metavar="NAME",
                   help="study name (default: <data root name>-<preset>-<model>-<modalities>)")
    p.add_argument("--out", default=None, type=Path,
                   help="best.json, report.md, figures/ (default: <db folder>/tune/<study>)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--threads", type=int, default=1, help="torch threads per trial (default: %(default)s)")
    p.add_argument("--sampler-seed", type=int, default=0,
                   help="TPE sampler seed (give each parallel worker its own; default: %(default)s)")
    p.add_argument("--pruner", choices=("median", "none"), default="median",
                   help="median: end a trial whose best dev score so far trails the median of the "
                   "earlier trials at the same epoch (default: %(default)s)")
    p.add_argument("--prune-startup", type=int, default=4, metavar="N",
                   help="finished trials before pruning starts (default: %(default)s)")
    p.add_argument("--prune-warmup", type=int, default=3, metavar="N",
                   help="epochs of each fold x seed never pruned (default: %(default)s)")
    add_no_progress(p, "no progress bar over trials")
    p.set_defaults(func=_tune)


def _tune(args: argparse.Namespace) -> int:
    from selfcross.experiments.grid import parse_range  # start-up cost: loaded when the command runs
    from selfcross.experiments.tune import (  # start-up cost: loaded when the command runs
        TuneSpec,
        load_space,
        optuna_or_error,
        run_tune,
    )
    from selfcross.labels import parse_modalities  # start-up cost: loaded when the command runs

    optuna_or_error()  # the missing extra is the first thing said
    db_dir = Path(args.db).resolve().parent
    mods = None if args.modalities is None else parse_modalities(args.modalities)
    code = "".join(m[0] for m in mods) if mods else "all"
    study = args.study or f"{args.data.resolve().name}-{args.preset}-{args.model}-{code}"
    fixed = load_config_file(args.fixed) if args.fixed else {}
    spec = TuneSpec(
        data_root=args.data, storage=args.storage or f"sqlite:///{db_dir / 'tune.sqlite'}", study=study,
        out=args.out or db_dir / "tune" / study, preset=args.preset, model=args.model, modalities=mods,
        folds=tuple(parse_range(args.folds, "folds") or ()),
        seeds=tuple(parse_range(args.seeds, "seeds") or ()),
        trials=args.trials, task=args.task, space=load_space(args.space) if args.space else {},
        fixed={k: fixed.get(k, {}) for k in ("model", "train")}, max_epochs=args.max_epochs,
        device=args.device, threads=args.threads, sampler_seed=args.sampler_seed, pruner=args.pruner,
        prune_startup=args.prune_startup, prune_warmup=args.prune_warmup, progress=not args.no_progress,
    )
    result = run_tune(spec)
    best = "none complete yet" if result.best_value is None else f"{result.best_value:.4f}"
    print(f"tune: {result.ran} trials run now, {len(result.study.trials)} in study {spec.study!r}; best dev "
          f"score {best}")
    if result.best_json is not None:
        print(f"best config: {result.best_json}  (selfcross grid --data {args.data} --config "
              f"{result.best_json})")
    print(f"report: {result.report}")
    return 0
