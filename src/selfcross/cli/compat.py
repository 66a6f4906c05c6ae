"""``selfcross import-reference``: the authors' checkpoints as selfcross run folders."""

from __future__ import annotations

import argparse

from selfcross.config import DTYPES


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``import-reference`` to the ``selfcross`` command line."""
    p = subparsers.add_parser(
        "import-reference",
        help="turn a checkpoint of the authors' code into a run folder",
        description=(
            "Import a checkpoint written by the authors' code (smartcameras/SelfCrossAttn, "
            "tri-modal TVAModel_Self / TVAModel_Cross) as a run folder (config.json + "
            "model.safetensors) that 'selfcross evaluate' accepts. CKPT is a state dict "
            "(.pt/.pth, read without running code) or their whole-model pickle "
            "(torch.save(model)), which is read only with --trust-pickle."
        ),
    )
    p.add_argument("checkpoint", metavar="CKPT", help="state dict or whole-model pickle")
    p.add_argument("--kind", required=True, choices=("self", "cross"), help="which of their models it is")
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="run folder to create")
    p.add_argument(
        "--trust-pickle",
        action="store_true",
        help=(
            "allow reading a whole-model pickle (unpickling runs code named by the file; "
            "selfcross reads only its tensors through a restricted unpickler)"
        ),
    )
    p.add_argument(
        "--dtype",
        default="float64",
        choices=DTYPES,
        help="precision the run evaluates in (default float64, the authors' precision)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    p.set_defaults(func=_import_reference)


def _import_reference(args: argparse.Namespace) -> int:
    from selfcross.serve.compat import import_reference  # start-up cost: loaded when the command runs

    out = import_reference(
        args.checkpoint,
        args.kind,
        args.out,
        trust_pickle=args.trust_pickle,
        dtype=args.dtype,
        overwrite=args.overwrite,
    )
    print(f"imported the authors' {args.kind} model from {args.checkpoint} into {out}")
    return 0
