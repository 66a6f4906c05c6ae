"""Pretrained encoders from Hugging Face ``transformers`` as feature front-ends.

Why: frozen self-supervised speech frames (wav2vec 2.0, HuBERT, WavLM, data2vec), language
model token states (BERT, RoBERTa, DeBERTa) and image-model embeddings (CLIP, ViT, DINOv2)
are what today's emotion recognisers feed to a small fusion model. They replace the paper's
MFCC / GloVe / ResNet-101 inputs in the same prepare -> train -> predict flow.

An encoder is named ``hf:NAME_OR_PATH`` (a hub name, found in the local Hugging Face cache or
downloaded when the hub is reachable, or a folder written by ``save_pretrained``). Its
config (:class:`HFAudioConfig`, :class:`HFTextConfig`, :class:`HFVideoConfig`) records the
encoder, the weights' revision (the hub commit, or a fingerprint of a local folder), the
layer and the numeric precision in ``features.json``, so ``predict`` extracts the same
features and the per-utterance cache never mixes two encoders.

Outputs per utterance (zero padded, with the valid length):

* audio ``float32 [max_frames, D]`` (one hidden layer, ~50 frames/s) or
  ``[max_frames, L, D]`` with ``layer="weighted"`` (every hidden state; the model learns a
  softmax-weighted sum, :class:`selfcross.models.layer_weighting.LayerWeighting`);
* text ``float32 [max_tokens, D]``: one row per word (mean of its sub-word states) or per
  token, from the last (or a chosen) layer;
* video ``float32 [max_frames, D]``: one image embedding per sampled frame (3 frames/s as
  the paper), the checkpoint's own image processor doing resize, crop and normalisation.

``transformers`` is the optional extra ``selfcross[hf]``; it is imported only here, on use.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from selfcross.config import ConfigMixin
from selfcross.errors import ConfigError, DataError, SelfcrossError
from selfcross.features.audio import AudioConfig, AudioFeatures, load_audio
from selfcross.features.video import SIDES, VideoConfig, VideoFeatures

#: Prefix of an encoder name that means "a Hugging Face transformers checkpoint".
HF_PREFIX = "hf:"
#: ``model_type`` values accepted by each flag (the families the docs describe, plus close kin).
AUDIO_MODEL_TYPES: tuple[str, ...] = (
    "wav2vec2", "wav2vec2-conformer", "hubert", "wavlm", "data2vec-audio", "unispeech", "unispeech-sat",
    "whisper",
)
TEXT_MODEL_TYPES: tuple[str, ...] = (
    "bert", "roberta", "xlm-roberta", "deberta", "deberta-v2", "distilbert", "electra", "albert",
    "camembert", "mpnet", "modernbert",
)
VISION_MODEL_TYPES: tuple[str, ...] = (
    "clip", "clip_vision_model", "vit", "dinov2", "siglip", "siglip_vision_model", "deit", "beit",
)
_FAMILIES = {"audio": ("speech", AUDIO_MODEL_TYPES, "--audio-encoder"),
             "text": ("text", TEXT_MODEL_TYPES, "--text-encoder"),
             "video": ("vision", VISION_MODEL_TYPES, "--video-encoder")}
DTYPES: tuple[str, ...] = ("auto", "float32", "float16", "bfloat16")
TEXT_UNITS: tuple[str, ...] = ("word", "token")


def is_hf_spec(value: Any) -> bool:
    """Whether ``value`` names a transformers encoder (``"hf:NAME_OR_PATH"``)."""
    return isinstance(value, str) and value.startswith(HF_PREFIX)


def is_hf_config(config: Any) -> bool:
    """Whether an extractor config (dataclass or plain dict) is one of this module's."""
    if isinstance(config, (HFAudioConfig, HFTextConfig, HFVideoConfig)):
        return True
    return isinstance(config, dict) and is_hf_spec(config.get("encoder"))


def _transformers() -> Any:
    try:
        import transformers
    except ImportError:
        raise ConfigError(
            "hf: encoders need Hugging Face transformers: pip install 'selfcross[hf]'"
        ) from None
    transformers.logging.set_verbosity_error()  # load reports are noise for frozen encoders
    transformers.logging.disable_progress_bar()
    return transformers


def model_name(spec: str) -> str:
    """``"hf:NAME"`` -> ``"NAME"`` (a hub name or a local folder)."""
    name = spec[len(HF_PREFIX):] if is_hf_spec(spec) else spec
    if not name.strip():
        raise ConfigError(f"encoder {spec!r}: give hf:NAME_OR_PATH (a hub name or a save_pretrained folder)")
    return name.strip()


def recorded_spec(spec: str) -> str:
    """``hf:NAME_OR_PATH`` as ``features.json`` records it: a local folder as an absolute path,
    so prediction finds it from any working directory."""
    name = model_name(spec)
    return HF_PREFIX + (str(Path(name).resolve()) if Path(name).is_dir() else name)


def folder_fingerprint(folder: Path, sample_bytes: int = 65536) -> str:
    """A cheap identity of a local checkpoint folder (names, sizes, first/last bytes of each file).

    Why not a full hash: checkpoints are gigabytes and the check runs at every preparation and
    prediction; sampled bytes catch replaced weights, which is what the cache key needs.
    """
    h = hashlib.sha256()
    for p in sorted(q for q in folder.rglob("*") if q.is_file() and not q.name.startswith(".")):
        size = p.stat().st_size
        h.update(f"{p.relative_to(folder)}\0{size}\0".encode())
        with open(p, "rb") as f:
            h.update(f.read(sample_bytes))
            f.seek(max(0, size - sample_bytes))
            h.update(f.read(sample_bytes))
    return "local-" + h.hexdigest()[:16]


def _offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _not_found(flag: str, spec: str, name: str, err: Exception) -> ConfigError:
    if Path(name).exists():
        return ConfigError(f"{flag} {spec}: {name} is not a transformers checkpoint folder "
                           f"({str(err).splitlines()[0][:160]})")
    where = ("the Hugging Face hub is offline (HF_HUB_OFFLINE=1)" if _offline()
             else "the hub could not be reached")
    return ConfigError(f"{flag} {spec}: not in the local Hugging Face cache and {where}; download it once "
                       f"with `hf download {name}` (network needed) or give a save_pretrained folder")


#: The file a ``save_pretrained`` folder keeps each preprocessor's settings in.
_PROCESSOR_FILES: dict[str, str] = {
    "AutoFeatureExtractor": "preprocessor_config.json",
    "AutoImageProcessor": "preprocessor_config.json",
    "AutoTokenizer": "tokenizer_config.json (or tokenizer.json)",
}


def _no_processor(flag: str, spec: str, name: str, processor_cls: str, err: Exception) -> ConfigError:
    """The checkpoint's weights loaded but its preprocessor did not: name what is missing."""
    what = _PROCESSOR_FILES.get(processor_cls, processor_cls)
    if Path(name).is_dir():
        return ConfigError(f"{flag} {spec}: the folder {name} has the model but no usable {what} "
                           f"(save the checkpoint's {processor_cls.removeprefix('Auto')} there with "
                           "save_pretrained)")
    return ConfigError(f"{flag} {spec}: the checkpoint has no usable {what} "
                       f"({str(err).splitlines()[0][:160]})")


def load_hf_config(spec: str, modality: str) -> tuple[Any, str | None]:
    """The checkpoint's transformers config and revision, checked against the modality's family.

    Returns:
        ``(PretrainedConfig, revision)``; revision = the hub commit hash, or
        :func:`folder_fingerprint` of a local folder.

    Raises:
        ConfigError: transformers missing, checkpoint not found (offline: how to download it),
            or a model of another family (e.g. a text model given to ``--audio-encoder``).
    """
    tf = _transformers()
    family, types, flag = _FAMILIES[modality]
    name = model_name(spec)
    try:
        cfg = tf.AutoConfig.from_pretrained(name)
    except (OSError, ValueError, KeyError) as e:
        raise _not_found(flag, spec, name, e) from None
    model_type = getattr(cfg, "model_type", "?")
    if model_type not in types:
        others = [f for m, (f, t, _) in _FAMILIES.items() if m != modality and model_type in t]
        kind = f"a {others[0]} model" if others else "not a supported model"
        raise ConfigError(f"{flag} {spec}: {model_type!r} is {kind}, not a {family} encoder "
                          f"({flag} takes {', '.join(types[:5])}, ...)")
    local = Path(name)
    revision = folder_fingerprint(local) if local.is_dir() else getattr(cfg, "_commit_hash", None)
    return cfg, revision


def resolve_dtype(dtype: str, device: str) -> str:
    """``auto`` -> ``bfloat16`` on a CUDA device that supports it, ``float16`` on other CUDA
    devices, ``float32`` on the CPU; other values are kept (checked)."""
    if dtype not in DTYPES:
        raise ConfigError(f"encoder precision {dtype!r} is not one of {', '.join(DTYPES)}")
    if dtype != "auto":
        return dtype
    if not str(device).startswith("cuda"):
        return "float32"
    import torch

    return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"


def default_device() -> str:
    """``cuda`` when a GPU is visible, else ``cpu``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


# --------------------------------------------------------------------------- configs


@dataclass
class HFAudioConfig(ConfigMixin):
    """Settings of :class:`HFAudioFeatures` (recorded in ``features.json``).

    Attributes:
        encoder: ``hf:NAME_OR_PATH``.
        revision: hub commit or local-folder fingerprint of the weights used.
        model_type: transformers ``model_type`` (``wav2vec2``, ``hubert``, ``wavlm``...).
        layer: hidden state kept: ``0`` = the convolutional front-end's projection, ``k`` =
            transformer layer k (``n_layers - 1`` = last), or ``"weighted"`` = all of them.
        n_layers: hidden states the model returns (transformer layers + 1).
        feat_dim: hidden size ``D``.
        sample_rate: input rate (16 kHz for every supported family); audio is resampled.
        max_frames: frames kept (500 = 10 s at the 20 ms frame shift of these models).
        batch_size: clips per forward pass (only for models whose feature extractor returns
            attention masks; padding would change the others' features, so they run one by one).
        dtype: numeric precision of the encoder (``float32``, ``float16``, ``bfloat16``; a
            CTranslate2 compute type such as ``int8`` for a CTranslate2 Whisper folder).
        window: Whisper only: ``30s`` (its design: every clip padded to the 30 s window) or
            ``clip`` (the encoder runs on the clip's own log-mel frames; CTranslate2 only).
    """

    encoder: str = ""
    revision: str | None = None
    model_type: str | None = None
    layer: int | str = -1
    n_layers: int | None = None
    feat_dim: int | None = None
    sample_rate: int = 16000
    max_frames: int = 500
    batch_size: int = 8
    dtype: str = "float32"
    window: str = "30s"

    def __post_init__(self) -> None:
        _check_common(self, "audio")
        if self.layer != "weighted" and not isinstance(self.layer, int):
            raise ConfigError(f"audio layer {self.layer!r}: give a layer number or 'weighted'")
        if self.window != "30s":
            check_window(self.window, self.model_type)

    def input_shape(self) -> tuple[int, ...]:
        """Per-utterance array shape: ``(T, D)`` or ``(T, L, D)`` for ``weighted``."""
        if self.layer == "weighted":
            return (self.max_frames, int(self.n_layers or 0), int(self.feat_dim or 0))
        return (self.max_frames, int(self.feat_dim or 0))


@dataclass
class HFTextConfig(ConfigMixin):
    """Settings of :class:`HFTextFeatures`.

    Attributes:
        encoder, revision, model_type, feat_dim, batch_size, dtype: as in :class:`HFAudioConfig`.
        layer: hidden state kept (``-1`` resolved to the last at creation).
        units: ``word`` (sub-word states averaged back to the tokenizer's words; special
            tokens dropped) or ``token`` (every token, ``[CLS]``/``<s>`` included).
        max_tokens: rows kept per utterance (words or tokens).
    """

    encoder: str = ""
    revision: str | None = None
    model_type: str | None = None
    layer: int = -1
    n_layers: int | None = None
    feat_dim: int | None = None
    units: str = "word"
    max_tokens: int = 128
    batch_size: int = 32
    dtype: str = "float32"

    def __post_init__(self) -> None:
        _check_common(self, "text")
        if self.units not in TEXT_UNITS:
            raise ConfigError(f"text units {self.units!r} must be 'word' or 'token'")
        if self.max_tokens < 1:
            raise ConfigError("HFTextConfig.max_tokens must be positive")

    @property
    def max_frames(self) -> int:
        """Rows per utterance (the name the preparation uses for every sequence)."""
        return self.max_tokens

    def input_shape(self) -> tuple[int, ...]:
        """Per-utterance array shape ``(max_tokens, D)``."""
        return (self.max_tokens, int(self.feat_dim or 0))


@dataclass
class HFVideoConfig(ConfigMixin):
    """Settings of :class:`HFVideoFeatures`.

    Attributes:
        encoder, revision, model_type, feat_dim, batch_size, dtype: as in :class:`HFAudioConfig`.
        fps, max_frames, side, span_tolerance_s: frame sampling, as in
            :class:`~selfcross.features.video.VideoConfig` (3 frames/s, 32 frames).
    """

    encoder: str = ""
    revision: str | None = None
    model_type: str | None = None
    feat_dim: int | None = None
    fps: float = 3.0
    max_frames: int = 32
    side: str = "left"
    span_tolerance_s: float = 1.0
    batch_size: int = 32
    dtype: str = "float32"

    def __post_init__(self) -> None:
        _check_common(self, "video")

        if self.side not in SIDES:
            raise ConfigError(f"video side {self.side!r} is not one of {', '.join(SIDES)}")
        if self.fps <= 0:
            raise ConfigError("HFVideoConfig.fps must be positive")

    def input_shape(self) -> tuple[int, ...]:
        """Per-utterance array shape ``(max_frames, D)``."""
        return (self.max_frames, int(self.feat_dim or 0))




# Whisper's rules for HFAudioConfig (its extractor: :mod:`selfcross.features.whisper`).
#: ``model_type`` recorded for a CTranslate2 Whisper folder (``whisper`` = transformers).
CT2_MODEL_TYPE = "whisper-ctranslate2"
WHISPER_MODEL_TYPES: tuple[str, ...] = ("whisper", CT2_MODEL_TYPE)
#: CTranslate2 compute types accepted as ``dtype`` (besides :data:`pretrained.DTYPES`).
CT2_DTYPES: tuple[str, ...] = ("auto", "int8", "int8_float32", "float32", "float16", "bfloat16")

def resolve_ct2_dtype(dtype: str, device: str) -> str:
    """``auto`` -> ``int8`` on the CPU (faster-whisper's CPU default), ``float16`` on CUDA."""
    if dtype not in CT2_DTYPES:
        raise ConfigError(f"CTranslate2 compute type {dtype!r} is not one of {', '.join(CT2_DTYPES)}")
    if dtype != "auto":
        return dtype
    return "float16" if str(device).startswith("cuda") else "int8"


#: Whisper input windows: its 30 s design, or the clip's own frames (CTranslate2 only).
WINDOWS: tuple[str, ...] = ("30s", "clip")


def check_window(window: str, model_type: str | None) -> None:
    """Refuse a window the back-end cannot run: transformers' Whisper encoder takes exactly
    3000 log-mel frames; CTranslate2's accepts fewer."""
    if window not in WINDOWS:
        raise ConfigError(f"Whisper window {window!r} is not one of {', '.join(WINDOWS)}")
    if window == "clip" and model_type != CT2_MODEL_TYPE:
        raise ConfigError("Whisper window 'clip' needs a CTranslate2 folder (the transformers Whisper "
                          "encoder takes only 30 s windows)")


def _check_common(cfg: Any, modality: str) -> None:
    if not is_hf_spec(cfg.encoder):
        raise ConfigError(f"{modality} encoder {cfg.encoder!r} must be written hf:NAME_OR_PATH")
    if getattr(cfg, "model_type", None) == "whisper-ctranslate2":  # a CTranslate2 compute type
        resolve_ct2_dtype(cfg.dtype, "cpu")
    elif cfg.dtype not in DTYPES:
        raise ConfigError(f"encoder precision {cfg.dtype!r} is not one of {', '.join(DTYPES)}")
    if getattr(cfg, "max_frames", 1) < 1 or cfg.batch_size < 1:
        raise ConfigError(f"{type(cfg).__name__}: max_frames and batch_size must be positive")


CONFIG_CLASSES: dict[str, type[ConfigMixin]] = {
    "audio": HFAudioConfig, "text": HFTextConfig, "video": HFVideoConfig,
}


def _hidden_states(cfg: Any) -> int:
    layers = getattr(cfg, "num_hidden_layers", None)
    if layers is None:  # composite configs (CLIP) keep it in a sub-config
        layers = getattr(getattr(cfg, "vision_config", None), "num_hidden_layers", 0)
    return int(layers) + 1


def speech_encoder_config(
    spec: str, cfg: Any, revision: str, layer: int | str | None, max_frames: int | None, dtype: str,
    device: str,
) -> HFAudioConfig:
    """The :class:`HFAudioConfig` of a transformers speech encoder (not Whisper) whose checkpoint
    config ``cfg`` was read (arguments as :func:`selfcross.features.extractors.audio_encoder_config`)."""
    n = _hidden_states(cfg)
    if layer is None or layer == "last":
        chosen: int | str = n - 1
    elif layer == "weighted":
        chosen = "weighted"
    else:
        try:
            chosen = int(layer)
        except (TypeError, ValueError):
            raise ConfigError(f"--audio-layer {layer!r}: give a number, 'last' or 'weighted'") from None
        if not -n <= chosen < n:
            raise ConfigError(f"--audio-layer {layer}: {spec} has hidden states 0..{n - 1}")
        chosen %= n
    return HFAudioConfig(
        encoder=recorded_spec(spec), revision=revision, model_type=cfg.model_type, layer=chosen,
        n_layers=n, feat_dim=int(cfg.hidden_size), max_frames=max_frames or 500,
        dtype=resolve_dtype(dtype, device),
    )


def text_encoder_config(
    spec: str, units: str = "word", max_tokens: int = 128, layer: int = -1, dtype: str = "auto",
    device: str | None = None,
) -> HFTextConfig:
    """Build and check an :class:`HFTextConfig` (arguments as :func:`audio_encoder_config`)."""
    cfg, revision = load_hf_config(spec, "text")
    n = _hidden_states(cfg)
    if not -n <= int(layer) < n:
        raise ConfigError(f"text layer {layer}: {spec} has hidden states 0..{n - 1}")
    return HFTextConfig(
        encoder=recorded_spec(spec), revision=revision, model_type=cfg.model_type,
        layer=int(layer) % n, n_layers=n, feat_dim=int(cfg.hidden_size), units=units, max_tokens=max_tokens,
        dtype=resolve_dtype(dtype, device or default_device()),
    )


def video_encoder_config(
    spec: str, side: str = "left", fps: float = 3.0, max_frames: int = 32, dtype: str = "auto",
    device: str | None = None,
) -> HFVideoConfig:
    """Build and check an :class:`HFVideoConfig`; ``feat_dim`` is the embedding width."""
    cfg, revision = load_hf_config(spec, "video")
    if cfg.model_type == "clip":
        dim = int(cfg.projection_dim)  # image_embeds of CLIPVisionModelWithProjection
    else:
        dim = int(getattr(cfg, "hidden_size", 0) or cfg.vision_config.hidden_size)
    return HFVideoConfig(
        encoder=recorded_spec(spec), revision=revision, model_type=cfg.model_type, feat_dim=dim,
        fps=fps, max_frames=max_frames, side=side, dtype=resolve_dtype(dtype, device or default_device()),
    )


# --------------------------------------------------------------------------- extractors


class _Encoder:
    """Loads a checkpoint once (on first use), on ``device`` in the config's precision."""

    modality = ""

    def __init__(self, config: Any, device: str | None = None) -> None:
        self.config = config
        self.device = device or default_device()
        self._model: Any = None
        self._processor: Any = None

    def _load(self, model_cls: str, processor_cls: str, vision_tower: bool = False) -> tuple[Any, Any]:
        import torch

        tf = _transformers()
        c = self.config
        _, _, flag = _FAMILIES[self.modality]
        name = model_name(c.encoder)
        local = Path(name).is_dir()
        if local and c.revision is not None and folder_fingerprint(Path(name)) != c.revision:
            raise ConfigError(f"{c.encoder}: the weights in this folder changed since the features were "
                              f"prepared (revision {c.revision}); prepare the data again")
        pin = {} if local or c.revision is None else {"revision": c.revision}
        try:
            extra = {}
            if vision_tower:  # the image half of a two-tower checkpoint, with its projection width
                full = tf.AutoConfig.from_pretrained(name, **pin)
                extra["config"] = full.vision_config
                extra["config"].projection_dim = full.projection_dim
            model = getattr(tf, model_cls).from_pretrained(name, **pin, **extra)
        except (OSError, ValueError) as e:
            raise _not_found(flag, c.encoder, name, e) from None
        try:
            processor = getattr(tf, processor_cls).from_pretrained(name, **pin)
        except (OSError, ValueError, TypeError) as e:
            raise _no_processor(flag, c.encoder, name, processor_cls, e) from None
        dtype = getattr(torch, c.dtype)
        return model.to(device=self.device, dtype=dtype).eval(), processor

    def _ensure(self) -> None:
        raise NotImplementedError

    def load(self) -> None:
        """Load the checkpoint now, so that a broken one is one :class:`ConfigError` before
        any clip is read rather than a failure on every clip."""
        self._ensure()

    @property
    def model(self) -> Any:
        """The encoder module (loaded on first access)."""
        self._ensure()
        return self._model

    @property
    def processor(self) -> Any:
        """The checkpoint's feature extractor / tokenizer / image processor."""
        self._ensure()
        return self._processor


def _pad_rows(rows: np.ndarray, max_rows: int) -> tuple[np.ndarray, int]:
    n = min(len(rows), max_rows)
    out = np.zeros((max_rows, *rows.shape[1:]), dtype=np.float32)
    out[:n] = rows[:n]
    return out, n


class HFAudioFeatures(_Encoder):
    """Speech encoder frames: source -> ``float32 [max_frames, D]`` (or ``[max_frames, L, D]``)."""

    modality = "audio"

    def _ensure(self) -> None:
        if self._model is None:
            self._model, self._processor = self._load("AutoModel", "AutoFeatureExtractor")

    def waveform(self, source: Any, start: float | None = None, end: float | None = None) -> np.ndarray:
        """Mono float32 waveform at the config's rate from a path or ``(y, sr)``."""
        if isinstance(source, tuple):
            resampler = AudioFeatures(AudioConfig(sample_rate=self.config.sample_rate))
            return resampler.waveform(source, start, end)
        return load_audio(source, self.config.sample_rate, start, end)

    def from_waveforms(self, waves: Sequence[np.ndarray]) -> list[tuple[np.ndarray, int]]:
        """Features of mono waveforms; batched when the model takes attention masks."""
        self._ensure()
        batched = bool(getattr(self._processor, "return_attention_mask", False))
        size = self.config.batch_size if batched else 1
        order = sorted(range(len(waves)), key=lambda i: len(waves[i]))  # similar lengths pad least
        out: list[tuple[np.ndarray, int]] = [None] * len(waves)  # type: ignore[list-item]
        for k in range(0, len(order), size):
            idx = order[k : k + size]
            for i, feats in zip(idx, self._forward([waves[i] for i in idx])):
                out[i] = _pad_rows(feats, self.config.max_frames)
        return out

    def _forward(self, waves: list[np.ndarray]) -> list[np.ndarray]:
        import torch

        c = self.config
        inputs = self._processor(waves, sampling_rate=c.sample_rate, return_tensors="pt",
                                 padding=len(waves) > 1, return_attention_mask=len(waves) > 1)
        x = inputs["input_values"].to(self.device, dtype=getattr(torch, c.dtype))
        mask = inputs.get("attention_mask")
        with torch.inference_mode():
            kwargs = {"attention_mask": mask.to(self.device)} if mask is not None else {}
            states = self._model(x, output_hidden_states=True, **kwargs).hidden_states
            h = torch.stack(states, dim=2) if c.layer == "weighted" else states[int(c.layer)]
            if mask is not None:
                lens = self._model._get_feat_extract_output_lengths(mask.sum(-1)).tolist()
            else:
                lens = [h.shape[1]] * h.shape[0]
        h = h.float().cpu().numpy()
        return [h[b, : int(n)] for b, n in enumerate(lens)]

    def extract(
        self, source: Any, start: float | None = None, end: float | None = None
    ) -> tuple[np.ndarray, int]:
        """Features of a file (wav/flac/mp4...) or ``(waveform, sample_rate)``: ``(array, valid_len)``.

        Raises:
            DataError: unreadable file, or audio shorter than the encoder's first frame (25 ms).
        """
        y = self.waveform(source, start, end)
        try:
            return self.from_waveforms([y])[0]
        except RuntimeError as e:  # the convolutional front-end rejects too-short input
            raise DataError(None if isinstance(source, tuple) else source,
                            f"{len(y)} samples are too short for {self.config.encoder} "
                            f"({str(e).splitlines()[0][:120]})") from None

    def extract_many(self, items: Sequence[tuple[Any, Any, Any]]) -> list[Any]:
        """``(source, start, end)`` items -> ``(array, valid_len)`` or the error, per item."""
        waves: list[Any] = []
        for source, start, end in items:
            try:
                waves.append(self.waveform(source, start, end))
            except SelfcrossError as e:
                waves.append(e)
        good = [i for i, w in enumerate(waves) if not isinstance(w, Exception)]
        feats = self.from_waveforms([waves[i] for i in good])
        out: list[Any] = list(waves)
        for i, f in zip(good, feats):
            out[i] = f
        return out


class HFTextFeatures(_Encoder):
    """Language-model states: transcript -> ``float32 [max_tokens, D]`` + valid rows."""

    modality = "text"

    def _ensure(self) -> None:
        if self._model is None:
            self._model, self._processor = self._load("AutoModel", "AutoTokenizer")
            if self.config.units == "word" and not getattr(self._processor, "is_fast", False):
                raise ConfigError(f"{self.config.encoder}: pooling sub-words to words needs a fast "
                                  "tokenizer (tokenizer.json); use units 'token'")

    def _max_length(self) -> int:
        cfg = self._model.config
        limit = int(getattr(cfg, "max_position_embeddings", 512) or 512)
        if cfg.model_type in ("roberta", "xlm-roberta", "camembert"):
            limit -= 2  # their positions start after the padding index
        return min(int(self._processor.model_max_length), limit)

    def extract_many(self, texts: Sequence[str]) -> list[tuple[np.ndarray, int]]:
        """Features of transcripts, ``batch_size`` at a time (padding is masked, so exact)."""
        import torch

        self._ensure()
        c = self.config
        out: list[tuple[np.ndarray, int]] = []
        for k in range(0, len(texts), c.batch_size):
            batch = [str(t) for t in texts[k : k + c.batch_size]]
            enc = self._processor(batch, padding=True, truncation=True, max_length=self._max_length(),
                                  return_tensors="pt")
            with torch.inference_mode():
                states = self._model(**{n: v.to(self.device) for n, v in enc.items()},
                                     output_hidden_states=True).hidden_states[c.layer]
            states = states.float().cpu().numpy()
            for b in range(len(batch)):
                valid = enc["attention_mask"][b].numpy().astype(bool)
                if c.units == "token":
                    rows = states[b][valid]
                else:
                    rows = _pool_words(states[b], enc.word_ids(b))
                out.append(_pad_rows(rows, c.max_tokens))
        return out

    def extract(self, text: str) -> tuple[np.ndarray, int]:
        """Features of one transcript: ``(float32 [max_tokens, D], valid_rows)``."""
        return self.extract_many([text])[0]

    def sentence_embeddings(self, texts: Sequence[str], normalize: bool | None = None) -> np.ndarray:
        """``float32 [n, D]``: the mean of each text's token states (special tokens included),
        which is what sentence-transformers' mean pooling computes for the same checkpoint.

        Why here: a sentence-encoder folder (all-MiniLM-L6-v2, all-mpnet-base-v2) is used through
        its token or word states; this pooled form lets a test compare them with the reference
        library. ``normalize`` (default: when the folder's ``modules.json`` lists a Normalize
        module, as those checkpoints do) scales each embedding to unit length.
        """
        from dataclasses import replace

        self._ensure()
        tokens = HFTextFeatures(replace(self.config, units="token", max_tokens=self._max_length()),
                                self.device)
        tokens._model, tokens._processor = self._model, self._processor
        emb = np.stack([rows[:n].mean(axis=0) for rows, n in tokens.extract_many(texts)])
        if normalize is None:
            normalize = _lists_normalize(Path(model_name(self.config.encoder)))
        if normalize:
            emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        return emb.astype(np.float32)


def _lists_normalize(folder: Path) -> bool:
    """Whether a sentence-transformers folder ends with a Normalize module."""
    import json

    modules = folder / "modules.json"
    if not modules.is_file():
        return False
    return any(str(m.get("type", "")).endswith("Normalize") for m in json.loads(modules.read_text()))


def _pool_words(states: np.ndarray, word_ids: list[int | None]) -> np.ndarray:
    """Mean of the sub-word states of each word, in word order (special tokens dropped)."""
    words = sorted({w for w in word_ids if w is not None})
    if not words:
        return np.zeros((0, states.shape[1]), dtype=np.float32)
    ids = np.array([-1 if w is None else w for w in word_ids])
    return np.stack([states[ids == w].mean(axis=0) for w in words]).astype(np.float32)


#: Vision models whose ``pooler_output`` is a trained, normalised image embedding.
_TRAINED_POOLERS: tuple[str, ...] = ("clip_vision_model", "siglip", "siglip_vision_model")


class HFVideoFeatures(_Encoder):
    """Image-model embeddings of frames sampled at ``fps``: video -> ``float32 [max_frames, D]``."""

    modality = "video"

    def _ensure(self) -> None:
        if self._model is None:
            # a full CLIP checkpoint is loaded as its vision tower with the projection head
            clip = self.config.model_type == "clip"
            cls = "CLIPVisionModelWithProjection" if clip else "AutoModel"
            self._model, self._processor = self._load(cls, "AutoImageProcessor", vision_tower=clip)

    def sample_frames(self, path: Any, start: float | None, end: float | None) -> list[np.ndarray]:
        """RGB frames shown at ``start + k / fps`` (the paper's sampling, :class:`VideoFeatures`)."""
        c = self.config
        sampler = VideoFeatures(VideoConfig(fps=c.fps, max_frames=c.max_frames, side=c.side,
                                            span_tolerance_s=c.span_tolerance_s, encoder=c.encoder,
                                            weights=None, feat_dim=None), device="cpu")
        return sampler.sample_frames(path, start, end)

    def encode(self, frames: list[np.ndarray], side: str | None = None) -> np.ndarray:
        """``uint8 [H, W, 3]`` frames -> ``float32 [n, D]`` embeddings (one actor's part kept)."""
        import torch

        self._ensure()
        side = side or self.config.side
        w = frames[0].shape[1]
        part = {"left": slice(0, w // 2), "right": slice(w // 2, w), "full": slice(0, w)}[side]
        images = [np.ascontiguousarray(f[:, part]) for f in frames]
        outs = []
        for k in range(0, len(images), self.config.batch_size):
            pixels = self._processor(images=images[k : k + self.config.batch_size], return_tensors="pt")
            x = pixels["pixel_values"].to(self.device, dtype=getattr(torch, self.config.dtype))
            with torch.inference_mode():
                y = self._model(pixel_values=x)
            emb = getattr(y, "image_embeds", None)  # CLIP: the projected embedding
            if emb is None and self.config.model_type in _TRAINED_POOLERS:
                emb = y.pooler_output
            if emb is None:
                # the final-layer-normed CLS token: ViT's pooler is often absent from checkpoints
                # (then initialised at random), DINOv2's pooler is this very token
                emb = y.last_hidden_state[:, 0]
            outs.append(emb.float().cpu().numpy())
        return np.concatenate(outs)

    def extract(
        self, path: Any, start: float | None = None, end: float | None = None, side: str | None = None
    ) -> tuple[np.ndarray, int]:
        """Features of one utterance's video span: ``(float32 [max_frames, D], valid_len)``."""
        if side is not None and side not in SIDES:
            raise ConfigError(f"video side {side!r} is not one of {', '.join(SIDES)}")
        frames = self.sample_frames(path, start, end)
        feats = self.encode(frames, side)
        if self.config.feat_dim is not None and feats.shape[1] != self.config.feat_dim:
            raise DataError(path, f"{self.config.encoder} gives {feats.shape[1]}-d embeddings, "
                            f"features.json says {self.config.feat_dim}")
        return _pad_rows(feats, self.config.max_frames)
