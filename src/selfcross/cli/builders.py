"""The option objects of the API, built from parsed command-line flags: one builder per object.

Why one place: each object (:class:`~selfcross.prepare.options.FeatureOptions`,
:class:`~selfcross.prepare.options.FoldOptions`, :class:`~selfcross.experiments.options.GridPlan`,
:class:`~selfcross.experiments.options.ExecutionOptions`, :class:`~selfcross.serve.predict.Clip`)
is filled from the flags the same way for every command that takes them, and the checks
that span several flags live next to the object they build.

The imports of the API modules are inside the builders: ``selfcross --help`` parses no
flags and must not pay for the extractors' and torch's imports.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from selfcross.cli.encoders import encoder_configs
from selfcross.cli.options import config_file_or_preset
from selfcross.errors import ConfigError

if TYPE_CHECKING:
    from selfcross.experiments.options import ExecutionOptions, GridPlan
    from selfcross.features.audio import AudioConfig
    from selfcross.features.text import TextConfig
    from selfcross.prepare.options import FeatureOptions, FoldOptions
    from selfcross.serve.predict import Clip


def csv_list(value: str) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]`` (a comma-separated flag)."""
    return [v.strip() for v in value.split(",") if v.strip()]


# ------------------------------------------------------------------------------ preparation
def text_config(args: argparse.Namespace) -> TextConfig | None:
    """The word-id ``TextConfig`` the text options ask for, or ``None`` for the paper's default."""
    from selfcross.features.text import TextConfig  # start-up cost (see the module doc)

    if args.max_tokens is None and not args.keep_punctuation:
        return None
    if getattr(args, "text_encoder", None) is not None:
        raise ConfigError("--max-tokens and --keep-punctuation set the GloVe word-id tokenizer, not a "
                          "--text-encoder")
    if args.max_tokens is not None and args.max_tokens < 1:
        raise ConfigError(f"--max-tokens must be at least 1, got {args.max_tokens}")
    return TextConfig(max_tokens=128 if args.max_tokens is None else args.max_tokens,
                      keep_punctuation=args.keep_punctuation)


def audio_config(args: argparse.Namespace) -> AudioConfig | None:
    """The ``AudioConfig`` the audio options ask for, or ``None`` for the paper's default."""
    from selfcross.features.audio import AudioConfig  # start-up cost (see the module doc)

    frames = getattr(args, "max_audio_frames", None)
    if args.audio_features == "mfcc" and frames is None:
        return None
    return AudioConfig.for_features(args.audio_features, **({} if frames is None else {"max_frames": frames}))


def feature_options(args: argparse.Namespace) -> FeatureOptions:
    """:class:`FeatureOptions` from a preparation command's flags (hf: encoders replace the
    built-in extractors they name)."""
    from selfcross.prepare.options import FeatureOptions  # start-up cost (see the module doc)

    if args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {args.workers}")
    configs: dict[str, Any] = {"audio_config": audio_config(args), "text_config": text_config(args)}
    if args.video_encoder == "resnet101":
        from selfcross.features.video import VideoConfig  # start-up cost (see the module doc)

        configs["video_config"] = VideoConfig(encoder="resnet101", weights=args.video_weights)
    configs.update(encoder_configs(args))
    return FeatureOptions(glove=args.glove, video_encoder=args.video_encoder, speaker_norm=args.speaker_norm,
                          workers=args.workers, progress=not args.no_progress,
                          on_unreadable="skip" if getattr(args, "skip_unreadable", False) else None,
                          **configs)


def fold_options(args: argparse.Namespace) -> FoldOptions:
    """:class:`FoldOptions` from ``prepare-manifest`` / ``prepare`` flags (absent flags: defaults)."""
    from selfcross.prepare.options import FoldOptions  # start-up cost (see the module doc)

    return FoldOptions(
        n_folds=args.folds, split_column=getattr(args, "split_column", None),
        group_column=getattr(args, "group_column", "speaker"), dev_fraction=args.dev_fraction,
        fold_seed=args.fold_seed, allow_shared_speakers=getattr(args, "allow_shared_speakers", False),
    )


# ------------------------------------------------------------------------------------- grid
def grid_plan(args: argparse.Namespace) -> GridPlan:
    """:class:`GridPlan` from ``grid``'s flags: which runs, and so which cells of the store."""
    from selfcross.experiments.options import GridPlan  # start-up cost (see the module doc)

    recipe = config_file_or_preset(args)  # --config FILE, or the bare --preset
    return GridPlan(
        models=csv_list(args.models), modalities=csv_list(args.modalities), folds=args.folds,
        seeds=args.seeds, include_no_sp=args.no_stat_pool_too, preset=recipe.get("preset", "paper"),
        device=args.device, max_epochs=args.max_epochs, task=args.task,
        tune_word_vectors=args.tune_word_vectors, robustness=args.robustness or (),
        config_file=recipe if args.config else None,
    )


def execution_options(args: argparse.Namespace) -> ExecutionOptions:
    """:class:`ExecutionOptions` from ``grid``'s flags (ray-only flags need ``--executor ray``)."""
    from selfcross.cli.trackers import logger_options  # start-up cost (see the module doc)
    from selfcross.experiments.options import ExecutionOptions  # start-up cost (see the module doc)

    ray_only = {"address": args.ray_address, "cpus_per_run": args.cpus_per_run,
                "gpus_per_run": args.gpus_per_run}
    given: dict[str, Any] = {k: v for k, v in ray_only.items() if v is not None}
    if given and args.executor != "ray":
        raise ConfigError("--ray-address, --cpus-per-run and --gpus-per-run need --executor ray")
    if args.max_retries is not None:
        given["max_retries"] = args.max_retries
    return ExecutionOptions(
        workers=args.workers, executor=args.executor, executor_options=given,
        threads_per_worker=args.threads_per_worker, retry_failed=args.retry_failed,
        progress=not args.no_progress, loggers=logger_options(args),
    )


# ---------------------------------------------------------------------------------- predict
def clip(args: argparse.Namespace, transcript: str | None) -> Clip:
    """The :class:`Clip` ``predict``'s flags describe (``transcript`` already read from
    ``--transcript`` or ``--transcript-file``)."""
    from selfcross.serve.predict import Clip  # start-up cost (see the module doc)

    return Clip(audio=args.audio, video=args.video, transcript=transcript, video_side=args.side,
                start=args.start, end=args.end, video_start=args.video_start, video_end=args.video_end)
