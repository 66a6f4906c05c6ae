"""Text features: tokenizer, corpus vocabulary and fixed-length word-id sequences.

Layout (the authors'): each utterance becomes ``int64 [128]`` word ids, 0 = padding, plus one
word-vector matrix ``W_embedding.npy [V, D]`` (row ``i`` = vector of word ``i``; see
:mod:`selfcross.features.wordvectors`). The vocabulary is saved as ``vocab.txt``, line ``i``
= the word of id ``i``, so a run folder can encode new transcripts identically.

Tokenizer (documented choices, all switches of :class:`TextConfig`):

* lower case (GloVe 6B is lower case);
* IEMOCAP annotation markers in square brackets (``[LAUGHTER]``, ``[BREATHING]``,
  ``[GARBAGE]``, ``[LIPSMACK]``...): ``markers="keep"`` (default) turns each into one token
  ``<laughter>``, ``<breathing>``... - they carry emotion cues (laughter) and, being absent
  from GloVe, get their own reproducible vector; ``"word"`` keeps the bare word
  (``laughter``, which GloVe knows); ``"drop"`` removes them;
* punctuation is dropped (``keep_punctuation=True`` keeps ``? ! . ,`` as tokens);
* English contractions are split the way GloVe's (Stanford) tokenizer split its corpus:
  ``don't -> do n't``, ``i'm -> i 'm``, ``it's -> it 's`` (GloVe 6B has vectors for ``n't``,
  ``'s``, ``'m``...); ``split_contractions=False`` keeps ``don't`` whole;
* hyphens and other symbols separate words (``well-known -> well known``).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from selfcross.config import ConfigMixin
from selfcross.errors import ConfigError, DataError

PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1
VOCAB_TXT = "vocab.txt"
MARKER_MODES: tuple[str, ...] = ("keep", "word", "drop")

_MARKER = re.compile(r"\[\s*([A-Za-z][A-Za-z _-]*?)\s*\]")
# a word (letters/digits, inner apostrophes allowed) or one punctuation mark we may keep
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*|<[a-z_]+>|[?!.,]", re.IGNORECASE)
_CONTRACTION = re.compile(r"^(.+?)(n't|'s|'m|'re|'ll|'ve|'d)$", re.IGNORECASE)


@dataclass
class TextConfig(ConfigMixin):
    """Settings of the tokenizer, the vocabulary and the word vectors.

    Attributes:
        max_tokens: ids kept per utterance (first 128; shorter ones are zero padded).
        lowercase: lower-case before tokenizing (GloVe 6B is lower case).
        markers: IEMOCAP ``[MARKER]`` handling: ``keep`` (token ``<marker>``), ``word``
            (bare word) or ``drop``.
        keep_punctuation: keep ``? ! . ,`` as tokens (dropped by default).
        split_contractions: ``don't -> do n't`` as GloVe's tokenizer did.
        min_count: corpus occurrences for a word to enter the vocabulary.
        word_vectors: where the vectors came from (GloVe file name or ``kumo-6b-50d``);
            informational, recorded by the preparation.
        embedding_dim: width of ``W_embedding`` (recorded by the preparation).
        unknown: vector of vocabulary words missing from GloVe: ``random`` (a small vector
            seeded by the word itself, so the same word always gets the same vector) or
            ``zero``. Id 1 (``<unk>``, words never seen in the corpus) is always zero.
    """

    max_tokens: int = 128
    lowercase: bool = True
    markers: str = "keep"
    keep_punctuation: bool = False
    split_contractions: bool = True
    min_count: int = 1
    word_vectors: str | None = None
    embedding_dim: int | None = None
    unknown: str = "random"

    def __post_init__(self) -> None:
        if self.markers not in MARKER_MODES:
            raise ConfigError(f"TextConfig.markers {self.markers!r} is not one of {', '.join(MARKER_MODES)}")
        if self.unknown not in ("random", "zero"):
            raise ConfigError(f"TextConfig.unknown {self.unknown!r} must be 'random' or 'zero'")
        if self.max_tokens < 1 or self.min_count < 1:
            raise ConfigError("TextConfig: max_tokens and min_count must be positive")


def tokenize(text: str, config: TextConfig | None = None) -> list[str]:
    """Split a transcript into tokens (rules in the module docstring).

    >>> tokenize("Oh, I don't know. [LAUGHTER]")
    ['oh', 'i', 'do', "n't", 'know', '<laughter>']
    """
    c = config or TextConfig()

    def marker(m: re.Match[str]) -> str:
        name = re.sub(r"[\s-]+", "_", m.group(1).strip().lower())
        if c.markers == "drop":
            return " "
        if c.markers == "word":
            return " " + name.replace("_", " ") + " "
        return f" <{name}> "

    text = _MARKER.sub(marker, text)
    if c.lowercase:
        text = text.lower()
    # curly apostrophes and backticks -> straight apostrophes
    text = text.replace("\u2019", "'").replace("`", "'")
    tokens: list[str] = []
    for tok in _WORD.findall(text):
        if tok in "?!.,":
            if c.keep_punctuation:
                tokens.append(tok)
            continue
        if c.split_contractions and "'" in tok:
            m = _CONTRACTION.match(tok)
            if m:
                tokens.extend([m.group(1), m.group(2)])
                continue
        tokens.append(tok)
    return tokens


class Vocabulary:
    """Word <-> id map; id 0 = ``<pad>``, id 1 = ``<unk>``, then corpus words.

    Build it on the corpus (:meth:`build`), save it next to ``W_embedding.npy``
    (:meth:`save` writes ``vocab.txt``, line ``i`` = word ``i``), reload it with :meth:`load`.
    """

    def __init__(self, words: Iterable[str] = ()) -> None:
        self.words: list[str] = [PAD, UNK]
        self.index: dict[str, int] = {PAD: PAD_ID, UNK: UNK_ID}
        for w in words:
            self.add(w)

    def add(self, word: str) -> int:
        """Add ``word`` (no-op if present) and return its id."""
        if word not in self.index:
            if not word or any(ch.isspace() for ch in word):
                raise ConfigError(f"vocabulary words cannot be empty or hold whitespace: {word!r}")
            self.index[word] = len(self.words)
            self.words.append(word)
        return self.index[word]

    @classmethod
    def build(cls, token_lists: Iterable[Iterable[str]], min_count: int = 1) -> Vocabulary:
        """Vocabulary of every token seen at least ``min_count`` times.

        Order (deterministic): most frequent first, ties alphabetical.
        """
        counts: Counter[str] = Counter()
        for toks in token_lists:
            counts.update(toks)
        kept = sorted(
            (w for w, n in counts.items() if n >= min_count and w not in (PAD, UNK)),
            key=lambda w: (-counts[w], w),
        )
        return cls(kept)

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self.index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.words == other.words

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} words)"

    def id(self, word: str) -> int:
        """Id of ``word``; unknown words map to 1."""
        return self.index.get(word, UNK_ID)

    def ids(self, tokens: Iterable[str]) -> list[int]:
        """Ids of a token list (unknown -> 1)."""
        return [self.index.get(t, UNK_ID) for t in tokens]

    def save(self, path: str | Path) -> Path:
        """Write ``vocab.txt`` (``path`` is the file, or a folder to write it into)."""
        path = Path(path)
        if path.is_dir():
            path = path / VOCAB_TXT
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("\n".join(self.words) + "\n", encoding="utf-8")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        """Read a ``vocab.txt`` written by :meth:`save` (a file or a folder holding one).

        Raises:
            DataError: missing file, wrong first two lines, empty or duplicate words
                (with the line number).
        """
        path = Path(path)
        if path.is_dir():
            path = path / VOCAB_TXT
        try:
            lines = path.read_text(encoding="utf-8").split("\n")
        except FileNotFoundError:
            raise DataError(path, "no such vocabulary file") from None
        except UnicodeDecodeError as e:
            raise DataError(path, f"not UTF-8 text ({e})") from None
        if lines and lines[-1] == "":
            lines.pop()
        if lines[:2] != [PAD, UNK]:
            raise DataError(path, f"line 1 and 2 must be {PAD!r} and {UNK!r} (ids 0 and 1)")
        vocab = cls()
        for i, w in enumerate(lines[2:], start=3):
            if not w or any(ch.isspace() for ch in w):
                raise DataError(path, f"line {i}: empty word or word with whitespace {w!r}")
            if w in vocab:
                raise DataError(path, f"line {i}: word {w!r} repeated (first on line {vocab.index[w] + 1})")
            vocab.add(w)
        return vocab


def encode(
    text: str, vocab: Vocabulary, max_tokens: int = 128, config: TextConfig | None = None
) -> np.ndarray:
    """Transcript -> ``int64 [max_tokens]`` word ids (first ``max_tokens`` tokens, 0 padded).

    Unknown words get id 1. The number of valid ids is ``np.count_nonzero(ids)``.
    """
    ids = vocab.ids(tokenize(text, config))[:max_tokens]
    out = np.zeros(max_tokens, dtype=np.int64)
    out[: len(ids)] = ids
    return out
