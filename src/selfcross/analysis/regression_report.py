"""The report of a sentiment-regression study: tables, paired tests on MAE, score scatter plots.

Why apart from :mod:`selfcross.analysis.report`: a regression run has no classes, so the
paper's accuracy tables, McNemar test and confusion matrices do not apply. The cells and
the statistics are the same (:func:`~selfcross.analysis.report.collect`,
:mod:`selfcross.analysis.stats`); the main metric is the MAE (lower is better) and the
figures plot predicted against true scores.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from selfcross.analysis import plots
from selfcross.analysis.curves import curve_figures, curves_section
from selfcross.analysis.robustness import (
    compare_robustness,
    robustness_by_model,
    robustness_figures,
    robustness_model_section,
    robustness_section,
)
from selfcross.analysis.stats import bootstrap_mean_diff, holm, paired_t, wilcoxon_paired
from selfcross.analysis.study import (
    ALPHA,
    Cell,
    Study,
    clean_json,
    format_p,
    metric_value,
    modality_order,
    nan_if_none,
)
from selfcross.experiments.store import ResultsStore
from selfcross.tasks import undefined_reason

#: Columns of the main table: metric key, header, whether it is a fraction shown in percent.
COLUMNS: tuple[tuple[str, str, bool], ...] = (
    ("mae", "MAE", False),
    ("pearson_r", "Pearson r", False),
    ("acc2_has0", "Acc-2 has-0", True),
    ("f1_has0", "F1 has-0", True),
    ("acc2_non0", "Acc-2 non-0", True),
    ("f1_non0", "F1 non-0", True),
    ("acc5", "Acc-5", True),
    ("acc7", "Acc-7", True),
)


def _fmt(summary: tuple[float, float, int], percent: bool) -> str:
    mean, std, _ = summary
    if not math.isfinite(mean):
        return "-"
    scale, digits = (100, 1) if percent else (1, 3)
    sd = f"{scale * std:.{digits}f}" if math.isfinite(std) else "-"
    return f"{scale * mean:.{digits}f} ({sd})"


def compare_mae(study: Study) -> list[dict[str, Any]]:
    """Self vs cross per preset and modality set, paired over (fold, seed), on test MAE."""
    out = []
    for preset in sorted({k[0] for k in study.cells}):
        group = []
        for code in sorted({k[2] for k in study.cells if k[0] == preset}, key=modality_order):
            s, c = study.cells.get((preset, "self", code)), study.cells.get((preset, "cross", code))
            if s is None or c is None:
                continue
            sp, cp = s.by_pair(), c.by_pair()
            pairs = sorted(set(sp) & set(cp))
            if not pairs:
                continue
            # a pair whose MAE is undefined (a diverged run) cannot be compared
            pairs = [p for p in pairs if all(math.isfinite(metric_value(r[p].test_metrics, "mae"))
                                             for r in (sp, cp))]
            if not pairs:
                continue
            x = np.array([metric_value(sp[p].test_metrics, "mae") for p in pairs])
            y = np.array([metric_value(cp[p].test_metrics, "mae") for p in pairs])
            group.append({"preset": preset, "modalities": code, "n_pairs": len(pairs),
                          "self_mean": float(x.mean()), "cross_mean": float(y.mean()),
                          "wilcoxon": wilcoxon_paired(x, y).to_dict(), "paired_t": paired_t(x, y).to_dict(),
                          "bootstrap": bootstrap_mean_diff(x, y, seed=0).to_dict()})
        adjusted = holm([nan_if_none(e["wilcoxon"]["p_value"]) for e in group])
        for e, a in zip(group, adjusted):
            e["wilcoxon_holm"] = None if not math.isfinite(a) else float(a)
            e["verdict"] = _verdict(e)
        out.extend(group)
    return out


def _verdict(e: dict[str, Any]) -> str:
    ci, ph = e["bootstrap"], e["wilcoxon_holm"]
    diff = f"self - cross MAE = {ci['mean_diff']:+.3f} (95% CI {ci['low']:+.3f} to {ci['high']:+.3f})"
    if ph is not None and ph < ALPHA:
        better = "cross-attention" if ci["mean_diff"] > 0 else "self-attention"
        return f"{better} has a significantly lower MAE ({diff}; Holm-adjusted Wilcoxon p = {ph:.3g})"
    note = e["wilcoxon"]["note"]
    extra = "; too few pairs for the signed-rank test to reach significance" if "cannot reach" in note else ""
    return f"no significant difference in MAE at alpha {ALPHA} ({diff}{extra})"


def _scatter(store: ResultsStore, study: Any, fig_dir: Path) -> list[Path]:
    paths = []
    for (preset, variant, code), cell in sorted(study.cells.items()):
        preds = [store.predictions(r.id) for r in cell.runs]
        t = np.concatenate([p.y_true for p in preds])
        y = np.concatenate([p.y_pred for p in preds])
        title = f"{variant} {plots.modality_label(code)} ({preset}, {len(cell.runs)} runs)"
        paths.append(plots.score_scatter(t, y, title, fig_dir / f"scatter_{preset}_{variant}_{code}.png",
                                         mae=float(np.mean(np.abs(y - t)))))
    return paths


def _cell_text(c: Cell, metric: str, percent: bool) -> str:
    """Mean (std) over the runs where ``metric`` is defined; says how many runs it is undefined in."""
    bad = c.undefined(metric)
    if bad == len(c.runs):
        return "undefined"
    text = _fmt(c.summary(metric), percent)
    return text if not bad else f"{text}, undefined in {bad}"


def _undefined_notes(cells: list[tuple[tuple[str, str, str], Cell]]) -> list[str]:
    """One line per cell and metric undefined in some run: in how many, and why."""
    notes = []
    for (preset, variant, code), c in cells:
        for key, header, _ in COLUMNS:
            reasons = [undefined_reason(r.test_metrics, key) for r in c.runs]
            reasons = [x for x in reasons if x is not None]
            if reasons:
                why = "; ".join(sorted(set(reasons)))
                notes.append(f"- {preset} {variant} {plots.modality_label(code)}: {header} is undefined in "
                             f"{len(reasons)} of {len(c.runs)} run(s) ({why}); the mean is over the others.")
    return ["", "Undefined metrics:", "", *notes] if notes else []


def _undefined_json(c: Cell) -> dict[str, Any]:
    out = {}
    for key, _, _ in COLUMNS:
        reasons = [x for x in (undefined_reason(r.test_metrics, key) for r in c.runs) if x is not None]
        if reasons:
            out[key] = {"n_runs": len(reasons), "reasons": sorted(set(reasons))}
    return out


def _tables(study: Study, comparisons: list[dict[str, Any]], figures: list[Path], out: Path,
            robust: list[dict[str, Any]], by_model: list[dict[str, Any]]) -> str:
    lines = ["# selfcross results (sentiment regression)", "",
             f"{sum(len(c.runs) for c in study.cells.values())} finished runs. Test-set scores, mean "
             "(sample std) over (fold, seed) runs; MAE and Pearson r as numbers, accuracies and F1 in "
             "percent. Acc-2 has-0: negative vs non-negative; non-0: score-0 utterances left out.", "",
             "| preset | model | modalities | " + " | ".join(h for _, h, _ in COLUMNS) + " | n |",
             "|---|---|---|" + "---|" * (len(COLUMNS) + 1)]
    order = sorted(study.cells.items(), key=lambda kv: (kv[0][0], modality_order(kv[0][2]), kv[0][1]))
    for (preset, variant, code), c in order:
        cells = " | ".join(_cell_text(c, k, pct) for k, _, pct in COLUMNS)
        lines.append(f"| {preset} | {variant} | {plots.modality_label(code)} | {cells} | {len(c.runs)} |")
    lines += _undefined_notes(order)
    lines += ["", "## Self vs cross (test MAE, lower is better)", "",
              "Paired over (fold, seed): Wilcoxon signed-rank (Holm across modality sets), paired t-test, "
              "mean difference with a 95% bootstrap interval (10,000 resamples, seed 0).", "",
              "| preset | modalities | pairs | self - cross [95% CI] | Wilcoxon p | Holm p | paired t p |",
              "|---|---|---|---|---|---|---|"]
    for e in comparisons:
        ci = e["bootstrap"]
        lines.append(f"| {e['preset']} | {plots.modality_label(e['modalities'])} | {e['n_pairs']} | "
                     f"{ci['mean_diff']:+.3f} [{ci['low']:+.3f}, {ci['high']:+.3f}] | "
                     f"{format_p(e['wilcoxon']['p_value'])} | {format_p(e['wilcoxon_holm'])} | "
                     f"{format_p(e['paired_t']['p_value'])} |")
    lines += ["", "**Verdict** (alpha 0.05):", ""]
    lines += [f"- {plots.modality_label(e['modalities'])} ({e['preset']}): {e['verdict']}"
              for e in comparisons]
    for preset in sorted({k[0] for k in study.cells}):
        lines += robustness_section(robust, preset)
        lines += robustness_model_section(by_model, preset)
    lines += ["", "## Figures", ""] + [f"![{f.stem}]({f.relative_to(out)})" for f in figures]
    return "\n".join(lines) + "\n"


def make_regression_report(store: ResultsStore, study: Study, out: Path, paper_labels: bool = False) -> Path:
    """Write ``report.md``, ``results.csv``, ``results.json``, ``summary.txt`` and scatter plots
    (``paper_labels`` does not apply: the paper's labels name classification metrics)."""
    comparisons = compare_mae(study)
    robust = compare_robustness(store, study)
    out.mkdir(parents=True, exist_ok=True)
    figures = _scatter(store, study, out / "figures")
    by_model = robustness_by_model(store, study)
    figures += robustness_figures(by_model, out / "figures")
    curve_files, no_history = curve_figures(store, study.cells, out / "figures")
    md = _tables(study, comparisons, figures, out, robust, by_model).rstrip("\n")
    (out / "report.md").write_text("\n".join([md, *curves_section(curve_files, no_history, out)]) + "\n")
    figures += curve_files
    (out / "summary.txt").write_text("\n".join(
        f"{e['preset']} {e['modalities']}: {e['verdict']}" for e in comparisons) + "\n")
    with (out / "results.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["preset", "model", "modalities", "n"] + [f"{k}_{s}" for k, _, _ in COLUMNS
                                                              for s in ("mean", "std")])
        for (preset, variant, code), c in sorted(study.cells.items()):
            w.writerow([preset, variant, code, len(c.runs)] + [v for k, _, _ in COLUMNS
                                                              for v in c.summary(k)[:2]])
    cells = [{"preset": p, "model": v, "modalities": code, "n": len(c.runs),
              **{k: dict(zip(("mean", "std"), c.summary(k)[:2])) for k, _, _ in COLUMNS},
              "undefined": _undefined_json(c)}
             for (p, v, code), c in sorted(study.cells.items())]
    results = {"task": study.task, "cells": cells, "comparisons": comparisons, "robustness": robust,
               "superseded_runs": study.superseded, "other_data_root_runs": study.other_roots,
               "figures": [str(f.relative_to(out)) for f in figures]}
    (out / "results.json").write_text(json.dumps(clean_json(results), indent=2, allow_nan=False) + "\n")
    return out / "report.md"
