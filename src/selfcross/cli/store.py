"""``selfcross store add``: record run folders made by ``train`` in a results store."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``store`` command group."""
    p = subparsers.add_parser(
        "store",
        help="add run folders made by train to a results store (then report reads them)",
        description="Results stores are what report reads. grid writes them; runs trained one by one "
        "with `selfcross train --out RUN_DIR` are added here. `report --runs RUN_DIR...` does the "
        "same into OUT/results.sqlite in one step.",
    )
    sub = p.add_subparsers(dest="store_command", metavar="ACTION", required=True)
    add = sub.add_parser("add", help="record finished run folders in a results store",
                         description="Record finished run folders (config.json, metrics.json, "
                         "predictions.npz) in DB, created if missing. The run key comes from each run's "
                         "config (model, modalities, pooling, preset, seed) and fold folder name "
                         "(foldNN; 1 otherwise). Runs already in DB are left as they are.")
    add.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR", help="run folders")
    add.add_argument("--db", default="results.sqlite", help="results database (default: %(default)s)")
    add.set_defaults(func=_add)


def _add(args: argparse.Namespace) -> int:
    from selfcross.experiments.runfolders import add_run_folders

    done = add_run_folders(args.db, args.run_dirs)
    print(f"{done.db}: {len(done.added)} run(s) added"
          + (f", {len(done.already)} already there" if done.already else "")
          + (f" ({', '.join(done.added)})" if done.added else ""))
    return 0
