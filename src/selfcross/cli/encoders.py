"""Pretrained-encoder options shared by every preparation command (prepare-iemocap,
prepare-manifest, prepare CORPUS): ``--audio-encoder``, ``--audio-layer``,
``--text-encoder``, ``--text-units``, ``--encoder-precision`` and ``hf:`` names for
``--video-encoder``. The checkpoints' configs are read here, so a wrong or missing model is
reported before any extraction starts.
"""

from __future__ import annotations

import argparse
from typing import Any

from selfcross.errors import ConfigError


def video_encoder_arg(value: str) -> str:
    """argparse type of ``--video-encoder``: ``resnet101``, ``none`` or ``hf:NAME_OR_PATH``."""
    from selfcross.prepare.options import VIDEO_ENCODERS  # start-up cost: only a prepare command parses it

    if value in VIDEO_ENCODERS or (value.startswith("hf:") and len(value) > 3):
        return value
    raise argparse.ArgumentTypeError(f"{value!r} is not {', '.join(VIDEO_ENCODERS)} or hf:NAME_OR_PATH")


VIDEO_ENCODER_HELP = (
    "resnet101 (torchvision, ImageNet weights; needs selfcross[video]), none (no video modality) or "
    "hf:NAME_OR_PATH (per-frame embeddings of a transformers vision encoder: CLIP, ViT, DINOv2; needs "
    "selfcross[hf]); default resnet101"
)


def add_encoder_options(p: argparse.ArgumentParser) -> None:
    """Add the pretrained-encoder options to a preparation command."""
    g = p.add_argument_group("pretrained encoders (Hugging Face transformers; pip install 'selfcross[hf]')")
    g.add_argument("--audio-encoder", default=None, metavar="hf:NAME_OR_PATH",
                   help="speech encoder frames instead of MFCCs: wav2vec2, HuBERT, WavLM, data2vec-audio or "
                        "Whisper (its encoder; also a CTranslate2/faster-whisper folder, needs "
                        "selfcross[ctranslate2]) (16 kHz mono input, 50 frames/s; --max-audio-frames default "
                        "500 = 10 s)")
    g.add_argument("--audio-layer", default=None, metavar="K|last|weighted",
                   help="hidden state of --audio-encoder kept: K (0 = the convolutional front-end), last "
                        "(default), or weighted: every layer stacked, the model learns a softmax-weighted "
                        "sum (as SUPERB does)")
    g.add_argument("--whisper-window", default="30s", choices=("30s", "clip"),
                   help="Whisper --audio-encoder input: 30s (every clip padded to Whisper's 30 s window, its "
                        "design; default) or clip (the clip's own frames: much cheaper for short clips, "
                        "CTranslate2 folders only)")
    g.add_argument("--text-encoder", default=None, metavar="hf:NAME_OR_PATH",
                   help="language-model token states instead of GloVe word ids: BERT, RoBERTa, DeBERTa "
                        "(last layer; 128 rows kept); --glove is then not needed")
    g.add_argument("--text-units", default="word", choices=("word", "token"),
                   help="--text-encoder rows: word (sub-word states averaged back to words; default) or "
                        "token (every token, [CLS] included)")
    g.add_argument("--encoder-precision", default="auto",
                   choices=("auto", "float32", "float16", "bfloat16", "int8"),
                   help="numeric precision of the hf: encoders (auto: bfloat16, else float16, on a GPU; "
                        "float32 on the CPU; a CTranslate2 folder: int8 on the CPU, float16 on a GPU; int8 "
                        "only for CTranslate2); recorded so prediction uses the same")


def encoder_configs(args: argparse.Namespace) -> dict[str, Any]:
    """``audio_config`` / ``text_config`` / ``video_config`` for the hf: encoders named by ``args``."""
    out: dict[str, Any] = {}
    precision = getattr(args, "encoder_precision", "auto")
    if getattr(args, "whisper_window", "30s") != "30s" and args.audio_encoder is None:
        raise ConfigError("--whisper-window applies to --audio-encoder hf:NAME (a Whisper encoder) only")
    if args.audio_layer is not None and args.audio_encoder is None:
        raise ConfigError("--audio-layer applies to --audio-encoder hf:NAME only")
    if args.audio_encoder is not None and getattr(args, "audio_features", "mfcc") != "mfcc":
        raise ConfigError(f"--audio-features {args.audio_features} and --audio-encoder both choose the "
                          "audio front-end: give one of them")
    if args.audio_encoder is not None and getattr(args, "speaker_norm", False):
        raise ConfigError("--speaker-norm applies to the built-in audio features (mfcc, egemaps, compare, "
                          "logmel), not to an --audio-encoder")
    if args.audio_encoder is not None or args.text_encoder is not None or _hf_video(args):
        from selfcross.features import extractors  # start-up cost: loaded when the command runs
        from selfcross.features import pretrained as hf  # start-up cost: loaded when the command runs

        if args.audio_encoder is not None:
            _check_spec("--audio-encoder", args.audio_encoder)
            out["audio_config"] = extractors.audio_encoder_config(
                args.audio_encoder, args.audio_layer, getattr(args, "max_audio_frames", None), precision,
                window=getattr(args, "whisper_window", "30s"))
        if args.text_encoder is not None:
            _check_spec("--text-encoder", args.text_encoder)
            out["text_config"] = hf.text_encoder_config(
                args.text_encoder, units=args.text_units, dtype=precision)
        if _hf_video(args):
            out["video_config"] = hf.video_encoder_config(args.video_encoder, dtype=precision)
    return out


def _hf_video(args: argparse.Namespace) -> bool:
    return str(getattr(args, "video_encoder", "")).startswith("hf:")


def _check_spec(flag: str, value: str) -> None:
    if not value.startswith("hf:") or len(value) <= 3:
        raise ConfigError(f"{flag} {value!r}: write hf:NAME_OR_PATH (a hub name or a save_pretrained folder)")
