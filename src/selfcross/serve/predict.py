"""Emotion prediction on new clips with a trained run folder.

Why a class: loading the model, the vocabulary, the word vectors and (for video) a
ResNet-101 takes seconds; :class:`Predictor` does it once and then extracts features of
each clip with the run's saved extractor settings (``RUN_DIR/features/features.json``,
``vocab.txt``, ``W_embedding.npy``, copied there by ``train_run``), applies the run's
standardizer, and runs the model - the same arrays and the same arithmetic as evaluation on
prepared folds.

A run trained on data without ``features.json`` (e.g. the authors' folds) uses the default
extractors, which match the paper's folds, as long as the model's input shapes agree with
them; text then still needs ``vocab.txt`` and ``W_embedding.npy`` in ``RUN_DIR/features/``.
A run on the synthetic benchmark has neither, and is refused with that reason.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from selfcross.errors import CheckpointError, ConfigError, DataError, SelfcrossError
from selfcross.labels import IEMOCAP7
from selfcross.tasks import Task, get_task

FEATURES_DIR = "features"
#: Columns of a prediction manifest (``id`` plus any of the modality columns; optional extras).
MANIFEST_COLUMNS: tuple[str, ...] = ("id", "audio", "video", "transcript")
OPTIONAL_COLUMNS: tuple[str, ...] = ("side", "start", "end", "video_start", "video_end")


class Predictor:
    """A trained run, ready to classify new clips.

    Args:
        run_dir: a run folder (``config.json``, ``model.safetensors``, optional ``features/``).
        device: torch device for the model and the video encoder (``cpu``, ``cuda``...).
        video_encoder: image encoder to use instead of the one named in the run's video
            settings (needed when the run was prepared with a custom encoder).
        speaker_clips: for a run prepared with speaker normalisation: the new speaker's
            clips (a folder of audio files, or a CSV with an ``audio`` column) whose frames
            give that speaker's statistics; ``None`` = the statistics pooled over the run's
            training speakers (:attr:`speaker_note` says which was used).

    Attributes:
        modalities: modalities the model needs, canonical order.
        class_names: names of the output classes, in logit order.
        task: the run's :class:`~selfcross.tasks.Task` (class probabilities, or a sentiment score).
        feature_configs: modality -> extractor config used for new clips.
        speaker_note: one line saying which speaker statistics normalise the audio (``None``
            when the run is not speaker-normalised).

    Raises:
        CheckpointError: unreadable run folder, or text model without vocabulary/embeddings.
        ConfigError: the run's extractor settings do not produce the model's input shapes.
    """

    def __init__(
        self,
        run_dir: str | Path,
        device: str = "cpu",
        video_encoder: Any = None,
        speaker_clips: str | Path | None = None,
    ) -> None:
        from selfcross.features import AudioFeatures, VideoFeatures
        from selfcross.features.pretrained import is_hf_config, make_extractor
        from selfcross.training.loop import needs_lengths
        from selfcross.training.rundir import load_run

        self.run_dir = Path(run_dir)
        self.device = device
        self.model, self.config, self.standardizer = load_run(self.run_dir, device)
        self.modalities: tuple[str, ...] = tuple(self.config.model.modalities)
        n_classes = self.config.model.n_classes
        names = tuple(self.config.class_names) or (IEMOCAP7.names if n_classes == len(IEMOCAP7) else ())
        self.class_names: tuple[str, ...] = names or tuple(f"class{i}" for i in range(n_classes))
        self.task: Task = get_task(self.config.train.task)
        self._pass_lengths = needs_lengths(self.config.model)
        self._dtype = next(self.model.parameters()).dtype

        feat_dir = self.run_dir / FEATURES_DIR
        self._has_settings = (feat_dir / "features.json").is_file()
        self.feature_configs: dict[str, Any] = self._feature_settings(feat_dir)
        if not self._has_settings:  # before any extractor (a video encoder) is loaded for nothing
            self._refuse_without_settings(feat_dir)
        # modalities whose features come from a pretrained (hf:) encoder named in features.json
        pretrained = {m: make_extractor(m, c, device)
                      for m, c in self.feature_configs.items() if is_hf_config(c)}
        self._audio = pretrained.get("audio")
        if self._audio is None and "audio" in self.modalities:
            self._audio = AudioFeatures(self.feature_configs["audio"])
        self._speaker: tuple[np.ndarray, np.ndarray] | None = None
        self.speaker_note: str | None = None
        if self._audio is not None and getattr(self._audio.config, "speaker_norm", False):
            self._speaker, self.speaker_note = self._speaker_statistics(feat_dir, speaker_clips)
        elif speaker_clips is not None:
            raise ConfigError(f"{self.run_dir}: --speaker-clips applies to runs prepared with --speaker-norm "
                              "(this run's audio frames are not speaker-normalised)")
        self._video = pretrained.get("video")
        if self._video is None and "video" in self.modalities:
            self._video = VideoFeatures(self.feature_configs["video"], encoder=video_encoder, device=device)
        self._text = pretrained.get("text")
        self.vocab = None
        self.embedding: np.ndarray | None = None
        if "text" in self.modalities and self._text is None:
            self.vocab, self.embedding = self._word_vectors(feat_dir)
            rows = self.config.model.vocab_size
            if self.config.model.owns_word_vectors and self.embedding.shape[0] != rows:
                raise CheckpointError(f"{feat_dir / 'vocab.txt'}: {self.embedding.shape[0]} words but the "
                                      f"run tuned a table of {rows} word vectors")
        self._check_shapes()

    def _feature_settings(self, feat_dir: Path) -> dict[str, Any]:
        """Extractor settings per modality: those saved in the run, else the paper's defaults."""
        from selfcross.features import AudioConfig, TextConfig, VideoConfig, load_feature_configs

        saved: dict[str, Any] = {}
        if self._has_settings:
            try:
                saved = load_feature_configs(feat_dir / "features.json")
            except DataError as e:
                raise CheckpointError(str(e)) from None
        defaults = {"audio": AudioConfig, "video": VideoConfig, "text": TextConfig}
        return {m: saved.get(m) or defaults[m]() for m in self.modalities}

    @staticmethod
    def _word_vectors(feat_dir: Path) -> tuple[Any, np.ndarray]:
        """(vocabulary, embedding matrix) a text model was trained with, checked against each other."""
        from selfcross.features import Vocabulary

        vocab_path, emb_path = feat_dir / "vocab.txt", feat_dir / "W_embedding.npy"
        for p in (vocab_path, emb_path):
            if not p.is_file():
                raise CheckpointError(
                    f"{p}: missing; a text model needs the vocabulary and word vectors it was "
                    "trained with (written by data preparation, copied by training)"
                )
        try:
            vocab = Vocabulary.load(vocab_path)
            embedding = np.load(emb_path, allow_pickle=False)
        except (DataError, ValueError, OSError) as e:
            raise CheckpointError(
                f"{emb_path if isinstance(e, ValueError) else vocab_path}: {e}"
            ) from None
        if embedding.ndim != 2 or embedding.shape[0] != len(vocab):
            raise CheckpointError(
                f"{emb_path}: shape {embedding.shape} does not match {len(vocab)} words "
                f"in {vocab_path.name}"
            )
        return vocab, embedding

    def _speaker_statistics(
        self, feat_dir: Path, clips: str | Path | None
    ) -> tuple[tuple[np.ndarray, np.ndarray], str]:
        """``((mean, std), note)``: the new speaker's statistics from ``clips``, else the run's
        training speakers' pooled statistics."""
        from selfcross.features.speakernorm import SPEAKER_STATS, SpeakerStats

        assert self._audio is not None
        if clips is not None:
            files = speaker_clip_files(clips)
            frames = []
            for f in files:
                x, n = self._audio.extract(f)
                frames.append(x[:n])
            stats = SpeakerStats.from_frames({"new": frames})
            return stats.of("new"), f"speaker statistics from {len(files)} clip(s) of {clips}"
        path = feat_dir / SPEAKER_STATS
        if not path.is_file():
            raise CheckpointError(f"{path}: missing; a speaker-normalised run needs the training "
                                  "speakers' statistics (written by preparation, copied by training)")
        try:
            stats = SpeakerStats.load(path)
        except DataError as e:
            raise CheckpointError(str(e)) from None
        return stats.pooled(), (f"speaker normalisation: no --speaker-clips given, using the statistics "
                                f"pooled over the {len(stats.speakers)} training speakers")

    def _check_shapes(self) -> None:
        shapes = self.config.model.shapes
        for m in self.modalities:
            c = self.feature_configs[m]
            if hasattr(c, "input_shape"):  # a pretrained encoder's config
                got_shape, want_shape = c.input_shape(), (shapes[m].seq_len, *shapes[m].frame_shape)
                if got_shape != want_shape:
                    raise ConfigError(
                        f"{self.run_dir}: the {m} encoder {c.encoder} gives {list(got_shape)} arrays but "
                        f"the model expects {list(want_shape)} (features.json does not match the model)"
                    )
                continue
            if m == "audio":
                got = (c.max_frames, c.feat_dim)
            elif m == "video":
                got = (c.max_frames, c.feat_dim)
            else:
                assert self.embedding is not None
                got = (c.max_tokens, self.embedding.shape[1])
            want = (shapes[m].seq_len, shapes[m].feat_dim)
            if got[0] != want[0] or (got[1] is not None and got[1] != want[1]):
                raise ConfigError(
                    f"{self.run_dir}: the {m} extractor gives [{got[0]}, {got[1]}] arrays but the model "
                    f"expects [{want[0]}, {want[1]}] (run trained on other features; "
                    f"add {FEATURES_DIR}/features.json to the run folder)"
                )

    def _refuse_without_settings(self, feat_dir: Path) -> None:
        """Refuse a run whose inputs the default extractors cannot produce (e.g. synthetic arrays)."""
        shapes = self.config.model.shapes
        for m in self.modalities:
            c = self.feature_configs[m]
            if m == "text":
                files = [feat_dir / "vocab.txt", feat_dir / "W_embedding.npy"]
                absent = [p.name for p in files if not p.is_file()]
                if absent:
                    raise self._no_settings_error(f"no {' or '.join(absent)} for its text")
                got = (c.max_tokens, None)
            else:
                got = (c.max_frames, c.feat_dim)
            want = (shapes[m].seq_len, shapes[m].feat_dim)
            if got[0] != want[0] or (got[1] is not None and got[1] != want[1]):
                raise self._no_settings_error(f"its {m} input is [{want[0]}, {want[1]}] per clip")

    def _no_settings_error(self, detail: str) -> ConfigError:
        """The error for a run trained on arrays that came without extractor settings."""
        return ConfigError(
            f"{self.run_dir}: this run was trained on synthetic or pre-extracted arrays with no feature "
            f"settings ({detail}), so it cannot extract features from raw clips; train on data prepared "
            "from media (selfcross prepare-manifest, prepare or prepare-iemocap) instead"
        )

    # ------------------------------------------------------------------ features
    def features(
        self,
        audio: str | Path | tuple[np.ndarray, int] | None = None,
        video: str | Path | None = None,
        transcript: str | None = None,
        video_side: str | None = None,
        start: float | None = None,
        end: float | None = None,
        video_start: float | None = None,
        video_end: float | None = None,
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """The model's inputs for one clip, before standardization.

        ``start``/``end`` cut the audio and, unless ``video_start``/``video_end`` are given,
        the video (IEMOCAP: per-utterance wav, but the span of the whole-dialog video).

        Returns:
            ``(inputs, lengths)``: ``inputs[m]`` float32 ``[1, T, F]`` (text expanded through
            ``W_embedding``, or int64 word ids ``[1, T]`` for a run that tuned its word
            vectors), ``lengths[m]`` int64 ``[1]``; only the model's modalities.

        Raises:
            ConfigError: a modality the model needs was not given.
            DataError: a file cannot be read or decoded (naming it).
        """
        given = {"audio": audio, "video": video, "text": transcript}
        missing = [m for m in self.modalities if given[m] is None]
        if missing:
            flags = {"audio": "--audio FILE", "video": "--video FILE", "text": "--transcript TEXT"}
            raise ConfigError(
                f"this model uses {', '.join(self.modalities)}; missing {', '.join(missing)} "
                f"(give {', '.join(flags[m] for m in missing)})"
            )
        inputs: dict[str, np.ndarray] = {}
        lengths: dict[str, np.ndarray] = {}
        if "audio" in self.modalities:
            assert self._audio is not None
            x, n = self._audio.extract(audio, start, end)  # type: ignore[arg-type]
            if self._speaker is not None:
                from selfcross.features.speakernorm import normalise

                x[:n] = normalise(x[:n], *self._speaker)
            inputs["audio"], lengths["audio"] = x[None], np.array([n], np.int64)
        if "video" in self.modalities:
            assert self._video is not None
            vs = start if video_start is None else video_start
            ve = end if video_end is None else video_end
            x, n = self._video.extract(video, vs, ve, side=video_side)  # type: ignore[arg-type]
            inputs["video"], lengths["video"] = x[None], np.array([n], np.int64)
        if "text" in self.modalities and self._text is not None:
            x, n = self._text.extract(str(transcript))
            inputs["text"], lengths["text"] = x[None], np.array([n], np.int64)
        elif "text" in self.modalities:
            from selfcross.features import encode

            assert self.vocab is not None and self.embedding is not None
            c = self.feature_configs["text"]
            ids = encode(str(transcript), self.vocab, c.max_tokens, c)
            # a model that tuned its word vectors looks the ids up in its own table
            if self.config.model.owns_word_vectors:
                inputs["text"] = np.asarray(ids, np.int64)[None]
            else:
                inputs["text"] = self.embedding[ids][None].astype(np.float32)
            lengths["text"] = np.array([int(np.count_nonzero(ids))], np.int64)
        return inputs, lengths

    def logits(self, inputs: Mapping[str, np.ndarray], lengths: Mapping[str, np.ndarray]) -> np.ndarray:
        """Model logits ``[B, n_classes]`` (float64) for ``[B, T, F]`` arrays (standardized here)
        and, for a run that tuned its word vectors, ``[B, T]`` text word ids."""
        import torch

        from selfcross.training.batches import model_arrays

        arrays = model_arrays(dict(inputs), dict(lengths), self.modalities, self._dtype, self.standardizer)
        x = {m: torch.from_numpy(np.ascontiguousarray(a)).to(self.device) for m, a in arrays.items()}
        lens = {m: torch.as_tensor(np.asarray(lengths[m], np.int64)).to(self.device) for m in self.modalities}
        with torch.inference_mode():
            out = self.model(**x, lengths=lens if self._pass_lengths else None)
        return out.double().cpu().numpy()

    def predict(
        self,
        audio: str | Path | tuple[np.ndarray, int] | None = None,
        video: str | Path | None = None,
        transcript: str | None = None,
        video_side: str | None = None,
        start: float | None = None,
        end: float | None = None,
        video_start: float | None = None,
        video_end: float | None = None,
    ) -> dict[str, Any]:
        """Classify one clip.

        Args:
            audio: audio file (wav/flac/mp4...) or ``(waveform, sample_rate)``.
            video: video file.
            transcript: the words spoken.
            video_side: part of the video frame (``left``/``right``/``full``; default: the
                run's video settings).
            start, end: span in seconds within the audio and video files.
            video_start, video_end: span within the video when it differs from the audio's
                (``None`` = ``start``/``end``).

        Returns:
            ``{"top_class": str, "probabilities": {class: p}, "logits": [float],
            "lengths": {modality: valid steps}, "ignored": [modalities given but unused]}``;
            a regression run gives ``"score": float`` instead of the class and probabilities.
        """
        inputs, lengths = self.features(
            audio, video, transcript, video_side, start, end, video_start, video_end
        )
        logits = self.logits(inputs, lengths)[0]
        given = {"audio": audio, "video": video, "text": transcript}
        common = {
            "logits": [float(v) for v in logits],
            "lengths": {m: int(v[0]) for m, v in lengths.items()},
            "ignored": [m for m, v in given.items() if v is not None and m not in self.modalities],
        }
        return {**self.task.predict_one(np.asarray(logits), self.class_names), **common}

    def predict_manifest(
        self, manifest: str | Path, out_csv: str | Path | None = None, strict: bool = False
    ) -> list[dict[str, Any]]:
        """Classify every row of a CSV (``id`` + any of ``audio,video,transcript``; optional
        ``side,start,end,video_start,video_end``) with this one loaded model and write a CSV of predictions.

        Relative paths are resolved against the manifest's folder. A row whose file cannot be
        decoded gets an ``error`` message and empty probabilities (``strict=True`` raises
        instead). Output columns: ``id, top_class, p_<class>..., error``.

        Returns:
            One dict per row: ``id``, ``top_class``, ``probabilities`` (or ``None``), ``error``.

        Raises:
            DataError: unreadable manifest, no ``id`` column, empty or duplicate ids.
            ConfigError: the manifest has no column for a modality the model needs.
        """
        rows = read_manifest(manifest)
        path = Path(manifest)
        needed = {"audio": "audio", "video": "video", "text": "transcript"}
        header = rows[0].keys() if rows else set()
        absent = [needed[m] for m in self.modalities if needed[m] not in header]
        if absent:
            raise ConfigError(f"{path}: this model needs the column(s) {', '.join(absent)}")
        results: list[dict[str, Any]] = []
        base = path.parent
        for lineno, row in enumerate(rows, start=2):
            try:
                out = self.predict(
                    audio=_resolve(row.get("audio"), base) if "audio" in self.modalities else None,
                    video=_resolve(row.get("video"), base) if "video" in self.modalities else None,
                    transcript=row.get("transcript") if "text" in self.modalities else None,
                    video_side=(row.get("side") or None),
                    start=_float(row.get("start"), path, lineno),
                    end=_float(row.get("end"), path, lineno),
                    video_start=_float(row.get("video_start"), path, lineno),
                    video_end=_float(row.get("video_end"), path, lineno),
                )
                keep = tuple(self.task.failed_prediction())  # the task's prediction fields
                results.append({"id": row["id"], **{k: out[k] for k in keep}, "error": ""})
            except SelfcrossError as e:
                if strict:
                    raise
                failed = self.task.failed_prediction()
                results.append({"id": row["id"], **failed, "error": f"line {lineno}: {e}"})
        if out_csv is not None:
            write_predictions(out_csv, results, self.class_names, self.task)
        return results


def _resolve(value: str | None, base: Path) -> Path | None:
    if value is None or not value.strip():
        return None
    p = Path(value.strip()).expanduser()
    return p if p.is_absolute() else base / p


def _float(value: str | None, path: Path, lineno: int) -> float | None:
    if value is None or not value.strip():
        return None
    try:
        return float(value)
    except ValueError:
        raise DataError(path, f"line {lineno}: {value!r} is not a number of seconds") from None


def speaker_clip_files(source: str | Path) -> list[Path]:
    """Audio files of one speaker: every file of a folder (sorted), or the ``audio`` column of a
    CSV (paths relative to it).

    Raises:
        DataError: missing source, an empty folder, or a CSV without an ``audio`` column.
    """
    source = Path(source)
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.is_file() and not p.name.startswith("."))
        if not files:
            raise DataError(source, "no clips in the speaker folder")
        return files
    if not source.is_file():
        raise DataError(source, "no such speaker clips folder or CSV")
    try:
        with open(source, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(source, f"cannot read the speaker clips CSV ({e})") from None
    if not rows or "audio" not in rows[0]:
        raise DataError(source, "the speaker clips CSV needs an 'audio' column and at least one row")
    return [p for p in (_resolve(r["audio"], source.parent) for r in rows) if p is not None]


def read_manifest(path: str | Path) -> list[dict[str, str]]:
    """Rows of a prediction manifest CSV as dicts (values stripped, ``None`` -> ``""``).

    Raises:
        DataError: missing/unreadable file, no ``id`` column, unknown columns, empty or
            duplicate ids (with line numbers).
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            fields = [c.strip() for c in (reader.fieldnames or [])]
            rows = [{k.strip(): (v or "").strip() for k, v in r.items() if k is not None} for r in reader]
    except FileNotFoundError:
        raise DataError(path, "no such manifest file") from None
    except (UnicodeDecodeError, csv.Error) as e:
        raise DataError(path, f"not a readable CSV file ({e})") from None
    if "id" not in fields:
        raise DataError(path, f"needs an 'id' column (found: {', '.join(fields) or 'none'})")
    unknown = [c for c in fields if c not in MANIFEST_COLUMNS + OPTIONAL_COLUMNS]
    if unknown:
        raise DataError(
            path,
            f"unknown column(s) {', '.join(unknown)}; use {', '.join(MANIFEST_COLUMNS + OPTIONAL_COLUMNS)}",
        )
    seen: dict[str, int] = {}
    for lineno, r in enumerate(rows, start=2):
        if not r["id"]:
            raise DataError(path, f"line {lineno}: empty id")
        if r["id"] in seen:
            raise DataError(path, f"line {lineno}: id {r['id']!r} repeated (first on line {seen[r['id']]})")
        seen[r["id"]] = lineno
    return rows


def write_predictions(
    out_csv: str | Path, results: list[dict[str, Any]], class_names: tuple[str, ...],
    task: str | Task | None = None,
) -> Path:
    """Write ``id, <the task's prediction columns>, error`` rows (atomically): ``top_class,
    p_<class>...`` for classification, ``score`` for regression."""
    task = get_task(task)
    out = Path(out_csv)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", *task.csv_header(class_names), "error"])
        for r in results:
            w.writerow([r["id"], *task.csv_cells(r, class_names), r["error"]])
    tmp.replace(out)
    return out
