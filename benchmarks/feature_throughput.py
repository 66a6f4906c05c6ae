"""Feature extraction throughput (utterances/s) per modality on generated media.

Usage::

    python benchmarks/feature_throughput.py [--n 20] [--seconds 4] [--width 720 --height 480]
                                            [--device cpu|cuda] [--no-resnet]

Generates ``n`` utterances (speech-like audio as 16 kHz wav, transcripts, mp4 videos of
``width x height`` at 30 frames/s like IEMOCAP's DivX dialogs) in a temporary folder and
times each extractor separately. Video is timed with a tiny convolutional encoder (decode +
sampling + crop dominate) and, when torchvision is installed, ResNet-101 with random weights
(same cost as the ImageNet weights; nothing is downloaded). Prints a table; no assertions.
The first call of each extractor is a warm-up and is not timed (librosa compiles on first use).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from selfcross.features import (
    AudioFeatures,
    TextConfig,
    VideoConfig,
    VideoFeatures,
    Vocabulary,
    encode,
    tokenize,
)

WORDS = "i really do n't know what you want from me oh that is wonderful news [LAUGHTER] we lost".split()


def speechlike(seconds: float, sr: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = rng.uniform(100, 220) + 30 * np.sin(2 * np.pi * 0.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    y = sum(np.sin(k * phase) / k for k in range(1, 10)) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t) ** 2)
    return (0.2 * y / np.abs(y).max() + 0.003 * rng.standard_normal(len(t))).astype(np.float32)


def write_video(path: Path, seconds: float, w: int, h: int, fps: int = 30) -> None:
    import av

    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8)
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        for i in range(int(seconds * fps)):
            frame = np.roll(base, 4 * i, axis=1)
            for p in s.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


class TinyEncoder(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 16, 7, stride=4)

    def forward(self, x):
        return torch.relu(self.conv(x)).mean(dim=(2, 3))


def timed(fn, items) -> tuple[float, int]:
    fn(items[0])  # warm-up
    t0 = time.perf_counter()
    for it in items:
        fn(it)
    return time.perf_counter() - t0, len(items)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=20, help="utterances per modality")
    ap.add_argument("--seconds", type=float, default=4.0, help="length of each utterance")
    ap.add_argument("--width", type=int, default=720)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--resnet-n", type=int, default=None, help="utterances for ResNet-101 (default n)")
    ap.add_argument("--no-resnet", action="store_true")
    args = ap.parse_args()

    rows: list[tuple[str, float, int, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        wavs = []
        for i in range(args.n):
            sf.write(d / f"u{i}.wav", speechlike(args.seconds, 16000, i), 16000)
            wavs.append(d / f"u{i}.wav")
        sec, n = timed(lambda p: AudioFeatures().extract(p), wavs)
        rows.append(("audio MFCC+deltas [1000,120]", sec, n, f"{args.seconds:g} s wav 16 kHz"))
        for i in range(args.n):
            sf.write(d / f"s{i}.wav", np.stack([speechlike(args.seconds, 44100, i)] * 2, 1), 44100)
        sec, n = timed(lambda p: AudioFeatures().extract(p), [d / f"s{i}.wav" for i in range(args.n)])
        rows.append(("audio, 44.1 kHz stereo (resampled)", sec, n, f"{args.seconds:g} s wav"))

        rng = np.random.default_rng(0)
        texts = [" ".join(rng.choice(WORDS, size=rng.integers(5, 40))) for _ in range(max(args.n, 1000))]
        vocab = Vocabulary.build(tokenize(t) for t in texts)
        cfg = TextConfig()
        sec, n = timed(lambda t: encode(t, vocab, 128, cfg), texts)
        rows.append(("text tokenize+encode [128]", sec, n, "5-40 words"))

        vids = []
        for i in range(args.n):
            write_video(d / f"v{i}.mp4", args.seconds, args.width, args.height)
            vids.append(d / f"v{i}.mp4")
        tiny = VideoFeatures(
            VideoConfig(encoder="tiny", feat_dim=16), encoder=TinyEncoder(), device=args.device
        )
        sec, n = timed(lambda p: tiny.extract(p, side="left"), vids)
        size = f"{args.seconds:g} s mp4 {args.width}x{args.height} 30 fps"
        rows.append((f"video decode+crop, tiny encoder ({args.device})", sec, n, size))
        # the seek path: a span in the middle of a longer file
        long = d / "dialog.mp4"
        write_video(long, 4 * args.seconds, args.width, args.height)
        spans = [(args.seconds * k / 2, args.seconds * k / 2 + args.seconds) for k in range(6)] * max(
            1, args.n // 6
        )
        sec, n = timed(lambda s: tiny.extract(long, s[0], s[1], side="right"), spans)
        rows.append((f"video span in a dialog, tiny ({args.device})", sec, n, f"{args.seconds:g} s spans"))
        if not args.no_resnet and importlib.util.find_spec("torchvision"):
            from selfcross.features import resnet101_encoder

            rn = VideoFeatures(VideoConfig(weights=None), encoder=resnet101_encoder(None), device=args.device)
            sub = vids[: args.resnet_n or args.n]
            sec, n = timed(lambda p: rn.extract(p, side="left"), sub)
            rows.append((f"video ResNet-101 [32,2048] ({args.device})", sec, n, size))
        elif not args.no_resnet:
            rows.append(("video ResNet-101", float("nan"), 0, "skipped: torchvision absent"))

    dev = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else platform.processor() or "cpu"
    print(f"# feature throughput ({dev}; torch threads {torch.get_num_threads()}, cpus {os.cpu_count()})")
    print(f"| {'extractor':<44} | {'utt/s':>8} | {'ms/utt':>8} | media |")
    print(f"|{'-' * 46}|{'-' * 10}|{'-' * 10}|-------|")
    for name, sec, n, what in rows:
        rate = n / sec if n and sec > 0 else float("nan")
        print(f"| {name:<44} | {rate:8.3g} | {1000 / rate if rate else float('nan'):8.1f} | {what} |")


if __name__ == "__main__":
    main()
