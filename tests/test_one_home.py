"""Concepts with one home: every place that uses them agrees, because it reads that home."""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from selfcross.cli import build_parser
from selfcross.cli.encoders import video_encoder_arg
from selfcross.config import DTYPES, ModalityShape, ModelConfig, TrainConfig, choices
from selfcross.features.speakernorm import normalise
from selfcross.numerics import MIN_STD
from selfcross.prepare.options import VIDEO_ENCODERS, FeatureOptions
from selfcross.prepare.pipeline import video_encoder_setup
from selfcross.training.environment import DTYPES as TORCH_DTYPES
from selfcross.training.standardize import Standardizer

ROOT = Path(__file__).resolve().parents[1]


class _OneClip:
    """A split of one clip ``x [T, F]`` with every frame valid (what ``Standardizer.fit`` reads)."""

    def __init__(self, x: np.ndarray) -> None:
        self.x = x

    def __len__(self) -> int:
        return 1

    def get_batch(self, index: np.ndarray, modalities: tuple[str, ...]) -> tuple[dict, dict]:
        return {"audio": self.x[None]}, {"audio": np.array([len(self.x)])}


def test_a_nearly_constant_feature_is_only_centred_by_both_standardizations():
    rng = np.random.default_rng(0)
    x = np.stack([rng.normal(5.0, 2.0, 400), 3.0 + rng.normal(0.0, MIN_STD / 4, 400)], axis=1)
    mean, std = Standardizer.fit(_OneClip(x), ("audio",)).stats["audio"]
    assert std[1] == 1.0 and std[0] == pytest.approx(x[:, 0].std())  # the spread of noise is not scaled up
    spk = normalise(x, x.mean(0), x.std(0))
    np.testing.assert_allclose(spk[:, 1], x[:, 1] - x[:, 1].mean(), atol=1e-6)  # centred only


@pytest.mark.parametrize("name", VIDEO_ENCODERS)
def test_every_builtin_video_encoder_is_accepted_by_the_cli_and_the_pipeline(name):
    assert video_encoder_arg(name) == name
    use, _, _ = video_encoder_setup(name, None)
    assert use is FeatureOptions(video_encoder=name).uses_video


def test_an_unknown_video_encoder_is_refused_by_the_cli():
    with pytest.raises(argparse.ArgumentTypeError, match="resnet101, none or hf:NAME_OR_PATH"):
        video_encoder_arg("vgg16")


def test_dtypes_have_one_list_of_names():
    assert choices(TrainConfig, "dtype") == DTYPES
    assert tuple(TORCH_DTYPES) == DTYPES and TORCH_DTYPES["float64"] is torch.float64
    parser = build_parser()
    for name in DTYPES:  # import-reference evaluates in any precision a run can train in
        args = parser.parse_args(["import-reference", "c", "--kind", "self", "--out", "o", "--dtype", name])
        assert args.dtype == name


def test_which_branch_reads_lengths_is_decided_by_the_config():
    shapes = {"audio": ModalityShape(12, 3, 6), "text": ModalityShape(8, 4, None)}
    paper = ModelConfig(modalities=("audio", "text"), shapes=shapes)
    assert not paper.needs_lengths and not any(paper.uses_lengths(m) for m in shapes)
    mean_only = ModelConfig(modalities=("audio", "text"), shapes=shapes, masked_mean=True)
    assert mean_only.needs_lengths
    assert not mean_only.uses_lengths("audio") and mean_only.uses_lengths("text")  # the conv mixes audio
    pooled = ModelConfig(modalities=("audio", "text"), shapes=shapes, masked_mean=True, time_mixing="pool")
    assert pooled.uses_lengths("audio")


def test_no_source_file_cites_a_file_outside_the_repository():
    hits = subprocess.run(["grep", "-rn", "FACTS", str(ROOT / "src")], capture_output=True, text=True).stdout
    assert hits == ""
