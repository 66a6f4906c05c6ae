"""ICT-MMMO, audio + video: self- vs cross-attention on real features, binary sentiment and regression.

What it shows: ``selfcross import-features mfn`` reads the Memory Fusion Network release of
ICT-MMMO (COVAREP audio 74-d, FACET video 36-d, 20 word-aligned steps, zero padding at the
front) and the self-vs-cross study runs on it end to end. Protocol:

* data: ``<data>/ict-mmmo`` (official split 220 / 40 / 80 videos, ratings 1..5 in half
  steps; the training split has no text, so audio + video only), imported twice with
  ``--center 3`` (score = rating - 3):
  - binary: ``--labels sentiment2-non0`` (negative = rating <= 2.5, positive >= 3.5; the
    3.0 ratings are left out, as the field's Non0 convention does): 200 / 37 / 74 videos;
  - regression: every video, ``--task regression`` (one output, L1 loss, best dev MAE);
* model: ``self`` and ``cross`` on A+V, the paper's sizes; preset ``improved`` (train-split
  standardization: COVAREP and FACET values span several orders of magnitude; padding
  masks); the time-mixing lengths follow the paper's ratios (audio 20 -> 10, video 20 -> 16);
* training: the paper's protocol (Adam 1e-3, batch 32, patience 10, at most 100 epochs),
  seeds 1..10, ``--workers`` 2 runs in parallel with one torch thread each;
* report: ``selfcross report`` of each results database (tables, paired tests on accuracy /
  MAE, figures); baselines: the linear floor of ``selfcross baseline`` (binary; it has no
  regression mode) and, computed here from the labels, the training majority class (binary)
  and the training mean score (regression).

Run::

    .venv-full/bin/python benchmarks/real/mmmo_av.py

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
from _common import DEFAULT_DATA, RESULTS, command_line, runs_details, write_section

SECTION = "mmmo_av"
TASKS = {  # name -> (import options, grid task, metrics shown: key, header, percent?)
    "binary": ({"labels": "sentiment2-non0"}, "classification",
               (("accuracy", "Acc-2 %", True), ("f1_weighted", "F1 %", True))),
    "regression": ({"labels": "sentiment2"}, "regression",
                   (("mae", "MAE", False), ("pearson_r", "Pearson r", False),
                    ("acc2_non0", "Acc-2 non-0 %", True), ("acc2_has0", "Acc-2 has-0 %", True))),
}


def _cell(values: list[float], percent: bool) -> str:
    """``mean (std)``; a single run (the deterministic linear floor) is shown without a std."""
    a = np.asarray([v for v in values if v is not None], dtype=float) * (100 if percent else 1)
    digits = 1 if percent else 3
    return f"{a.mean():.{digits}f}" + (f" ({a.std(ddof=1):.{digits}f})" if a.size > 1 else "")


def _baselines(root: Path) -> dict[str, float]:
    """Training-majority accuracy / F1 and training-mean MAE on the test split."""
    from sklearn.metrics import f1_score

    fold = root / "fold01"
    train, test = np.load(fold / "train_label.npy"), np.load(fold / "test_label.npy")
    majority = np.full_like(test, np.bincount(train).argmax())
    scores = np.load(fold / "train_score.npy"), np.load(fold / "test_score.npy")
    return {"accuracy": float((majority == test).mean()),
            "f1_weighted": float(f1_score(test, majority, average="weighted", zero_division=0)),
            "mae": float(np.abs(scores[1] - scores[0].mean()).mean())}


def _study(name: str, src: Path, work: Path, args: argparse.Namespace) -> dict:
    from selfcross.analysis.report import make_report
    from selfcross.experiments.grid import run_grid
    from selfcross.experiments.options import ExecutionOptions, GridPlan
    from selfcross.experiments.store import ResultsStore
    from selfcross.prepare import import_features

    options, task, _ = TASKS[name]
    root = work / f"data_{name}"
    import_features("mfn", src, root, center=3, overwrite=True, **options)
    db = work / f"{name}.sqlite"  # a rerun resumes: runs already done there are not repeated
    plan = GridPlan(models=("self", "cross"), modalities=("av",), seeds=args.seeds, device="cpu",
                    preset="improved", task=task)
    execution = ExecutionOptions(workers=args.workers, threads_per_worker=1, progress=False)
    summary = run_grid(root, plan, execution, db=db, runs_dir=work / f"runs_{name}")
    if summary.failed:
        raise SystemExit(f"{name}: {summary.failed} runs failed: {summary.failures[:2]}")
    if task == "classification":  # the linear floor, stored beside the runs (model "linear")
        from selfcross.experiments.baseline import run_baseline

        run_baseline(root, work / f"baseline_{name}", modalities="av", db=db, log=lambda _: None)
    make_report(db, work / f"report_{name}")
    with ResultsStore.open(db, create=False) as store:
        runs = [{"model": r.model_kind, "seed": r.seed,
                 **{k: r.test_metrics.get(k) for k, _, _ in TASKS[name][2]}} for r in store.runs()]
    return {"runs": runs, "baseline": _baselines(root), "report": work / f"report_{name}" / "report.md",
            "resumed": summary.already_done}


def self_vs_cross(report_dir: Path) -> list[str]:
    """The report's self-vs-cross verdicts on the task's main metric (accuracy / MAE), as lines."""
    import json

    comparisons = json.loads((report_dir / "results.json").read_text())["comparisons"]
    out = []
    for e in comparisons:
        if "metrics" in e:  # a classification report: one entry per metric
            m = e["metrics"]["accuracy"]
            p = m["wilcoxon"]["p_value"]
            out.append(f"- accuracy, {e['n_pairs']} paired runs: {m['verdict']}; Wilcoxon p = {p:.3g}.")
        else:
            p = e["wilcoxon"]["p_value"]
            out.append(f"- MAE, {e['n_pairs']} paired runs: {e['verdict']}; Wilcoxon p = {p:.3g}.")
    return out


def _table(results: dict, minutes: float) -> str:
    resumed = sum(r["resumed"] for r in results.values())
    note = f"; {resumed} runs were already in the databases and not repeated" if resumed else ""
    lines = [f"ICT-MMMO, audio + video, official split (`{command_line()}`, {minutes:.1f} min{note}).", ""]
    for name, res in results.items():
        cols = TASKS[name][2]
        lines += [f"| {name} | " + " | ".join(h for _, h, _ in cols) + " |", "|---|" + "---|" * len(cols)]
        for kind in ("self", "cross"):
            runs = [r for r in res["runs"] if r["model"] == kind]
            cells = " | ".join(_cell([r[k] for r in runs], pct) for k, _, pct in cols)
            lines.append(f"| selfcross {kind}, improved ({len(runs)} seeds) | {cells} |")
        linear = [r for r in res["runs"] if r["model"] == "linear"]
        if linear:
            cells = " | ".join(_cell([r[k] for r in linear], pct) for k, _, pct in cols)
            lines.append(f"| linear floor (`selfcross baseline`, logistic regression; deterministic, 1 run) "
                         f"| {cells} |")
        base = res["baseline"]
        label = "training majority class" if name == "binary" else "training mean score"
        cells = " | ".join((f"{100 * base[k]:.1f}" if pct else f"{base[k]:.3f}") if k in base else "-"
                           for k, _, pct in cols)
        lines += [f"| {label} | {cells} |", ""]
        lines += ["Self vs cross (paired over seeds; all tests and figures in the study's "
                  f"`report_{name}/report.md`):", "", *self_vs_cross(res["report"].parent), ""]
        lines += runs_details(res["runs"]) + [""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA,
                    help="shared data folder (default ../shared/data)")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "selfcross-real" / "mmmo",
                    help="data roots, results databases, runs and reports")
    ap.add_argument("--seeds", default="1-10")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-results", action="store_true", help="do not write RESULTS.md")
    args = ap.parse_args(argv)
    src = args.data / "ict-mmmo"
    if not (src / "y_train.h5").is_file():
        print(f"skipped: {src}/y_train.h5 not found (ICT-MMMO features; see /work/shared/data/README.md)")
        return 0
    args.work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    results = {name: _study(name, src, args.work, args) for name in TASKS}
    text = _table(results, (time.perf_counter() - t0) / 60)
    print(text)
    for name, res in results.items():
        print(f"{name} report: {res['report']}")
    if not args.no_results:
        write_section(SECTION, "## ICT-MMMO, audio + video (self vs cross)\n\n" + text)
        print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
