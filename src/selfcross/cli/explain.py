"""``selfcross explain``: attention maps and predictions of a trained run, per utterance."""

from __future__ import annotations

import argparse
from pathlib import Path

from selfcross.cli.options import add_transcript, read_transcript


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``explain`` sub-command."""
    p = sub.add_parser(
        "explain",
        help="draw what every attention block attends to, per utterance",
        description=(
            "For each utterance write OUT/<id>.png and OUT/<id>.npz: the attention weights of every "
            "block (per head and averaged over heads), self blocks on the modality's own axis "
            "(seconds, words), cross blocks as target x source maps, and the predicted class "
            "probabilities. Audio and video keys are the outputs of the paper's time-mixing "
            "convolution; self rows also project their weights onto input frames through it. "
            "Utterances come from a fold (--data FOLD --ids ...) or from one new clip "
            "(--audio/--video/--transcript, featurized with the run's saved settings)."
        ),
    )
    p.add_argument("--run", required=True, type=Path, metavar="RUN_DIR", help="trained run folder")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="folder for the figures and .npz")
    p.add_argument("--data", type=Path, metavar="FOLD", help="fold folder holding the utterances")
    p.add_argument("--ids", metavar="ID[,ID...]",
                   help="utterance ids in --data (any split), or rows as SPLIT:ROW (test:0; for folds "
                   "without ids)")
    p.add_argument("--audio", type=Path, metavar="FILE", help="audio file of one new clip")
    p.add_argument("--video", type=Path, metavar="FILE", help="video file of one new clip")
    add_transcript(p, "the words spoken in the clip")
    p.add_argument("--device", default="cpu", help="torch device (cpu, cuda, cuda:1...)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Entry point of ``selfcross explain``."""
    from selfcross.serve.explain import explain

    transcript = read_transcript(args)
    ids = [i.strip() for i in args.ids.split(",") if i.strip()] if args.ids else None
    results = explain(args.run, args.out, data=args.data, ids=ids, audio=args.audio, video=args.video,
                      transcript=transcript, device=args.device)
    for r in results:
        top = max(r.probabilities, key=r.probabilities.get)
        flat = (f"; attention uniform in {len(r.uniform_blocks)} of {r.n_blocks} blocks "
                f"({', '.join(r.uniform_blocks)})" if r.uniform_blocks else "")
        print(f"{r.id}: {top} ({r.probabilities[top]:.2f}) -> {r.figure_path}, {r.npz_path.name}{flat}")
    return 0
