"""Whisper encoders as a speech front-end: transformers checkpoints and CTranslate2 folders.

Why: Whisper's encoder, trained on 680k hours of weakly supervised speech, gives the best
frozen speech-emotion features on speaker-independent benchmarks, and many users already
have it on disk as a faster-whisper / CTranslate2 folder. Only the encoder half runs.

Whisper reads fixed 30 s log-mel windows (3000 mel frames of 10 ms; its convolutional
front-end halves them to 1500 states of 20 ms). Each clip is cut into 30 s windows, each
window is zero padded to 30 s by Whisper's own feature extractor, encoded, and only the
states that cover the audio (``ceil(samples / 320)``) are kept; the windows' states are
concatenated. Padding is per window, so batching windows never changes a clip's features.

Two back-ends, one config (:class:`~selfcross.features.pretrained.HFAudioConfig`):

* ``hf:NAME_OR_PATH`` of ``model_type`` ``whisper`` (transformers): any hidden state
  (``--audio-layer K``, ``0`` = after the convolutional front-end and positions) or all of
  them (``weighted``); the last one includes the encoder's final layer norm.
* ``hf:FOLDER`` of a CTranslate2 conversion (``model.bin`` + ``config.json``, with
  ``vocabulary.*`` / ``preprocessor_config.json``): through ``ctranslate2``'s own Whisper
  encoder (the optional extra ``selfcross[ctranslate2]``). CTranslate2 returns only the
  encoder output, so the layer is the last one; ``dtype`` is CTranslate2's compute type
  (``auto``: ``int8`` on the CPU as faster-whisper, ``float16`` on a GPU).

``window="clip"`` (CTranslate2 only) runs the encoder on the clip's own log-mel frames
instead of the padded 30 s window: for 3-5 s clips about 20x less compute on the CPU, but
not the input Whisper was trained on (its states differ from the 30 s ones), so it is an
opt-in recorded in ``features.json``, never the default.

Log-mel features come from transformers' ``WhisperFeatureExtractor`` on both back-ends (the
folder's ``preprocessor_config.json`` when present, else Whisper's defaults with the
model's number of mel bands), so the two back-ends see identical inputs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from selfcross.errors import ConfigError
from selfcross.features.pretrained import (
    CT2_MODEL_TYPE,
    HFAudioConfig,
    HFAudioFeatures,
    _not_found,
    _transformers,
    folder_fingerprint,
    model_name,
    recorded_spec,
    resolve_ct2_dtype,
    resolve_dtype,
)

SAMPLE_RATE = 16000
#: Whisper's window: 30 s of audio -> 1500 encoder states of 320 samples (20 ms).
WINDOW_SAMPLES = 30 * SAMPLE_RATE
HOP_SAMPLES = 320
WINDOW_FRAMES = WINDOW_SAMPLES // HOP_SAMPLES


def is_ct2_folder(name: str) -> bool:
    """Whether ``name`` is a folder holding a CTranslate2 model (``model.bin`` + ``config.json``)."""
    p = Path(name)
    return p.is_dir() and (p / "model.bin").is_file() and (p / "config.json").is_file()


def _ctranslate2() -> Any:
    try:
        import ctranslate2
    except ImportError:
        raise ConfigError("CTranslate2 (faster-whisper) folders need the ctranslate2 library: "
                          "pip install 'selfcross[ctranslate2]'") from None
    return ctranslate2


def _frames_of(n_samples: int) -> int:
    return min(WINDOW_FRAMES, max(1, math.ceil(n_samples / HOP_SAMPLES)))


def windows(wave: np.ndarray) -> list[np.ndarray]:
    """A clip cut into 30 s windows (the last one shorter; at least one window)."""
    if len(wave) <= WINDOW_SAMPLES:
        return [wave]
    return [wave[k : k + WINDOW_SAMPLES] for k in range(0, len(wave), WINDOW_SAMPLES)]


# --------------------------------------------------------------------------- configs


def _choose_layer(layer: int | str | None, n: int, spec: str) -> int | str:
    if layer is None or layer == "last":
        return n - 1
    if layer == "weighted":
        return "weighted"
    try:
        chosen = int(layer)
    except (TypeError, ValueError):
        raise ConfigError(f"--audio-layer {layer!r}: give a number, 'last' or 'weighted'") from None
    if not -n <= chosen < n:
        raise ConfigError(f"--audio-layer {layer}: {spec} has hidden states 0..{n - 1}")
    return chosen % n


def hf_whisper_config(
    spec: str, cfg: Any, revision: str | None, layer: int | str | None, max_frames: int | None,
    dtype: str, device: str, window: str = "30s",
) -> Any:
    """The :class:`HFAudioConfig` of a transformers Whisper checkpoint (config already read)."""
    n = int(cfg.encoder_layers) + 1
    return HFAudioConfig(
        encoder=recorded_spec(spec), revision=revision, model_type="whisper",
        layer=_choose_layer(layer, n, spec), n_layers=n, feat_dim=int(cfg.d_model),
        max_frames=max_frames or 500, dtype=resolve_dtype(dtype, device), window=window,
    )


def ct2_whisper_config(
    spec: str, layer: int | str | None, max_frames: int | None, dtype: str, device: str,
    window: str = "30s",
) -> Any:
    """The :class:`HFAudioConfig` of a CTranslate2 Whisper folder (the model is loaded once to
    learn its width; a folder that does not load is reported here, before any extraction)."""
    if layer not in (None, "last", -1):
        raise ConfigError(f"--audio-layer {layer}: a CTranslate2 folder gives only the Whisper encoder's "
                          "last layer; use a transformers checkpoint of the model for other layers")
    name = model_name(spec)
    compute = resolve_ct2_dtype(dtype, device)
    model = _load_ct2(name, spec, device, compute)
    width = _encode_ct2(model, np.zeros((1, model.n_mels, 2 * WINDOW_FRAMES), np.float32)).shape[-1]
    return HFAudioConfig(
        encoder=recorded_spec(spec), revision=folder_fingerprint(Path(name)), model_type=CT2_MODEL_TYPE,
        layer=-1, n_layers=None, feat_dim=int(width), max_frames=max_frames or 500, dtype=compute,
        window=window,
    )


def _load_ct2(folder: str, spec: str, device: str, compute_type: str) -> Any:
    ct2 = _ctranslate2()
    try:
        json.loads((Path(folder) / "config.json").read_text())
        return ct2.models.Whisper(folder, device="cuda" if str(device).startswith("cuda") else "cpu",
                                  compute_type=compute_type, intra_threads=_torch_threads())
    except (RuntimeError, ValueError, OSError) as e:
        raise ConfigError(f"--audio-encoder {spec}: {folder} is not a loadable CTranslate2 Whisper folder "
                          f"({str(e).splitlines()[0][:160]})") from None


def _torch_threads() -> int:
    """CTranslate2 follows torch's thread setting, which the preparation workers set."""
    import torch

    return int(torch.get_num_threads())


def _encode_ct2(model: Any, mel: np.ndarray) -> np.ndarray:
    import ctranslate2

    view = ctranslate2.StorageView.from_array(np.ascontiguousarray(mel, dtype=np.float32))
    return np.asarray(model.encode(view, to_cpu=True), dtype=np.float32)


# --------------------------------------------------------------------------- extractor


class WhisperFeatures(HFAudioFeatures):
    """Whisper encoder states: source -> ``float32 [max_frames, D]`` (or ``[max_frames, L, D]``).

    Same interface as :class:`~selfcross.features.pretrained.HFAudioFeatures` (``extract``,
    ``extract_many``, ``from_waveforms``); reading and resampling audio is inherited.
    """

    def _ensure(self) -> None:
        if self._model is not None:
            return
        c = self.config
        name = model_name(c.encoder)
        if Path(name).is_dir() and c.revision is not None and folder_fingerprint(Path(name)) != c.revision:
            raise ConfigError(f"{c.encoder}: the weights in this folder changed since the features were "
                              f"prepared (revision {c.revision}); prepare the data again")
        if c.model_type == CT2_MODEL_TYPE:
            self._model = _load_ct2(name, c.encoder, self.device, c.dtype)
            self._processor = _feature_extractor(name, int(self._model.n_mels))
        else:
            self._model, self._processor = self._load_hf(name)

    def _load_hf(self, name: str) -> tuple[Any, Any]:
        import torch
        tf = _transformers()
        c = self.config
        pin = {} if Path(name).is_dir() or c.revision is None else {"revision": c.revision}
        try:
            encoder = tf.WhisperModel.from_pretrained(name, **pin).get_encoder()
            processor = tf.WhisperFeatureExtractor.from_pretrained(name, **pin)
        except (OSError, ValueError) as e:
            raise _not_found("--audio-encoder", c.encoder, name, e) from None
        return encoder.to(device=self.device, dtype=getattr(torch, c.dtype)).eval(), processor

    def from_waveforms(self, waves: Sequence[np.ndarray]) -> list[tuple[np.ndarray, int]]:
        """Features of mono 16 kHz waveforms: every 30 s window of every clip, ``batch_size``
        windows per forward pass, states trimmed to the audio and joined per clip."""
        self._ensure()
        pieces = [(i, w) for i, wave in enumerate(waves) for w in windows(np.asarray(wave, np.float32))]
        states: list[np.ndarray] = []
        size = self.config.batch_size
        for k in range(0, len(pieces), size):
            chunk = [w for _, w in pieces[k : k + size]]
            for w, h in zip(chunk, self._forward(chunk)):
                states.append(h[: _frames_of(len(w))])
        out: list[tuple[np.ndarray, int]] = []
        for i in range(len(waves)):
            rows = np.concatenate([s for (j, _), s in zip(pieces, states) if j == i])
            out.append(_pad(rows, self.config.max_frames))
        return out

    def log_mel(self, chunk: list[np.ndarray]) -> np.ndarray:
        """``[B, n_mels, 3000]`` log-mel windows (each zero padded to 30 s)."""
        self._ensure()
        feats = self._processor(chunk, sampling_rate=SAMPLE_RATE, return_tensors="np",
                                padding="max_length", max_length=WINDOW_SAMPLES)
        return np.asarray(feats["input_features"], dtype=np.float32)

    def _forward(self, chunk: list[np.ndarray]) -> list[np.ndarray]:
        mel = self.log_mel(chunk)
        c = self.config
        if c.model_type == CT2_MODEL_TYPE and c.window == "clip":
            # only the clip's own mel frames (2 per encoder state); the log-mel scaling was
            # computed on the padded window, so it matches the 30 s input's first frames
            return [_encode_ct2(self._model, m[None, :, : 2 * _frames_of(len(w))])[0]
                    for m, w in zip(mel, chunk)]
        if c.model_type == CT2_MODEL_TYPE:
            return list(_encode_ct2(self._model, mel))
        import torch

        x = torch.from_numpy(mel).to(self.device, dtype=getattr(torch, c.dtype))
        with torch.inference_mode():
            hs = self._model(x, output_hidden_states=True).hidden_states
            h = torch.stack(hs, dim=2) if c.layer == "weighted" else hs[int(c.layer)]
        return list(h.float().cpu().numpy())


def _feature_extractor(folder: str, n_mels: int) -> Any:
    tf = _transformers()
    if (Path(folder) / "preprocessor_config.json").is_file():
        return tf.WhisperFeatureExtractor.from_pretrained(folder)
    return tf.WhisperFeatureExtractor(feature_size=n_mels)


def _pad(rows: np.ndarray, max_rows: int) -> tuple[np.ndarray, int]:
    n = min(len(rows), max_rows)
    out = np.zeros((max_rows, *rows.shape[1:]), dtype=np.float32)
    out[:n] = rows[:n]
    return out, n
