"""Cost of the pretrained (hf:) feature front-ends: compute seconds per hour of media.

Usage::

    python benchmarks/pretrained_throughput.py [--sizes tiny,base] [--clips 3] [--seconds 10]
                                               [--device cpu|cuda] [--threads 1]

Builds randomly initialised encoders with ``from_config`` (nothing is downloaded; the cost of a
forward pass does not depend on the weights' values):

* ``tiny``: the test suite's models (2 layers, hidden 32; :mod:`tests.hf_tiny` settings);
* ``base``: the default configs of transformers, i.e. the architectures of wav2vec2-base /
  HuBERT-base (95 M parameters), bert-base (110 M) and ViT-B/16 at 224 px (86 M).

and times :class:`~selfcross.features.pretrained.HFAudioFeatures` on ``clips`` waveforms of
``seconds`` s, :class:`HFTextFeatures` on 64 IEMOCAP-length transcripts (~12 words) and
:class:`HFVideoFeatures`'s encoder on 32 frames. Prints one table: compute seconds per hour of
audio (speech), per 1000 utterances (text) and per hour of video sampled at 3 frames/s
(10 800 frames). The first call of each encoder is a warm-up and is not timed.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch
import transformers as tf

from selfcross.features import pretrained as hf

SR = 16_000
SENTENCE = "oh i really do not know what you want from me that is wonderful news"


def _speech_model(size: str) -> tuple[object, object]:
    if size == "tiny":
        cfg = tf.Wav2Vec2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                intermediate_size=37, conv_dim=(16, 16, 16), conv_stride=(5, 8, 8),
                                conv_kernel=(10, 8, 8), num_conv_pos_embeddings=16,
                                num_conv_pos_embedding_groups=2)
    else:
        cfg = tf.Wav2Vec2Config()  # wav2vec2-base / HuBERT-base architecture
    fe = tf.Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=SR, do_normalize=True,
                                     return_attention_mask=False)
    return tf.Wav2Vec2Model(cfg), fe


def _text_model(size: str) -> tuple[object, object]:
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(set(SENTENCE.split()))]
    tok = tf.BertTokenizer(vocab={w: i for i, w in enumerate(words)}, model_max_length=512)
    if size == "tiny":
        cfg = tf.BertConfig(vocab_size=len(words), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                            intermediate_size=37)
    else:
        cfg = tf.BertConfig()  # bert-base architecture
    return tf.BertModel(cfg), tok


def _vision_model(size: str) -> tuple[object, object]:
    if size == "tiny":
        cfg = tf.ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
                           image_size=32, patch_size=8)
        proc = tf.ViTImageProcessor(size={"height": 32, "width": 32})
    else:
        cfg = tf.ViTConfig()  # ViT-B/16, 224 px
        proc = tf.ViTImageProcessor()
    return tf.ViTModel(cfg), proc


def _ready(extractor: object, model: object, processor: object, device: str) -> object:
    extractor._model = model.to(device).eval()  # type: ignore[attr-defined]
    extractor._processor = processor  # type: ignore[attr-defined]
    return extractor


def _timed(fn: object) -> float:
    fn()  # warm-up
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure(size: str, clips: int, seconds: float, device: str) -> dict[str, float]:
    """Compute seconds per hour of audio, per 1000 transcripts and per hour of video."""
    rng = np.random.default_rng(0)
    waves = [((0.1 * rng.standard_normal(int(SR * seconds))).astype(np.float32), SR) for _ in range(clips)]
    a_cfg = hf.HFAudioConfig(encoder=f"hf:random-{size}", layer=-1, max_frames=int(50 * seconds) + 1)
    audio = _ready(hf.HFAudioFeatures(a_cfg, device), *_speech_model(size), device)
    t_audio = _timed(lambda: [audio.extract(w) for w in waves])
    t_cfg = hf.HFTextConfig(encoder=f"hf:random-{size}", layer=-1, batch_size=32)
    text = _ready(hf.HFTextFeatures(t_cfg, device), *_text_model(size), device)
    t_text = _timed(lambda: text.extract_many([SENTENCE] * 64))
    v_cfg = hf.HFVideoConfig(encoder=f"hf:random-{size}", batch_size=32)
    video = _ready(hf.HFVideoFeatures(v_cfg, device), *_vision_model(size), device)
    frames = [rng.integers(0, 255, (240, 320, 3), dtype=np.uint8) for _ in range(32)]
    t_video = _timed(lambda: video.encode(frames, side="full"))
    return {
        "speech s / h audio": t_audio / (clips * seconds) * 3600,
        "text s / 1000 utt": t_text / 64 * 1000,
        "vision s / h video": t_video / 32 * 3 * 3600,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="tiny,base")
    ap.add_argument("--clips", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tf.logging.set_verbosity_error()
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, transformers "
          f"{tf.__version__}, device {args.device}, {args.threads} thread(s), float32")
    print("| size | speech s / h of audio | text s / 1000 utterances | vision s / h of video (3 fps) |")
    print("|---|---|---|---|")
    for size in args.sizes.split(","):
        r = measure(size, args.clips, args.seconds, args.device)
        print(f"| {size} | {r['speech s / h audio']:.0f} | {r['text s / 1000 utt']:.1f} | "
              f"{r['vision s / h video']:.0f} |")


if __name__ == "__main__":
    main()
