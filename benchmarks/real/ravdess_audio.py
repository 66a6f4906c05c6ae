"""RAVDESS speech, audio only: paper, improved and strong presets beside the linear floor.

What it shows: how the toolkit's presets compare on real speech with speaker-independent
folds (no actor in two splits of a fold), and against logistic regression on the same
folds. Protocol:

* data: ``<data>/ravdess-speech-16k`` (1,440 utterances, 24 actors, 8 classes), prepared
  with ``selfcross prepare ravdess`` (audio only) into ``--work`` (one data root per
  feature set, ``ravdess`` for MFCC and ``ravdess-<features>`` otherwise); a rerun reuses
  the feature cache;
* folds: 4 folds of 6 actors (grouped by actor, stratified by label; dev = 2 actors of
  the other 18, about 10 %); 4 rather than 6 folds to fit the time box;
* features (``--features``): ``mfcc`` = 40 MFCC + deltas + delta-deltas (120-d) at 100
  frames/s, as the paper; ``egemaps`` / ``compare`` = openSMILE low-level descriptors at
  100 frames/s; a ``-spk`` suffix standardizes each actor's frames with that actor's own
  statistics (``--speaker-norm`` at preparation: transductive, no labels). ``max_frames``
  500 (RAVDESS clips are 2.9-5.3 s: 500 frames keep every clip whole);
* models: uni-modal ``self`` (audio), the paper's sizes (BiGRU 60 per direction, 6 heads).
  ``paper`` and ``improved`` keep the time-mixing Conv1d but mix the 500 frames into
  ``--mixed-len`` 25 steps (the paper's ratio would give 250, too slow on 2 CPU cores);
  they train with Adam 1e-3, early stopping on dev accuracy with patience 6 and at most
  16 epochs (``--max-epochs``/``--patience``; ReduceLROnPlateau patience equal).
  ``strong`` runs its own switches and epoch budget (see ``docs/improved.md``);
  ``--presets`` picks the presets; ``paper``/``improved`` run on ``--conv-features`` only
  (default ``mfcc``), ``strong`` on every ``--features`` root;
* 3 seeds (1, 2, 3) x 4 folds = 12 runs per row; accuracy and balanced accuracy on each
  fold's test actors; mean (std over the runs). ``--workers`` runs in parallel processes,
  one torch thread each;
* linear floor: ``selfcross baseline`` (mean + std of the valid frames, logistic
  regression, C chosen on each fold's dev split) on every root, when this selfcross has it.

Run (about 40 minutes on 2 idle CPU cores with ``--workers 2``)::

    .venv-full/bin/python benchmarks/real/ravdess_audio.py --workers 2

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

SECTION = "ravdess_audio"
CHANCE = 1 / 8
#: A published figure for scale (not comparable protocol: the split is not stated there).
PUBLISHED = ("| published: MFCC CNN / ConvLSTM (Badr et al., SciTePress 2021; split protocol not stated) "
             "| - | 60 / 59 | - |")


#: ``--features`` names of pretrained encoders -> folder under ``--weights`` (see README.md).
ENCODERS = {"whisper-base": "whisper-base-ct2", "whisper-tiny": "whisper-tiny.en-ct2"}


def audio_config(features: str, args: argparse.Namespace):  # noqa: ANN201
    """The extractor settings of one feature set (a Whisper folder: CTranslate2, int8 on the CPU)."""
    from selfcross.features.audio import AudioConfig

    if features in ENCODERS:
        from selfcross.features.extractors import audio_encoder_config

        folder = args.weights / ENCODERS[features]
        return audio_encoder_config(f"hf:{folder}", max_frames=args.encoder_frames, device="cpu",
                                    window=args.whisper_window)
    base = features.partition("-")[0]
    if base == "mfcc":
        return AudioConfig(max_frames=args.max_frames)
    return AudioConfig.for_features(base, max_frames=args.max_frames)


def prepare_root(src: Path, work: Path, features: str, args: argparse.Namespace) -> tuple[Path, float]:
    """Prepare (or reuse) the data root of one feature set: ``mfcc``, ``egemaps``, ``compare``,
    each optionally ``-spk`` (per-speaker standardization), or a Whisper encoder
    (``whisper-base``, ``whisper-tiny``)."""
    from selfcross.prepare.adapters import prepare_corpus
    from selfcross.prepare.options import FeatureOptions, FoldOptions

    spk = "" if features in ENCODERS else features.partition("-")[2]
    root = work / "data" if features == "mfcc" else work.parent / f"ravdess-{features}"
    if features in ENCODERS and args.whisper_window != "30s":
        root = root.with_name(f"{root.name}-{args.whisper_window}")
    audio = audio_config(features, args)
    t0 = time.perf_counter()
    prepare_corpus("ravdess", src, root,
                   FeatureOptions(audio_config=audio, progress=False, workers=args.workers,
                                  speaker_norm=spk == "spk"),
                   folds=FoldOptions(n_folds=4), modalities="a")
    return root, time.perf_counter() - t0


def disk_gb(root: Path) -> float:
    """Size of a data root's files (the fold arrays and the per-utterance feature cache)."""
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / 1e9


def make_config(preset: str, fold: Path, seed: int, args: argparse.Namespace):  # noqa: ANN201
    """One run's config: the preset, the fold's audio shape, the script's epoch budget for
    ``paper``/``improved`` (``strong`` keeps its own)."""
    from selfcross.config import ModalityShape, ModelConfig, RunConfig, TrainConfig, apply_preset
    from selfcross.folds import read_fold

    t, f = read_fold(fold, modalities=("audio",)).shapes["audio"]
    shape = ModalityShape(int(t), int(f), args.mixed_len)
    cfg = RunConfig(
        model=ModelConfig(kind="self", modalities=("audio",), shapes={"audio": shape}),
        train=TrainConfig(
            seed=seed,
            max_epochs=args.max_epochs,
            patience=args.patience,
            plateau_patience=args.patience,
            num_threads=args.threads,
            device="cpu",
        ),
    )
    apply_preset(cfg, preset)
    if preset != "strong":  # a preset sets its own budget; strong keeps its own
        cfg.train.max_epochs, cfg.train.patience = args.max_epochs, args.patience
    return cfg


def plan(args: argparse.Namespace, roots: dict[str, Path]) -> list[dict]:
    """Every (preset, features, fold, seed) job, fold-major."""
    from selfcross.folds import list_folds

    seeds = [int(s) for s in args.seeds.split(",")]
    jobs = []
    for features, root in roots.items():
        presets = [
            p for p in args.presets.split(",") if p == "strong" or features in args.conv_features.split(",")
        ]
        for fold in list_folds(root)[: args.only_folds]:
            for preset in presets:
                for seed in seeds:
                    out = args.work / "runs" / f"{features}-{preset}-{fold.name}-seed{seed}"
                    jobs.append(
                        {
                            "config": make_config(preset, fold, seed, args),
                            "fold": fold,
                            "out": out,
                            "row": {"features": features, "preset": preset, "fold": fold.name, "seed": seed},
                        }
                    )
    return jobs


def table(runs: list[dict], floors: dict[str, dict], n_folds: int, n_seeds: int) -> list[str]:
    """The results table: one row per (features, preset), then the linear floors."""
    lines = [
        "| RAVDESS speech, audio only (8 classes) | features | accuracy % | balanced accuracy % |",
        "|---|---|---|---|",
    ]
    for features in dict.fromkeys(r["features"] for r in runs):
        for preset in dict.fromkeys(r["preset"] for r in runs if r["features"] == features):
            rs = [r for r in runs if r["features"] == features and r["preset"] == preset]
            lines.append(
                f"| selfcross uni-modal self, {preset} ({n_folds} folds x {n_seeds} seeds) | {features} | "
                f"{mean_std([r['acc'] for r in rs])} | {mean_std([r['bal'] for r in rs])} |"
            )
    for features, floor in floors.items():
        lines.append(
            f"| logistic regression on frame mean + std (`selfcross baseline`, {n_folds} folds) | "
            f"{features} | {mean_std(floor['accuracy'])} | {mean_std(floor['balanced_accuracy'])} |"
        )
    lines.append(f"| chance (uniform guess) | - | {CHANCE * 100:.1f} | {CHANCE * 100:.1f} |")
    lines.append(PUBLISHED)
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="shared data folder (default ../shared/data)"
    )
    ap.add_argument(
        "--work",
        type=Path,
        default=Path(tempfile.gettempdir()) / "selfcross-real" / "ravdess",
        help="MFCC data root + runs (feature cache reused on rerun); other roots beside it",
    )
    ap.add_argument("--presets", default="paper,improved,strong")
    ap.add_argument(
        "--features",
        default="mfcc,compare,compare-spk",
        help="feature roots: mfcc, egemaps, compare, each optionally -spk; whisper-base, whisper-tiny",
    )
    ap.add_argument("--floor-features", default=None,
                    help="roots the linear floor runs on (default: --features)")
    ap.add_argument("--conv-features", default="mfcc", help="roots on which paper/improved also run")
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--max-frames", type=int, default=500)
    ap.add_argument("--encoder-frames", type=int, default=275,
                    help="frames kept of a pretrained encoder (20 ms each; 275 = 5.5 s > the longest clip)")
    ap.add_argument("--whisper-window", default="30s", choices=("30s", "clip"),
                    help="Whisper input: the padded 30 s window (its design) or the clip's own frames")
    ap.add_argument("--weights", type=Path, default=Path(tempfile.gettempdir()) / "selfcross-weights",
                    help="folder of the encoder weights (whisper-base-ct2/, ...; see README.md)")
    ap.add_argument("--mixed-len", type=int, default=25, help="time-mixing Conv1d output steps")
    ap.add_argument("--max-epochs", type=int, default=16, help="paper/improved epoch cap")
    ap.add_argument("--patience", type=int, default=6, help="paper/improved early-stopping patience")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per run")
    ap.add_argument("--workers", type=int, default=1, help="runs (and extractions) in parallel")
    ap.add_argument("--only-folds", type=int, default=None, help="run the first N folds only (smoke test)")
    ap.add_argument("--no-results", action="store_true", help="do not write RESULTS.md")
    ap.add_argument("--section", default=SECTION,
                    help="RESULTS.md section to rewrite (the encoder runs keep their own: ravdess_encoders)")
    ap.add_argument("--title", default="RAVDESS speech, audio only", help="heading of that section")
    args = ap.parse_args(argv)

    src = args.data / "ravdess-speech-16k"
    if not src.is_dir():
        print(f"skipped: {src} not found (RAVDESS speech 16 kHz; see /work/shared/data/README.md)")
        return 0
    t0 = time.perf_counter()
    roots, t_prep, costs = {}, 0.0, []
    deep = args.features.split(",")
    for features in dict.fromkeys(deep + (args.floor_features or args.features).split(",")):
        roots[features], t = prepare_root(src, args.work, features, args)
        t_prep += t
        costs.append(f"{features}: {t:.0f} s, data root {disk_gb(roots[features]):.2f} GB")
        print(f"{features}: data root {roots[features]} ready in {t:.0f} s "
              f"({disk_gb(roots[features]):.2f} GB)", flush=True)
    runs = run_jobs(plan(args, {f: roots[f] for f in deep}), args.workers)
    floor_roots = (args.floor_features or args.features).split(",")
    floors = {f: linear_floor(roots[f], args.work / "linear" / f, "a") for f in floor_roots}
    total = time.perf_counter() - t0
    n_folds = len({r["fold"] for r in runs})
    n_seeds = len(args.seeds.split(","))
    lines = table(runs, floors, n_folds, n_seeds)
    print("\n".join(lines))
    text = "\n".join(
        [
            f"## {args.title}",
            "",
            f"Command: `{command_line()}`  ",
            f"Time: {total / 60:.1f} min on {hardware()} ({t_prep:.0f} s preparation; "
            f"{args.workers} parallel runs of "
            f"{args.threads} torch thread(s)).  ",
            f"Setup: 1,440 utterances, {n_folds} speaker-independent folds ({24 // args.folds} test actors "
            f"each, dev = 2 other actors), seeds {args.seeds}, max_frames {args.max_frames}; paper/improved: "
            f"mixed_len {args.mixed_len}, max_epochs {args.max_epochs}, patience {args.patience}; strong: "
            "its preset. Mean (std) over the fold x seed runs (linear floor: over folds).  ",
            f"Preparation (a rerun reuses the feature cache: 0 s extraction then): {'; '.join(costs)}.",
            "",
            *lines,
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
