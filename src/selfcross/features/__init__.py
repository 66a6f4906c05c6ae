"""Feature extractors from raw media, shared by data preparation and prediction.

Each extractor has a config dataclass saved in ``features.json`` (data roots and
``RUN_DIR/features/``), so new clips get exactly the training features:

* :class:`AudioFeatures` / :class:`AudioConfig`: 40 MFCC + deltas + delta-deltas,
  ``[1000, 120]`` at 100 frames/s (librosa, soundfile; PyAV for audio in video files);
* :func:`tokenize`, :class:`Vocabulary`, :func:`encode`, :func:`load_word_vectors` /
  :class:`TextConfig`: word ids ``[128]`` + ``W_embedding [V, D]`` (GloVe text file or the
  ``kumo-6b-50d`` package);
* :class:`VideoFeatures` / :class:`VideoConfig`: 3 frames/s, one actor's half, 224 centre
  crop, ResNet-101 (or an injected encoder) ``[32, 2048]`` (PyAV, torch).

Heavy libraries (librosa, av, torch, torchvision) are imported only when used.
"""

from __future__ import annotations

from selfcross.features.audio import AudioConfig, AudioFeatures, load_audio
from selfcross.features.configio import FEATURES_JSON, load_feature_configs, save_feature_configs
from selfcross.features.text import PAD_ID, UNK_ID, VOCAB_TXT, TextConfig, Vocabulary, encode, tokenize
from selfcross.features.video import VideoConfig, VideoFeatures, resnet101_encoder
from selfcross.features.wordvectors import KUMO_SOURCE, load_word_vectors, lookup_word_vectors

__all__ = [
    "FEATURES_JSON",
    "KUMO_SOURCE",
    "PAD_ID",
    "UNK_ID",
    "VOCAB_TXT",
    "AudioConfig",
    "AudioFeatures",
    "TextConfig",
    "VideoConfig",
    "VideoFeatures",
    "Vocabulary",
    "encode",
    "load_audio",
    "load_feature_configs",
    "load_word_vectors",
    "lookup_word_vectors",
    "resnet101_encoder",
    "save_feature_configs",
    "tokenize",
]
