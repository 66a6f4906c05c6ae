"""The tuning report of ``selfcross tune``: ``best.json``, ``report.md`` and its figures.

``report.md`` gives the best trial (dev score per fold x seed, its values), the search history
(every trial: state, dev score, values) and the parameter importances (Optuna's default evaluator), with
two figures: ``figures/history.png`` (dev score by trial, best so far) and
``figures/importances.png``.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any


def write_outputs(spec: Any, study: Any, best: Any, recipe: dict[str, Any] | None, metric: str,
                  direction: str) -> tuple[Path | None, Path]:
    """Write ``best.json`` (``recipe``, the config file of the ``best`` complete trial, when
    there is one) and ``report.md`` into ``spec.out``."""
    spec.out.mkdir(parents=True, exist_ok=True)
    best_json = None
    if best is not None and recipe is not None:
        best_json = spec.out / "best.json"
        best_json.write_text(json.dumps(recipe, indent=2, sort_keys=True) + "\n")
    figures = _figures(study, spec.out / "figures")
    lines = _header(spec, study, metric, direction, best, best_json)
    lines += _history(study, metric)
    lines += _importances(study, figures)
    report = spec.out / "report.md"
    report.write_text("\n".join(lines) + "\n")
    return best_json, report


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "-" if v is None else str(v)


def _header(
    spec: Any, study: Any, metric: str, direction: str, best: Any, best_json: Path | None
) -> list[str]:
    from optuna.trial import TrialState

    counts = {s.name.lower(): len(study.get_trials(deepcopy=False, states=(s,)))
              for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING)}
    lines = [
        f"# Tuning report: {spec.study}",
        "",
        f"Data root `{spec.data_root}` (dev splits only; the test split is never read), model "
        f"`{spec.model}` on `{''.join(m[0] for m in spec.modalities or ())}`, preset `{spec.preset}`, "
        f"folds {list(spec.folds)} x seeds {list(spec.seeds)}; objective: dev {metric} of the "
        f"restored best epoch, mean over folds x seeds ({direction}).",
        f"Trials: {counts['complete']} complete, {counts['pruned']} pruned (median pruner by epoch), "
        f"{counts['fail']} failed, {counts['running']} running. Study `{spec.study}` in `{spec.storage}`.",
        "",
    ]
    if best is None:
        return lines + ["No trial is complete yet: no best.json.", ""]
    lines += [f"## Best trial: #{best.number}, dev {metric} {best.value:.4f}", "",
              "| value | |", "|---|---|"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in sorted(best.params.items())]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in sorted(best.user_attrs.items())]
    lines += ["", f"Written to `{best_json}`; use it with `selfcross grid --data ROOT --config "
              f"{best_json.name} ...` or `selfcross train --config {best_json.name} ...`.", ""]
    return lines


def _history(study: Any, metric: str) -> list[str]:
    names = sorted({k for t in study.trials for k in t.params})
    lines = ["## Search history", "", "![history](figures/history.png)", "",
             f"| trial | state | dev {metric} | last epoch step | " + " | ".join(names) + " |",
             "|---" * (4 + len(names)) + "|"]
    for t in study.trials:
        step = t.last_step if t.last_step is not None else "-"
        lines.append(f"| {t.number} | {t.state.name.lower()} | {_fmt(t.value)} | {step} | "
                     + " | ".join(_fmt(t.params.get(n)) for n in names) + " |")
    return lines + [""]


def _importances(study: Any, figures: dict[str, Path]) -> list[str]:
    import optuna

    lines = ["## Parameter importances (Optuna's default evaluator over the complete trials)", ""]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "too few trials": said below as the reason
            imp = optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError) as e:  # fewer than two complete trials, or nothing varied
        return lines + [f"Not computed: {e}", ""]
    if "importances" in figures:
        lines += ["![importances](figures/importances.png)", ""]
    lines += ["| parameter | importance |", "|---|---|"]
    lines += [f"| {k} | {v:.3f} |" for k, v in imp.items() if math.isfinite(v)]
    return lines + [""]


def _figures(study: Any, folder: Path) -> dict[str, Path]:
    """history.png and importances.png (the latter only when importances are computable)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the matplotlib plots are marked experimental
        for name, plot in (("history", ovm.plot_optimization_history),
                           ("importances", ovm.plot_param_importances)):
            try:
                ax = plot(study)
            except (RuntimeError, ValueError):  # importances need two complete trials that differ
                continue
            ax.figure.tight_layout()
            ax.figure.savefig(folder / f"{name}.png", dpi=100)
            plt.close(ax.figure)
            out[name] = folder / f"{name}.png"
    return out
