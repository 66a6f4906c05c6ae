"""The improved switches: padded content cannot leak with masks on; it does with paper settings.

Setting: a small tri-modal ``self+cross`` model (text has no time-mixing conv, so it gets
key-padding masks, packing and masked means; audio/video get zeroed padding before the
conv). "Padded positions" are the input frames at ``t >= length`` of each modality.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from selfcross.config import ModelConfig
from selfcross.errors import ConfigError, DataError
from selfcross.models import FusionModel
from tiny_models import inputs, small_config

SWITCH_SETS = {
    "paper": {},
    "mask_padding": {"mask_padding": True},
    "improved": {"mask_padding": True, "packed_gru": True, "masked_mean": True},
}



def model_with(switches: dict, mods: str = "atv", kind: str = "self+cross") -> FusionModel:
    torch.manual_seed(0)
    return FusionModel(small_config(mods, kind, **switches)).double().eval()


def perturb_padding(x: dict[str, torch.Tensor], lengths: dict[str, torch.Tensor], seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    out = {}
    for m, t in x.items():
        noise = 10 * torch.randn(t.shape, generator=g, dtype=t.dtype)
        pad = torch.arange(t.shape[1]).unsqueeze(0) >= lengths[m].unsqueeze(1)  # [B, T]
        out[m] = torch.where(pad.unsqueeze(-1), noise, t)
    return out


def random_lengths(cfg: ModelConfig, batch: int, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {m: torch.randint(1, cfg.shapes[m].seq_len, (batch,), generator=g) for m in cfg.modalities}


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), switches=st.sampled_from(["mask_padding", "improved"]))
def test_masks_make_padded_content_irrelevant(seed, switches):
    model = model_with(SWITCH_SETS[switches])
    x = inputs(model.config, batch=3, seed=seed, dtype=torch.float64)
    lengths = random_lengths(model.config, 3, seed)
    with torch.no_grad():
        a = model(**x, lengths=lengths)
        b = model(**perturb_padding(x, lengths, seed + 1), lengths=lengths)
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_paper_settings_let_padded_content_leak():
    model = model_with({})
    x = inputs(model.config, batch=3, dtype=torch.float64)
    lengths = random_lengths(model.config, 3, 0)
    with torch.no_grad():
        a = model(**x, lengths=lengths)  # lengths are accepted and ignored
        b = model(**perturb_padding(x, lengths, 1), lengths=lengths)
        c = model(**x)
    assert torch.equal(a, c)
    assert (a - b).abs().max() > 1e-4


@pytest.mark.parametrize("switches", ["mask_padding", "improved"])
@pytest.mark.parametrize("modality", ["audio", "video", "text"])
def test_valid_content_and_length_still_matter(switches, modality):
    model = model_with(SWITCH_SETS[switches])
    x = inputs(model.config, batch=3, dtype=torch.float64)
    lengths = {m: torch.full((3,), model.config.shapes[m].seq_len // 2) for m in model.config.modalities}
    with torch.no_grad():
        base = model(**x, lengths=lengths)
        changed = dict(x)
        changed[modality] = x[modality].clone()
        changed[modality][:, 0] += 1.0  # a valid step
        assert (model(**changed, lengths=lengths) - base).abs().max() > 1e-6
        longer = dict(lengths)
        longer[modality] = lengths[modality] + 1  # one more (non-zero) step becomes valid
        assert (model(**x, lengths=longer) - base).abs().max() > 1e-6


def test_packed_gru_alone_isolates_text_padding():
    """Packing stops padded word vectors at the GRU; its outputs there are zeros."""
    model = model_with({"packed_gru": True}, mods="t", kind="self")
    x = inputs(model.config, batch=3, dtype=torch.float64)
    lengths = {"text": torch.tensor([3, 12, 7])}
    with torch.no_grad():
        a = model(**x, lengths=lengths)
        b = model(**perturb_padding(x, lengths, 5), lengths=lengths)
        h = model.encoders["text"](x["text"], lengths["text"])
    torch.testing.assert_close(a, b)
    assert h[0, 3:].abs().max() == 0 and h[0, :3].abs().max() > 0


def test_masked_mean_averages_valid_steps_only():
    model = model_with({"masked_mean": True}, mods="t", kind="self")
    x = inputs(model.config, batch=2, dtype=torch.float64)
    lengths = {"text": torch.tensor([4, 9])}
    with torch.no_grad():
        fused = model.fused(**x, lengths=lengths)
        h = model.encoders["text"](x["text"])
        att = model.attentions["self_text"](h, h)
    expected = torch.stack([att[0, :4].mean(0), att[1, :9].mean(0)])
    torch.testing.assert_close(fused, expected)


@pytest.mark.parametrize("switches", ["mask_padding", "improved"])
def test_full_lengths_equal_paper_computation(switches):
    """Without padding the fixes are no-ops: same weights, same logits as the paper model."""
    paper = model_with({})
    fixed = model_with(SWITCH_SETS[switches])
    fixed.load_state_dict(paper.state_dict())
    x = inputs(paper.config, batch=3, dtype=torch.float64)
    full = {m: torch.full((3,), paper.config.shapes[m].seq_len) for m in paper.config.modalities}
    with torch.no_grad():
        torch.testing.assert_close(fixed(**x, lengths=full), paper(**x), rtol=1e-10, atol=1e-12)


def test_zero_length_text_stays_finite():
    model = model_with(SWITCH_SETS["improved"])
    x = inputs(model.config, batch=2, dtype=torch.float64)
    lengths = {m: torch.tensor([0, 3]) for m in model.config.modalities}
    with torch.no_grad():
        assert torch.isfinite(model(**x, lengths=lengths)).all()


def test_length_errors():
    model = model_with(SWITCH_SETS["improved"])
    x = inputs(model.config, batch=2, dtype=torch.float64)
    with pytest.raises(ConfigError, match="need the valid length"):
        model(**x)
    lengths = {m: torch.tensor([1, 2]) for m in model.config.modalities}
    with pytest.raises(DataError, match="text lengths must lie in 0..12"):
        model(**x, lengths={**lengths, "text": torch.tensor([1, 13])})
    with pytest.raises(DataError, match=r"audio lengths must be an integer tensor of shape \[2\]"):
        model(**x, lengths={**lengths, "audio": torch.tensor([1.0, 2.0])})
