"""``model.tune_word_vectors``: the model owns its word vectors and trains them; off changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from selfcross.cli import main
from selfcross.config import ModalityShape, ModelConfig, RunConfig, apply_preset, set_epoch_cap
from selfcross.errors import ConfigError, DataError
from selfcross.folds import read_fold, write_split
from selfcross.models import FusionModel
from selfcross.training import evaluate_run, train_run
from selfcross.training.loop import evaluate_run_full
from selfcross.training.standardize import Standardizer, standardized_table
from tiny_runs import tiny_run_config, write_tiny_fold

VOCAB, DIM, STEPS = 20, 6, 8


def text_config(tune: bool, **switches) -> ModelConfig:
    return ModelConfig(kind="self", modalities=("text",), shapes={"text": ModalityShape(STEPS, DIM, None)},
                       hidden=6, heads=2, n_classes=3, tune_word_vectors=tune,
                       vocab_size=VOCAB if tune else None, **switches)


def id_batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([8, 3, 5, 1])
    ids = torch.randint(1, VOCAB, (4, STEPS), generator=g)
    ids[torch.arange(STEPS).unsqueeze(0) >= lengths.unsqueeze(1)] = 0
    return ids, lengths


def table(seed: int = 0) -> torch.Tensor:
    t = torch.randn(VOCAB, DIM, generator=torch.Generator().manual_seed(seed))
    t[0] = 0.0
    return t


# ----------------------------------------------------------------------------- off = as before
@pytest.mark.parametrize("preset", ["paper", "improved", "strong"])
def test_off_by_default_no_table_in_the_model(preset):
    cfg = apply_preset(RunConfig(model=ModelConfig(modalities=("text",))), preset)
    assert cfg.model.tune_word_vectors is False and not cfg.model.owns_word_vectors
    model = FusionModel(cfg.model)
    assert model.word_vectors is None and not any("word_vectors" in k for k in model.state_dict())


@pytest.mark.parametrize("switches", [{}, {"mask_padding": True, "packed_gru": True, "masked_mean": True}])
def test_tuned_model_starts_as_the_frozen_model_fed_the_looked_up_vectors(switches):
    torch.manual_seed(3)
    frozen = FusionModel(text_config(False, **switches)).eval()
    torch.manual_seed(3)  # the table is built last: every other weight draws the same numbers
    tuned = FusionModel(text_config(True, **switches)).eval()
    tuned.load_word_vectors(table())
    ids, lengths = id_batch()
    got = tuned(text=ids, lengths={"text": lengths})
    want = frozen(text=table()[ids], lengths={"text": lengths})
    torch.testing.assert_close(got, want, rtol=0, atol=0)


# ----------------------------------------------------------------------------- training
def test_training_step_moves_the_used_word_vectors_but_never_padding():
    torch.manual_seed(0)
    model = FusionModel(text_config(True, mask_padding=True, packed_gru=True, masked_mean=True)).train()
    model.load_word_vectors(table())
    before = model.word_vectors.weight.detach().clone()
    opt = torch.optim.AdamW(model.parameters(), lr=0.1, weight_decay=0.01)
    ids, lengths = id_batch()
    logits = model(text=ids, lengths={"text": lengths})
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 0]))
    loss.backward()
    opt.step()
    after = model.word_vectors.weight.detach()
    used = torch.unique(ids[ids != 0])
    assert not torch.equal(after[used], before[used])  # the words of the batch moved
    assert torch.equal(after[0], torch.zeros(DIM))  # padding stays zero
    assert model.word_vectors.weight.requires_grad


def test_modality_dropout_drops_word_ids_to_padding():
    from selfcross.training.modality_dropout import drop_modalities

    ids, lengths = id_batch()
    x, n = drop_modalities({"text": ids, "audio": torch.ones(4, 5, 2)}, {"text": lengths, "audio": lengths},
                           0.5, torch.Generator().manual_seed(1))
    assert x["text"].shape == ids.shape and x["text"].dtype == ids.dtype
    dropped = n["text"] == 0
    assert dropped.any() and torch.all(x["text"][dropped] == 0)
    assert torch.equal(x["text"][~dropped], ids[~dropped])


def test_frozen_model_has_no_word_vector_parameter():
    model = FusionModel(text_config(False))
    assert all(p.shape != (VOCAB, DIM) for p in model.parameters())


# ----------------------------------------------------------------------------- bad input
def test_vectors_given_to_a_tuning_model_are_a_data_error():
    model = FusionModel(text_config(True)).eval()
    with pytest.raises(DataError, match="word ids"):
        model(text=torch.randn(2, STEPS, DIM))
    with pytest.raises(DataError, match=f"0..{VOCAB - 1}"):
        model(text=torch.full((2, STEPS), VOCAB))


def test_tuning_without_a_vocabulary_size_is_a_config_error():
    cfg = text_config(True)
    cfg.vocab_size = None
    with pytest.raises(ConfigError, match="vocab_size"):
        FusionModel(cfg)


def vector_text_fold(root: Path) -> Path:
    """A text fold whose words are stored as vectors (S_text.npy), not ids."""
    fold = root / "fold01"
    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("dev", 6), ("test", 6)):
        write_split(fold, split, {"label": (np.arange(n) % 3).astype(np.int64),
                                  "text": rng.normal(size=(n, STEPS, DIM)).astype(np.float32)})
    return fold


def test_training_with_text_stored_as_vectors_is_a_one_line_data_error(tmp_path):
    fold = vector_text_fold(tmp_path)
    cfg = tiny_run_config()
    cfg.model.modalities, cfg.model.tune_word_vectors = ("text",), True
    with pytest.raises(DataError, match="needs text stored as word ids"):
        train_run(cfg, fold, tmp_path / "r", progress=False)


def test_cli_train_tune_word_vectors_on_vectors_exits_2_with_one_line(tmp_path, capsys):
    fold = vector_text_fold(tmp_path)
    code = main(["train", "--data", str(fold), "--out", str(tmp_path / "r"), "--modalities", "t",
                 "--tune-word-vectors", "--quiet", "--threads", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "needs text stored as word ids" in err[0]


# ----------------------------------------------------------------------------- CLI and grid
@pytest.mark.parametrize("flag", [True, False])
def test_grid_plan_sets_the_switch_only_when_asked(flag):
    from grid_helpers import plan

    runs, _ = plan(["self"], ["t", "at"], [1], [1], preset="strong", tune_word_vectors=flag)
    assert len(runs) == 2 and all(r.config.model.tune_word_vectors is flag for r in runs)


@pytest.mark.parametrize("command", ["train", "grid"])
def test_help_names_the_switch_and_why(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert "--tune-word-vectors" in capsys.readouterr().out


# ----------------------------------------------------------------------------- a trained run
@pytest.fixture(scope="module")
def tuned_run(tmp_path_factory) -> tuple[Path, Path, dict]:
    """A text-only ``strong`` run (standardized text) with tuned word vectors, and its fold."""
    root = tmp_path_factory.mktemp("tuned")
    fold = write_tiny_fold(root)
    words = ["<pad>", "<unk>", *(f"w{i}" for i in range(2, VOCAB))]
    (root / "vocab.txt").write_text("\n".join(words) + "\n")
    (root / "features.json").write_text(json.dumps({"text": {"max_tokens": STEPS}}))
    cfg = set_epoch_cap(apply_preset(tiny_run_config(max_epochs=3), "strong"), 3)
    cfg.model.modalities, cfg.model.tune_word_vectors = ("text",), True
    metrics = train_run(cfg, fold, root / "run", progress=False)
    return root / "run", fold, metrics


@pytest.mark.slow
def test_tuned_run_saves_trained_vectors_without_text_statistics(tuned_run):
    run, fold, _ = tuned_run
    tensors = load_file(str(run / "model.safetensors"))
    assert not any(k.startswith("standardizer.text") for k in tensors)
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["model"]["tune_word_vectors"] is True and cfg["model"]["vocab_size"] == VOCAB
    f = read_fold(fold, modalities="t")
    mean, std = Standardizer.fit(f.train, ("text",)).stats["text"]
    start = standardized_table(f.embedding, mean, std)
    tuned = tensors["word_vectors.weight"].double().numpy()
    assert tuned.shape == (VOCAB, DIM) and np.all(tuned[0] == 0)
    assert np.abs(tuned - start).max() > 1e-3  # trained away from the starting table


@pytest.mark.slow
def test_tuned_run_evaluates_to_its_metrics_and_predict_matches_evaluation(tuned_run):
    from selfcross.serve.predict import Clip, Predictor

    run, fold, metrics = tuned_run
    assert evaluate_run(run, fold) == metrics["test"]
    result = evaluate_run_full(run, fold, split="test")
    split = read_fold(fold, modalities="t").test
    predictor = Predictor(run)
    for pos in (0, 7):
        ids = split.word_ids([pos])[0]
        transcript = " ".join(f"w{i}" for i in ids if i != 0)
        out = predictor.predict(Clip(transcript=transcript))
        got = np.array([out["probabilities"][c] for c in predictor.class_names])
        np.testing.assert_allclose(got, result["probs"][pos], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_tuned_run_perturbations_act_on_ids(tuned_run):
    run, fold, _ = tuned_run
    clean = evaluate_run_full(run, fold)
    shuffled = evaluate_run_full(run, fold, perturb="shuffle:t")  # the ids are reordered, not the vectors
    assert not np.allclose(shuffled["probs"], clean["probs"])
    with pytest.raises(ConfigError, match="only modality"):  # a text-only run cannot lose its text
        evaluate_run(run, fold, perturb="drop:t")
    with pytest.raises(ConfigError, match="word ids"):
        evaluate_run(run, fold, perturb="noise:t=10")


@pytest.mark.slow
def test_tuned_run_can_be_explained(tuned_run, tmp_path):
    from selfcross.serve.explain import explain

    run, fold, _ = tuned_run
    [fold_utt] = explain(run, tmp_path / "fold", data=fold, ids=["test_000"])
    [clip] = explain(run, tmp_path / "clip", transcript="w2 w5 w7")
    assert fold_utt.npz_path.is_file() and clip.npz_path.is_file()
    assert abs(sum(fold_utt.probabilities.values()) - 1) < 1e-6
