"""The data of a preparation: utterance records in, skips and problems found, folds and results out.

Why a module of its own: the corpus adapters, the pipeline, the report and the option
objects all speak of these types; kept apart from the pipeline, none of them needs to
import another to name them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class UtteranceRecord:
    """One labelled utterance, as a corpus adapter describes it (nothing read yet).

    Attributes:
        id: unique utterance id (written to ``S_ids.txt``; also the cache file name).
        label: class name (one of the preparation's ``class_names``).
        speaker: speaker identity; no speaker is ever in both training and test of a fold.
        group: fold group (IEMOCAP: the session); fold k tests on the k-th group.
        audio: audio file (or a video with an audio track); ``None`` = no audio.
        audio_span: ``(start, end)`` seconds within ``audio``; ``None`` = the whole file.
        video: video file; ``None`` = no video.
        video_span: ``(start, end)`` seconds within ``video``; ``None`` = the whole file.
        video_side: frame half showing the speaker: ``left``, ``right`` or ``full``.
        transcript: raw words (markers such as ``[LAUGHTER]`` are the tokenizer's job).
    """

    id: str
    label: str
    speaker: str
    group: str
    audio: Path | None = None
    audio_span: tuple[float, float] | None = None
    video: Path | None = None
    video_span: tuple[float, float] | None = None
    video_side: str = "full"
    transcript: str | None = None


@dataclass(frozen=True)
class Skip:
    """An utterance left out of the data root: which, why (a ``SKIP_*`` string), detail."""

    id: str
    reason: str
    detail: str = ""


@dataclass(frozen=True)
class Problem:
    """A malformed input line or unreadable input file (``line`` is 1-based or ``None``)."""

    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        return f"{self.path}{'' if self.line is None else f':{self.line}'}: {self.message}"


@dataclass
class FoldPlan:
    """Utterance ids of one fold's splits and how they were chosen."""

    test_groups: list[str]
    train: list[str]
    dev: list[str]
    test: list[str]
    dev_speakers: list[str]


@dataclass
class PrepareResult:
    """What a preparation wrote (also summarized in ``prepare_report.md``)."""

    out_root: Path
    folds: list[FoldPlan]
    kept: list[str]
    skipped: list[Skip]
    problems: list[Problem]
    counts: dict[str, dict[str, int]]  # class -> group -> utterances
    cache: dict[str, dict[str, int]]  # modality -> {"hits": h, "computed": c}
    timings: dict[str, float]
    modalities: tuple[str, ...]
    report: Path


__all__ = ["FoldPlan", "PrepareResult", "Problem", "Skip", "UtteranceRecord"]
