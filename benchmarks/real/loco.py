"""Leave-one-corpus-out: what a user with an unseen corpus can expect from each recipe.

For each held-out corpus: ``paper``, ``improved``, ``strong`` (the preset as shipped: its
values were set without this corpus's test split), ``tune`` (``selfcross tune`` on this
corpus's own dev splits, then its ``best.json`` on every seed) and the linear floor on the
same features. Every choice is made on dev splits; each test split is read once, by the final
evaluation of each run. Protocol per corpus (the per-corpus scripts' preparation is reused):

* ``mmmo``: ICT-MMMO audio + video (COVAREP + FACET), binary non-0 sentiment, official split
  (``mmmo_av.py``'s import); paper/improved with the toolkit's default budget (100 epochs,
  patience 10);
* ``ravdess``: RAVDESS speech, audio, 4 speaker-independent folds (``ravdess_audio.py``'s
  preparation), features ``mfcc`` and ``compare-spk``; paper/improved with that script's
  budget (mixed_len 25, 16 epochs, patience 6);
* ``meld``: MELD text, official split, punctuation dropped (``drop``) or kept (``keep``),
  GloVe 6B 50-d, batch 64 (``meld_text.py``'s preparation and budget);
* ``synthetic``: the ``small`` synthetic benchmark (3 folds), A+V+T.

``--cells`` picks the (corpus, features, preset) cells to run, ``--folds`` / ``--seeds`` how
many; a rerun reuses every finished run folder and the tuning study. Each finished run is
appended to ``WORK/runs.jsonl`` as it ends, so a partial run still reports. Prints one table
per corpus and rewrites that corpus's ``loco_<corpus>`` section of RESULTS.md with the command,
the wall time and every run (one invocation per corpus keeps each section's command exact).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script: find _common
from _common import (
    DEFAULT_DATA,
    RESULTS,
    command_line,
    hardware,
    linear_floor,
    mean_std,
    runs_details,
    write_section,
)

SECTION = "loco"
PRESETS = ("paper", "improved", "strong", "tune")


# ---------------------------------------------------------------------------- preparation
def prepare(corpus: str, features: str, args: argparse.Namespace) -> Path:
    """The data root of one (corpus, features), prepared once under ``--work``."""
    work = args.work / corpus
    if corpus == "ravdess":
        import ravdess_audio

        return ravdess_audio.prepare_root(args.data / "ravdess-speech-16k", work / "ravdess", features,
                                          500, 1)[0]
    if corpus == "meld":
        import meld_text

        ns = argparse.Namespace(max_tokens=40, glove="kumo-6b-50d")
        return meld_text.prepare_root(args.data / "meld", work / f"meld-{features}", ns, features).parent
    if corpus == "mmmo":
        from selfcross.prepare import import_features

        root = work / "binary"
        if not (root / "fold01").is_dir():
            import_features("mfn", args.data / "ict-mmmo", root, center=3, labels="sentiment2-non0")
        return root
    from selfcross.synthetic.generator import make_synthetic

    root = work / "small"
    if not (root / "fold03").is_dir():
        make_synthetic(root, preset="small", seed=0, n_folds=3)
    return root


#: corpus -> (modalities, paper/improved TrainConfig budget, fixed switches of every run)
SETUP: dict[str, tuple[tuple[str, ...], dict[str, Any], dict[str, Any]]] = {
    "mmmo": (("audio", "video"), {}, {}),
    "ravdess": (("audio",), {"max_epochs": 16, "patience": 6, "plateau_patience": 6}, {}),
    "meld": (("text",), {"max_epochs": 12, "patience": 3, "plateau_patience": 3}, {"batch_size": 64}),
    "synthetic": (("audio", "video", "text"), {}, {}),
}


def make_config(corpus: str, preset: str, fold: Path, seed: int, best: dict | None) -> Any:
    """One run's config: the preset (or ``best.json`` for ``tune``) with the corpus's setup."""
    from selfcross.config import ModelConfig, RunConfig, TrainConfig, apply_config_file
    from selfcross.training.loop import fit_model_config

    mods, budget, fixed = SETUP[corpus]
    train = TrainConfig(seed=seed, num_threads=1, device="cpu", **fixed,
                        **(budget if preset in ("paper", "improved") else {}))
    model = ModelConfig(kind="self", modalities=mods)
    if corpus == "ravdess" and preset in ("paper", "improved"):  # the RAVDESS script's 25 mixed steps
        from selfcross.folds import read_fold

        model = fit_model_config(model, read_fold(fold, modalities=mods).shapes, 8)
        model.shapes["audio"].mixed_len = 25
    recipe = best if preset == "tune" else {"preset": preset}
    return apply_config_file(RunConfig(model=model, train=train), recipe)


# --------------------------------------------------------------------------------- tuning
def tune(corpus: str, features: str, root: Path, args: argparse.Namespace) -> dict:
    """``selfcross tune`` on the corpus's own dev splits (fold 1, ``--tune-seeds``); best.json."""
    from selfcross.experiments.tune import TuneSpec, run_tune

    mods, _, fixed = SETUP[corpus]
    space = {"model.time_mixing": None} if corpus == "ravdess" else {}  # conv over 500 frames: too slow
    spec = TuneSpec(data_root=root, storage=f"sqlite:///{args.work / 'tune.sqlite'}",
                    study=f"{corpus}-{features}", out=args.work / "tune" / f"{corpus}-{features}",
                    modalities=mods, folds=(1,), seeds=tuple(args.tune_seeds), trials=args.trials,
                    fixed={"train": dict(fixed)}, space=space, device="cpu", threads=1, progress=False)
    result = run_tune(spec)
    print(f"tune {corpus}-{features}: best dev {result.best_value:.4f} -> {result.best_json}", flush=True)
    return json.loads(result.best_json.read_text())


# ------------------------------------------------------------------------------ the runs
def run_cell(corpus: str, features: str, preset: str, root: Path, args: argparse.Namespace) -> list[dict]:
    """Every fold x seed run of one cell (finished folders reused); rows appended to runs.jsonl."""
    from _common import _train_one

    from selfcross.folds import list_folds

    best = tune(corpus, features, root, args) if preset == "tune" else None
    rows = []
    for fold in list_folds(root)[: args.folds]:
        for seed in args.seeds:
            job = {"config": make_config(corpus, preset, fold, seed, best), "fold": fold,
                   "out": args.work / "runs" / f"{corpus}-{features}-{preset}-{fold.name}-s{seed}",
                   "row": {"corpus": corpus, "features": features, "preset": preset, "fold": fold.name,
                           "seed": seed}}
            row = _train_one(job)
            dev = json.loads((job["out"] / "metrics.json").read_text())["dev"]  # the dev evidence beside test
            row.update(dev_acc=dev["accuracy"], dev_f1w=dev["f1_weighted"])
            print(" ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()),
                  flush=True)
            with (args.work / "runs.jsonl").open("a") as f:
                f.write(json.dumps(row) + "\n")
            rows.append(row)
    return rows


def floor(corpus: str, features: str, root: Path, args: argparse.Namespace) -> dict:
    """The linear floor (``selfcross baseline``) on the same folds, restricted to ``--folds``."""
    mods = "".join(m[0] for m in SETUP[corpus][0])
    out = linear_floor(root, args.work / "linear" / f"{corpus}-{features}", mods)
    return {k: v[: args.folds] for k, v in out.items()}


def tables(rows: list[dict], floors: dict[tuple[str, str], dict]) -> list[str]:
    """One table per held-out corpus: a row per (features, recipe) and the floors."""
    lines = []
    for corpus in dict.fromkeys(r["corpus"] for r in rows):
        lines += [f"### held out: {corpus}", "",
                  "| recipe | features | runs (folds x seeds) | accuracy % | balanced accuracy % "
                  "| weighted F1 % |",
                  "|---|---|---|---|---|---|"]
        for features in dict.fromkeys(r["features"] for r in rows if r["corpus"] == corpus):
            for preset in PRESETS:
                cell = (corpus, features, preset)
                rs = [r for r in rows if (r["corpus"], r["features"], r["preset"]) == cell]
                if rs:
                    shape = f"{len({r['fold'] for r in rs})} x {len({r['seed'] for r in rs})}"
                    lines.append(f"| {preset} | {features} | {shape} | {mean_std([r['acc'] for r in rs])} | "
                                 f"{mean_std([r['bal'] for r in rs])} | {mean_std([r['f1w'] for r in rs])} |")
            fl = floors.get((corpus, features))
            if fl:
                lines.append(f"| linear floor (`selfcross baseline`) | {features} | "
                             f"{len(fl['accuracy'])} x 1 | {mean_std(fl['accuracy'])} | "
                             f"{mean_std(fl['balanced_accuracy'])} | {mean_std(fl['f1_weighted'])} |")
        lines.append("")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA,
                    help="shared data folder (default ../shared/data)")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "selfcross-real" / "loco")
    ap.add_argument("--cells", default="mmmo:binary:paper,mmmo:binary:strong,mmmo:binary:tune",
                    help="comma list of corpus:features:recipe (recipes: paper, improved, strong, tune)")
    ap.add_argument("--folds", type=int, default=1, help="first N folds of each data root")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--trials", type=int, default=10, help="tuning trials per (corpus, features)")
    ap.add_argument("--tune-seeds", default="1,2", help="seeds each tuning trial averages")
    ap.add_argument("--no-results", action="store_true", help="do not write RESULTS.md")
    args = ap.parse_args(argv)
    args.seeds = [int(s) for s in args.seeds.split(",")]
    args.tune_seeds = [int(s) for s in args.tune_seeds.split(",")]
    args.work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rows, floors, roots = [], {}, {}
    for cell in args.cells.split(","):
        corpus, features, preset = cell.split(":")
        if (corpus, features) not in roots:
            roots[corpus, features] = prepare(corpus, features, args)
            floors[corpus, features] = floor(corpus, features, roots[corpus, features], args)
        rows += run_cell(corpus, features, preset, roots[corpus, features], args)
    total = time.perf_counter() - t0
    print("\n".join(tables(rows, floors)))
    for corpus in dict.fromkeys(r["corpus"] for r in rows):  # one section per held-out corpus
        mine = [r for r in rows if r["corpus"] == corpus]
        text = "\n".join([
            f"## Leave-one-corpus-out, held out: {corpus}", "",
            f"Command: `{command_line()}`  ",
            f"Time: {total / 60:.1f} min for this command on {hardware()} shared with other jobs (one run "
            "at a time, 1 torch thread; finished runs of earlier invocations are reused).  ",
            f"Setup: first {args.folds} fold(s) of the data root, seeds {args.seeds}; tune = "
            f"`selfcross tune` ({args.trials} trials, fold 1, seeds {args.tune_seeds}, dev splits only) "
            "then its best.json. "
            "Mean (std) over the runs (linear floor: over folds).", "",
            *tables(mine, floors), *runs_details(mine)])
        if not args.no_results:
            write_section(f"{SECTION}_{corpus}", text)
            print(f"wrote {RESULTS} ({SECTION}_{corpus})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
