"""Video features with a tiny encoder on PyAV-written clips: sampling, span, side, crop, errors."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest
import torch

from selfcross.errors import ConfigError, DataError
from selfcross.features import VideoConfig, VideoFeatures, load_feature_configs, save_feature_configs

av = pytest.importorskip("av")

from media import write_clip  # noqa: E402


class MeanColour(torch.nn.Module):
    """Tiny 'encoder': per-channel mean, the mean of the top-left 8x8 and the spatial size."""

    def forward(self, x):
        n = x.shape[0]
        size = torch.tensor([x.shape[2], x.shape[3]], dtype=x.dtype).expand(n, 2)
        return torch.cat([x.mean(dim=(2, 3)), x[:, :, :8, :8].mean(dim=(2, 3)), size], dim=1)


def _cfg(**kw) -> VideoConfig:
    return VideoConfig(encoder="tiny", feat_dim=8, weights=None, **kw)


def _grey(feat_rows: np.ndarray, cfg: VideoConfig) -> np.ndarray:
    """Undo ImageNet normalization of the red channel mean -> 0..255 grey level."""
    return (feat_rows[:, 0] * cfg.std[0] + cfg.mean[0]) * 255


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_clip(tmp_path_factory.mktemp("video") / "dialog.mp4")


def test_sampling_rate_and_padding(clip):
    cfg = _cfg(max_frames=32, side="left")
    x, n = VideoFeatures(cfg, encoder=MeanColour()).extract(clip)
    assert x.shape == (32, 8) and x.dtype == np.float32
    assert n == 12  # 4 s at 3 frames/s
    assert np.all(x[n:] == 0)
    # samples at k/3 s show source frames 2k: grey level 16k
    np.testing.assert_allclose(_grey(x[:n], cfg), 16 * np.arange(n), atol=6)


def test_span_and_max_frames(clip):
    cfg = _cfg(max_frames=4)
    x, n = VideoFeatures(cfg, encoder=MeanColour()).extract(clip, start=1.0, end=3.5)
    assert n == 4  # 8 samples in the span, first 4 kept
    np.testing.assert_allclose(_grey(x, cfg), [48, 64, 80, 96], atol=6)
    x, n = VideoFeatures(_cfg(), encoder=MeanColour()).extract(clip, start=2.5, end=3.0)
    assert n == 2  # t = 2.5 and 2.833


def test_sides_and_crop(clip):
    cfg = _cfg()
    vf = VideoFeatures(cfg, encoder=MeanColour())
    left, _ = vf.extract(clip, end=1.0, side="left")
    right, _ = vf.extract(clip, end=1.0, side="right")
    np.testing.assert_allclose(_grey(right[:3], cfg), 200, atol=6)
    assert np.all(np.abs(_grey(left[:3], cfg) - 200) > 100)
    assert np.all(left[:3, 6:] == 224)  # centre crop 224x224
    full, _ = vf.extract(clip, end=1.0, side="full")
    # the full frame's centre crop holds both halves and the black centre mark
    g = _grey(full[:1], cfg)[0]
    assert 60 < g < 200


def test_small_frames_are_upscaled_and_resize_option(tmp_path):
    small = write_clip(tmp_path / "small.mp4", seconds=1.0, w=160, h=120)
    cfg = _cfg()
    x, n = VideoFeatures(cfg, encoder=MeanColour()).extract(small, side="left")
    assert n == 3 and np.all(x[:n, 6:] == 224)
    cfg = _cfg(crop=32, resize_shorter=64)
    x, n = VideoFeatures(cfg, encoder=MeanColour()).extract(small, side="right")
    assert np.all(x[:n, 6:] == 32)
    np.testing.assert_allclose(_grey(x[:n], cfg), 200, atol=6)


def test_batches_do_not_change_features(clip):
    a, _ = VideoFeatures(_cfg(batch_size=1), encoder=MeanColour()).extract(clip)
    b, _ = VideoFeatures(_cfg(batch_size=32), encoder=MeanColour()).extract(clip)
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_conv_encoder_output_width(clip):
    enc = torch.nn.Sequential(torch.nn.Conv2d(3, 5, 3, stride=4), torch.nn.AdaptiveAvgPool2d(1))
    x, n = VideoFeatures(VideoConfig(encoder="tiny", feat_dim=5), encoder=enc).extract(clip, end=1.0)
    assert x.shape == (32, 5) and n == 3  # [n, 5, 1, 1] outputs are flattened
    with pytest.raises(ConfigError, match="feat_dim"):
        VideoFeatures(VideoConfig(encoder="tiny", feat_dim=7), encoder=enc).extract(clip, end=1.0)


def test_span_outside_the_file(clip):
    vf = VideoFeatures(_cfg(), encoder=MeanColour())
    with pytest.raises(DataError, match="after the end") as e:
        vf.extract(clip, start=10.0, end=12.0)
    assert "dialog.mp4" in str(e.value)
    with pytest.raises(DataError, match="past the end"):
        vf.extract(clip, start=3.0, end=9.0)
    x, n = vf.extract(clip, start=3.0, end=4.5)  # within the tolerance: cut at the end
    assert n == 3
    with pytest.raises(DataError, match="invalid span"):
        vf.extract(clip, start=2.0, end=1.0)


def test_bad_files(tmp_path):
    vf = VideoFeatures(_cfg(), encoder=MeanColour())
    bad = tmp_path / "broken.avi"
    bad.write_bytes(b"\x00not a video" * 100)
    with pytest.raises(DataError, match="broken.avi"):
        vf.extract(bad)
    with pytest.raises(DataError, match="no such video file"):
        vf.extract(tmp_path / "none.mp4")
    with pytest.raises(ConfigError, match="side"):
        VideoConfig(side="middle")


def test_unknown_encoder_name_needs_injection(clip):
    with pytest.raises(ConfigError, match="encoder="):
        VideoFeatures(_cfg()).extract(clip)


def test_config_round_trip(tmp_path):
    cfg = _cfg(side="right", fps=2.0)
    assert VideoConfig.from_dict(cfg.to_dict()) == cfg
    save_feature_configs(tmp_path, {"video": cfg, "audio": {"max_frames": 10}})
    got = load_feature_configs(tmp_path)
    assert got["video"] == cfg and got["audio"].max_frames == 10


HAS_TV = importlib.util.find_spec("torchvision") is not None


@pytest.mark.skipif(not HAS_TV, reason="torchvision absent (extra selfcross[video])")
def test_resnet101_random_weights_gives_2048(clip, tmp_path):
    from selfcross.features import resnet101_encoder

    enc = resnet101_encoder(weights=None)
    vf = VideoFeatures(VideoConfig(max_frames=2, weights=None), encoder=enc, device="cpu")
    x, n = vf.extract(clip, end=0.3)
    assert x.shape == (2, 2048) and n == 1 and np.all(x[1] == 0) and np.all(x[0] >= 0)
    # a local state-dict file is accepted (no download)
    import torchvision
    from safetensors.torch import save_file

    state = torchvision.models.resnet101(weights=None).state_dict()
    save_file(state, str(tmp_path / "r101.safetensors"))
    enc2 = resnet101_encoder(weights=str(tmp_path / "r101.safetensors"))
    assert torch.equal(enc2.conv1.weight, state["conv1.weight"])
    with pytest.raises(ConfigError, match="no such file"):
        resnet101_encoder(weights=str(tmp_path / "missing.pth"))


def test_resnet101_without_torchvision_is_a_clear_error(clip, monkeypatch):
    # simulate the extra being absent (a None entry makes `import` raise ImportError)
    monkeypatch.setitem(sys.modules, "torchvision", None)
    with pytest.raises(ConfigError, match=r"selfcross\[video\]"):
        VideoFeatures(VideoConfig()).extract(clip)
