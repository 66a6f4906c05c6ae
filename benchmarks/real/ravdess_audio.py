"""RAVDESS speech, audio only: the uni-modal self-attention model on real recordings.

What it shows: the toolkit learns emotion from real speech, with speaker-independent
folds (no actor in two splits of a fold). Protocol:

* data: ``<data>/ravdess-speech-16k`` (1,440 utterances, 24 actors, 8 classes), prepared
  with ``selfcross prepare ravdess`` (audio only) into ``--work``; a rerun reuses the
  feature cache;
* folds: 4 folds of 6 actors (grouped by actor, stratified by label; dev = 2 actors of
  the other 18, about 10 %); 4 rather than 6 folds to fit the time box (12 runs, not 18);
* features: 40 MFCC + deltas + delta-deltas (120-d) at 100 frames/s, as the paper;
  ``max_frames`` 500 (RAVDESS clips are 2.9-5.3 s, 99 % under 4.8 s: 500 frames keep
  every clip whole instead of padding to the paper's 10 s);
* model: uni-modal ``self`` (audio), the paper's sizes (BiGRU 60 per direction, 6 heads)
  except the time-mixing Conv1d, which mixes the 500 frames into ``--mixed-len`` 25 steps
  (the paper's ratio would give 250). Why: on 2 CPU cores shared with other jobs a
  250-step BiGRU + 250x250 attention cost 5-70 s per batch of 32 here; 25 steps keep
  the authors' design (every step a learned mix of all frames) at ~0.15 s per batch.
  Torch runs with one thread (two OpenMP threads on an oversubscribed machine were ~10x
  slower, not faster);
  preset ``improved`` by default (masks, masked mean, train-split standardization: raw
  MFCC values with attended padding learn slowly; ``--preset paper`` runs the quirks);
* training: Adam 1e-3, batch 32, early stopping on dev accuracy with ``--patience`` 6 and
  ``--max-epochs`` 16 (below the paper's 10 / unlimited to fit the time box on 2 shared
  CPU cores; the ReduceLROnPlateau patience is set equal to it);
* 3 seeds (1, 2, 3) x 4 folds = 12 runs: accuracy and balanced accuracy on each fold's
  test actors; mean (std over the 18 runs).

Run (about 20-30 minutes on 2 CPU cores shared with other jobs)::

    .venv/bin/python benchmarks/real/ravdess_audio.py

Prints a table and rewrites its section of ``benchmarks/real/RESULTS.md``. Exits 0 with a
message when the data is absent.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script: find _common
from _common import DEFAULT_DATA, RESULTS, command_line, hardware, mean_std, runs_details, write_section

SECTION = "ravdess_audio"
CHANCE = 1 / 8
#: A published figure for scale (not comparable protocol: the split is not stated there).
PUBLISHED = ("| published: MFCC CNN / ConvLSTM (Badr et al., SciTePress 2021; split protocol not stated) "
             "| 60 / 59 | - |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA,
                    help="shared data folder (default ../shared/data)")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "selfcross-real" / "ravdess",
                    help="data root + runs (feature cache reused on rerun)")
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--max-frames", type=int, default=500)
    ap.add_argument("--mixed-len", type=int, default=25, help="time-mixing Conv1d output steps")
    ap.add_argument("--max-epochs", type=int, default=16)
    ap.add_argument("--patience", type=int, default=6)
    ap.add_argument("--preset", default="improved", choices=("paper", "improved"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--workers", type=int, default=1, help="feature extraction processes")
    ap.add_argument("--only-folds", type=int, default=None, help="run the first N folds only (smoke test)")
    ap.add_argument("--no-results", action="store_true", help="do not write RESULTS.md")
    args = ap.parse_args(argv)

    src = args.data / "ravdess-speech-16k"
    if not src.is_dir():
        print(f"skipped: {src} not found (RAVDESS speech 16 kHz; see /work/shared/data/README.md)")
        return 0
    from selfcross.config import ModalityShape, ModelConfig, RunConfig, TrainConfig, apply_preset
    from selfcross.data import list_folds
    from selfcross.data.adapters import prepare_corpus
    from selfcross.features.audio import AudioConfig
    from selfcross.training import train_run

    t0 = time.perf_counter()
    root = args.work / "data"
    result = prepare_corpus("ravdess", src, root, modalities="a", n_folds=args.folds,
                            audio_config=AudioConfig(max_frames=args.max_frames), progress=False,
                            workers=args.workers)
    t_prep = time.perf_counter() - t0
    print(f"prepared {len(result.kept)} utterances, {len(result.folds)} folds in {t_prep:.0f} s "
          f"({sum(s['computed'] for s in result.cache.values())} extracted, rest cached)")
    seeds = [int(s) for s in args.seeds.split(",")]
    folds = list_folds(root)[: args.only_folds]
    runs = []
    for fold in folds:
        for seed in seeds:
            shape = ModalityShape(args.max_frames, 120, args.mixed_len)
            cfg = RunConfig(model=ModelConfig(kind="self", modalities=("audio",), shapes={"audio": shape}),
                            train=TrainConfig(seed=seed, max_epochs=args.max_epochs, patience=args.patience,
                                              plateau_patience=args.patience, num_threads=args.threads,
                                              device="cpu"))
            apply_preset(cfg, args.preset)
            t = time.perf_counter()
            m = train_run(cfg, fold, args.work / "runs" / f"{fold.name}-seed{seed}", progress=False,
                          overwrite=True)
            runs.append({"fold": fold.name, "seed": seed, "acc": m["test"]["accuracy"],
                         "bal": m["test"]["balanced_accuracy"], "epochs": m["epochs_run"],
                         "best": m["best_epoch"], "s": time.perf_counter() - t})
            print(f"{fold.name} seed {seed}: accuracy {runs[-1]['acc']:.3f}  balanced {runs[-1]['bal']:.3f}  "
                  f"({m['epochs_run']} epochs, best {m['best_epoch']}, {runs[-1]['s']:.0f} s)", flush=True)
    total = time.perf_counter() - t0
    acc, bal = [r["acc"] for r in runs], [r["bal"] for r in runs]
    per_fold = []
    for fold in folds:
        rs = [r for r in runs if r["fold"] == fold.name]
        accs, bals = [r["acc"] for r in rs], [r["bal"] for r in rs]
        per_fold.append(f"| {fold.name} | {mean_std(accs)} | {mean_std(bals)} |")
    test_actors = {f"fold{k:02d}": ", ".join(p.test_groups) for k, p in enumerate(result.folds, start=1)}
    table = [
        "| RAVDESS speech, audio only (8 classes) | accuracy % | balanced accuracy % |",
        "|---|---|---|",
        f"| selfcross uni-modal self, {args.preset} ({len(folds)} folds x {len(seeds)} seeds) | "
        f"{mean_std(acc)} | {mean_std(bal)} |",
        f"| chance (uniform guess) | {CHANCE * 100:.1f} | {CHANCE * 100:.1f} |",
        PUBLISHED,
    ]
    print("\n".join(table))
    text = "\n".join([
        "## RAVDESS speech, audio only", "",
        f"Command: `{command_line()}`  ",
        f"Time: {total / 60:.1f} min on {hardware()} ({t_prep:.0f} s preparation; torch threads "
        f"{args.threads}).  ",
        f"Setup: {len(result.kept)} utterances, {len(folds)} speaker-independent folds "
        f"({24 // len(folds)} test actors each, dev = 2 other actors), seeds {args.seeds}, "
        f"max_frames {args.max_frames}, mixed_len "
        f"{args.mixed_len}, max_epochs "
        f"{args.max_epochs}, patience {args.patience}, preset {args.preset}. Mean (std) over the "
        f"{len(runs)} fold x seed runs.", "",
        *table, "",
        "| fold | test actors | accuracy % | balanced accuracy % |", "|---|---|---|---|",
        *[row.replace(f"| {f.name} |", f"| {f.name} | {test_actors.get(f.name, '')} |") for row, f in
          zip(per_fold, folds)], "",
        *runs_details(runs),
    ])
    if not args.no_results:
        write_section(SECTION, text)
        print(f"wrote {RESULTS}")
    print(f"total {total / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
