"""Video features: frames sampled at 3 frames/s, one actor's half, centre crop, image encoder.

The authors' folds hold ``[N, 32, 2048]`` ResNet-101 (ImageNet) pooled features of frames
sampled at 3 frames/s; each IEMOCAP dialog frame shows both actors side by side, and the
frame is cut in two halves (one actor each) and centre-cropped to 224 x 224.

Pipeline of :meth:`VideoFeatures.extract` (every setting in :class:`VideoConfig`):

1. decode with PyAV, seeking to the utterance's ``start`` (seconds);
2. sample times ``start + k / fps`` for ``k = 0, 1, ...`` while ``< end`` (and ``< max_frames``
   samples); each takes the frame *shown* at that time (last frame with timestamp <= t);
3. keep a part of the frame: ``side="left"`` = columns ``[0, W//2)`` as seen in the image,
   ``"right"`` = ``[W//2, W)``, ``"full"`` = the whole frame. Which IEMOCAP speaker sits on
   which side is decided by the caller (the IEMOCAP preparation documents its mapping);
4. optionally resize the shorter side to ``resize_shorter`` (off by default, as the authors
   cropped directly: IEMOCAP halves are 360 x 480); a part smaller than ``crop`` in either
   dimension is always upscaled (bilinear, antialiased) so its shorter side equals ``crop``;
   then the centre ``crop x crop`` square is cut;
5. RGB in [0, 1], normalized with the ImageNet mean/std;
6. the image encoder (any ``nn.Module`` mapping ``[n, 3, crop, crop] -> [n, D]``; default
   ResNet-101 without its classifier, 2048-d) runs in batches under ``torch.inference_mode``
   on the GPU when there is one;
7. the first ``max_frames`` (32) feature rows are kept, zero padded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from selfcross.config import ConfigMixin
from selfcross.errors import ConfigError, DataError

SIDES: tuple[str, ...] = ("left", "right", "full")
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


@dataclass
class VideoConfig(ConfigMixin):
    """Settings of :class:`VideoFeatures`.

    Attributes:
        fps: frames sampled per second of video (3).
        max_frames: feature rows kept (32 = the first ~10.7 s at 3 frames/s).
        crop: side of the centre square fed to the encoder (224).
        resize_shorter: resize the shorter side to this many pixels before cropping
            (``None`` = no resize, the authors' recipe; parts smaller than ``crop`` are
            always upscaled to ``crop``).
        side: default part of the frame: ``left``, ``right`` (halves as seen in the image)
            or ``full``; :meth:`VideoFeatures.extract` takes a per-call ``side``.
        mean, std: per-channel RGB normalization (ImageNet's).
        batch_size: images per encoder call.
        encoder: name of the image encoder (``resnet101``; another name means the caller
            injects the encoder, e.g. a test's tiny network).
        weights: ``resnet101`` weights: ``IMAGENET1K_V1`` (torchvision downloads
            ``resnet101-63fe2227.pth``, 171 MB, to ``$TORCH_HOME/hub/checkpoints`` on first use),
            ``IMAGENET1K_V2``, a local ``.pth``/``.safetensors`` file, or ``None`` (random).
        feat_dim: encoder output width (2048 for ResNet-101); recorded, checked on extraction.
        span_tolerance_s: an ``end`` up to this far past the end of the file is cut to the
            file's end; further is an error (annotation times and video length can differ
            slightly).
    """

    fps: float = 3.0
    max_frames: int = 32
    crop: int = 224
    resize_shorter: int | None = None
    side: str = "left"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    batch_size: int = 32
    encoder: str = "resnet101"
    weights: str | None = "IMAGENET1K_V1"
    feat_dim: int | None = 2048
    span_tolerance_s: float = 1.0

    def __post_init__(self) -> None:
        self.mean = tuple(float(x) for x in self.mean)  # type: ignore[assignment]
        self.std = tuple(float(x) for x in self.std)  # type: ignore[assignment]
        if self.side not in SIDES:
            raise ConfigError(f"VideoConfig.side {self.side!r} is not one of {', '.join(SIDES)}")
        if self.fps <= 0 or self.max_frames < 1 or self.crop < 1 or self.batch_size < 1:
            raise ConfigError("VideoConfig: fps, max_frames, crop and batch_size must be positive")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ConfigError("VideoConfig: mean and std need 3 values, std > 0")


def resnet101_encoder(weights: str | Path | None = "IMAGENET1K_V1") -> Any:
    """ResNet-101 with its classifier replaced by identity: ``[n, 3, H, W] -> [n, 2048]``.

    Args:
        weights: ``"IMAGENET1K_V1"``/``"imagenet"`` or ``"IMAGENET1K_V2"`` (torchvision
            downloads them on first use, to ``$TORCH_HOME/hub/checkpoints``), a local
            ``.pth``/``.pt``/``.safetensors`` state dict, or ``None`` (random weights).

    Raises:
        ConfigError: torchvision is not installed (optional extra ``selfcross[video]``), or
            unknown weights name.
        DataError: the weights file is missing or does not fit ResNet-101.
    """
    try:
        import torchvision
    except ImportError:
        raise ConfigError(
            "the resnet101 video encoder needs torchvision: pip install 'selfcross[video]' "
            "(or prepare without video / inject another encoder)"
        ) from None
    import torch

    model = torchvision.models.resnet101(weights=None)
    if weights is not None:
        name = str(weights)
        if name.lower() == "imagenet":
            name = "IMAGENET1K_V1"
        if name in ("IMAGENET1K_V1", "IMAGENET1K_V2"):
            w = getattr(torchvision.models.ResNet101_Weights, name)
            model.load_state_dict(w.get_state_dict(progress=True))
        else:
            path = Path(name)
            if not path.is_file():
                raise ConfigError(
                    f"resnet101 weights {name!r}: not IMAGENET1K_V1/IMAGENET1K_V2 and no such file"
                )
            try:
                if path.suffix == ".safetensors":
                    from safetensors.torch import load_file

                    state = load_file(str(path))
                else:
                    state = torch.load(str(path), map_location="cpu", weights_only=True)
                model.load_state_dict(state)
            except (RuntimeError, OSError, ValueError) as e:
                raise DataError(path, f"not a ResNet-101 state dict ({str(e)[:200]})") from None
    model.fc = torch.nn.Identity()
    return model.eval()


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _stream_timing(container: Any, stream: Any) -> tuple[float | None, float | None, float]:
    """(time base, duration in seconds or None, frame rate) of a PyAV video stream."""
    tb = float(stream.time_base) if stream.time_base else None
    duration = None
    if stream.duration is not None and tb:
        duration = stream.duration * tb
    elif container.duration is not None:
        duration = container.duration / 1_000_000
    return tb, duration, float(stream.average_rate or stream.guessed_rate or 25)


def _frames_shown_at(
    container: Any, stream: Any, targets: list[float], rate: float
) -> tuple[list[np.ndarray], float | None]:
    """RGB frames on screen at each target time, and the time of the last frame decoded.

    A frame is on screen from its timestamp until the next frame's; frames without a
    timestamp follow the previous one by one frame period.
    """
    frames: list[np.ndarray] = []
    prev = None
    last_t = None
    for frame in container.decode(stream):
        t = (
            frame.time
            if frame.time is not None
            else ((last_t + 1 / rate) if last_t is not None else 0.0)
        )
        while len(frames) < len(targets) and t > targets[len(frames)] + 1e-6:
            frames.append((prev if prev is not None else frame).to_ndarray(format="rgb24"))
        if len(frames) == len(targets):
            break
        prev, last_t = frame, t
    else:  # end of file: the last frame is shown for one frame period
        if prev is not None:
            while len(frames) < len(targets) and targets[len(frames)] < last_t + 1 / rate:
                frames.append(prev.to_ndarray(format="rgb24"))
    return frames, last_t


class VideoFeatures:
    """Video file (+ span, side) -> ``float32 [max_frames, D]`` encoder features + valid length.

    Args:
        config: extraction settings (defaults: the paper's).
        encoder: image encoder ``[n, 3, crop, crop] -> [n, D]``; ``None`` builds
            ``config.encoder`` (``resnet101`` with ``config.weights``) on first use.
        device: torch device for the encoder; ``None`` = CUDA when available, else CPU.
    """

    def __init__(
        self, config: VideoConfig | None = None, encoder: Any = None, device: str | None = None
    ) -> None:
        self.config = config or VideoConfig()
        self._encoder = encoder
        self.device = device or _default_device()
        self._ready = False

    @property
    def encoder(self) -> Any:
        """The image encoder, built and moved to :attr:`device` on first access."""
        if self._encoder is None:
            if self.config.encoder != "resnet101":
                raise ConfigError(
                    f"video encoder {self.config.encoder!r} is not built in (only resnet101): "
                    "pass encoder= to VideoFeatures / Predictor"
                )
            self._encoder = resnet101_encoder(self.config.weights)
        if not self._ready:
            self._encoder = self._encoder.to(self.device).eval()
            self._ready = True
        return self._encoder

    # -- frames ---------------------------------------------------------------------------
    def sample_frames(
        self, path: str | Path, start: float | None = None, end: float | None = None
    ) -> list[np.ndarray]:
        """Decoded RGB frames ``uint8 [H, W, 3]`` shown at ``start + k / fps`` (k < max_frames).

        Raises:
            DataError: unreadable file, no video track, or a span outside the video.
        """
        import av

        c = self.config
        path = Path(path)
        if path.is_dir():
            raise DataError(path, "is a folder, not a video file")
        if not path.is_file():
            raise DataError(path, "no such video file")
        s = 0.0 if start is None else float(start)
        if s < 0 or (end is not None and float(end) <= s):
            raise DataError(path, f"invalid span [{s}, {end}] s")
        try:
            container = av.open(str(path))
        except (av.error.FFmpegError, OSError) as e:
            raise DataError(path, f"cannot open as video ({e})") from None
        with container:
            if not container.streams.video:
                raise DataError(path, "has no video track")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            tb, duration, rate = _stream_timing(container, stream)
            self._check_span(path, s, end, duration)
            e = math.inf if end is None else float(end)
            if duration is not None:
                e = min(e, duration)
            targets = [s + k / c.fps for k in range(c.max_frames) if s + k / c.fps < e]
            try:
                if s > 0 and tb:
                    container.seek(int(s / tb), stream=stream, backward=True, any_frame=False)
                frames, last_t = _frames_shown_at(container, stream, targets, rate)
            except av.error.FFmpegError as err:
                raise DataError(path, f"video cannot be decoded ({err})") from None
        if not frames:
            end_s = "end of file" if end is None else f"{float(end):.3f}"
            last = "no frame decoded" if last_t is None else f"last frame at {last_t:.3f} s"
            raise DataError(path, f"no video frame in the span [{s:.3f}, {end_s}] ({last})")
        return frames

    def _check_span(self, path: Path, s: float, end: float | None, duration: float | None) -> None:
        if duration is None:
            return
        if s >= duration:
            raise DataError(path, f"span starts at {s:.3f} s, after the end of the video ({duration:.3f} s)")
        if end is not None and float(end) > duration + self.config.span_tolerance_s:
            raise DataError(
                path,
                f"span ends at {float(end):.3f} s, past the end of the video ({duration:.3f} s, "
                f"tolerance {self.config.span_tolerance_s} s)",
            )

    def preprocess(self, frames: list[np.ndarray], side: str | None = None) -> Any:
        """RGB frames ``uint8 [H, W, 3]`` -> normalized ``float32 tensor [n, 3, crop, crop]``."""
        import torch
        import torch.nn.functional as F

        c = self.config
        side = side or c.side
        if side not in SIDES:
            raise ConfigError(f"video side {side!r} is not one of {', '.join(SIDES)}")
        x = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2)  # [n, 3, H, W] uint8
        w = x.shape[3]
        if side == "left":
            x = x[:, :, :, : w // 2]
        elif side == "right":
            x = x[:, :, :, w // 2 :]
        x = x.float().div_(255.0)
        h, w = x.shape[2], x.shape[3]
        short = min(h, w)
        if c.resize_shorter:
            target = max(c.resize_shorter, c.crop)
        else:
            target = max(short, c.crop)  # upscale only parts smaller than the crop
        if target != short:
            scale = target / short
            size = (max(c.crop, round(h * scale)), max(c.crop, round(w * scale)))
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
            h, w = size
        top, left = (h - c.crop) // 2, (w - c.crop) // 2
        x = x[:, :, top : top + c.crop, left : left + c.crop]
        mean = torch.tensor(c.mean).view(1, 3, 1, 1)
        std = torch.tensor(c.std).view(1, 3, 1, 1)
        return ((x - mean) / std).contiguous()

    def encode(self, images: Any) -> np.ndarray:
        """Run the encoder on ``[n, 3, crop, crop]`` in batches -> ``float32 [n, D]``."""
        import torch

        enc = self.encoder
        outs = []
        with torch.inference_mode():
            for i in range(0, images.shape[0], self.config.batch_size):
                batch = images[i : i + self.config.batch_size].to(self.device)
                y = enc(batch)
                outs.append(y.reshape(y.shape[0], -1).float().cpu())
        return torch.cat(outs).numpy()

    def extract(
        self,
        path: str | Path,
        start: float | None = None,
        end: float | None = None,
        side: str | None = None,
    ) -> tuple[np.ndarray, int]:
        """Features of one utterance.

        Args:
            path: video file (anything ffmpeg decodes).
            start, end: span in seconds (``None`` = start / end of the file).
            side: ``left``/``right``/``full`` (``None`` = ``config.side``).

        Returns:
            ``(float32 [max_frames, D], valid_len)``, rows past ``valid_len`` are zeros.

        Raises:
            DataError: unreadable file, no video track, span outside the file, or an
                encoder output width different from ``config.feat_dim``.
        """
        frames = self.sample_frames(path, start, end)
        feats = self.encode(self.preprocess(frames, side))
        d = self.config.feat_dim
        if d is not None and feats.shape[1] != d:
            raise ConfigError(
                f"video encoder gives {feats.shape[1]}-d features, config.feat_dim says {d} "
                "(set VideoConfig.feat_dim to the encoder's width)"
            )
        n = min(len(feats), self.config.max_frames)
        out = np.zeros((self.config.max_frames, feats.shape[1]), dtype=np.float32)
        out[:n] = feats[:n]
        return out, n
