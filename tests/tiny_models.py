"""Small model configs and random inputs shared by the model tests."""

from __future__ import annotations

import torch

from selfcross.config import ModalityShape, ModelConfig
from selfcross.labels import parse_modalities

SMALL = {
    "audio": ModalityShape(20, 6, 10),
    "video": ModalityShape(8, 16, 5),
    "text": ModalityShape(12, 8, None),
}
def small_config(mods: str = "atv", kind: str = "self", pooling: str = "stat", **kw) -> ModelConfig:
    return ModelConfig(
        kind=kind, modalities=parse_modalities(mods), pooling=pooling, shapes=SMALL, hidden=4, heads=2,
        head_hidden=5, n_classes=3, **kw,
    )


def inputs(cfg: ModelConfig, batch: int = 3, seed: int = 0, dtype=torch.float32) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        m: torch.randn(batch, cfg.shapes[m].seq_len, cfg.shapes[m].feat_dim, generator=g, dtype=dtype)
        for m in cfg.modalities
    }
