"""Parity with the authors' published models (``../shared/fixtures/reference``) and import.

The fixtures hold, for the authors' tri-modal ``self`` and ``cross`` models, their state
dict, a batch of 4 inputs and what *their* code returned (see the fixture README). The
tests skip when ``../shared`` is absent (a user's clone); CI always has it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from selfcross.cli import main
from selfcross.errors import CheckpointError
from selfcross.models import FusionModel
from selfcross.serve.compat import from_reference, load_reference_checkpoint, reference_config, reference_name

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "reference"
needs_fixtures = pytest.mark.skipif(
    not (FIXTURES / "self_io.npz").is_file(),
    reason=f"parity fixtures not found at {FIXTURES} (../shared is only present in CI / the dev tree)",
)
KINDS = ("self", "cross")



@pytest.fixture(scope="module")
def ref():
    """kind -> (authors' state dict, dict of fixture arrays)."""
    out = {}
    for kind in KINDS:
        sd = torch.load(FIXTURES / f"{kind}_state_dict.pt", weights_only=True)
        with np.load(FIXTURES / f"{kind}_io.npz") as z:
            arrays = {k: z[k] for k in z.files}
        out[kind] = (sd, arrays)
    return out


def rel_err(a, b) -> float:
    """max-abs difference / max-abs reference (the issue's parity measure)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.abs(a - b).max() / np.abs(b).max())


def batch(arrays: dict, dtype=torch.float64) -> dict[str, torch.Tensor]:
    return {m: torch.from_numpy(arrays[m]).to(dtype) for m in ("audio", "video", "text")}


def logits_of(model: FusionModel, arrays: dict, dtype=torch.float64) -> np.ndarray:
    with torch.no_grad():
        return model(**batch(arrays, dtype)).numpy()


# ----------------------------------------------------------------- name mapping
@pytest.mark.parametrize("kind", KINDS)
def test_reference_names_are_a_bijection(kind):
    ours = FusionModel(reference_config(kind)).state_dict()
    names = [reference_name(k) for k in ours]
    assert len(set(names)) == len(names)


def test_cross_direction_mapping():
    # their forward calls mha_v_t(x_txt, x_vid, x_vid): text queries video
    assert reference_name("attentions.text_from_video.mha.in_proj_weight") == "mha_v_t.in_proj_weight"
    assert reference_name("attentions.audio_from_text.mha.out_proj.bias") == "mha_t_a.out_proj.bias"
    assert reference_name("attentions.self_audio.mha.in_proj_bias") == "mha_a.in_proj_bias"
    assert reference_name("encoders.video.conv.weight") == "video_conv.weight"
    assert reference_name("encoders.text.gru.weight_hh_l0_reverse") == "text_encoder.weight_hh_l0_reverse"
    assert reference_name("head.0.weight") == "concat_linear.weight"
    assert reference_name("head.1.bias") == "classifier.bias"


# ---------------------------------------------------------------- eval parity
@needs_fixtures
@pytest.mark.parametrize("kind", KINDS)
def test_eval_parity_float64(ref, kind):
    sd, arrays = ref[kind]
    model = from_reference(sd, kind).to(torch.float64)
    assert not model.training
    err = rel_err(logits_of(model, arrays), arrays["logits_f64"])
    with torch.no_grad():
        fused = model.fused(**batch(arrays)).numpy()
    err_fused = rel_err(fused, arrays["fused_f64"])
    print(f"{kind}: float64 logits rel err {err:.2e}, fused rel err {err_fused:.2e}")
    assert err < 1e-9
    assert err_fused < 1e-9


@needs_fixtures
@pytest.mark.parametrize("kind", KINDS)
def test_eval_parity_float32(ref, kind):
    sd, arrays = ref[kind]
    model = from_reference(sd, kind)
    assert next(model.parameters()).dtype == torch.float32
    err = rel_err(logits_of(model, arrays, torch.float32), arrays["logits_f32"])
    print(f"{kind}: float32 logits rel err {err:.2e}")
    assert err < 1e-4


@needs_fixtures
@pytest.mark.parametrize("kind", KINDS)
def test_parity_fails_with_mean_std_order(ref, kind):
    """The [std, mean] order matters: feeding [mean, std] to the head is far off."""
    sd, arrays = ref[kind]
    model = from_reference(sd, kind).to(torch.float64)
    with torch.no_grad():
        fused = model.fused(**batch(arrays))
        swapped = torch.cat((fused[:, 120:], fused[:, :120]), dim=1)
        wrong = model.head(swapped).numpy()
    assert rel_err(swapped.numpy(), arrays["fused_f64"]) > 0.1
    assert rel_err(wrong, arrays["logits_f64"]) > 1e-2


@needs_fixtures
@pytest.mark.parametrize(
    "kind,a,b",
    [("cross", "mha_v_t", "mha_t_v"), ("cross", "mha_a_v", "mha_v_a"), ("self", "mha_t", "mha_a")],
)
def test_parity_fails_with_a_wrong_mapping(ref, kind, a, b):
    """Swapping two attention blocks (e.g. the direction of a cross pair) breaks parity."""
    sd, arrays = ref[kind]
    swapped = dict(sd)
    for suffix in ("in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"):
        swapped[f"{a}.{suffix}"], swapped[f"{b}.{suffix}"] = sd[f"{b}.{suffix}"], sd[f"{a}.{suffix}"]
    model = from_reference(swapped, kind).to(torch.float64)
    assert rel_err(logits_of(model, arrays), arrays["logits_f64"]) > 1e-3


# ------------------------------------------------------------ training parity
@needs_fixtures
@pytest.mark.parametrize("kind", KINDS)
def test_training_step_parity(ref, kind):
    """One training step from the imported weights matches an independent computation.

    1. Gradients: our model (float64, training mode, every dropout set to 0) computes the
       mean cross-entropy on the fixture batch; its loss and the gradient of every
       parameter must equal the authors' ``loss_f64`` and ``grad/<their name>`` (computed
       by their code, float64, dropout inactive) to a relative error < 1e-8.
    2. Update: ``torch.optim.Adam(lr=1e-3)`` takes one step with our gradients. The
       independent reference is Adam's first step written out by hand in NumPy from the
       *fixture's* gradients: with zero moments, bias correction gives m_hat = g and
       v_hat = g**2, so ``p1 = p0 - lr * g / (sqrt(g**2) + eps)`` (eps = 1e-8).
    """
    sd, arrays = ref[kind]
    model = from_reference(sd, kind).to(torch.float64)
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
        if isinstance(module, torch.nn.MultiheadAttention):
            module.dropout = 0.0
    model.train()
    logits = model(**batch(arrays))
    loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(arrays["labels"]))
    assert abs(loss.item() - float(arrays["loss_f64"])) < 1e-12 * max(1.0, abs(float(arrays["loss_f64"])))
    loss.backward()

    worst = 0.0
    for name, p in model.named_parameters():
        g_ref = arrays[f"grad/{reference_name(name)}"]
        worst = max(worst, rel_err(p.grad.numpy(), g_ref) if np.abs(g_ref).max() > 0 else 0.0)
    print(f"{kind}: worst per-tensor gradient rel err {worst:.2e}")
    assert worst < 1e-8

    lr, eps = 1e-3, 1e-8
    before = {n: p.detach().numpy().copy() for n, p in model.named_parameters()}
    torch.optim.Adam(model.parameters(), lr=lr, eps=eps).step()
    worst_step = 0.0
    for name, p in model.named_parameters():
        g = arrays[f"grad/{reference_name(name)}"].astype(np.float64)
        expected = before[name] - lr * g / (np.sqrt(g * g) + eps)
        worst_step = max(worst_step, float(np.abs(p.detach().numpy() - expected).max()))
    moved = max(float(np.abs(p.detach().numpy() - before[n]).max()) for n, p in model.named_parameters())
    print(f"{kind}: Adam step max abs diff {worst_step:.2e} (step size {moved:.1e})")
    assert moved > 5e-4  # the step really moved the weights (by ~lr)
    assert worst_step < 1e-10


# ---------------------------------------------------------------- bad tensors
@needs_fixtures
def test_missing_unexpected_misshaped_are_listed(ref):
    sd, _ = ref["self"]
    bad = dict(sd)
    del bad["mha_t.in_proj_bias"]
    bad["extra.weight"] = torch.zeros(3)
    bad["classifier.weight"] = torch.zeros(4, 60)
    with pytest.raises(CheckpointError) as e:
        from_reference(bad, "self")
    msg = str(e.value)
    assert "missing tensors: mha_t.in_proj_bias" in msg
    assert "unexpected tensors: extra.weight" in msg
    assert "mis-shaped tensors: classifier.weight (4, 60) (expected (7, 60))" in msg


@needs_fixtures
def test_wrong_kind_is_explained(ref):
    sd, _ = ref["cross"]
    with pytest.raises(CheckpointError, match="looks like the 'cross' model"):
        from_reference(sd, "self")
    with pytest.raises(CheckpointError, match="not one of self, cross"):
        from_reference(sd, "self+cross")


# ----------------------------------------------------------------- checkpoints
@needs_fixtures
def test_state_dict_file_loads_without_trust(ref):
    sd = load_reference_checkpoint(FIXTURES / "cross_state_dict.pt")
    assert sd.keys() == ref["cross"][0].keys()


@needs_fixtures
def test_whole_model_pickle_refused_without_trust():
    with pytest.raises(CheckpointError, match="runs code.*--trust-pickle") as e:
        load_reference_checkpoint(FIXTURES / "self_full_model.pth")
    assert "models.TVAModel_Self" in str(e.value)


@needs_fixtures
def test_whole_model_pickle_with_trust_gives_fixture_logits(ref):
    sd = load_reference_checkpoint(FIXTURES / "self_full_model.pth", trust_pickle=True)
    assert {t.dtype for t in sd.values()} == {torch.float64}
    model = from_reference(sd, "self")
    assert next(model.parameters()).dtype == torch.float64
    err = rel_err(logits_of(model, ref["self"][1]), ref["self"][1]["logits_f64"])
    print(f"self (pickle): float64 logits rel err {err:.2e}")
    assert err < 1e-9


class _Evil:
    """Pickles as a call to ``open(path, "w")``: a stand-in for arbitrary code."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_restricted_unpickler_runs_no_code(tmp_path):
    target = tmp_path / "created-by-pickle"
    ckpt = tmp_path / "evil.pth"
    torch.save({"weight": torch.zeros(2), "payload": _Evil(str(target))}, ckpt)
    with pytest.raises(CheckpointError, match="--trust-pickle"):
        load_reference_checkpoint(ckpt)
    with pytest.raises(CheckpointError, match="not a state dict"):
        load_reference_checkpoint(ckpt, trust_pickle=True)
    assert not target.exists()


def test_unreadable_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_reference_checkpoint(tmp_path / "absent.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pt"):
        load_reference_checkpoint(junk)


# ------------------------------------------------------------------------ CLI
@needs_fixtures
def test_cli_import_reference_round_trip(ref, tmp_path, capsys):
    from selfcross.config import RunConfig
    from selfcross.training.rundir import load_run

    out = tmp_path / "run"
    ckpt = str(FIXTURES / "cross_state_dict.pt")
    rc = main(["import-reference", ckpt, "--kind", "cross", "--out", str(out)])
    assert rc == 0
    assert (out / "config.json").is_file() and (out / "model.safetensors").is_file()
    config = RunConfig.load(out / "config.json")
    assert config.model.kind == "cross" and config.preset == "paper" and config.train.dtype == "float64"
    assert len(config.data["checkpoint_sha256"]) == 64
    model, _, standardizer = load_run(out)
    assert standardizer is None
    err = rel_err(logits_of(model, ref["cross"][1]), ref["cross"][1]["logits_f64"])
    assert err < 1e-9


@needs_fixtures
def test_cli_pickle_needs_trust(ref, tmp_path, capsys):
    pickle_path = str(FIXTURES / "self_full_model.pth")
    rc = main(["import-reference", pickle_path, "--kind", "self", "--out", str(tmp_path / "a")])
    err = capsys.readouterr().err
    assert rc == 2
    assert "runs code" in err and "--trust-pickle" in err
    assert not (tmp_path / "a").exists()
    rc = main(["import-reference", pickle_path, "--kind", "self", "--out", str(tmp_path / "b"),
               "--trust-pickle"])
    assert rc == 0 and (tmp_path / "b" / "model.safetensors").is_file()


@needs_fixtures
def test_cli_wrong_kind_exit_2(tmp_path, capsys):
    rc = main(["import-reference", str(FIXTURES / "self_state_dict.pt"), "--kind", "cross", "--out",
               str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert rc == 2 and "self_state_dict.pt" in err and "missing tensors" in err
    assert not os.path.exists(tmp_path / "r")


@needs_fixtures
def test_imported_run_is_accepted_by_evaluate(ref, tmp_path, capsys):
    """state dict -> RUN_DIR -> ``selfcross evaluate`` on a fold holding the fixture batch."""
    from selfcross.folds.writer import write_split
    from selfcross.training.loop import evaluate_run

    _, arrays = ref["self"]
    n = len(arrays["labels"])
    fold = tmp_path / "fold01"
    for split in ("train", "dev", "test"):
        write_split(fold, split, {
            "audio": arrays["audio"], "audio_seqN": np.full(n, 1000), "video": arrays["video"],
            "video_seqN": np.full(n, 32), "text": arrays["text"], "label": arrays["labels"],
        })
    run = tmp_path / "run"
    assert main(["import-reference", str(FIXTURES / "self_state_dict.pt"), "--kind", "self",
                 "--out", str(run)]) == 0
    metrics = evaluate_run(run, fold, split="test")
    expected = float(np.mean(arrays["logits_f64"].argmax(1) == arrays["labels"]))
    assert metrics["accuracy"] == pytest.approx(expected)
    assert metrics["n"] == n
    assert main(["evaluate", "--run", str(run), "--data", str(fold)]) == 0
