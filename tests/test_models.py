"""FusionModel: shapes for every modality set x kind x pooling, dtypes, errors, pooling order."""

from __future__ import annotations

import pytest
import torch

from selfcross.config import ModelConfig, paper_shapes
from selfcross.errors import ConfigError, DataError
from selfcross.labels import PAPER_MODALITY_SETS, parse_modalities
from selfcross.models import Attention, FusionModel, Pooling, attention_pairs
from tiny_models import inputs, small_config

KINDS = ("self", "cross", "self+cross")



def n_vectors(n_mods: int, kind: str) -> int:
    return {"self": n_mods, "cross": n_mods * (n_mods - 1), "self+cross": n_mods * n_mods}[kind]


def expected_pool_dim(n: int, pooling: str, embed: int) -> int:
    if n == 1:
        return embed
    return {"stat": 2 * embed, "concat": n * embed, "mean": embed}[pooling]


@pytest.mark.parametrize("pooling", ["stat", "concat", "mean"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("mods", PAPER_MODALITY_SETS)
def test_small_shapes_every_combination(mods, kind, pooling):
    if kind != "self" and len(mods) == 1:
        with pytest.raises(ConfigError, match="at least two modalities.*no partner"):
            small_config(mods, kind, pooling)
        return
    cfg = small_config(mods, kind, pooling)
    model = FusionModel(cfg).eval()
    n = n_vectors(len(mods), kind)
    assert len(model.attentions) == n
    x = inputs(cfg)
    with torch.no_grad():
        fused = model.fused(**x)
        logits = model(**x)
    assert fused.shape == (3, expected_pool_dim(n, pooling, cfg.embed_dim))
    assert model.head[0].in_features == fused.shape[1]
    assert logits.shape == (3, 3)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("pooling", ["stat", "concat"])  # SP on / off (noSP)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("mods", PAPER_MODALITY_SETS)
def test_paper_shapes(mods, kind, pooling):
    if kind != "self" and len(mods) == 1:
        with pytest.raises(ConfigError, match="at least two modalities"):
            ModelConfig(kind=kind, modalities=parse_modalities(mods), pooling=pooling)
        return
    cfg = ModelConfig(kind=kind, modalities=parse_modalities(mods), pooling=pooling)
    assert cfg.shapes == paper_shapes() and cfg.hidden == 60 and cfg.heads == 6
    model = FusionModel(cfg).eval()
    x = inputs(cfg, batch=2)
    with torch.no_grad():
        fused = model.fused(**x)
        logits = model.head(fused)
    n = n_vectors(len(mods), kind)
    assert fused.shape == (2, expected_pool_dim(n, pooling, 120))
    assert logits.shape == (2, 7)
    assert torch.isfinite(logits).all()


def test_paper_tri_modal_parameter_shapes():
    model = FusionModel(ModelConfig(kind="cross"))
    sd = model.state_dict()
    assert sd["encoders.audio.conv.weight"].shape == (500, 1000, 1)
    assert sd["encoders.video.conv.weight"].shape == (25, 32, 1)
    assert "encoders.text.conv.weight" not in sd
    assert sd["encoders.video.gru.weight_ih_l0"].shape == (180, 2048)
    assert sd["head.0.weight"].shape == (60, 240)
    assert sd["head.1.weight"].shape == (7, 60)
    assert [name for name, *_ in attention_pairs(model.config)] == [
        "audio_from_video", "audio_from_text", "video_from_audio", "video_from_text",
        "text_from_audio", "text_from_video",
    ]


@pytest.mark.parametrize("kind", KINDS)
def test_float64_and_float32(kind):
    cfg = small_config("atv", kind)
    m32 = FusionModel(cfg).eval()
    m64 = FusionModel(cfg).to(torch.float64).eval()
    m64.load_state_dict(m32.state_dict())
    x = inputs(cfg)
    with torch.no_grad():
        y32 = m32(**x)
        y64 = m64(**x)  # float32 inputs are cast to the model's dtype
        y64b = m64(**{k: v.double() for k, v in x.items()})
    assert y32.dtype == torch.float32 and y64.dtype == torch.float64
    assert torch.equal(y64, y64b)
    torch.testing.assert_close(y32.double(), y64, rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_matches_cpu():
    cfg = small_config("atv", "self+cross")
    model = FusionModel(cfg).double().eval()
    x = inputs(cfg, dtype=torch.float64)
    with torch.no_grad():
        cpu = model(**x)
        gpu = model.cuda()(**{k: v.cuda() for k, v in x.items()})
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("kind", KINDS)
def test_every_parameter_gets_a_gradient(kind):
    cfg = small_config("atv", kind)
    model = FusionModel(cfg).train()
    model(**inputs(cfg)).sum().backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert no_grad == []


def test_dropout_only_in_training():
    cfg = small_config("t", "self", text_dropout=0.5, attn_dropout=0.0)
    model = FusionModel(cfg)
    x = inputs(cfg)
    model.train()
    torch.manual_seed(0)
    a = model(**x)
    b = model(**x)
    assert not torch.allclose(a, b)
    model.eval()
    assert torch.equal(model(**x), model(**x))


def test_unimodal_self_has_no_pooling():
    cfg = small_config("v", "self", "stat")
    model = FusionModel(cfg).eval()
    assert model.pooling.kind == "identity" and model.pooling.out_dim == cfg.embed_dim
    with torch.no_grad():
        fused = model.fused(**inputs(cfg))
        att = model.attentions["self_video"]
        h = model.encoders["video"](inputs(cfg)["video"])
        expected = att(h, h).mean(dim=1)
    torch.testing.assert_close(fused, expected)


def test_stat_pooling_is_std_then_mean():
    v = torch.tensor([[[1.0, 2.0], [3.0, 6.0], [5.0, 10.0]]])  # [B=1, N=3, E=2]
    out = Pooling("stat", 3, 2)(v)
    # unbiased std over N: [2, 4]; mean: [3, 6]
    torch.testing.assert_close(out, torch.tensor([[2.0, 4.0, 3.0, 6.0]]))
    torch.testing.assert_close(Pooling("concat", 3, 2)(v), torch.tensor([[1.0, 2.0, 3.0, 6.0, 5.0, 10.0]]))
    torch.testing.assert_close(Pooling("mean", 3, 2)(v), torch.tensor([[3.0, 6.0]]))
    torch.testing.assert_close(Pooling("stat", 1, 2)(v[:, :1]), torch.tensor([[1.0, 2.0]]))
    with pytest.raises(ConfigError):
        Pooling("max", 3, 2)


def test_attention_matches_hand_computation_and_ignores_masked_keys():
    torch.manual_seed(0)
    att = Attention(8, 2, dropout=0.0).double().eval()
    q = torch.randn(2, 4, 8, dtype=torch.float64)
    s = torch.randn(2, 6, 8, dtype=torch.float64)
    w, b = att.mha.in_proj_weight, att.mha.in_proj_bias
    Q, K, V = (t @ w[i * 8:(i + 1) * 8].T + b[i * 8:(i + 1) * 8] for i, t in enumerate((q, s, s)))
    heads = []
    for h in range(2):
        sl = slice(4 * h, 4 * h + 4)
        a = torch.softmax(Q[..., sl] @ K[..., sl].transpose(1, 2) / 2.0, dim=-1)
        heads.append(a @ V[..., sl])
    expected = att.mha.out_proj(torch.cat(heads, dim=-1))
    with torch.no_grad():
        torch.testing.assert_close(att(q, s), expected)
        mask = torch.zeros(2, 6, dtype=torch.bool)
        mask[:, 4:] = True
        s2 = s.clone()
        s2[:, 4:] = 100.0
        torch.testing.assert_close(att(q, s, mask), att(q, s2, mask))
        torch.testing.assert_close(att(q, s, mask), att(q, s[:, :4]))


def test_input_errors():
    cfg = small_config("at", "cross")
    model = FusionModel(cfg).eval()
    x = inputs(cfg)
    with pytest.raises(ConfigError, match="got no text input"):
        model(audio=x["audio"])
    with pytest.raises(ConfigError, match="unexpected input: video"):
        model(**x, video=torch.zeros(3, 8, 16))
    with pytest.raises(DataError, match=r"text input has shape \(3, 11, 8\); expected \[batch, 12, 8\]"):
        model(audio=x["audio"], text=x["text"][:, :11])
    with pytest.raises(DataError, match="batch size"):
        model(audio=x["audio"], text=x["text"][:2])
    with pytest.raises(ConfigError, match="kind"):
        small_config("at", "both")
