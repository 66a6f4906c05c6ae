"""Audio features at 100 frames/s: the paper's MFCCs, log-mel energies or openSMILE descriptors.

Why these settings: the authors' folds hold ``[N, 1000, 120]`` MFCC-based frames (10 s at
100 frames/s, 40 coefficients with first and second derivatives); that is the default
front-end (``features="mfcc"``). The others, for real corpora, keep the 10 ms frame shift:
``logmel`` (log mel-band energies, librosa), ``egemaps`` (the 25 eGeMAPSv02 low-level
descriptors) and ``compare`` (the 65 ComParE_2016 low-level descriptors + their 65 deltas),
the last two through audEERING's ``opensmile`` package (:mod:`selfcross.features.smile`).
Every setting is a field of :class:`AudioConfig`, saved in ``features.json`` with each data
root and run folder, so prediction on a new clip reproduces the training features exactly.

Decoding: WAV/FLAC/OGG go through ``soundfile``; anything it cannot read (mp4, avi, m4a,
mkv...) through PyAV (ffmpeg). Stereo is mixed down by averaging channels; other sample
rates are resampled with soxr (``librosa.resample(res_type="soxr_hq")``), in both paths,
so the two decoders give the same waveform for the same signal.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from selfcross.config import ConfigMixin
from selfcross.errors import ConfigError, DataError

#: Audio front-ends (``AudioConfig.features``); the first is the paper's.
AUDIO_FEATURES: tuple[str, ...] = ("mfcc", "egemaps", "compare", "logmel")
#: Front-ends computed by openSMILE (need the ``opensmile`` extra).
OPENSMILE_FEATURES: frozenset[str] = frozenset({"egemaps", "compare"})

#: Extensions read with soundfile first (PyAV is the fallback for everything else).
SOUNDFILE_EXTENSIONS: frozenset[str] = frozenset({".wav", ".flac", ".ogg", ".aiff", ".aif"})


@dataclass
class AudioConfig(ConfigMixin):
    """Settings of :class:`AudioFeatures` (defaults reproduce the paper's 1000 x 120 frames).

    Attributes:
        features: front-end, one of :data:`AUDIO_FEATURES`: ``mfcc`` (the paper's),
            ``logmel`` (``n_mels`` log mel energies in dB, + ``deltas``), ``egemaps``
            (eGeMAPSv02 low-level descriptors, 25) or ``compare`` (ComParE_2016 low-level
            descriptors, 65, + their openSMILE deltas when ``deltas`` is 1: 130).
            Build non-default front-ends with :meth:`for_features`.
        descriptors: names of the openSMILE descriptors, in column order (filled in by
            :class:`AudioFeatures` for ``egemaps``/``compare``; empty for librosa front-ends).
        speaker_norm: the prepared frames were standardised per speaker
            (:mod:`selfcross.features.speakernorm`; set by preparation, read by prediction;
            the extractor itself always returns raw frames).
        sample_rate: waveforms are resampled to this rate (Hz) before analysis.
        n_mfcc: cepstral coefficients per frame (40).
        n_mels: mel filters the MFCCs (or the log-mel energies) are computed from (40, as in
            Kaldi's hi-res MFCC; librosa's default of 128 leaves empty filters with a
            512-point FFT at 16 kHz).
        n_fft: FFT size in samples (512 >= the 400-sample window at 16 kHz).
        win_ms: analysis window length in ms (25 ms = 400 samples at 16 kHz, Hann).
        hop_ms: frame shift in ms (10 ms = 100 frames/s).
        fmin: lowest mel filter edge (Hz).
        fmax: highest mel filter edge (Hz); ``None`` = Nyquist.
        deltas: derivative orders appended (2 = deltas + delta-deltas -> 3 * n_mfcc = 120);
            ``compare``: 0 or 1 (openSMILE defines first-order deltas only); ``egemaps``: 0.
        delta_width: frames used by ``librosa.feature.delta`` (odd, >= 3). Clips shorter than
            this use edge replication (``mode="nearest"``) instead of polynomial interpolation.
        center: librosa framing: frames centred on ``t * hop`` (the signal is reflect-padded
            by half a window), so a clip of ``n`` samples gives ``1 + n // hop`` frames.
        max_frames: frames kept (1000 = the first 10 s); the rest are cut, shorter clips
            are zero padded.
    """

    sample_rate: int = 16000
    n_mfcc: int = 40
    n_mels: int = 40
    n_fft: int = 512
    win_ms: float = 25.0
    hop_ms: float = 10.0
    fmin: float = 0.0
    fmax: float | None = None
    deltas: int = 2
    delta_width: int = 9
    center: bool = True
    max_frames: int = 1000
    features: str = "mfcc"
    descriptors: tuple[str, ...] = ()
    speaker_norm: bool = False

    def __post_init__(self) -> None:
        if self.features not in AUDIO_FEATURES:
            raise ConfigError(
                f"AudioConfig: unknown audio features {self.features!r} (use {', '.join(AUDIO_FEATURES)})"
            )
        if self.features == "compare" and self.deltas not in (0, 1):
            raise ConfigError("AudioConfig: compare has first-order deltas only (deltas 0 or 1)")
        if self.features == "egemaps" and self.deltas != 0:
            raise ConfigError("AudioConfig: eGeMAPSv02 defines no deltas of its descriptors (deltas 0)")
        if self.features in OPENSMILE_FEATURES and self.hop_ms != 10.0:
            raise ConfigError(f"AudioConfig: openSMILE's {self.features} frames are 10 ms apart (hop_ms 10)")
        if self.descriptors and self.features not in OPENSMILE_FEATURES:
            raise ConfigError(f"AudioConfig: descriptors apply to openSMILE features, not {self.features}")
        if self.sample_rate <= 0 or self.n_mfcc <= 0 or self.n_mels < self.n_mfcc:
            raise ConfigError("AudioConfig: need sample_rate > 0 and 0 < n_mfcc <= n_mels")
        if self.win_length > self.n_fft:
            raise ConfigError(
                f"AudioConfig: window {self.win_length} samples is longer than n_fft {self.n_fft}"
            )
        if self.hop_length < 1 or self.max_frames < 1:
            raise ConfigError("AudioConfig: hop_ms and max_frames must be positive")
        if self.deltas not in (0, 1, 2) or self.delta_width < 3 or self.delta_width % 2 == 0:
            raise ConfigError("AudioConfig: deltas must be 0, 1 or 2 and delta_width odd and >= 3")

    @property
    def win_length(self) -> int:
        """Window length in samples."""
        return int(round(self.sample_rate * self.win_ms / 1000))

    @property
    def hop_length(self) -> int:
        """Frame shift in samples."""
        return int(round(self.sample_rate * self.hop_ms / 1000))

    @classmethod
    def for_features(cls, features: str = "mfcc", **overrides: Any) -> AudioConfig:
        """The settings of one front-end: ``mfcc`` = the paper's; ``logmel`` = 64 log-mel
        energies; ``egemaps`` = 25 descriptors; ``compare`` = 65 descriptors + 65 deltas.

        ``overrides`` (e.g. ``max_frames=500``) replace any field.
        """
        defaults: dict[str, Any] = {
            "mfcc": {},
            "logmel": {"n_mels": 64, "deltas": 0},
            "egemaps": {"deltas": 0},
            "compare": {"deltas": 1},
        }
        if features not in defaults:
            raise ConfigError(f"unknown audio features {features!r} (use {', '.join(AUDIO_FEATURES)})")
        return cls(**{"features": features, **defaults[features], **overrides})

    @property
    def feat_dim(self) -> int:
        """Features per frame: ``n_mfcc * (1 + deltas)`` (120 by default), ``n_mels * (1 +
        deltas)`` for log-mel, the descriptor count for openSMILE (25 eGeMAPS, 65/130 ComParE)."""
        if self.features in OPENSMILE_FEATURES:
            if self.descriptors:
                return len(self.descriptors)
            from selfcross.features.smile import descriptor_count

            return descriptor_count(self.features, self.deltas)
        width = self.n_mels if self.features == "logmel" else self.n_mfcc
        return width * (1 + self.deltas)


def _mix_and_resample(y: np.ndarray, sr: int, sample_rate: int, path: str | Path | None) -> np.ndarray:
    """``y`` [n] or [n, channels] at ``sr`` -> float32 mono [n'] at ``sample_rate``."""
    y = np.asarray(y, dtype=np.float32)
    if y.ndim == 2:
        y = y.mean(axis=1)
    elif y.ndim != 1:
        raise DataError(path, f"expected a 1-D or [samples, channels] waveform, got shape {y.shape}")
    if not np.all(np.isfinite(y)):
        raise DataError(path, "audio holds NaN or infinite samples")
    if sr != sample_rate and y.size:
        import librosa

        y = librosa.resample(y, orig_sr=sr, target_sr=sample_rate, res_type="soxr_hq").astype(np.float32)
    return y


def _decode_av(path: Path) -> tuple[np.ndarray, int]:
    """Decode the first audio stream of any ffmpeg-readable file -> ([n, channels] float32, sr)."""
    import av

    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as e:
        raise DataError(path, f"cannot open as audio or video ({e})") from None
    with container:
        if not container.streams.audio:
            raise DataError(path, "has no audio track")
        stream = container.streams.audio[0]
        chunks: list[np.ndarray] = []
        resampler = None
        sr = 0
        try:
            for frame in container.decode(stream):
                if resampler is None:
                    # Planar float keeps every channel apart and the native rate; mixing and
                    # resampling are done by _mix_and_resample, as for soundfile input.
                    sr = frame.sample_rate
                    resampler = av.AudioResampler(format="fltp", layout=frame.layout.name, rate=sr)
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray())
            if resampler is not None:
                for out in resampler.resample(None):
                    chunks.append(out.to_ndarray())
        except av.error.FFmpegError as e:
            raise DataError(path, f"audio track cannot be decoded ({e})") from None
    if not chunks:
        raise DataError(path, "audio track is empty")
    return np.concatenate(chunks, axis=1).T, sr


def load_audio(
    path: str | Path, sample_rate: int = 16000, start: float | None = None, end: float | None = None
) -> np.ndarray:
    """Read an audio file, or the audio track of a video, as mono float32 at ``sample_rate``.

    Args:
        path: wav/flac/ogg (soundfile) or any container ffmpeg reads (mp4, avi, m4a...).
        sample_rate: target rate in Hz (other rates are resampled, stereo is averaged).
        start, end: optional span in seconds (``None`` = from the start / to the end).

    Returns:
        float32 waveform ``[n]``.

    Raises:
        DataError: missing, unreadable or empty file, or a span outside the audio.
    """
    path = Path(path)
    if path.is_dir():
        raise DataError(path, "is a folder, not an audio file")
    if not path.is_file():
        raise DataError(path, "no such audio file")
    if path.suffix.lower() == ".wav":
        _refuse_truncated_wav(path)
    y: np.ndarray | None = None
    sr = 0
    if path.suffix.lower() in SOUNDFILE_EXTENSIONS:
        import soundfile as sf

        try:
            y, sr = sf.read(str(path), dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, TypeError, ValueError):
            y = None  # e.g. an odd codec in a .wav: try ffmpeg before giving up
    if y is None:
        y, sr = _decode_av(path)
    y = _cut(y, sr, start, end, path)
    y = _mix_and_resample(y, sr, sample_rate, path)
    if y.size == 0:
        raise DataError(path, "audio is empty" + ("" if start is None and end is None else " in that span"))
    return y


class ClipTooShort(DataError):
    """A readable clip too short to give a single feature frame (not a damaged file)."""


def clip_notes(y: np.ndarray, config: AudioConfig) -> list[str]:
    """What is odd about a readable clip that still gives features: silence, or a clip
    shorter than one analysis window (its one frame is mostly padding)."""
    notes = []
    if y.size and not np.any(y):
        notes.append("every sample is zero (a silent clip)")
    if 0 < y.size < config.win_length:
        notes.append(f"shorter than one {config.win_ms:g} ms analysis window (mostly padding)")
    return notes


def _refuse_truncated_wav(path: Path) -> None:
    """Raise when a RIFF/WAVE file holds fewer audio bytes than its ``data`` chunk declares.

    Why: decoders read a cut-off WAV without complaint (soundfile returns the samples that
    are there), so a half-copied file would be classified as if it were whole.
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return  # not plain RIFF (e.g. RF64): left to the decoder
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            chunk, declared = struct.unpack("<4sI", f.read(8))
            if chunk == b"data":
                held = size - pos - 8
                # 0 and 0xFFFFFFFF are what streaming writers leave when the length is unknown
                if declared not in (0, 0xFFFFFFFF) and held < declared:
                    raise DataError(path, f"truncated WAV: the header declares {declared} bytes of audio "
                                          f"but the file holds {held} ({held / declared:.0%})")
                return
            pos += 8 + declared + (declared & 1)


def _cut(
    y: np.ndarray, sr: int, start: float | None, end: float | None, path: str | Path | None
) -> np.ndarray:
    """Slice ``y`` (time on axis 0) to ``[start, end)`` seconds, checking the span."""
    if start is None and end is None:
        return y
    dur = len(y) / sr
    s = 0.0 if start is None else float(start)
    e = dur if end is None else float(end)
    if s < 0 or e <= s:
        raise DataError(path, f"invalid span [{s:.3f}, {e:.3f}] s")
    if s >= dur:
        raise DataError(path, f"span [{s:.3f}, {e:.3f}] s starts after the end of the audio ({dur:.3f} s)")
    return y[int(round(s * sr)) : int(round(min(e, dur) * sr))]


class AudioFeatures:
    """Audio front-end: waveform -> ``float32 [max_frames, feat_dim]`` + valid length.

    With the paper's settings, frame ``t`` holds ``[mfcc(40), delta(40), delta-delta(40)]``
    of the analysis window centred at ``t * hop_ms``; openSMILE frame ``t`` is the window
    starting at ``t * 10 ms``. Frames past the clip's end are zeros.

    Raises:
        ConfigError: an openSMILE front-end without the ``opensmile`` package, or saved
            descriptor names that this openSMILE does not produce.
    """

    def __init__(self, config: AudioConfig | None = None) -> None:
        config = config or AudioConfig()
        self._smile = None
        #: :func:`clip_notes` of the last clip :meth:`extract` read (the preparation warns with them).
        self.last_notes: list[str] = []
        if config.features in OPENSMILE_FEATURES:
            import dataclasses

            from selfcross.features.smile import SmileDescriptors

            self._smile = SmileDescriptors(config.features, config.deltas, config.sample_rate)
            if config.descriptors and tuple(config.descriptors) != self._smile.names:
                raise ConfigError(
                    f"the saved {config.features} descriptor names differ from what this openSMILE "
                    f"computes ({len(config.descriptors)} saved, {len(self._smile.names)} now); "
                    "install the opensmile version the data was prepared with"
                )
            config = dataclasses.replace(config, descriptors=self._smile.names)
        self.config = config

    def waveform(
        self,
        source: str | Path | tuple[np.ndarray, int],
        start: float | None = None,
        end: float | None = None,
    ) -> np.ndarray:
        """Mono float32 waveform ``[n]`` at ``config.sample_rate`` from a path or ``(y, sr)``."""
        if isinstance(source, tuple):
            y, sr = source
            y = np.asarray(y)
            if y.ndim == 2 and y.shape[0] < y.shape[1] and y.shape[0] <= 8:
                y = y.T  # accept [channels, samples] too (librosa's layout)
            y = _cut(y, int(sr), start, end, None)
            y = _mix_and_resample(y, int(sr), self.config.sample_rate, None)
            if y.size == 0:
                raise DataError(None, "audio waveform is empty")
            return y
        return load_audio(source, self.config.sample_rate, start, end)

    def from_waveform(self, y: np.ndarray) -> tuple[np.ndarray, int]:
        """Features of a mono waveform already at ``config.sample_rate``.

        Returns:
            ``(features float32 [max_frames, feat_dim], valid_len)`` where
            ``valid_len = min(n_frames, max_frames)``.
        """
        c = self.config
        y = np.asarray(y, dtype=np.float32)
        if y.ndim != 1 or y.size == 0:
            raise DataError(None, f"expected a non-empty mono waveform, got shape {y.shape}")
        if self._smile is not None:
            # a second of margin: openSMILE's longest window (60 ms) and delta context fit in it
            full = self._smile(y[: (c.max_frames + 1) * c.hop_length + c.sample_rate])
        else:
            full = self._librosa_frames(y[: (c.max_frames + 1) * c.hop_length + c.n_fft])
        n = full.shape[0]
        if n == 0:
            raise ClipTooShort(None, f"audio too short for one {c.win_ms} ms frame")
        valid = min(n, c.max_frames)
        out = np.zeros((c.max_frames, c.feat_dim), dtype=np.float32)
        out[:valid] = full[:valid]
        return out, valid

    def _librosa_frames(self, y: np.ndarray) -> np.ndarray:
        """``[frames, feat_dim]`` MFCC or log-mel frames (+ deltas) of the samples that reach
        the kept frames (plus one window of margin)."""
        import warnings

        import librosa

        c = self.config
        with warnings.catch_warnings():
            # clips shorter than n_fft are valid (one or a few zero-extended frames)
            warnings.filterwarnings("ignore", message="n_fft=.*too large", category=UserWarning)
            base = self._logmel(y) if c.features == "logmel" else self._mfcc(y)
        n = base.shape[1]
        if n == 0:
            return np.zeros((0, c.feat_dim), dtype=np.float32)
        feats = [base]
        mode = "interp" if n >= c.delta_width else "nearest"
        for order in range(1, c.deltas + 1):
            feats.append(librosa.feature.delta(base, width=c.delta_width, order=order, mode=mode))
        return np.concatenate(feats, axis=0).T.astype(np.float32)  # [frames, feat_dim]

    def _logmel(self, y: np.ndarray) -> np.ndarray:
        """Log mel energies ``[n_mels, frames]`` in dB re 1 (no per-clip reference or floor
        relative to the loudest frame, so a frame's value does not depend on the rest of the clip)."""
        import librosa

        c = self.config
        mel = librosa.feature.melspectrogram(
            y=y, sr=c.sample_rate, n_fft=c.n_fft, win_length=c.win_length, hop_length=c.hop_length,
            n_mels=c.n_mels, fmin=c.fmin, fmax=c.fmax, center=c.center, power=2.0,
        )
        return librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)

    def _mfcc(self, y: np.ndarray) -> np.ndarray:
        """MFCC matrix ``[n_mfcc, frames]`` of a mono waveform."""
        import librosa

        c = self.config
        return librosa.feature.mfcc(
            y=y,
            sr=c.sample_rate,
            n_mfcc=c.n_mfcc,
            n_fft=c.n_fft,
            win_length=c.win_length,
            hop_length=c.hop_length,
            n_mels=c.n_mels,
            fmin=c.fmin,
            fmax=c.fmax,
            center=c.center,
        )

    def extract(
        self,
        source: str | Path | tuple[np.ndarray, int],
        start: float | None = None,
        end: float | None = None,
    ) -> tuple[np.ndarray, int]:
        """Features of a file (wav/flac/mp4...) or ``(waveform, sample_rate)``.

        Args:
            source: file path, or ``(y, sr)`` with ``y`` ``[n]``, ``[n, ch]`` or ``[ch, n]``.
            start, end: optional span in seconds within the source.

        Returns:
            ``(float32 [max_frames, feat_dim], valid_len)``.

        Raises:
            DataError: naming the file, when it is missing, undecodable, empty or too short.
        """
        y = self.waveform(source, start, end)
        self.last_notes = clip_notes(y, self.config)
        try:
            return self.from_waveform(y)
        except DataError as e:
            if isinstance(source, tuple):
                raise
            raise type(e)(source, e.problem) from None
