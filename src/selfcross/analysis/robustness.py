"""Robustness of a study: every finished run re-scored with one modality perturbed, self vs cross.

Two halves:

- :func:`evaluate_robustness` (``selfcross grid --robustness SPECS``): for every finished run
  of the store and every spec of a modality the run uses, the test split is scored with
  :func:`selfcross.training.evaluate_run_full` under that perturbation and stored beside the
  clean result (table ``robustness``). Runs already scored are skipped, so it resumes.
- :func:`compare_robustness` (``selfcross report``): per preset, modality set and spec, the
  change of the task's main metric (accuracy, or the MAE of a regression study) of self and of
  cross (perturbed minus clean, per run) and the same paired statistics as the clean
  comparison, on those changes: Wilcoxon (Holm across specs), paired t, bootstrap interval of
  the mean difference, and (for classes) McNemar on the pooled perturbed predictions.
- :func:`robustness_by_model` reports every stored perturbation of every model on its own
  (mean change and its 95 % t interval), so a grid with one model still gets its numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from selfcross.analysis.stats import bootstrap_mean_diff, holm, mcnemar, paired_t, wilcoxon_paired
from selfcross.analysis.study import Study, format_p, metric_value, nan_if_none, paired_runs
from selfcross.errors import ConfigError, SelfcrossError
from selfcross.experiments.store import ResultsStore, RunRow
from selfcross.labels import parse_modalities
from selfcross.tasks import get_task
from selfcross.training.perturb import Perturbation, parse_perturbation, removes_every_input


def parse_specs(specs: Sequence[str] | str, modality_sets: Sequence[str]) -> list[Perturbation]:
    """Parse ``"drop:a,drop:t"`` (or a list); each must perturb a modality of some planned set.

    Raises:
        ConfigError: a bad spec, or one whose modality no planned run uses.
    """
    items = [s.strip() for s in (specs.split(",") if isinstance(specs, str) else specs) if s.strip()]
    parsed = [parse_perturbation(s) for s in items]
    sets = [parse_modalities(code) for code in modality_sets]
    used = {m for mods in sets for m in mods}
    for p in parsed:
        if p.modality not in used:
            raise ConfigError(f"perturbation {p.spec!r}: no planned run uses {p.modality}")
        if all(removes_every_input(p, mods) for mods in sets if p.modality in mods):
            raise ConfigError(f"perturbation {p.spec!r}: every planned run that uses {p.modality} uses "
                              "nothing else, so dropping it leaves no input (drop applies to multimodal "
                              f"sets such as {p.modality[0]}t; try noise:{p.modality[0]}=SNR_DB or "
                              f"shuffle:{p.modality[0]})")
    return parsed


def evaluate_robustness(
    store: ResultsStore,
    perturbations: Sequence[Perturbation],
    folds: dict[int, tuple[Path, str]],
    run_keys: set[str] | None = None,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> int:
    """Score every finished run (of ``run_keys``, if given) under every applicable perturbation.

    Args:
        folds: fold number -> (fold folder, data fingerprint); a run is scored only on the fold
            it was trained on (same fingerprint).
        seed: the perturbations' seed (stored with the scores).

    Returns:
        The number of perturbed evaluations written.
    """
    from selfcross.training.loop import evaluate_run_full

    done = {(r.run_id, r.perturbation, r.seed) for r in store.robustness()}
    written = 0
    for run in store.runs("done"):
        if (run_keys is not None and run.run_key not in run_keys) or run.model_kind == "linear":
            continue
        fold = folds.get(run.fold)
        if fold is None or fold[1] != run.data_fingerprint or not run.run_dir:
            continue
        for p in perturbations:
            mods = parse_modalities(run.modalities)
            if p.modality not in mods or removes_every_input(p, mods) or (run.id, p.spec, seed) in done:
                continue
            try:
                result = evaluate_run_full(run.run_dir, fold[0], "test", perturb=p.spec, perturb_seed=seed)
            except SelfcrossError as e:
                if log is not None:
                    log(f"robustness: {run.run_key} {p.spec}: {e}")
                continue
            store.record_robustness(run.id, p.spec, seed, result["metrics"], result["y_pred"])
            written += 1
    return written


def _changes(runs: list[RunRow], scores: dict[tuple[int, str], dict[str, Any]], spec: str,
             metric: str) -> np.ndarray:
    perturbed = [metric_value(scores[(r.id, spec)], metric) for r in runs]
    return np.array(perturbed) - np.array([metric_value(r.test_metrics, metric) for r in runs])


def change_interval(d: np.ndarray) -> tuple[float | None, float | None]:
    """95 % t interval of the mean of the per-run changes ``d`` (``None`` with one run)."""
    from scipy import stats

    if d.size < 2:
        return None, None
    if np.allclose(d, d.mean(), rtol=0.0, atol=1e-12):  # every run changed alike: that point
        return float(d.mean()), float(d.mean())
    ci = stats.ttest_1samp(d, 0.0).confidence_interval(0.95)
    return float(ci.low), float(ci.high)


def robustness_by_model(store: ResultsStore, study: Study) -> list[dict[str, Any]]:
    """Every stored perturbation per preset, model and modality set: the task's main metric clean
    and perturbed (means over the runs scored both ways) and the mean change with its 95 % interval."""
    task = get_task(study.task)
    metric = task.main_metric
    scores = {(r.run_id, r.perturbation): r.test_metrics for r in store.robustness()}
    specs = sorted({s for _, s in scores})
    out: list[dict[str, Any]] = []
    for (preset, variant, code), cell in sorted(study.cells.items()):
        for spec in specs:
            runs = [r for r in cell.runs if (r.id, spec) in scores]
            if not runs:
                continue
            d = _changes(runs, scores, spec, metric)
            low, high = change_interval(d)
            out.append({
                "preset": preset, "model": variant, "modalities": code, "perturbation": spec,
                "metric": metric, "percent": task.main_is_fraction, "n_runs": len(runs),
                "clean": float(np.mean([metric_value(r.test_metrics, metric) for r in runs])),
                "perturbed": float(np.mean([metric_value(scores[(r.id, spec)], metric) for r in runs])),
                "change": float(d.mean()), "change_low": low, "change_high": high,
            })
    return out


def robustness_model_section(entries: list[dict[str, Any]], preset: str) -> list[str]:
    """Markdown table of :func:`robustness_by_model` for one preset (empty when nothing was scored)."""
    from selfcross.analysis.plots import modality_label

    rows = [e for e in entries if e["preset"] == preset]
    if not rows:
        return []
    metric, percent = rows[0]["metric"], rows[0]["percent"]
    scale, digits = (100, 1) if percent else (1, 3)
    lines = ["", "### Robustness per model", "",
             f"Test {metric}{' (%)' if percent else ''} of each model clean and with one modality perturbed "
             "at test time (`selfcross grid --robustness`), mean over the runs scored both ways; the "
             "change is perturbed minus clean, with a 95 % t interval over runs (none for one run).", "",
             "| model | modalities | perturbation | runs | clean | perturbed | change [95% CI] |",
             "|---|---|---|---|---|---|---|"]
    for e in rows:
        lo, hi = e["change_low"], e["change_high"]
        ci = "" if lo is None else f" [{scale * lo:+.{digits}f}, {scale * hi:+.{digits}f}]"
        lines.append(f"| {e['model']} | {modality_label(e['modalities'])} | `{e['perturbation']}` | "
                     f"{e['n_runs']} | {scale * e['clean']:.{digits}f} | "
                     f"{scale * e['perturbed']:.{digits}f} | "
                     f"{scale * e['change']:+.{digits}f}{ci} |")
    return lines


def compare_robustness(
    store: ResultsStore, study: Study, a: str = "self", b: str = "cross"
) -> list[dict[str, Any]]:
    """Change of the study task's main metric under each perturbation, ``a`` vs ``b`` per preset
    and modality set.

    Only (fold, seed) pairs where both runs have the perturbed score (and a defined metric)
    are used. Holm adjusts the Wilcoxon p-values across the perturbations of one preset and
    modality set.
    """
    task = get_task(study.task)
    metric = task.main_metric
    scores: dict[tuple[int, str], dict[str, Any]] = {}
    preds: dict[tuple[int, str], np.ndarray] = {}
    for r in store.robustness():
        scores[(r.run_id, r.perturbation)] = r.test_metrics
        preds[(r.run_id, r.perturbation)] = r.y_pred
    out: list[dict[str, Any]] = []
    for (preset, variant, code), cell_a in sorted(study.cells.items()):
        cell_b = study.cells.get((preset, b, code))
        if variant != a or cell_b is None:
            continue
        ra, rb = paired_runs(cell_a, cell_b)
        group = []
        for spec in sorted({s for (_, s) in scores}):
            pairs = [(x, y) for x, y in zip(ra, rb) if (x.id, spec) in scores and (y.id, spec) in scores]
            pairs = [(x, y) for x, y in pairs
                     if np.isfinite(_changes([x, y], scores, spec, metric)).all()]
            if not pairs:
                continue
            xa, xb = [p[0] for p in pairs], [p[1] for p in pairs]
            da, db = _changes(xa, scores, spec, metric), _changes(xb, scores, spec, metric)
            entry = {
                "preset": preset, "modalities": code, "perturbation": spec, "a": a, "b": b,
                "metric": metric, "percent": task.main_is_fraction, "n_pairs": len(pairs),
                f"{a}_clean": float(np.mean([metric_value(r.test_metrics, metric) for r in xa])),
                f"{b}_clean": float(np.mean([metric_value(r.test_metrics, metric) for r in xb])),
                f"{a}_change": float(da.mean()), f"{b}_change": float(db.mean()),
                "wilcoxon": wilcoxon_paired(da, db).to_dict(),
                "paired_t": paired_t(da, db).to_dict(),
                "bootstrap": bootstrap_mean_diff(da, db, seed=0).to_dict(),
                "mcnemar": _pooled_mcnemar(store, xa, xb, preds, spec) if task.has_classes else None,
            }
            group.append(entry)
        adjusted = holm([nan_if_none(e["wilcoxon"]["p_value"]) for e in group])
        for e, p in zip(group, adjusted):
            e["wilcoxon_holm"] = None if not math.isfinite(p) else float(p)
        out.extend(group)
    return out


def _pooled_mcnemar(
    store: ResultsStore,
    ra: list[RunRow],
    rb: list[RunRow],
    preds: dict[tuple[int, str], np.ndarray],
    spec: str,
) -> dict[str, Any] | None:
    ys, pa, pb = [], [], []
    for x, y in zip(ra, rb):
        truth = store.predictions(x.id).y_true
        if len(truth) != len(preds[(x.id, spec)]) or len(truth) != len(preds[(y.id, spec)]):
            return None
        ys.append(truth)
        pa.append(preds[(x.id, spec)])
        pb.append(preds[(y.id, spec)])
    return mcnemar(np.concatenate(ys), np.concatenate(pa), np.concatenate(pb)).to_dict()


def robustness_section(entries: list[dict[str, Any]], preset: str) -> list[str]:
    """Markdown lines of the robustness table of one preset (empty when nothing was scored)."""
    from selfcross.analysis.plots import modality_label

    rows = [e for e in entries if e["preset"] == preset]
    if not rows:
        return []
    a, b = rows[0]["a"], rows[0]["b"]
    metric, percent = rows[0].get("metric", "accuracy"), rows[0].get("percent", True)
    scale, digits = (100, 1) if percent else (1, 3)
    mcnemar_note = "; McNemar on the pooled perturbed predictions" if percent else ""
    lines = [
        "", "### Robustness to a perturbed modality", "",
        f"Test {metric}{' (%)' if percent else ''} clean and its change under each perturbation "
        f"(`selfcross grid --robustness`), mean over paired (fold, seed) runs; {a} - {b} is the "
        "difference of the changes, with the same paired statistics as above (Holm across the "
        f"perturbations of one modality set{mcnemar_note}).", "",
        f"| modalities | perturbation | pairs | {a} clean | {a} change | {b} clean | {b} change | "
        f"{a} - {b} change [95% CI] | Wilcoxon p | Holm p | paired t p | McNemar p (b/c) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in rows:
        ci, mc = e["bootstrap"], e["mcnemar"]
        mcs = "-" if mc is None else f"{format_p(mc['p_value'])} ({mc['details']['b']}/{mc['details']['c']})"
        f = f".{digits}f"
        lines.append(
            f"| {modality_label(e['modalities'])} | `{e['perturbation']}` | {e['n_pairs']} | "
            f"{scale * e[f'{a}_clean']:{f}} | {scale * e[f'{a}_change']:+{f}} | "
            f"{scale * e[f'{b}_clean']:{f}} | {scale * e[f'{b}_change']:+{f}} | "
            f"{scale * ci['mean_diff']:+{f}} [{scale * ci['low']:+{f}}, {scale * ci['high']:+{f}}] | "
            f"{format_p(e['wilcoxon']['p_value'])} | {format_p(e['wilcoxon_holm'])} | "
            f"{format_p(e['paired_t']['p_value'])} | {mcs} |"
        )
    return lines


def robustness_figures(entries: list[dict[str, Any]], fig_dir: Path) -> list[Path]:
    """One bar chart per (preset, modality set): accuracy change per perturbation and model,
    error bars = the 95 % interval of :func:`robustness_by_model` (its entries)."""
    from selfcross.analysis.plots import modality_label, robustness_chart

    files = []
    for preset, code in sorted({(e["preset"], e["modalities"]) for e in entries}):
        rows = [e for e in entries if (e["preset"], e["modalities"]) == (preset, code)]
        changes: dict[str, dict[str, tuple[float, float | None, float | None]]] = {}
        for e in rows:
            changes.setdefault(e["model"], {})[e["perturbation"]] = (e["change"], e["change_low"],
                                                                     e["change_high"])
        suffix = "" if preset == "paper" else f"_{preset}"
        metric, percent = rows[0].get("metric", "accuracy"), rows[0].get("percent", True)
        files.append(robustness_chart(
            changes, fig_dir / f"robustness_{code}{suffix}.png",
            title=f"{metric} change under a perturbed modality, {modality_label(code)} (preset {preset})",
            ylabel=f"{metric} change vs clean{' (points)' if percent else ''}", scale=100 if percent else 1,
        ))
    return files
