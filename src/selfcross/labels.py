"""Modality names and every class set, defined once.

Why here: the modality order and the label index order are facts shared by the reader,
the synthetic benchmark, the models, the metrics and the reports. A second copy anywhere
would eventually disagree with this one.
"""

from __future__ import annotations

from dataclasses import dataclass

from selfcross.errors import ConfigError

#: Canonical modality names, in canonical order (used for stacking, file names, reports).
MODALITIES: tuple[str, ...] = ("audio", "video", "text")

#: One-letter short forms used on the command line (``--modalities atv``).
MODALITY_LETTERS: dict[str, str] = {"a": "audio", "v": "video", "t": "text"}

#: The seven modality sets of the paper's table, in the paper's row order.
PAPER_MODALITY_SETS: tuple[str, ...] = ("a", "v", "t", "av", "at", "vt", "atv")


def parse_modalities(spec: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Parse ``"atv"``, ``"a,t"``, ``"audio,text"`` or a sequence into canonical order.

    Returns:
        A non-empty tuple of names from :data:`MODALITIES`, in canonical order, no repeats.

    Raises:
        ConfigError: unknown name, repeat, or empty set.
    """
    if isinstance(spec, str):
        s = spec.strip().lower()
        parts = [p.strip() for p in s.split(",") if p.strip()] if "," in s else (
            [s] if s in MODALITIES else list(s)
        )
    else:
        parts = [str(p).strip().lower() for p in spec]
    names: list[str] = []
    for p in parts:
        name = MODALITY_LETTERS.get(p, p)
        if name not in MODALITIES:
            raise ConfigError(
                f"unknown modality {p!r} in {spec!r}: use letters a, v, t or names "
                f"{', '.join(MODALITIES)}"
            )
        if name in names:
            raise ConfigError(f"modality {name!r} given twice in {spec!r}")
        names.append(name)
    if not names:
        raise ConfigError("the modality set is empty: give at least one of a, v, t")
    return tuple(m for m in MODALITIES if m in names)


def modality_code(modalities: str | tuple[str, ...] | list[str]) -> str:
    """Short code of a modality set as the paper's table spells it.

    ``("audio", "text") -> "at"``, ``("audio", "video", "text") -> "atv"`` (the paper's A+V+T
    row; every code is one of :data:`PAPER_MODALITY_SETS`, so stores and reports agree).
    """
    names = parse_modalities(modalities)
    for code in PAPER_MODALITY_SETS:
        if parse_modalities(code) == names:
            return code
    raise AssertionError(f"no code for {names}")  # every non-empty subset is in the table


@dataclass(frozen=True)
class ClassSet:
    """An ordered list of class names; index ``i`` in label arrays means ``names[i]``."""

    key: str
    names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        """Index of a class name (raises ``ConfigError`` if unknown)."""
        try:
            return self.names.index(name)
        except ValueError:
            raise ConfigError(f"{name!r} is not a class of {self.key}: {', '.join(self.names)}") from None


#: IEMOCAP, the paper's seven classes, in the label order of the pre-processed folds.
IEMOCAP7 = ClassSet("iemocap7", ("angry", "excited", "happy", "sad", "frustrated", "surprised", "neutral"))
#: IEMOCAP raw-release codes for the seven classes (same order as :data:`IEMOCAP7`).
IEMOCAP7_CODES: tuple[str, ...] = ("ang", "exc", "hap", "sad", "fru", "sur", "neu")
#: Utterance counts per class in IEMOCAP (docs/paper.md, Data), same order; used by the synthetic data.
IEMOCAP7_COUNTS: tuple[int, ...] = (1103, 1041, 595, 1084, 1849, 107, 1708)
#: The common four-class IEMOCAP set (happy and excited merged).
IEMOCAP4 = ClassSet("iemocap4", ("angry", "happy", "sad", "neutral"))
#: RAVDESS emotions, codes 01..08 in order.
RAVDESS8 = ClassSet(
    "ravdess8", ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
)
#: CREMA-D emotions (codes ANG, DIS, FEA, HAP, NEU, SAD).
CREMAD6 = ClassSet("cremad6", ("angry", "disgust", "fear", "happy", "neutral", "sad"))
#: MELD emotions.
MELD7 = ClassSet("meld7", ("neutral", "joy", "surprise", "anger", "sadness", "disgust", "fear"))

CLASS_SETS: dict[str, ClassSet] = {c.key: c for c in (IEMOCAP7, IEMOCAP4, RAVDESS8, CREMAD6, MELD7)}
