"""The extractor of any pretrained-encoder config: transformers encoders and Whisper.

Why a module of its own: :mod:`selfcross.features.whisper` extends the transformers speech
extractor of :mod:`selfcross.features.pretrained`, so the choice between them is made above
both, here, and neither imports the other back.
"""

from __future__ import annotations

from typing import Any

from selfcross.errors import ConfigError
from selfcross.features import whisper
from selfcross.features.pretrained import (
    CONFIG_CLASSES,
    WHISPER_MODEL_TYPES,
    HFAudioConfig,
    HFAudioFeatures,
    HFTextFeatures,
    HFVideoFeatures,
    default_device,
    load_hf_config,
    model_name,
    speech_encoder_config,
)


def audio_encoder_config(
    spec: str, layer: int | str | None = None, max_frames: int | None = None, dtype: str = "auto",
    device: str | None = None, window: str = "30s",
) -> HFAudioConfig:
    """Build and check an :class:`HFAudioConfig` (the checkpoint's config is read, not its weights).

    Args:
        spec: ``hf:NAME_OR_PATH`` of a speech encoder, or of a CTranslate2 Whisper folder.
        layer: hidden state number, ``"last"``/``None`` (the last) or ``"weighted"`` (all).
        max_frames: frames kept (default 500 = 10 s).
        dtype: precision (``auto``: bf16/fp16 on CUDA, fp32 on CPU; for CTranslate2 its
            compute type, ``auto`` = int8 on the CPU).
        device: device the extraction will run on (``None``: CUDA when present).
        window: Whisper's input window, ``30s`` or ``clip`` (see :class:`HFAudioConfig`).
    """
    device = device or default_device()
    if whisper.is_ct2_folder(model_name(spec)):
        return whisper.ct2_whisper_config(spec, layer, max_frames, dtype, device, window)
    cfg, revision = load_hf_config(spec, "audio")
    if cfg.model_type == "whisper":
        return whisper.hf_whisper_config(spec, cfg, revision, layer, max_frames, dtype, device, window)
    if window != "30s":
        raise ConfigError(f"--whisper-window {window}: applies to Whisper encoders, not {cfg.model_type}")
    return speech_encoder_config(spec, cfg, revision, layer, max_frames, dtype, device)


def make_extractor(modality: str, config: Any, device: str | None = None) -> Any:
    """The extractor of an HF config (dataclass or plain dict) for ``modality``."""
    cls = CONFIG_CLASSES[modality]
    cfg = config if isinstance(config, cls) else cls.from_dict(dict(config))
    if modality == "audio" and cfg.model_type in WHISPER_MODEL_TYPES:
        return whisper.WhisperFeatures(cfg, device)
    return {"audio": HFAudioFeatures, "text": HFTextFeatures, "video": HFVideoFeatures}[modality](cfg, device)
