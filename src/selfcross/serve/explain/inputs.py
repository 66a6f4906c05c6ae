"""Where explained utterances come from: a fold's arrays by id, or one new clip."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfcross.errors import CheckpointError, DataError
from selfcross.labels import IEMOCAP7
from selfcross.serve.explain import Utterance


@dataclass
class ExplainedRun:
    """A loaded run plus the feature settings that give its axes units."""

    run_dir: Path
    model: Any
    config: Any
    standardizer: Any
    device: str
    class_names: tuple[str, ...]
    feature_configs: dict[str, Any]  # modality -> extractor config (only those the run saved)
    vocab_words: list[str] | None

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.config.model.modalities)

    @property
    def pass_lengths(self) -> bool:
        from selfcross.training.loop import needs_lengths

        return needs_lengths(self.config.model)


def load_explained_run(run_dir: Path, device: str) -> ExplainedRun:
    """The run's model, standardizer, class names, saved feature settings and vocabulary."""
    from selfcross.features import Vocabulary, load_feature_configs
    from selfcross.serve.predict import FEATURES_DIR
    from selfcross.training.rundir import load_run

    model, config, standardizer = load_run(run_dir, device)
    n = config.model.n_classes
    names = tuple(config.class_names) or (IEMOCAP7.names if n == len(IEMOCAP7) else ())
    feat_dir = run_dir / FEATURES_DIR
    configs: dict[str, Any] = {}
    if (feat_dir / "features.json").is_file():
        try:
            configs = load_feature_configs(feat_dir / "features.json")
        except DataError as e:
            raise CheckpointError(str(e)) from None
    words = Vocabulary.load(feat_dir / "vocab.txt").words if (feat_dir / "vocab.txt").is_file() else None
    return ExplainedRun(
        run_dir, model, config, standardizer, device,
        names or tuple(f"class{i}" for i in range(n)), configs, words,
    )


def fold_utterances(run: ExplainedRun, fold_dir: Path, ids: list[str]) -> list[Utterance]:
    """The utterances ``ids`` of a fold (looked up in test, dev and train, in that order)."""
    from selfcross.folds import read_fold

    fold = read_fold(fold_dir, modalities=run.modalities, check_values=False)
    words = run.vocab_words or _fold_vocab(fold_dir)
    found: list[Utterance] = []
    for utt_id in ids:
        split, pos = _locate(fold, fold_dir, utt_id)
        inputs, lengths = split.get_batch([pos], run.modalities,
                                          text_as_ids=run.config.model.owns_word_vectors)
        name = utt_id.replace(":", "_")  # a file name on every system
        found.append(Utterance(name, inputs, lengths, _words_of(split, pos, words),
                               label=fold.class_names[int(split.labels[pos])]))
    return found


def _locate(fold: Any, fold_dir: Path, utt_id: str) -> tuple[Any, int]:
    """(split, row) of ``utt_id``: an id of ``S_ids.txt`` (test, dev, train searched in that
    order) or ``SPLIT:ROW`` (``test:0``), which addresses rows of a fold with or without ids."""
    splits = {"test": fold.test, "dev": fold.dev, "train": fold.train}
    for split in splits.values():
        if split.ids is not None and utt_id in split.ids:
            return split, split.ids.index(utt_id)
    name, sep, row = utt_id.partition(":")
    if sep and name in splits:
        if not row.isdigit() or int(row) >= len(splits[name]):
            raise DataError(fold_dir, f"{utt_id!r}: {name} has rows 0..{len(splits[name]) - 1}")
        return splits[name], int(row)
    sizes = ", ".join(f"{n} 0..{len(s) - 1}" for n, s in splits.items())
    if all(s.ids is None for s in splits.values()):
        raise DataError(fold_dir, f"no utterance ids in this fold (no S_ids.txt), so {utt_id!r} names "
                                  f"nothing; address rows as SPLIT:ROW, e.g. --ids test:0 ({sizes})")
    example = next(s.ids[0] for s in splits.values() if s.ids)
    raise DataError(fold_dir, f"no utterance with id {utt_id!r} in its train, dev or test ids (they look "
                              f"like {example!r}); or address rows as SPLIT:ROW, e.g. --ids test:0")


def _fold_vocab(fold_dir: Path) -> list[str] | None:
    from selfcross.features import Vocabulary

    for base in (fold_dir, fold_dir.parent):
        if (base / "vocab.txt").is_file():
            return Vocabulary.load(base / "vocab.txt").words
    return None


def _words_of(split: Any, pos: int, words: list[str] | None) -> list[str] | None:
    ids = split.word_ids([pos])
    if ids is None or words is None:
        return None
    return [words[i] if i < len(words) else f"#{i}" for i in ids[0] if i != 0]


def clip_utterance(
    run: ExplainedRun, audio: str | Path | None, video: str | Path | None, transcript: str | None
) -> Utterance:
    """One new clip, featurized with the run's saved settings (as ``selfcross predict`` does)."""
    from selfcross.features import tokenize
    from selfcross.features.audio import load_audio
    from selfcross.serve.predict import Predictor

    predictor = Predictor(run.run_dir, device=run.device)
    inputs, lengths = predictor.features(audio=audio, video=video, transcript=transcript)
    words = None
    if "text" in run.modalities and transcript is not None:
        text_cfg = predictor.feature_configs["text"]
        words = tokenize(transcript, text_cfg)[: text_cfg.max_tokens]
    waveform = None
    if "audio" in run.modalities and audio is not None:
        waveform = load_audio(audio, predictor.feature_configs["audio"].sample_rate)
    run.feature_configs = {**predictor.feature_configs, **run.feature_configs}
    name = Path(str(audio or video or "clip")).stem
    return Utterance(name, inputs, lengths, words, waveform)
