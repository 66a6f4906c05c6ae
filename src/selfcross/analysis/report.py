"""The study report: tables, significance tests and figures from a results store.

Why a report from the database and not from run folders: the store is the single record of
a study (every finished run, its config hash, its per-utterance predictions), so the report
can be regenerated at any time, also while a grid is still running (WAL readers).

Conventions:
* One value per run key: if a run key was trained under several configurations (e.g. a
  grid rerun with another ``--max-epochs``), the most recently finished one is used and the
  report says how many were superseded.
* Mean (std) use the sample standard deviation (ddof = 1) over (fold, seed) runs.
* Self vs cross is compared per preset and modality set on the (fold, seed) pairs both have.
  The verdict uses the Wilcoxon signed-rank test with Holm's correction across the modality
  sets (per metric); paired t, the bootstrap interval and McNemar are reported beside it.
* The linear floor (model ``linear``, ``selfcross baseline``) has no preset and one run per
  fold: it is shown in every preset's tables, and self and cross are each compared with it by
  the same tests, each deep (fold, seed) run paired with the linear run of its fold (same
  fold content). Seeds of one fold then share their linear partner, as they share their fold.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import recall_score

from selfcross.analysis import plots
from selfcross.analysis.curves import curve_figures, curves_section
from selfcross.analysis.robustness import (
    compare_robustness,
    robustness_by_model,
    robustness_figures,
    robustness_model_section,
    robustness_section,
)
from selfcross.analysis.stats import (
    bootstrap_mean_diff,
    holm,
    mcnemar,
    paired_t,
    wilcoxon_paired,
)
from selfcross.analysis.study import (
    ALPHA,
    LINEAR,
    Cell,
    Study,
    clean_json,
    collect,
    format_p,
    modality_order,
    nan_if_none,
    paired_runs,
    sorted_cells,
    tasks_in,
    unique_runs,
)
from selfcross.experiments.store import Predictions, ResultsStore, RunRow
from selfcross.paper import PAPER_ABLATION, PAPER_METRIC_LABELS, PAPER_RESULTS
from selfcross.tasks import get_task

#: Metrics of the paper's table, in its column order.
METRICS: tuple[str, ...] = ("accuracy", "balanced_accuracy")
#: Plain labels (``paper_labels=False``).
PLAIN_LABELS: dict[str, str] = {"accuracy": "accuracy", "balanced_accuracy": "balanced accuracy"}
#: How verdicts name each side of a comparison.
SIDE_NAMES: dict[str, str] = {"self": "self-attention", "cross": "cross-attention",
                              LINEAR: "the linear floor"}


def _fmt(mean: float, std: float) -> str:
    if not math.isfinite(mean):
        return "-"
    return f"{100 * mean:.1f} ({100 * std:.1f})" if math.isfinite(std) else f"{100 * mean:.1f} (-)"


def _pooled(store: ResultsStore, a: list[RunRow], b: list[RunRow]) -> tuple[np.ndarray, ...] | None:
    """Concatenate the test predictions of paired runs (same fold, same utterances)."""
    ys, pa, pb = [], [], []
    for ra, rb in zip(a, b):
        x, y = store.predictions(ra.id), store.predictions(rb.id)
        if len(x.y_true) == 0 or len(x.y_true) != len(y.y_true) or not np.array_equal(x.y_true, y.y_true):
            return None
        ys.append(x.y_true)
        pa.append(x.y_pred)
        pb.append(y.y_pred)
    if not ys:
        return None
    return np.concatenate(ys), np.concatenate(pa), np.concatenate(pb)


def compare(store: ResultsStore, study: Study, a: str = "self", b: str = "cross") -> list[dict[str, Any]]:
    """``a`` vs ``b`` (SP) per preset and modality set, both metrics; Holm across modality sets."""
    out: list[dict[str, Any]] = []
    presets = sorted({k[0] for k in study.cells})
    for preset in presets:
        group = []
        for code in sorted({k[2] for k in study.cells if k[0] == preset}, key=modality_order):
            s, c = study.cells.get((preset, a, code)), study.cells.get((preset, b, code))
            if s is None or c is None:
                continue
            ra, rb = paired_runs(s, c)
            if not ra:
                continue
            entry: dict[str, Any] = {
                "preset": preset,
                "modalities": code,
                "a": a,
                "b": b,
                "n_pairs": len(ra),
                "metrics": {},
            }
            for metric in METRICS:
                x = np.array([float(r.test_metrics.get(metric, np.nan)) for r in ra])
                y = np.array([float(r.test_metrics.get(metric, np.nan)) for r in rb])
                entry["metrics"][metric] = {
                    f"{a}_mean": float(x.mean()),
                    f"{b}_mean": float(y.mean()),
                    "wilcoxon": wilcoxon_paired(x, y).to_dict(),
                    "paired_t": paired_t(x, y).to_dict(),
                    "bootstrap": bootstrap_mean_diff(x, y, seed=0).to_dict(),
                }
            pooled = _pooled(store, ra, rb)
            entry["mcnemar"] = None if pooled is None else mcnemar(*pooled).to_dict()
            group.append(entry)
        for metric in METRICS:
            adj = holm([nan_if_none(e["metrics"][metric]["wilcoxon"]["p_value"]) for e in group])
            for e, p_holm in zip(group, adj):
                m = e["metrics"][metric]
                m["wilcoxon_holm"] = None if not math.isfinite(p_holm) else float(p_holm)
                min_p = (m["wilcoxon"].get("details") or {}).get("min_p", 0.0)
                m["holm_reachable"] = bool(min_p * len(group) < ALPHA)
                m["verdict"] = _verdict(m, metric, a, b, e["mcnemar"])
        out.extend(group)
    return out


def compare_linear(store: ResultsStore, study: Study) -> list[dict[str, Any]]:
    """Self vs the linear floor and cross vs the linear floor (each its own Holm family)."""
    return compare(store, study, "self", LINEAR) + compare(store, study, "cross", LINEAR)


def _verdict(m: dict[str, Any], metric: str, a: str = "self", b: str = "cross",
             mcnemar: dict[str, Any] | None = None) -> str:
    """One line: the signed-rank verdict, the effect with its interval, and any test that disagrees.

    The power limit of the design is not repeated here; :func:`_power_note` states it once.
    """
    ph, ci = m["wilcoxon_holm"], m["bootstrap"]
    diff = (f"{a} - {b} {100 * ci['mean_diff']:+.1f} points [95% CI {100 * ci['low']:+.1f}, "
            f"{100 * ci['high']:+.1f}]")
    if ph is not None and ph < ALPHA:
        better = SIDE_NAMES.get(a, a) if ci["mean_diff"] > 0 else SIDE_NAMES.get(b, b)
        return f"{better} is significantly better on {metric} (signed-rank, Holm p = {format_p(ph)}); {diff}"
    head = f"no significant difference on {metric} (signed-rank, Holm p = {format_p(ph)}); {diff}"
    others = _disagreeing(m, mcnemar if metric == "accuracy" else None)
    if not others:
        return head
    listed = ", ".join(others[:-1]) + (" and " if len(others) > 1 else "") + others[-1]
    return f"{head}; {listed} {'does' if len(others) == 1 else 'do'} see one: the tests disagree"


def _disagreeing(m: dict[str, Any], mcnemar: dict[str, Any] | None) -> list[str]:
    """The other tests that do see a difference at ALPHA (McNemar only for plain accuracy)."""
    out = []
    ci, pt = m["bootstrap"], m["paired_t"]["p_value"]
    if ci.get("n", 2) > 1 and (ci["low"] > 0 or ci["high"] < 0):  # one pair: no interval at all
        out.append("the bootstrap CI")
    if pt is not None and pt < ALPHA:
        out.append(f"paired t (p = {format_p(pt)})")
    if mcnemar is not None and mcnemar["p_value"] is not None and mcnemar["p_value"] < ALPHA:
        d = mcnemar["details"]
        out.append(f"McNemar (p = {format_p(mcnemar['p_value'])}; {d['b']} vs {d['c']} utterances)")
    return out


def _power_note(group: list[dict[str, Any]]) -> str:
    """The design's power limit, said once: when a signed-rank p could not pass Holm's correction."""
    pairs = [(e, e["metrics"][m]) for e in group for m in METRICS]
    limited = [(e, m) for e, m in pairs if not m.get("holm_reachable", True)]
    if not limited:
        return ""
    best = min((m["wilcoxon"].get("details") or {}).get("min_p", 1.0) for _, m in limited)
    n = max(e["n_pairs"] for e, _ in limited)
    which = ("no difference could be called significant here, whatever the data" if len(limited) == len(pairs)
             else f"{len(limited)} of the {len(pairs)} comparisons could not be called significant, "
                  "whatever the data")
    return (f"Power: with {n} (fold, seed) pairs the smallest possible signed-rank p is {best:.3g}, and "
            f"Holm's correction over {len(group)} modality set(s) multiplies it by {len(group)}: {which}. "
            "McNemar (per utterance) and the bootstrap CI are not limited this way. Run more folds or "
            "seeds for a conclusive signed-rank test.")


def _confusion(store: ResultsStore, runs: list[RunRow], n_classes: int) -> np.ndarray:
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    for r in runs:
        p = store.predictions(r.id)
        np.add.at(cm, (p.y_true, p.y_pred), 1)
    return cm


def majority_baseline(store: ResultsStore, study: Study, preset: str) -> dict[str, float]:
    """Accuracy of always predicting each fold's most frequent test class, pooled over the
    folds of ``preset``'s runs (one run's test labels per fold): the score a model must beat
    on skewed data, where chance 1/K is far below it."""
    first: dict[int, RunRow] = {}
    for (p, _, _), cell in sorted(study.cells.items()):
        for r in cell.runs:
            if p == preset:
                first.setdefault(r.fold, r)
    hits = total = 0
    for r in first.values():
        y = np.asarray(store.predictions(r.id).y_true, dtype=np.int64)
        if y.size:
            hits += int(np.bincount(y).max())
            total += int(y.size)
    return {"accuracy": hits / total} if total else {}


def _recall(preds: list[Predictions], n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    # recall of a class with no true example is undefined (NaN), not 0
    r = np.array([recall_score(p.y_true, p.y_pred, labels=np.arange(n_classes), average=None,
                               zero_division=np.nan) for p in preds])
    std = np.nanstd(r, axis=0, ddof=1) if len(preds) > 1 else np.zeros(n_classes)
    return np.nanmean(r, axis=0), std


def make_report(
    db: str | Path, out_dir: str | Path, paper_labels: bool = False, task: str | None = None
) -> Path:
    """Write each task's report of a results store (its :attr:`~selfcross.tasks.Task.report`).

    A store of one task (or with ``task``) gets one report in ``out_dir``; a store of several
    tasks gets one per task in ``out_dir/<task>/``, with ``report.md`` and ``summary.txt`` in
    ``out_dir`` linking them.

    Args:
        db: the results database (opened read-only in spirit: nothing is written to it, except
            that an older schema is migrated).
        out_dir: output folder (created).
        paper_labels: label the metrics as the paper does (WA = balanced accuracy, UA = accuracy).
        task: report only this task's runs.

    Returns:
        Path of ``report.md``.

    Raises:
        StoreError: unusable database or no finished runs (of ``task``). ConfigError: no such task.
    """
    out = Path(out_dir)
    with ResultsStore.open(db, create=False) as store:
        names = [get_task(task).name] if task is not None else (tasks_in(store) or [None])
        if len(names) == 1:
            return _task_report(store, names[0], out, paper_labels)
        paths = [_task_report(store, name, out / str(name), paper_labels) for name in names]
    lines = ["# selfcross results", "", f"This store holds runs of {len(names)} tasks; one report each "
             "(`selfcross report --task NAME` writes one alone):", ""]
    lines += [f"- [{name}]({p.relative_to(out).as_posix()})" for name, p in zip(names, paths)]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    (out / "summary.txt").write_text("\n".join(
        f"== {name}\n{(p.parent / 'summary.txt').read_text()}" for name, p in zip(names, paths)))
    return out / "report.md"


def _task_report(store: ResultsStore, task: str | None, out: Path, paper_labels: bool) -> Path:
    study = collect(store, task)
    return get_task(study.task).report_function()(store, study, out, paper_labels=paper_labels)


def classification_report(store: ResultsStore, study: Study, out: Path, paper_labels: bool = False) -> Path:
    """Write ``report.md``, ``results.csv``, ``runs.csv``, ``results.json``, ``summary.txt`` and figures
    (scores, confusion, recall, robustness, and learning curves ``figures/curves_<set>.png``) of a
    classification study."""
    labels = dict(PAPER_METRIC_LABELS) if paper_labels else dict(PLAIN_LABELS)
    comparisons = compare(store, study)
    versus_linear = compare_linear(store, study)
    robust = compare_robustness(store, study)
    by_model = robustness_by_model(store, study)
    out.mkdir(parents=True, exist_ok=True)
    figures = _figures(store, study, labels, out / "figures")
    figures += robustness_figures(by_model, out / "figures")
    curve_files, no_history = curve_figures(store, study.cells, out / "figures")
    md = _markdown(study, comparisons, labels, figures, out, versus_linear, robust,
                   curves_section(curve_files, no_history, out), by_model)
    (out / "report.md").write_text(md)
    summary = _summary_text(study, comparisons, labels, versus_linear)
    (out / "summary.txt").write_text(summary)
    _write_csv(study, labels, out)
    results = {
        "task": study.task,
        "metric_labels": labels,
        "cells": [_cell_json(c) for c in sorted_cells(study)],
        "comparisons": comparisons,
        "linear_comparisons": versus_linear,
        "robustness": robust,
        "robustness_by_model": by_model,
        "superseded_runs": study.superseded,
        "other_data_root_runs": study.other_roots,
        "failed_runs": [{"run_key": r.run_key, "error": r.error} for r in study.failed],
        "running_runs": study.running,
        "iemocap_shaped": study.iemocap_shaped,
        "mixed_versions": study.mixed_versions,
        "class_names": study.class_names,
        "figures": [str(f.relative_to(out)) for f in figures + curve_files],
    }
    (out / "results.json").write_text(json.dumps(clean_json(results), indent=2, allow_nan=False) + "\n")
    return out / "report.md"


def _cell_json(c: Cell) -> dict[str, Any]:
    d: dict[str, Any] = {
        "preset": c.preset,
        "variant": c.variant,
        "modalities": c.modalities,
        "n_runs": len(c.runs),
        "folds": sorted({r.fold for r in c.runs}),
        "seeds": sorted({r.seed for r in c.runs}),
    }
    for metric in (*METRICS, "f1_macro"):
        mean, std, _ = c.summary(metric)
        d[metric] = {
            "mean": None if not math.isfinite(mean) else mean,
            "std": None if not math.isfinite(std) else std,
        }
    return d


def _write_csv(study: Study, labels: dict[str, str], out: Path) -> None:
    _write_cells_csv(study, out / "results.csv")
    _write_runs_csv(study, out / "runs.csv")


def _write_cells_csv(study: Study, path: Path) -> None:
    """One row per cell: its run count and each metric's mean and std."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "preset",
                "model",
                "modalities",
                "n_runs",
                "accuracy_mean",
                "accuracy_std",
                "balanced_accuracy_mean",
                "balanced_accuracy_std",
                "f1_macro_mean",
                "f1_macro_std",
            ]
        )
        for c in sorted_cells(study):
            row: list[Any] = [c.preset, c.variant, c.modalities, len(c.runs)]
            for metric in (*METRICS, "f1_macro"):
                mean, std, _ = c.summary(metric)
                row += [
                    f"{mean:.6f}" if math.isfinite(mean) else "",
                    f"{std:.6f}" if math.isfinite(std) else "",
                ]
            w.writerow(row)


def _write_runs_csv(study: Study, path: Path) -> None:
    """One row per finished run: its key, scores, epochs and provenance."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "run_key",
                "preset",
                "model",
                "modalities",
                "fold",
                "seed",
                "test_accuracy",
                "test_balanced_accuracy",
                "test_f1_macro",
                "dev_accuracy",
                "best_epoch",
                "epochs_run",
                "wall_time_s",
                "config_hash",
                "data_fingerprint",
                "run_dir",
            ]
        )
        written: set[int] = set()
        for c in sorted_cells(study):
            for r in c.runs:
                if r.id in written:  # a linear run is shown under every preset, listed once
                    continue
                written.add(r.id)
                t, dv = r.test_metrics, r.dev_metrics
                w.writerow(
                    [
                        r.run_key,
                        r.preset,
                        c.variant,
                        r.modalities,
                        r.fold,
                        r.seed,
                        t.get("accuracy"),
                        t.get("balanced_accuracy"),
                        t.get("f1_macro"),
                        dv.get("accuracy"),
                        r.best_epoch,
                        r.epochs_run,
                        r.wall_time_s,
                        r.config_hash,
                        r.data_fingerprint,
                        r.run_dir,
                    ]
                )


def _main_table(study: Study, labels: dict[str, str], preset: str) -> list[str]:
    present = {k[1] for k in study.cells if k[0] == preset}
    variants = [v for v in ("self", "cross", LINEAR) if v in present]
    codes = sorted({k[2] for k in study.cells if k[0] == preset and k[1] in variants}, key=modality_order)
    head = ["modalities"]
    for metric in METRICS:
        head += [f"{labels[metric]} {v}" for v in variants]
    head += [f"n {v}" for v in variants]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for code in codes:
        row = [plots.modality_label(code)]
        for metric in METRICS:
            for v in variants:
                c = study.cells.get((preset, v, code))
                row.append(_fmt(*c.summary(metric)[:2]) if c else "-")
        for v in variants:
            c = study.cells.get((preset, v, code))
            row.append(str(len(c.runs)) if c else "-")
        lines.append("| " + " | ".join(row) + " |")
    return lines


def _comparison_table(comparisons: list[dict[str, Any]], labels: dict[str, str], preset: str,
                      a: str = "self", b: str = "cross") -> list[str]:
    lines = [
        f"| modalities | metric | pairs | {a} - {b} [95% CI] | Wilcoxon p | Holm p | paired t p "
        "| McNemar p (b/c) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for e in comparisons:
        if e["preset"] != preset or (e.get("a", "self"), e.get("b", "cross")) != (a, b):
            continue
        mc = e["mcnemar"]
        for metric in METRICS:
            m = e["metrics"][metric]
            # McNemar compares correct/incorrect calls: it tests plain accuracy only
            mcs = "-" if mc is None or metric != "accuracy" else \
                f"{format_p(mc['p_value'])} ({mc['details']['b']}/{mc['details']['c']})"
            ci = m["bootstrap"]
            lines.append(
                f"| {plots.modality_label(e['modalities'])} | {labels[metric]} | {e['n_pairs']} | "
                f"{100 * ci['mean_diff']:+.1f} [{100 * ci['low']:+.1f}, {100 * ci['high']:+.1f}] | "
                f"{format_p(m['wilcoxon']['p_value'])} | {format_p(m['wilcoxon_holm'])} | "
                f"{format_p(m['paired_t']['p_value'])} | "
                f"{mcs} |"
            )
    return lines


def _verdict_lines(comparisons: list[dict[str, Any]], labels: dict[str, str], preset: str) -> list[str]:
    """One line per modality set and metric, then the design's power limit once."""
    group = [e for e in comparisons if e["preset"] == preset]
    lines = []
    for e in group:
        versus = "" if e.get("b", "cross") == "cross" else f" ({e['a']} vs {e['b']})"
        for metric in METRICS:
            v = e["metrics"][metric]["verdict"].replace(f" on {metric}", "")
            lines.append(f"- {plots.modality_label(e['modalities'])}{versus} {labels[metric]}: {v}.")
    # one Holm family per (a, b): the power limit once per family, and once if they agree
    families = {(e.get("a", "self"), e.get("b", "cross")) for e in group}
    notes = {_power_note([e for e in group if (e.get("a", "self"), e.get("b", "cross")) == f])
             for f in sorted(families)} - {""}
    return lines + [line for note in sorted(notes) for line in ("", note)]


def _ablation(study: Study, labels: dict[str, str], preset: str) -> list[str]:
    lines: list[str] = []
    codes = sorted({k[2] for k in study.cells if k[0] == preset}, key=modality_order)
    for code in codes:
        variants = {k[1]: c for k, c in study.cells.items() if k[0] == preset and k[2] == code}
        if set(variants) <= {"self", "cross"}:
            continue
        order = ["cross-noSP", "cross", "self-noSP", "self", "self+cross"]
        names = sorted(variants, key=lambda v: (order.index(v) if v in order else 9, v))
        lines += [
            "",
            f"#### {plots.modality_label(code)}",
            "",
            f"| variant | {labels['balanced_accuracy']} | {labels['accuracy']} | n |",
            "|---|---|---|---|",
        ]
        for v in names:
            c = variants[v]
            lines.append(
                f"| {v} | {_fmt(*c.summary('balanced_accuracy')[:2])} | "
                f"{_fmt(*c.summary('accuracy')[:2])} | {len(c.runs)} |"
            )
        if code == "atv" and study.iemocap_shaped:
            lines += [
                "",
                "The paper's tri-modal ablation, mean (std):",
                "",
                f"| variant | {labels['balanced_accuracy']} | {labels['accuracy']} |",
                "|---|---|---|",
            ]
            for v, m in PAPER_ABLATION.items():
                b, a = m["balanced_accuracy"], m["accuracy"]
                lines.append(
                    f"| {v} | {100 * b[0]:.1f} ({100 * b[1]:.1f}) | {100 * a[0]:.1f} ({100 * a[1]:.1f}) |"
                )
    return lines


def _paper_table(study: Study, labels: dict[str, str], preset: str) -> list[str]:
    head = (
        ["model", "modalities"]
        + [f"{labels[m]} ours" for m in METRICS]
        + [f"{labels[m]} paper" for m in METRICS]
    )
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    rows = sorted(PAPER_RESULTS.items(), key=lambda kv: (modality_order(kv[0][1]), kv[0][0]))
    for (kind, code), paper in rows:
        c = study.cells.get((preset, kind, code))
        ours = [_fmt(*c.summary(m)[:2]) if c else "-" for m in METRICS]
        lines.append(
            "| "
            + " | ".join(
                [kind, plots.modality_label(code), *ours, *[f"{100 * paper[m]:.1f}" for m in METRICS]]
            )
            + " |"
        )
    return lines


def _summary_text(study: Study, comparisons: list[dict[str, Any]], labels: dict[str, str],
                  versus_linear: list[dict[str, Any]] = ()) -> str:
    parts = [f"warning: {study.mixed_versions}", ""] if study.mixed_versions else []
    for preset in sorted({k[0] for k in study.cells}):
        parts += [f"Test scores, mean (std) in %, preset {preset}:", *_main_table(study, labels, preset), ""]
        v = _verdict_lines(comparisons, labels, preset)
        if v:
            parts += [
                "Self vs cross (Wilcoxon signed-rank over (fold, seed) pairs, Holm across modality sets):",
                *v,
                "",
            ]
        v = _verdict_lines(list(versus_linear), labels, preset)
        if v:
            parts += ["Against the linear floor (same tests, each run paired with the linear run of "
                      "its fold):", *v, ""]
    return "\n".join(parts)


def dataset_name(runs: Any) -> str:
    """What the runs were trained on, for figure titles: ``synthetic benchmark``, a prepared
    corpus (``RAVDESS``, ``IEMOCAP``...) or else the data root's folder name ("" if unrecorded)."""
    names: list[str] = []
    for r in runs:
        fold_dir = (r.config.get("data") or {}).get("fold_dir")
        name = _root_name(Path(fold_dir).parent) if fold_dir else ""
        if name and name not in names:
            names.append(name)
    return " + ".join(names)


def _root_name(root: Path) -> str:
    if (root / "synthetic.json").is_file():
        return "synthetic benchmark"
    try:
        first = (root / "prepare_report.md").read_text(encoding="utf-8").splitlines()[0]
    except (OSError, UnicodeDecodeError, IndexError):
        first = ""
    corpus = first.removeprefix("# ").removesuffix(" preparation")
    if first.endswith(" preparation") and corpus.lower() not in ("manifest", "data"):
        return corpus.upper()  # ravdess, crema-d, meld, IEMOCAP: written as the corpora are
    return root.name


def _figures(store: ResultsStore, study: Study, labels: dict[str, str], fig_dir: Path) -> list[Path]:
    files: list[Path] = []
    n_classes = len(study.class_names)
    name = dataset_name(r for c in study.cells.values() for r in c.runs)
    data = f"{name}, {n_classes} classes" if name else f"{n_classes} classes"
    chance = 1 / n_classes if n_classes else None
    for preset in sorted({k[0] for k in study.cells}):
        suffix = "" if preset == "paper" else f"_{preset}"
        cells = {}
        for (p, v, code), c in study.cells.items():
            if p == preset and v in ("self", "cross", LINEAR):
                cells[(v, code)] = {m: c.summary(m) for m in METRICS}
        if cells:
            files.append(
                plots.bar_chart(
                    cells,
                    METRICS,
                    labels,
                    fig_dir / f"scores{suffix}.png",
                    title=f"{data}, preset {preset}\ntest scores, mean and std over runs",
                    chance=chance,
                    majority=majority_baseline(store, study, preset),
                )
            )
        codes = [k[2] for k in study.cells if k[0] == preset]
        if not codes or not n_classes:
            continue
        top = max(set(codes), key=lambda c: (
            len(c), sum(len(x.runs) for k, x in study.cells.items() if k[0] == preset and k[2] == c),
            -modality_order(c)[0]))
        recalls = {}
        for v in ("self", "cross", "self+cross", LINEAR):
            c = study.cells.get((preset, v, top))
            if c is None:
                continue
            runs = [r for r in c.runs if len(r.class_names) == n_classes]
            if not runs:
                continue
            cm = _confusion(store, runs, n_classes)
            files.append(
                plots.confusion_plot(
                    cm,
                    study.class_names,
                    f"{data}\n{v}, {plots.modality_label(top)}, row-normalized, {len(runs)} run(s) pooled",
                    fig_dir / f"confusion_{v.replace('+', '_')}_{top}{suffix}.png",
                )
            )
            recalls[v] = _recall([store.predictions(r.id) for r in runs], n_classes)
        if recalls:
            files.append(
                plots.recall_plot(
                    recalls,
                    study.class_names,
                    f"{data}\nper-class test recall, {plots.modality_label(top)} (mean, std over runs)",
                    fig_dir / f"recall_{top}{suffix}.png",
                )
            )
    return files


def _linear_section(versus_linear: list[dict[str, Any]], labels: dict[str, str], preset: str) -> list[str]:
    """Self vs linear and cross vs linear: the same tests as self vs cross."""
    comp = [e for e in versus_linear if e["preset"] == preset]
    if not comp:
        return []
    lines = ["", "### Against the linear floor", "",
             "The linear floor (`selfcross baseline`: logistic regression on per-utterance statistics, "
             "one deterministic run per fold) against each deep model, with the tests of self vs cross. "
             "Each deep (fold, seed) run is paired with the linear run of the same fold; Holm across the "
             "modality sets of each comparison."]
    for a in ("self", "cross"):
        if any(e["a"] == a for e in comp):
            lines += ["", *_comparison_table(comp, labels, preset, a, LINEAR)]
    return [*lines, "", "**Verdict** (alpha 0.05):", "", *_verdict_lines(comp, labels, preset)]


def _markdown(
    study: Study, comparisons: list[dict[str, Any]], labels: dict[str, str], figures: list[Path], out: Path,
    versus_linear: list[dict[str, Any]] = (),
    robust: list[dict[str, Any]] = (),
    curves: list[str] = (),
    by_model: list[dict[str, Any]] = (),
) -> str:
    lines = _overview(study, labels)
    for preset in sorted({k[0] for k in study.cells}):
        lines += ["", f"## Preset `{preset}`", "", "### Main table", "", *_main_table(study, labels, preset)]
        lines += _self_vs_cross_section(comparisons, labels, preset)
        lines += _linear_section(list(versus_linear), labels, preset)
        lines += robustness_model_section(list(by_model), preset)
        lines += robustness_section(list(robust), preset)
        abl = _ablation(study, labels, preset)
        if abl:
            lines += ["", "### Ablation (pooling and combined attention)", *abl]
        if study.iemocap_shaped:
            lines += [
                "",
                "### Compared with the paper",
                "",
                "The data has IEMOCAP's 7 classes and the paper's input shapes, so the paper's "
                "numbers (Rajan et al., ICASSP 2022; mean over 5 folds x 10 seeds) are shown beside ours.",
                "",
                *_paper_table(study, labels, preset),
            ]
    lines += list(curves)
    lines += _figures_section(figures, out)
    lines += _failed_section(study)
    return "\n".join(lines) + "\n"


def _overview(study: Study, labels: dict[str, str]) -> list[str]:
    """The report's opening lines: what the scores are, and what was left out or mixed."""
    n_runs = len(unique_runs(study))
    lines = [
        "# selfcross results",
        "",
        f"{n_runs} finished runs in {len(study.cells)} cells. Scores are test-set percentages, "
        "mean (sample std) over (fold, seed) runs; n = runs behind each cell.",
    ]
    if labels.get("balanced_accuracy") == "WA":
        lines.append(
            "Metric labels follow the paper: WA = balanced accuracy (mean per-class recall), "
            "UA = plain accuracy (FACTS.md §4)."
        )
    if study.superseded:
        lines.append(
            f"{study.superseded} older run(s) of the same run key under another configuration were "
            "superseded by the latest one."
        )
    if study.other_roots:
        lines.append(f"{study.other_roots} run(s) on another data root (an earlier preparation) are not "
                     "included: the study is the data root of the latest finished run.")
    if study.mixed_versions:
        lines.append(f"**Warning:** {study.mixed_versions}.")
    if study.failed:
        lines.append(f"{len(study.failed)} run(s) failed and are not included (see below).")
    if study.running:
        lines.append(
            f"{study.running} run(s) are still running or were interrupted (rerun the grid to finish)."
        )
    return lines


def _self_vs_cross_section(
    comparisons: list[dict[str, Any]], labels: dict[str, str], preset: str
) -> list[str]:
    """The tests of self vs cross for one preset, their verdict and notes (none: no lines)."""
    comp = [e for e in comparisons if e["preset"] == preset]
    if not comp:
        return []
    lines = [
        "",
        "### Self vs cross",
        "",
        "Paired over (fold, seed). Wilcoxon signed-rank (zero differences dropped, "
        '`zero_method="wilcox"`), paired t-test, mean difference with a 95% percentile '
        "bootstrap interval (10,000 resamples, seed 0), McNemar on the pooled test predictions "
        "(b = self right & cross wrong, c = the reverse; exact binomial when b + c < 25, else "
        "chi-square with continuity correction; it counts correct calls, so it tests plain accuracy "
        "only). Holm p: Wilcoxon p adjusted across the "
        f"{len(comp)} modality set(s) compared, per metric.",
        "",
        *_comparison_table(comparisons, labels, preset),
        "",
        "**Verdict** (alpha 0.05):",
        "",
        *_verdict_lines(comparisons, labels, preset),
    ]
    # the "cannot reach p < 0.05" caveat is the power limit the verdict already states once
    notes = sorted({part for e in comp for m in METRICS
                    for part in e["metrics"][m]["wilcoxon"]["note"].split("; ")
                    if part and "cannot reach" not in part})
    if notes:
        lines += ["", "Notes:", *[f"- {n}" for n in notes]]
    return lines


def _figures_section(figures: list[Path], out: Path) -> list[str]:
    if not figures:
        return []
    lines = ["", "## Figures", ""]
    for f in figures:
        rel = f.relative_to(out)
        lines += [f"![{f.stem}]({rel.as_posix()})", ""]
    return lines


def _failed_section(study: Study) -> list[str]:
    if not study.failed:
        return []
    lines = ["", "## Failed runs", "", "| run | error |", "|---|---|"]
    for r in study.failed:
        err = (r.error or "").strip().splitlines()
        lines.append(f"| {r.run_key} | {(err[-1] if err else '').replace('|', '/')[:200]} |")
    return lines
