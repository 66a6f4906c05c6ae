"""The contract every combination keeps (scikit-learn's ``estimator_checks`` is the model).

For every preset (paper, improved, strong) x task (classification, regression), one grid of
every model (self, cross, self+cross) on several modality sets, with a perturbation, goes
into ONE results store per preset (both tasks share the run keys' cells), plus the linear
floor where it applies (classification); then the report of each task. Checked, for every
run: its metrics are finite numbers or undefined with a reason; its stored predictions are
of its task's type and equal its run folder's; its perturbed predictions too; the report of
each task builds and its JSON is strict; and one run per (preset, task) retrained from its
stored config gives the same numbers.

``predict`` needs the extractor settings a prepared data root records; runs on imported
feature files have none, so the contract there is a one-line refusal (``test_predict.py``
predicts with both tasks from runs that have them).

Tiny shapes (the MFN-format fixture: 12/6/8 utterances, 7 steps) and 2 epochs, so that the
module stays in the quick loop.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from feature_files import write_mfn
from selfcross.analysis.report import make_report
from selfcross.config import RunConfig
from selfcross.experiments.baseline import run_baseline
from selfcross.experiments.grid import run_grid
from selfcross.experiments.store import ResultsStore
from selfcross.prepare import import_features
from selfcross.tasks import TASKS, get_task, undefined_reason
from selfcross.training import load_predictions, train_run

PRESETS = ("paper", "improved", "strong")
MODELS = ("self", "cross", "self+cross")
MODALITY_SETS = ("a", "atv")


def _strict(text: str) -> object:
    def refuse(name: str) -> None:
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("contract")
    write_mfn(tmp / "mfn")
    return import_features("mfn", tmp / "mfn", tmp / "root", center=3).root


@pytest.fixture(scope="module", params=PRESETS)
def study(request, root, tmp_path_factory):
    """One store per preset holding both tasks (and the linear floor), and its reports."""
    preset = request.param
    tmp = tmp_path_factory.mktemp(f"study_{preset}")
    db = tmp / "results.sqlite"
    for task in TASKS:
        summary = run_grid(root, models=MODELS, modalities=MODALITY_SETS, seeds="1", db=db, workers=1,
                           device="cpu", preset=preset, progress=False, max_epochs=2, threads_per_worker=1,
                           robustness="drop:a", task=task, log=lambda _: None)
        assert summary.failed == 0, summary.failures
    run_baseline(root, tmp / "linear", modalities=["atv"], db=db, log=lambda _: None)
    reports = make_report(db, tmp / "report")
    return {"preset": preset, "db": db, "root": root, "reports": reports}


def _runs(study):
    with ResultsStore.open(study["db"], create=False) as store:
        return store.runs(), {r.id: store.predictions(r.id) for r in store.runs()}, store.robustness()


def test_every_combination_ran_for_both_tasks(study):
    runs, _, _ = _runs(study)
    deep = {(r.task, r.model_kind, r.modalities) for r in runs if r.model_kind != "linear"}
    want = {(t, m, s) for t in TASKS for m in MODELS for s in MODALITY_SETS if m == "self" or len(s) > 1}
    assert deep == want
    assert {r.task for r in runs if r.model_kind == "linear"} == {"classification"}
    assert len({r.run_key for r in runs}) == len(runs)  # two tasks never share a key


def test_metrics_are_finite_or_undefined_with_a_reason(study):
    runs, _, robust = _runs(study)
    by_id = {r.id: r for r in runs}
    pairs = [(r.task, r.test_metrics) for r in runs] + [(r.task, r.dev_metrics) for r in runs]
    pairs += [(by_id[b.run_id].task, b.test_metrics) for b in robust]
    for task, metrics in pairs:
        for name in get_task(task).metrics:
            value = metrics.get(name)
            if value is None:
                assert undefined_reason(metrics, name), (task, name)
            else:
                assert math.isfinite(value), (task, name, value)


def test_predictions_are_of_the_task_type_and_round_trip(study):
    runs, preds, robust = _runs(study)
    for r in runs:
        p, task = preds[r.id], get_task(r.task)
        assert p.y_true.dtype == task.prediction_dtype and p.y_pred.dtype == task.prediction_dtype
        if r.model_kind == "linear":
            continue
        saved = load_predictions(r.run_dir)
        np.testing.assert_allclose(p.y_pred, saved["y_pred"], rtol=1e-6)
        np.testing.assert_allclose(p.y_true, saved["y_true"], rtol=1e-6)
        _strict((Path(r.run_dir) / "metrics.json").read_text())
    scores = [p.y_pred for r, p in ((r, preds[r.id]) for r in runs) if r.task == "regression"]
    assert any(np.any(s != np.round(s)) for s in scores)  # scores, not class indices
    assert robust, "the perturbation scored no run"
    for b in robust:
        task = get_task(next(r.task for r in runs if r.id == b.run_id))
        assert b.y_pred.dtype == task.prediction_dtype


def test_each_task_has_a_report_with_strict_json(study):
    out = study["reports"].parent
    assert "[regression](regression/report.md)" in study["reports"].read_text()
    for task in TASKS:
        results = _strict((out / task / "results.json").read_text())
        assert results["task"] == task
        md = (out / task / "report.md").read_text()
        assert "### Robustness to a perturbed modality" in md and "`drop:a`" in md


def test_a_rerun_of_a_stored_config_gives_the_same_numbers(study, tmp_path):
    runs, preds, _ = _runs(study)
    for task in TASKS:
        run = next(r for r in runs if r.task == task and r.model_kind == "cross" and r.modalities == "atv")
        config = RunConfig.from_dict(run.config)
        metrics = train_run(config, run.config["data"]["fold_dir"], tmp_path / task, progress=False)
        assert metrics["test"] == run.test_metrics
        np.testing.assert_array_equal(load_predictions(tmp_path / task)["y_pred"], preds[run.id].y_pred)


def test_predict_refuses_runs_on_imported_features_in_one_line(study):
    """Imported feature files have no extractor settings, so a new clip cannot be featurised
    the run's way: ``predict`` must say so in one line, for every task."""
    from selfcross.errors import SelfcrossError
    from selfcross.serve.predict import Predictor

    runs, _, _ = _runs(study)
    for task in TASKS:
        run = next(r for r in runs if r.task == task and r.model_kind == "self" and r.modalities == "a")
        with pytest.raises(SelfcrossError) as err:
            Predictor(run.run_dir)
        assert "\n" not in str(err.value)

