"""``selfcross grid``, ``baseline``, ``report`` and ``demo`` (thin wrappers over the API)."""

from __future__ import annotations

import argparse

from selfcross.cli.builders import csv_list, execution_options, grid_plan
from selfcross.cli.options import add_config_argument, add_no_progress
from selfcross.cli.trackers import add_logger_arguments
from selfcross.config import RunConfig, choices
from selfcross.errors import ConfigError
from selfcross.tasks import DEFAULT_TASK, TASKS, task_help


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the experiment commands."""
    _register_grid(subparsers)
    _register_baseline(subparsers)
    _register_report(subparsers)
    _register_demo(subparsers)


def _register_grid(subparsers: argparse._SubParsersAction) -> None:
    g = subparsers.add_parser(
        "grid",
        help="run models x modality sets x folds x seeds into a SQLite results store (resumable)",
        description="Run every (model, modality set, fold, seed) once. Rerunning the same command "
        "skips finished runs; failed runs are retried only with --retry-failed.",
    )
    g.add_argument("--data", required=True, help="data root with fold01 .. foldK")
    g.add_argument("--models", default="self,cross", help="comma list of self, cross, self+cross")
    g.add_argument("--modalities", default="a,v,t,av,at,vt,atv", help="comma list of modality sets")
    g.add_argument("--folds", default=None, metavar="RANGE",
                   help="fold numbers, e.g. 1-5 or 1,3 (default: every fold of --data)")
    g.add_argument("--seeds", default="1-10", metavar="RANGE",
                   help="seed numbers, e.g. 1-10 (default, the paper's 10 repetitions) or 1,2")
    g.add_argument("--no-stat-pool-too", action="store_true",
                   help="also run every multi-vector cell without statistical pooling (noSP = concat)")
    g.add_argument("--db", default="results.sqlite", help="results database (default results.sqlite)")
    g.add_argument("--runs-dir", default=None, help="run folders (default: <db folder>/runs)")
    g.add_argument("--workers", type=int, default=1, help="parallel runs (default 1)")
    g.add_argument("--threads-per-worker", type=int, default=None,
                   help="torch threads per run (default: cores // workers)")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    add_config_argument(g)
    g.add_argument("--preset", default=None, choices=choices(RunConfig, "preset"),
                   help="paper: the authors' computation, quirks included; improved: padding masks, "
                   "length-aware GRUs, masked means, train-split standardization, bf16 on CUDA; "
                   "strong: improved + choices for real data (docs/improved.md) (default: paper, or the "
                   "--config file's; a --config file's runs are keyed by its name, 'tuned' by default)")
    g.add_argument("--tune-word-vectors", action="store_true",
                   help="train the word vectors with each text model, starting from W_embedding "
                   "(frozen GloVe vectors know nothing of emotion); needs text stored as word ids")
    g.add_argument("--executor", default="local", choices=("local", "ray"),
                   help="local processes (default) or ray tasks (pip install selfcross[ray]; "
                   "docs/cluster.md)")
    g.add_argument("--ray-address", default=None,
                   help="ray: auto or HOST:PORT of a running cluster (default: start a local Ray instance)")
    g.add_argument("--cpus-per-run", type=float, default=None, help="ray: CPUs per run (default 1)")
    g.add_argument("--gpus-per-run", type=float, default=None,
                   help="ray: GPUs per run, fractions pack runs onto one GPU (e.g. 0.25; default 0)")
    g.add_argument("--max-retries", type=int, default=None,
                   help="re-executions of a run whose worker process died (default 2); runs that raised "
                   "are retried only with --retry-failed")
    g.add_argument("--retry-failed", action="store_true", help="rerun runs recorded as failed")
    g.add_argument("--max-epochs", type=int, default=None,
                   help="cap on epochs per run, exactly, the budget then counted in epochs (default: "
                   "the preset's budget, 100 epochs for paper; 0 = no cap: early stopping alone ends a "
                   "run, as in the authors' loop; refused with strong's cosine schedule, which decays to "
                   "0 at the cap)")
    g.add_argument("--task", default=DEFAULT_TASK, choices=TASKS,
                   help=task_help() + "; the task is part of each run's key, so one results database "
                   "can hold several tasks")
    add_no_progress(g)
    g.add_argument("--robustness", default=None, metavar="SPECS",
                   help="after training, re-score every run's test split with one modality perturbed, "
                   "e.g. drop:a,drop:v,drop:t,noise:a=10 (specs as in evaluate --perturb); report "
                   "compares the accuracy change of self and cross")
    add_logger_arguments(g)
    g.set_defaults(func=_grid)


def _register_baseline(subparsers: argparse._SubParsersAction) -> None:
    b = subparsers.add_parser(
        "baseline",
        help="the linear floor (logistic regression on per-utterance statistics) on the same folds",
        description="Per utterance: mean and std of the valid frames of audio/video, the mean word "
        "vector and TF-IDF word-id 1-2 grams of text; StandardScaler + logistic regression, C chosen "
        "on each fold's dev accuracy, evaluated on test once. Stored as model `linear` so `selfcross "
        "report` compares self and cross with it. Rerunning skips folds already done.",
    )
    b.add_argument("--data", required=True, help="data root with fold01 .. foldK, or one fold folder")
    b.add_argument("--out", required=True, help="output folder (results.md, results.csv, one folder per run)")
    b.add_argument("--modalities", default=None,
                   help="comma list of modality sets, e.g. a or a,atv (default: every set the folds have)")
    b.add_argument("--db", default=None, help="results database (default <out>/results.sqlite)")
    b.set_defaults(func=_baseline)


def _register_report(subparsers: argparse._SubParsersAction) -> None:
    r = subparsers.add_parser(
        "report",
        help="tables, significance tests and figures from a results store",
        description="Read every finished run of a results store (written by grid or demo) and write "
        "OUT/report.md: the paper's table (mean (std) and n per cell), self vs cross per modality set "
        "(Wilcoxon signed-rank and paired t over (fold, seed) pairs, a bootstrap interval of the "
        "mean difference, McNemar on pooled test predictions, Holm correction across modality sets) "
        "with a one-line verdict per modality set and metric, the ablations when present, "
        "results.csv/json and figures. See docs/results-store.md.",
    )
    r.add_argument("--db", default=None,
                   help="results database (default: results.sqlite; with --runs: OUT/results.sqlite)")
    r.add_argument("--runs", nargs="+", default=None, metavar="RUN_DIR",
                   help="run folders made by `selfcross train` to add to the database first (as "
                   "`selfcross store add`), so hand-trained runs reach the report")
    r.add_argument("--out", required=True, help="output folder (report.md, results.csv/json, figures/)")
    r.add_argument("--paper-labels", action="store_true",
                   help="label metrics as the paper does: WA = balanced accuracy, UA = accuracy")
    r.add_argument("--task", default=None, choices=TASKS,
                   help="report the runs of this task only (default: every task of the store, each in "
                   "OUT/<task>/ when there are several)")
    r.set_defaults(func=_report)


def _register_demo(subparsers: argparse._SubParsersAction) -> None:
    d = subparsers.add_parser(
        "demo",
        help="the main job: self vs cross on the synthetic benchmark",
        description="Build the small synthetic benchmark (OUT/data), train self- and cross-attention "
        "on all 7 modality sets of the paper's table over the given folds and seeds with a capped "
        "number of epochs (an ordinary, resumable grid: OUT/results.sqlite, OUT/runs), write the "
        "report (OUT/report) and print its main table and self-vs-cross verdict. An interrupted "
        "demo finishes only the missing runs when run again.",
    )
    d.add_argument("--out", default="demo-output", help="output folder (default: %(default)s, as make demo)")
    d.add_argument("--folds", default="1-3", metavar="RANGE",
                   help="fold numbers, as for grid: e.g. 1-5 (the paper's 5 folds) (default: %(default)s)")
    d.add_argument("--seeds", default="1-2", metavar="RANGE",
                   help="seed numbers, as for grid: e.g. 1-10 (the paper's) (default: %(default)s)")
    d.add_argument("--workers", type=int, default=2, help="parallel runs (default 2)")
    d.add_argument("--max-epochs", type=int, default=None,
                   help="epoch cap per run (default: the demo's cap; 0 = no cap: early stopping alone ends a "
                   "run, the paper's protocol)")
    d.add_argument("--paper-labels", action="store_true", help="WA/UA metric labels")
    add_no_progress(d)
    d.set_defaults(func=_demo)


def _grid(args: argparse.Namespace) -> int:
    from selfcross.experiments.grid import run_grid  # start-up cost: loaded when the command runs

    summary = run_grid(args.data, grid_plan(args), execution_options(args), db=args.db,
                       runs_dir=args.runs_dir)
    print(summary)
    return 0 if summary.complete else 1


def _baseline(args: argparse.Namespace) -> int:
    from selfcross.experiments.baseline import run_baseline  # start-up cost: loaded when the command runs

    sets = None if args.modalities is None else csv_list(args.modalities)
    summary = run_baseline(args.data, args.out, modalities=sets, db=args.db)
    print(summary.table())
    print(f"results: {summary.table_md}, {summary.table_csv}; store: {summary.db}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from selfcross.analysis.report import make_report  # start-up cost: loaded when the command runs

    db = args.db or (str(Path(args.out) / "results.sqlite") if args.runs else "results.sqlite")
    if args.runs:
        from selfcross.experiments.runfolders import add_run_folders  # start-up cost: loaded when it runs

        Path(args.out).mkdir(parents=True, exist_ok=True)
        done = add_run_folders(db, args.runs)
        print(f"{db}: {len(done.added)} run(s) added"
              + (f", {len(done.already)} already there" if done.already else ""))
    path = make_report(db, args.out, paper_labels=args.paper_labels, task=args.task)
    print(path.parent.joinpath("summary.txt").read_text())
    print(f"report: {path}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from selfcross.demo import DEMO_MAX_EPOCHS, run_demo  # start-up cost: loaded when the command runs

    if args.max_epochs is not None and args.max_epochs < 0:
        raise ConfigError("--max-epochs must be >= 0")
    from selfcross.experiments.options import ExecutionOptions  # start-up cost: loaded when the command runs

    cap = DEMO_MAX_EPOCHS if args.max_epochs is None else args.max_epochs
    execution = ExecutionOptions(workers=args.workers, progress=not args.no_progress)
    run_demo(args.out, folds=args.folds, seeds=args.seeds, max_epochs=cap, execution=execution,
             paper_labels=args.paper_labels)
    return 0
