"""``selfcross predict``: classify new clips with a trained run folder."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from selfcross.cli.options import add_transcript, read_transcript
from selfcross.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``predict`` sub-command."""
    p = sub.add_parser(
        "predict",
        help="predict the emotion of new clips with a trained run",
        description=(
            "Run a trained model on one clip (--audio/--video/--transcript) or on every row of a "
            "manifest CSV (columns id, audio, video, transcript; optional side, start, end), using "
            "the feature settings saved in the run folder. For IEMOCAP-style data (one wav per utterance, "
            "one video per dialog) give the utterance's span with --video-start/--video-end."
        ),
    )
    p.add_argument("--run", required=True, type=Path, metavar="RUN_DIR", help="trained run folder")
    p.add_argument("--audio", type=Path, metavar="FILE", help="audio file (wav, flac) or video with sound")
    p.add_argument("--video", type=Path, metavar="FILE", help="video file")
    add_transcript(p)
    p.add_argument(
        "--side",
        choices=("left", "right", "full"),
        help="part of the video frame showing the speaker (default: the run's setting)",
    )
    p.add_argument("--start", type=float, metavar="S", help="span start in seconds (audio and video)")
    p.add_argument("--end", type=float, metavar="S", help="span end in seconds (audio and video)")
    p.add_argument("--video-start", type=float, metavar="S", help="span start in the video if it differs")
    p.add_argument("--video-end", type=float, metavar="S", help="span end in the video if it differs")
    p.add_argument("--manifest", type=Path, metavar="CSV", help="predict every row of this CSV")
    p.add_argument("--out", type=Path, metavar="CSV", help="output CSV for --manifest")
    p.add_argument("--strict", action="store_true", help="with --manifest: stop at the first bad row")
    p.add_argument("--speaker-clips", metavar="DIR|CSV",
                   help="for a run prepared with --speaker-norm: clips of the new speaker (a folder, or "
                        "a CSV with an audio column) whose frames give the speaker's statistics; "
                        "without it the training speakers' pooled statistics are used (said in one line)")
    p.add_argument("--device", default="cpu", help="torch device (cpu, cuda, cuda:1...)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Entry point of ``selfcross predict``."""
    from selfcross.serve.predict import Predictor

    single = any(v is not None for v in (args.audio, args.video, args.transcript, args.transcript_file))
    if args.manifest is not None:
        if single:
            raise ConfigError("give either --manifest or --audio/--video/--transcript, not both")
        if args.out is None:
            raise ConfigError("--manifest needs --out OUT.csv")
    elif not single:
        raise ConfigError("nothing to predict: give --audio, --video and/or --transcript, or --manifest")
    transcript = read_transcript(args)

    predictor = Predictor(args.run, device=args.device, speaker_clips=args.speaker_clips)
    if predictor.speaker_note is not None:
        print(predictor.speaker_note, file=sys.stderr)
    if args.manifest is not None:
        results = predictor.predict_manifest(args.manifest, args.out, strict=args.strict)
        failed = [r for r in results if r["error"]]
        if args.json:
            print(json.dumps(results, indent=2))
        else:
            print(f"{len(results) - len(failed)}/{len(results)} clips predicted -> {args.out}")
        for r in failed:
            print(f"selfcross predict: {r['id']}: {r['error']}", file=sys.stderr)
        if failed:
            print(f"selfcross predict: {len(failed)} row(s) failed: their rows in {args.out} have an empty "
                  "prediction and the error (--strict stops at the first bad row)", file=sys.stderr)
        return 1 if failed else 0

    out = predictor.predict(
        audio=args.audio,
        video=args.video,
        transcript=transcript,
        video_side=args.side,
        start=args.start,
        end=args.end,
        video_start=args.video_start,
        video_end=args.video_end,
    )
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print("\n".join(predictor.task.describe_prediction(out)))
    if out["ignored"]:
        print(f"(not used by this model: {', '.join(out['ignored'])})")
    return 0
