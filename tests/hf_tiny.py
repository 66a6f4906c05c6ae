"""Tiny randomly initialised transformers checkpoints for tests (nothing is downloaded).

Each builder makes a model of one family with ``from_config`` (2 layers, hidden size 32),
saves it with its preprocessor (feature extractor, tokenizer built from a small vocab file,
or image processor) to a folder, and returns the folder: tests load it by path with the
hub offline.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import transformers as tf  # noqa: E402

HIDDEN, LAYERS, HEADS, FFN = 32, 2, 2, 37
#: Words of the tiny tokenizer's vocabulary (sub-words "##..." let words split into pieces).
WORDS = ["hello", "there", "i", "am", "very", "happy", "sad", "angry", "today", "is", "a", "good", "day",
         "the", "cat", "sat", "on", "mat", "we", "go", "home", "##s", "##ing", "##ed", "no", "yes", "."]

_SPEECH = {
    "wav2vec2": tf.Wav2Vec2Config,
    "hubert": tf.HubertConfig,
    "wavlm": tf.WavLMConfig,
    "data2vec-audio": tf.Data2VecAudioConfig,
}
_TEXT = {"bert": tf.BertConfig, "roberta": tf.RobertaConfig, "deberta-v2": tf.DebertaV2Config}


def _small(**extra: object) -> dict:
    return dict(hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                intermediate_size=FFN, **extra)


def tiny_speech(folder: Path, family: str = "wav2vec2", masks: bool = True) -> Path:
    """A speech encoder with the real 320-sample (20 ms) frame shift; ``masks``: layer-norm
    front-end whose feature extractor returns attention masks (so clips can be batched)."""
    cfg = _SPEECH[family](
        **_small(), conv_dim=(16, 16, 16), conv_stride=(5, 8, 8), conv_kernel=(10, 8, 8),
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
        feat_extract_norm="layer" if masks else "group", do_stable_layer_norm=masks,
    )
    tf.set_seed(0)
    tf.AutoModel.from_config(cfg).save_pretrained(folder)
    tf.Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True,
                                return_attention_mask=masks).save_pretrained(folder)
    return folder


def tiny_text(folder: Path, family: str = "bert") -> Path:
    """A text encoder with a fast WordPiece tokenizer over :data:`WORDS` (vocab.txt written too)."""
    folder.mkdir(parents=True, exist_ok=True)
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    (folder / "vocab.txt").write_text("\n".join(words) + "\n")
    # transformers 5: BertTokenizer is the fast (tokenizers) WordPiece and takes the vocabulary itself
    tok = tf.BertTokenizer(vocab={w: i for i, w in enumerate(words)}, model_max_length=48)
    extra = {"vocab_size": len(WORDS) + 5, "max_position_embeddings": 66, "pad_token_id": 0}
    if family == "roberta":
        extra.update(bos_token_id=2, eos_token_id=3)
    tf.set_seed(0)
    tf.AutoModel.from_config(_TEXT[family](**_small(**extra))).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def tiny_vision(folder: Path, family: str = "vit") -> Path:
    """An image encoder (ViT, DINOv2 or a full CLIP model) on 32 x 32 inputs, patches of 8."""
    tf.set_seed(0)
    vision = _small(image_size=32, patch_size=8)
    if family == "clip":
        text = _small(vocab_size=40, max_position_embeddings=16)
        cfg = tf.CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)
        tf.CLIPModel(cfg).save_pretrained(folder)
        processor = tf.CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
        processor.save_pretrained(folder)
        return folder
    cfg = {"vit": tf.ViTConfig, "dinov2": tf.Dinov2Config}[family](**vision)
    tf.AutoModel.from_config(cfg).save_pretrained(folder)
    tf.ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def tiny_whisper(folder: Path, mel_bins: int = 80) -> Path:
    """A Whisper model (encoder and decoder, 2 layers each, width 32) with Whisper's own log-mel
    feature extractor: the real 30 s window of 1500 encoder states."""
    cfg = tf.WhisperConfig(
        d_model=HIDDEN, encoder_layers=LAYERS, decoder_layers=LAYERS, encoder_attention_heads=HEADS,
        decoder_attention_heads=HEADS, encoder_ffn_dim=FFN, decoder_ffn_dim=FFN, num_mel_bins=mel_bins,
        max_source_positions=1500, max_target_positions=32, vocab_size=64, pad_token_id=0, bos_token_id=1,
        eos_token_id=2, decoder_start_token_id=3, suppress_tokens=[], begin_suppress_tokens=[],
    )
    tf.set_seed(0)
    tf.WhisperModel(cfg).save_pretrained(folder)
    tf.WhisperFeatureExtractor(feature_size=mel_bins).save_pretrained(folder)
    return folder


def tiny_whisper_ct2(hf_folder: Path, folder: Path) -> Path:
    """:func:`tiny_whisper`'s model converted by CTranslate2's own transformers converter
    (float32 weights, so the two back-ends can be compared closely)."""
    from ctranslate2.converters import TransformersConverter

    TransformersConverter(str(hf_folder)).convert(str(folder), quantization="float32")
    return folder


def tiny_sentence_encoder(folder: Path, family: str = "bert") -> Path:
    """:func:`tiny_text` laid out as a sentence-transformers folder (modules.json, mean pooling),
    like all-MiniLM-L6-v2 / all-mpnet-base-v2."""
    import json

    tiny_text(folder, family)
    (folder / "1_Pooling").mkdir(exist_ok=True)
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": HIDDEN, "pooling_mode_cls_token": False,
         "pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": False}))
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 48,
                                                                  "do_lower_case": False}))
    return folder
