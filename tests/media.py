"""Small media files for the preparation tests: speech (espeak-ng or a tone) and video clips."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16_000
FPS = 6  # source frame rate: 3 frames/s sampling takes every other frame
W, H = 320, 240


def speech(text: str, tmp: Path, f0: float = 160.0) -> np.ndarray:
    """espeak-ng speech when installed, else a harmonic tone of similar length."""
    exe = shutil.which("espeak-ng")
    if exe is not None:
        out = tmp / "say.wav"
        subprocess.run([exe, "-s", "220", "-w", str(out), text], check=True, capture_output=True)
        y, sr = sf.read(out, dtype="float32")
        if sr != SR:
            import librosa

            y = librosa.resample(y, orig_sr=sr, target_sr=SR)
        return y.astype(np.float32)
    t = np.arange(int(SR * (0.2 + 0.04 * len(text)))) / SR
    return (0.2 * np.sin(2 * np.pi * f0 * t)).astype(np.float32)


def write_clip(path, seconds: float = 4.0, fps: int = FPS, w: int = W, h: int = H):
    """Frame i: left half grey level 8*i (frame index readable after lossy coding), right half 200."""
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.options = {"qscale": "2"}
        for i in range(int(seconds * fps)):
            img = np.zeros((h, w, 3), np.uint8)
            img[:, : w // 2] = min(8 * i, 255)
            img[:, w // 2 :] = 200
            img[h // 2 - 4 : h // 2 + 4, w // 2 - 4 : w // 2 + 4] = 0  # marks the centre
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path
