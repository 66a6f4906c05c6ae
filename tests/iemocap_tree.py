"""Build a miniature IEMOCAP release (real layout and line formats) in a folder, for tests.

Importable by any test (``from iemocap_tree import build_iemocap_tree``) and exposed as the
``iemocap_tree`` fixture in ``conftest.py``. Each session has one dialog with two actors
(F and M) and a handful of utterances covering what a preparation must handle:

- unused labels (``xxx``, ``oth``, ``fea``), four-class merges (``hap`` + ``exc``);
- a missing wav (Ses01), an unreadable wav (Ses02), a transcription line for an utterance
  the annotation file does not list (Ses01), an utterance with no transcription (Ses03),
  a video span past the end of the dialog video (Ses02), an IEMOCAP marker (``[LAUGHTER]``),
  an utterance longer than 10 s (more than 1000 audio frames), and one malformed
  annotation line (Ses02, position returned in :attr:`IemocapTree.malformed`);
- dialog videos written with PyAV: the left half one colour, the right half another
  (red-ish = the actor wearing the markers on the left, blue-ish on the right);
- speech synthesized with ``espeak-ng`` when it is installed, otherwise generated
  harmonic waveforms (:attr:`IemocapTree.speech` says which);
- a GloVe-format text file covering most (not all) words of the transcripts.

Small on purpose (3 sessions x 7 lines, 64x48 px video at 10 fps): builds in about a second.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16_000
VIDEO_FPS = 10
VIDEO_SIZE = (64, 48)  # width, height: two 32-px halves
VIDEO_SECONDS = 24.0


@dataclass
class Line:
    """One annotated utterance of the miniature corpus."""

    suffix: str  # F000, M001, ...
    start: float
    end: float
    code: str  # raw label code
    text: str | None  # None = no transcription line
    wav: str = "ok"  # ok | missing | garbage


#: The utterances of every session's dialog ``SesNNF_impro01`` (the F actor wears markers).
BASE_LINES: tuple[Line, ...] = (
    Line("F000", 1.0, 2.6, "neu", "Excuse me."),
    Line("M000", 3.0, 4.8, "ang", "Do you have your forms? [LAUGHTER]"),
    Line("F001", 5.0, 6.5, "sad", "I lost my job today."),
    Line("M001", 6.6, 7.4, "xxx", "Yeah."),
    Line("F002", 7.5, 9.0, "exc", "That is wonderful news!"),
    Line("M002", 9.2, 21.0, "hap", "Well, I am happy to be here with you, this is a long one."),
    Line("F003", 21.2, 22.5, "fru", "Why does this always happen to me?"),
)


@dataclass
class IemocapTree:
    """What :func:`build_iemocap_tree` wrote and what a preparation should make of it."""

    root: Path
    glove: Path
    speech: str  # "espeak-ng" or "generated"
    sessions: list[str]
    labels: dict[str, str] = field(default_factory=dict)  # utt id -> raw code (parsed lines)
    expected_skips: dict[str, str] = field(default_factory=dict)  # utt id -> reason
    malformed: tuple[Path, int] | None = None  # (file, 1-based line)

    def kept(self, codes: set[str]) -> list[str]:
        """Utterance ids a preparation keeps when ``codes`` are the used label codes."""
        return sorted(u for u, c in self.labels.items() if c in codes and u not in self.expected_skips)


def _espeak(text: str, seconds: float, tmp: Path) -> np.ndarray | None:
    exe = shutil.which("espeak-ng")
    if exe is None:
        return None
    out = tmp / "say.wav"
    subprocess.run([exe, "-s", "190", "-w", str(out), text], check=True, capture_output=True)
    x, sr = sf.read(out, dtype="float32")
    if x.ndim > 1:
        x = x.mean(axis=1)
    if sr != SR:
        from math import gcd

        from scipy.signal import resample_poly

        g = gcd(SR, sr)
        x = resample_poly(x, SR // g, sr // g).astype(np.float32)
    return x


def _generated(text: str, rng: np.random.Generator) -> np.ndarray:
    """A voiced-speech-like signal: harmonics of a gliding pitch, syllable-rate envelope."""
    n = int(SR * (0.25 + 0.06 * len(text)))
    t = np.arange(n) / SR
    f0 = rng.uniform(110, 220) * (1 + 0.1 * np.sin(2 * np.pi * 0.7 * t))
    phase = 2 * np.pi * np.cumsum(f0) / SR
    x = sum(np.sin(k * phase) / k for k in range(1, 6))
    env = 0.5 * (1 - np.cos(2 * np.pi * 4.0 * t))
    return (0.2 * x * env + 0.005 * rng.standard_normal(n)).astype(np.float32)


def _write_wav(path: Path, speech: np.ndarray, seconds: float) -> None:
    """The utterance's speech, padded with near-silence to the annotated duration."""
    n = max(int(SR * seconds), len(speech))
    x = np.zeros(n, np.float32)
    x[: len(speech)] = speech[:n]
    x += 1e-4 * np.random.default_rng(len(speech)).standard_normal(n).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, x, SR, subtype="PCM_16")


def _write_video(path: Path, seed: int) -> None:
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = VIDEO_SIZE
    rng = np.random.default_rng(seed)
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=VIDEO_FPS)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        for i in range(int(VIDEO_SECONDS * VIDEO_FPS)):
            img = np.zeros((h, w, 3), np.uint8)
            level = 120 + int(100 * np.sin(i / 7.0))
            img[:, : w // 2] = (200, level // 2, 30)  # left: red-ish
            img[:, w // 2 :] = (30, level // 2, 200)  # right: blue-ish
            img = np.clip(img.astype(int) + rng.integers(-8, 8, img.shape), 0, 255).astype(np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def _lines_for(session: int) -> list[Line]:
    lines = [Line(**vars(x)) for x in BASE_LINES]
    if session == 1:
        lines[2].wav = "missing"  # F001: wav absent
        lines.append(Line("M003", 22.6, 23.4, "oth", "Whatever."))
    if session == 2:
        lines[0].wav = "garbage"  # F000: not a wav file
        lines.append(Line("M003", 40.0, 41.5, "neu", "This one is past the end of the video."))
        lines.append(Line("F004", 22.6, 23.5, "fea", "Watch out!"))
    if session == 3:
        lines[3].code = "sur"  # M001: a surprised utterance (seven classes only)
        lines[4].text = None  # F002: no transcription line
    return lines


def build_iemocap_tree(
    root: str | Path, n_sessions: int = 3, speech: str = "auto", glove_dim: int = 300, malformed: bool = True
) -> IemocapTree:
    """Write the miniature release under ``root/IEMOCAP_full_release`` and a GloVe file.

    Args:
        root: an empty (or new) folder.
        n_sessions: sessions to write (2..5).
        speech: ``auto`` (espeak-ng when installed), ``espeak-ng`` (required) or ``generated``.
        glove_dim: width of the word vectors in ``root/glove.txt``.
        malformed: add one malformed annotation line to Ses02 (reported, not fatal).
    """
    root = Path(root)
    release = root / "IEMOCAP_full_release"
    if speech == "espeak-ng" and shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is not installed")
    use_espeak = speech != "generated" and shutil.which("espeak-ng") is not None
    tree = IemocapTree(release, root / "glove.txt", "espeak-ng" if use_espeak else "generated", [])
    rng = np.random.default_rng(0)
    words: set[str] = set()
    with tempfile.TemporaryDirectory() as tmpdir:
        for k in range(1, n_sessions + 1):
            ses = f"Ses{k:02d}"
            tree.sessions.append(ses)
            dialog = f"{ses}F_impro01"
            sdir = release / f"Session{k}"
            emo = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
            trans = []
            for line in _lines_for(k):
                utt = f"{dialog}_{line.suffix}"
                tree.labels[utt] = line.code
                span = f"[{line.start:.4f} - {line.end:.4f}]"
                emo.append(f"{span}\t{utt}\t{line.code}\t[2.5000, 3.0000, 3.5000]")
                emo.append(f"C-E1:\t{line.code.capitalize()};\t()")
                emo.append("A-E2:\tval 3; act 3; dom  3;\t()")
                emo.append("")
                if line.text is not None:
                    trans.append(f"{utt} [{line.start:08.4f}-{line.end:08.4f}]: {line.text}")
                    words.update(w.strip(".,!?").lower() for w in line.text.split() if not w.startswith("["))
                wav = sdir / "sentences" / "wav" / dialog / f"{utt}.wav"
                if line.wav == "missing":
                    tree.expected_skips[utt] = "missing audio file"
                    continue
                if line.wav == "garbage":
                    wav.parent.mkdir(parents=True, exist_ok=True)
                    wav.write_bytes(b"RIFF this is not a wav file")
                    tree.expected_skips[utt] = "unreadable audio file"
                    continue
                text = line.text or "hmm"
                x = _espeak(text, line.end - line.start, Path(tmpdir)) if use_espeak else None
                _write_wav(wav, x if x is not None else _generated(text, rng), line.end - line.start)
                if line.start > VIDEO_SECONDS:
                    tree.expected_skips[utt] = "video span outside the file"
                elif line.text is None:
                    tree.expected_skips[utt] = "empty transcript"
            if k == 1:
                trans.append(f"{dialog}_MXX0 [023.5000-023.9000]: Unknown speaker turn.")
            if k == 2 and malformed:
                emo.append("[30.0 - ]\tSes02F_impro01_F009\tneu\t[2.5, 2.5, 2.5]")
                tree.malformed = (sdir / "dialog" / "EmoEvaluation" / f"{dialog}.txt", len(emo))
            (sdir / "dialog" / "EmoEvaluation").mkdir(parents=True, exist_ok=True)
            (sdir / "dialog" / "EmoEvaluation" / f"{dialog}.txt").write_text("\n".join(emo) + "\n")
            (sdir / "dialog" / "transcriptions").mkdir(parents=True, exist_ok=True)
            (sdir / "dialog" / "transcriptions" / f"{dialog}.txt").write_text("\n".join(trans) + "\n")
            _write_video(sdir / "dialog" / "avi" / "DivX" / f"{dialog}.avi", seed=k)
    vocab = sorted(w for w in words if w and w != "wonderful")  # one word stays out of GloVe
    vocab += ["the", "unrelated", ","]
    vec = np.random.default_rng(1).standard_normal((len(vocab), glove_dim)).round(4)
    with open(tree.glove, "w") as f:
        for w, v in zip(vocab, vec):
            f.write(w + " " + " ".join(f"{x:g}" for x in v) + "\n")
    return tree


def channel_mean_encoder() -> object:
    """A tiny image encoder for tests: ``[n, 3, H, W] -> [n, 3]`` mean of each colour channel.

    Why this one: it has no weights to download and it shows which half of the frame was
    kept (the tree's left half is red-ish, the right half blue-ish).
    """
    return ChannelMean()


try:  # torch is a core dependency, but keep the tree builder importable without it
    import torch

    class ChannelMean(torch.nn.Module):
        """``[n, 3, H, W] -> [n, 3]``: per-channel spatial mean (picklable for worker processes)."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.mean(dim=(2, 3))

except ImportError:  # pragma: no cover
    pass
