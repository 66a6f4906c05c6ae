"""``selfcross prepare-iemocap``: the raw IEMOCAP release -> a data root of folds."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``prepare-iemocap`` to the ``selfcross`` command line."""
    from selfcross.data.iemocap import SIDE_CHOICES, VIDEO_ENCODERS

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
    p.add_argument("--glove", required=True, metavar="FILE",
                   help="GloVe text file (e.g. glove.840B.300d.txt) or 'kumo-6b-50d'")
    p.add_argument("--video-encoder", default="resnet101", choices=VIDEO_ENCODERS,
                   help="resnet101 (torchvision, ImageNet weights; needs selfcross[video]) or none "
                        "(no video modality); default resnet101")
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
    p.add_argument("--strict", action="store_true",
                   help="stop at the first malformed annotation line instead of reporting it")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_prepare_iemocap)


def _prepare_iemocap(args: argparse.Namespace) -> int:
    from selfcross.data.iemocap import prepare_iemocap
    from selfcross.errors import ConfigError

    if args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {args.workers}")
    video_config = None
    if args.video_encoder == "resnet101":
        from selfcross.features.video import VideoConfig

        video_config = VideoConfig(encoder="resnet101", weights=args.video_weights)
    result = prepare_iemocap(
        args.root,
        args.out_root,
        args.glove,
        labels=args.labels,
        video_encoder=args.video_encoder,
        video_config=video_config,
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
