"""Builders of feature files in the published MMSA, MulT and MFN layouts (for the tests).

Layouts as the toolkits' loaders read them: MMSA ``{train,valid,test}`` dicts with
``text``/``audio``/``vision`` float32 [N, T, F] (audio and vision padded at the back,
lengths in ``audio_lengths``/``vision_lengths``), ``id`` and ``raw_text`` object arrays,
``regression_labels`` float32 [N]; MulT the same splits with ``labels`` float32 [N, 1, 1]
(IEMOCAP: [N, 4, 2] one-hot pairs) and ``id`` [N, 3] bytes, audio with ``-inf`` values;
MFN one ``d1`` dataset per ``.h5`` file, float64, zero padding at the front.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

SIZES = {"train": 12, "valid": 6, "test": 8}


def _sequences(rng: np.random.Generator, n: int, steps: int, dim: int, lengths: np.ndarray,
               front: bool) -> np.ndarray:
    x = rng.normal(size=(n, steps, dim)).astype(np.float32)
    for i, ln in enumerate(lengths):
        if front:
            x[i, : steps - ln] = 0
        else:
            x[i, ln:] = 0
    return x


def mmsa_split(rng: np.random.Generator, n: int, sims: bool = False) -> dict:
    a_len = rng.integers(3, 9, size=n)
    v_len = rng.integers(2, 7, size=n)
    part = {
        "raw_text": np.array([f"words of utterance {i}" for i in range(n)], dtype=object),
        "id": np.array([f"vid{i // 3}$_${i % 3}" for i in range(n)], dtype=object),
        "text": rng.normal(size=(n, 10, 16)).astype(np.float32),  # BERT-like: never zero
        "audio": _sequences(rng, n, 8, 5, a_len, front=False),
        "vision": _sequences(rng, n, 6, 7, v_len, front=False),
        "audio_lengths": [int(v) for v in a_len],
        "vision_lengths": [int(v) for v in v_len],
        "regression_labels": np.round(rng.uniform(-3, 3, size=n) * 5) / 5,
        "classification_labels": np.zeros(n, dtype=np.float32),
    }
    part["regression_labels"] = part["regression_labels"].astype(np.float32)
    part["regression_labels"][0] = 0.0
    if sims:
        for m in "TAV":
            part[f"regression_labels_{m}"] = part["regression_labels"].copy()
    return part


def write_mmsa(path: Path, seed: int = 0, sims: bool = False) -> dict:
    rng = np.random.default_rng(seed)
    data = {s: mmsa_split(rng, n, sims) for s, n in SIZES.items()}
    path.write_bytes(pickle.dumps(data, protocol=4))
    return data


def mult_split(rng: np.random.Generator, n: int, iemocap: bool) -> dict:
    lengths = rng.integers(2, 9, size=n)
    audio = _sequences(rng, n, 9, 4, lengths, front=True)
    audio[0, -1, 0] = -np.inf  # MulT's audio has -inf values; its loader sets them to 0
    if iemocap:
        labels = np.zeros((n, 4, 2), dtype=np.float32)
        labels[:, :, 0] = 1
        cls = np.arange(n) % 4
        labels[np.arange(n), cls, 0] = 0
        labels[np.arange(n), cls, 1] = 1
    else:
        labels = (np.round(rng.uniform(-3, 3, size=(n, 1, 1)) * 3) / 3).astype(np.float32)
    return {
        "vision": _sequences(rng, n, 9, 6, lengths, front=True),
        "audio": audio,
        "text": _sequences(rng, n, 9, 11, lengths, front=True),
        "labels": labels,
        "id": np.array([[f"v{i}".encode(), b"0.0", b"1.5"] for i in range(n)]),
    }


def write_mult(path: Path, seed: int = 0, iemocap: bool = False) -> dict:
    rng = np.random.default_rng(seed)
    data = {s: mult_split(rng, n, iemocap) for s, n in SIZES.items()}
    path.write_bytes(pickle.dumps(data, protocol=2))
    return data


def write_mfn(folder: Path, seed: int = 0, text_splits: tuple[str, ...] = ("train", "valid", "test")) -> dict:
    import h5py

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for s, n in SIZES.items():
        lengths = rng.integers(2, 7, size=n)
        arrays = {"audio": _sequences(rng, n, 7, 5, lengths, front=True).astype(np.float64),
                  "video": _sequences(rng, n, 7, 3, lengths, front=True).astype(np.float64)}
        if s in text_splits:
            arrays["text"] = _sequences(rng, n, 7, 4, lengths, front=True).astype(np.float64)
        y = rng.integers(2, 11, size=n) / 2.0  # ratings 1..5 in half steps
        for m, x in arrays.items():
            name = f"{m}_{s}_emb.h5" if m == "text" else f"{m}_{s}.h5"
            with h5py.File(folder / name, "w") as f:
                f.create_dataset("d1", data=x)
        with h5py.File(folder / f"y_{s}.h5", "w") as f:
            f.create_dataset("d1", data=y)
        out[s] = {**arrays, "y": y, "lengths": lengths}
    return out


class WritesAFile:
    """Unpickling this object would create ``path`` (what a malicious feature file could do)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return (open, (self.path, "w"))
