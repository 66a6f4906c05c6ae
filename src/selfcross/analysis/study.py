"""The analysis core the reports share: cells, studies, collection, pairing, ordering, p-value
formatting and JSON cleaning.

Why one module: the classification report, the regression report and the robustness
comparison group the same runs into the same cells, pair them the same way and print
p-values and JSON the same way; each used to carry (or borrow the private copy of) its own.

A *cell* is every finished run of one (preset, variant, modality set); a *study* is every
cell of one task on one data root (see :func:`collect`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from selfcross.config import paper_shapes
from selfcross.errors import StoreError
from selfcross.experiments.baseline import LINEAR_KIND, LINEAR_PRESET
from selfcross.experiments.store import ResultsStore, RunRow, mixed_versions_notice
from selfcross.labels import IEMOCAP7, PAPER_MODALITY_SETS
from selfcross.tasks import DEFAULT_TASK
from selfcross.tasks import clean_json as clean_json  # the reports' JSON cleaner (one for selfcross)

#: Significance level of every verdict.
ALPHA = 0.05
#: The linear floor's model kind in the store (its preset is ``LINEAR_PRESET``).
LINEAR = LINEAR_KIND
#: Variants in the order tables list them.
VARIANT_ORDER: tuple[str, ...] = ("self", "cross", "self+cross", LINEAR)


def variant_label(kind: str, pooling: str) -> str:
    """``self`` / ``cross`` / ``self+cross``, with ``-noSP`` (or ``-<pooling>``) when SP is off."""
    if pooling == "stat":
        return kind
    return f"{kind}-noSP" if pooling == "concat" else f"{kind}-{pooling}"


def metric_value(metrics: dict[str, Any], name: str) -> float:
    """One stored metric as a float; an undefined one (absent or ``None``) is NaN."""
    value = metrics.get(name)
    return math.nan if value is None else float(value)


@dataclass
class Cell:
    """All finished runs of one (preset, variant, modality set)."""

    preset: str
    variant: str
    modalities: str
    runs: list[RunRow] = field(default_factory=list)

    def values(self, metric: str) -> np.ndarray:
        """Test metric per run [n] (NaN where the run's metric is undefined)."""
        return np.array([metric_value(r.test_metrics, metric) for r in self.runs], dtype=np.float64)

    def summary(self, metric: str) -> tuple[float, float, int]:
        """(mean, sample std, n) of a test metric over the runs where it is defined."""
        v = self.values(metric)
        v = v[np.isfinite(v)]
        if v.size == 0:
            return (math.nan, math.nan, 0)
        return (float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else math.nan, int(v.size))

    def undefined(self, metric: str) -> int:
        """How many runs have no value for ``metric`` (undefined, e.g. a constant prediction)."""
        return int(np.sum(~np.isfinite(self.values(metric))))

    def by_pair(self) -> dict[tuple[int, int], RunRow]:
        """(fold, seed) -> run."""
        return {(r.fold, r.seed): r for r in self.runs}


@dataclass
class Study:
    """The runs of one task on one data root, grouped for reporting."""

    cells: dict[tuple[str, str, str], Cell]
    superseded: int
    failed: list[RunRow]
    running: int
    class_names: list[str]
    iemocap_shaped: bool
    mixed_versions: str | None = None
    task: str = DEFAULT_TASK
    other_roots: int = 0


def tasks_in(store: ResultsStore) -> list[str]:
    """The tasks of the store's finished runs, in order of first appearance."""
    return list(dict.fromkeys(r.task for r in store.runs("done")))


def collect(store: ResultsStore, task: str | None = None) -> Study:
    """Group the finished runs of one task into cells (latest run per run key).

    ``task`` defaults to the store's only task. Only the runs on the data root of the most
    recently finished run are kept (a re-prepared data root supersedes the old one; the others
    are counted in ``other_roots``); runs stored before data roots were recorded count as
    that root.

    Raises:
        StoreError: no finished runs (of ``task``), or several tasks and no ``task``.
    """
    done = store.runs("done")
    if not done:
        raise StoreError(f"{store.path}: no finished runs to report on (run `selfcross grid` first)")
    tasks = list(dict.fromkeys(r.task for r in done))
    if task is None:
        if len(tasks) > 1:
            raise StoreError(f"{store.path}: holds runs of several tasks ({', '.join(tasks)}); "
                             "report one with --task")
        task = tasks[0]
    done = store.runs("done", task)
    if not done:
        raise StoreError(f"{store.path}: no finished {task} runs (it holds {', '.join(tasks)})")
    done.sort(key=lambda r: (r.finished_at or "", r.id))
    root = next((r.data_root for r in reversed(done) if r.data_root), None)
    here = [r for r in done if r.data_root in (None, root)]
    latest: dict[str, RunRow] = {}
    for r in here:
        latest[r.run_key] = r
    return _study(store, task, latest, len(here) - len(latest), len(done) - len(here))


def _study(store: ResultsStore, task: str, latest: dict[str, RunRow], superseded: int,
           other_roots: int) -> Study:
    cells: dict[tuple[str, str, str], Cell] = {}
    for r in latest.values():
        key = (r.preset, variant_label(r.model_kind, r.pooling), r.modalities)
        cells.setdefault(key, Cell(*key)).runs.append(r)
    for c in cells.values():
        c.runs.sort(key=lambda r: (r.fold, r.seed))
    _share_linear(cells)
    names = [r.class_names for r in latest.values() if r.class_names]
    class_names = max(names, key=len) if names else []
    failed = store.runs("failed", task)
    running = len(store.runs("running", task))
    return Study(
        cells, superseded, failed, running, class_names, _iemocap_shaped(latest.values()),
        mixed_versions_notice(latest.values()), task, other_roots,
    )


def _share_linear(cells: dict[tuple[str, str, str], Cell]) -> None:
    """Show the preset-free linear cells under every deep preset (kept as is when there is none)."""
    presets = {k[0] for k in cells} - {LINEAR_PRESET}
    for key in [k for k in cells if k[0] == LINEAR_PRESET and k[1] == LINEAR]:
        cell = cells[key]
        for preset in presets:
            cells[(preset, LINEAR, key[2])] = Cell(preset, LINEAR, key[2], cell.runs)
        if presets:
            del cells[key]


def unique_runs(study: Study) -> list[RunRow]:
    """Every reported run once (a linear run is shown under each preset)."""
    return list({r.id: r for c in study.cells.values() for r in c.runs}.values())


def _iemocap_shaped(runs: Any) -> bool:
    """True when every run used IEMOCAP's 7 classes and the paper's input shapes."""
    want = {k: [v.seq_len, v.feat_dim, v.mixed_len] for k, v in paper_shapes().items()}
    for r in runs:
        if tuple(r.class_names) != IEMOCAP7.names:
            return False
        shapes = r.config.get("model", {}).get("shapes", {})
        for m, s in shapes.items():
            if m in want and [s.get("seq_len"), s.get("feat_dim"), s.get("mixed_len")] != want[m]:
                return False
    return True


def modality_order(code: str) -> tuple[int, str]:
    """Sort key of a modality code: the paper's order first, then alphabetical."""
    return (PAPER_MODALITY_SETS.index(code) if code in PAPER_MODALITY_SETS else 99, code)


def sorted_cells(study: Study) -> list[Cell]:
    """The study's cells by preset, modality set and variant (the tables' order)."""
    return sorted(
        study.cells.values(),
        key=lambda c: (
            c.preset,
            modality_order(c.modalities),
            VARIANT_ORDER.index(c.variant) if c.variant in VARIANT_ORDER else 9,
            c.variant,
        ),
    )


def paired_runs(a: Cell, b: Cell) -> tuple[list[RunRow], list[RunRow]]:
    """Runs of ``a`` and ``b`` on the same (fold, seed); a linear ``b`` pairs with every seed of its fold."""
    if b.variant != LINEAR:
        pa, pb = a.by_pair(), b.by_pair()
        pairs = sorted(set(pa) & set(pb))
        return [pa[p] for p in pairs], [pb[p] for p in pairs]
    floor = {(r.fold, r.data_fingerprint): r for r in b.runs}
    ra = [r for r in a.runs if (r.fold, r.data_fingerprint) in floor]
    return ra, [floor[(r.fold, r.data_fingerprint)] for r in ra]


def format_p(p: float | None) -> str:
    """A p-value for a table: three significant digits, ``<1e-4`` below that, ``-`` undefined."""
    if p is None or not math.isfinite(p):
        return "-"
    return f"{p:.3g}" if p >= 1e-4 else "<1e-4"


def nan_if_none(p: float | None) -> float:
    """A p-value from ``TestResult.to_dict`` (undefined = None) as a float; 0.0 stays 0.0."""
    return math.nan if p is None else float(p)
