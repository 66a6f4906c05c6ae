"""Test-time perturbations (``evaluate --perturb``): what each does to the rows, bad specs, effect."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from selfcross.cli import main
from selfcross.config import ModelConfig, RunConfig, TrainConfig
from selfcross.errors import ConfigError
from selfcross.folds import read_fold
from selfcross.training import evaluate_run, train_run
from selfcross.training.perturb import Perturbation, PerturbedSplit, parse_perturbation
from tiny_runs import write_tiny_fold


@pytest.fixture(scope="module")
def fold(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_fold(tmp_path_factory.mktemp("perturb"))


@pytest.fixture(scope="module")
def test_split(fold: Path):
    return read_fold(fold).test


def _rows(split, spec: str, index=None, seed: int = 0):
    idx = np.arange(len(split)) if index is None else np.asarray(index)
    return PerturbedSplit(split, parse_perturbation(spec), seed).get_batch(idx)


def test_parse_specs_and_canonical_names() -> None:
    assert parse_perturbation("drop:t") == Perturbation("drop", "text")
    assert parse_perturbation("noise:audio=-5") == Perturbation("noise", "audio", -5.0)
    assert parse_perturbation("swap:v").spec == "swap:v"
    assert parse_perturbation("noise:a=10").spec == "noise:a=10"


@pytest.mark.parametrize(
    "spec, problem",
    [("blur:a", "use drop:m"), ("drop", "use drop:m"), ("drop:x", "unknown modality"),
     ("drop:at", "exactly one modality"), ("noise:a=loud", "'loud' is not a number"),
     ("noise:a", "is not a number"), ("noise:a=nan", "finite"), ("shuffle:a=3", "only noise takes a value")],
)
def test_bad_specs_are_config_errors(spec: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        parse_perturbation(spec)


def test_drop_zeroes_the_modality_and_its_length(test_split) -> None:
    clean, clean_len = test_split.get_batch(np.arange(len(test_split)))
    x, n = _rows(test_split, "drop:a")
    assert not x["audio"].any() and not n["audio"].any()
    np.testing.assert_array_equal(x["video"], clean["video"])  # other modalities untouched
    np.testing.assert_array_equal(n["text"], clean_len["text"])


def test_shuffle_permutes_valid_frames_only(test_split) -> None:
    clean, lengths = test_split.get_batch(np.arange(len(test_split)))
    x, n = _rows(test_split, "shuffle:a")
    np.testing.assert_array_equal(n["audio"], lengths["audio"])
    moved = 0
    for row, k in enumerate(lengths["audio"]):
        a, b = clean["audio"][row], x["audio"][row]
        np.testing.assert_array_equal(np.sort(b[:k], axis=0), np.sort(a[:k], axis=0))
        np.testing.assert_array_equal(b[k:], a[k:])
        moved += int(not np.array_equal(a[:k], b[:k]))
    assert moved > len(lengths["audio"]) // 2


def test_noise_has_the_requested_snr(test_split) -> None:
    clean, lengths = test_split.get_batch(np.arange(len(test_split)))
    x, _ = _rows(test_split, "noise:v=6")
    signal = np.concatenate([clean["video"][r, :k].ravel() for r, k in enumerate(lengths["video"])])
    noisy = np.concatenate([x["video"][r, :k].ravel() for r, k in enumerate(lengths["video"])])
    snr = 10 * np.log10(np.mean(signal**2) / np.mean((noisy - signal) ** 2))
    assert snr == pytest.approx(6.0, abs=0.5)
    padding = np.concatenate([x["video"][r, k:].ravel() for r, k in enumerate(lengths["video"])])
    assert not padding.any()


def test_swap_gives_every_utterance_another_ones_modality(test_split) -> None:
    clean, lengths = test_split.get_batch(np.arange(len(test_split)))
    x, n = _rows(test_split, "swap:a")
    sources = []
    for row in range(len(test_split)):
        [source] = [o for o in range(len(test_split)) if np.array_equal(x["audio"][row], clean["audio"][o])]
        assert source != row and n["audio"][row] == lengths["audio"][source]
        sources.append(source)
    assert sorted(sources) == list(range(len(test_split)))  # a permutation: every utterance given once
    np.testing.assert_array_equal(x["video"], clean["video"])


def test_perturbation_does_not_depend_on_batching(test_split) -> None:
    for spec in ("noise:a=0", "shuffle:v", "swap:a"):
        whole, _ = _rows(test_split, spec)
        part, _ = _rows(test_split, spec, index=[7, 3])
        np.testing.assert_array_equal(part["audio"], whole["audio"][[7, 3]])
        np.testing.assert_array_equal(part["video"], whole["video"][[7, 3]])
    other_seed, _ = _rows(test_split, "noise:a=0", seed=1)
    assert not np.array_equal(other_seed["audio"], _rows(test_split, "noise:a=0")[0]["audio"])


def test_cli_bad_perturbations_are_one_line_exit_2(fold: Path, tmp_path: Path, capsys) -> None:
    cfg = RunConfig(model=ModelConfig(kind="self", modalities=("audio", "text")),
                    train=TrainConfig(max_epochs=1, num_threads=1))
    train_run(cfg, fold, tmp_path / "run", progress=False)
    base = ["evaluate", "--run", str(tmp_path / "run"), "--data", str(fold), "--perturb"]
    for spec, problem in (("wobble:a", "use drop:m"), ("drop:v", "does not use video"),
                          ("noise:a=loud", "'loud' is not a number")):
        assert main([*base, spec]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and problem in err[0] and spec in err[0]
    assert main([*base, "drop:t", "--json"]) == 0


@pytest.mark.slow
def test_dropping_text_hurts_more_than_dropping_audio_on_the_synthetic_benchmark(tmp_path: Path) -> None:
    """The synthetic benchmark plants most signal in text (docs/synthetic.md), for both fusions."""
    from selfcross.synthetic.generator import make_synthetic

    fold = make_synthetic(tmp_path / "syn", "small", n_folds=1, n_utterances=400) / "fold01"
    for kind in ("self", "cross"):
        cfg = RunConfig(model=ModelConfig(kind=kind), train=TrainConfig(max_epochs=3, num_threads=1, seed=1))
        run = tmp_path / kind
        train_run(cfg, fold, run, progress=False)
        clean = evaluate_run(run, fold)["accuracy"]
        no_text = evaluate_run(run, fold, perturb="drop:t")["accuracy"]
        no_audio = evaluate_run(run, fold, perturb="drop:a")["accuracy"]
        assert no_text < no_audio, (kind, clean, no_text, no_audio)
        assert no_text < clean
