"""Sentiment scores and their named binnings, as the multimodal-sentiment field defines them.

Why one module: the binned labels a data root is written with (``import-features --labels``)
and the binned accuracies of a regression run (Acc-2, Acc-5, Acc-7) must use the same rules,
so both call :func:`bin_scores`.

Conventions (those of the MMSA toolkit, ``thuiar/MMSA``, for scores in [-3, 3]):

* ``sentiment2`` (MMSA's *Has0*): negative (< 0) vs non-negative (>= 0), every utterance.
* ``sentiment2-non0`` (MMSA's *Non0*): negative (< 0) vs positive (> 0); score-0 utterances
  are left out.
* ``sentimentK`` for K = 3, 5, 7: ``round(clip(score, -h, h))`` with ``h = (K - 1) / 2``;
  the rounding is NumPy's (half to even: 0.5 -> 0, 1.5 -> 2, 2.5 -> 2), as MMSA's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from selfcross.errors import ConfigError


@dataclass(frozen=True)
class Binning:
    """A named rule from scores to class indices.

    Attributes:
        key: the name used on the command line (``sentiment7``).
        names: class names in index order.
        half_range: ``h`` of ``round(clip(score, -h, h))``; ``None`` for the binary rules.
        drops_zero: utterances with score 0 have no class (``sentiment2-non0``).
    """

    key: str
    names: tuple[str, ...]
    half_range: int | None = None
    drops_zero: bool = False


def _steps(h: int) -> tuple[str, ...]:
    return tuple(f"{v:+d}" if v else "0" for v in range(-h, h + 1))


#: Every binning, by key.
BINNINGS: dict[str, Binning] = {
    b.key: b
    for b in (
        Binning("sentiment2", ("negative", "non-negative")),
        Binning("sentiment2-non0", ("negative", "positive"), drops_zero=True),
        Binning("sentiment3", ("negative", "neutral", "positive"), half_range=1),
        Binning("sentiment5", _steps(2), half_range=2),
        Binning("sentiment7", _steps(3), half_range=3),
    )
}


def get_binning(key: str) -> Binning:
    """The binning named ``key`` (raises :class:`ConfigError` naming the valid keys)."""
    if key not in BINNINGS:
        raise ConfigError(f"unknown sentiment binning {key!r}: use one of {', '.join(BINNINGS)}")
    return BINNINGS[key]


def bin_scores(scores: np.ndarray, key: str) -> tuple[np.ndarray, np.ndarray]:
    """Class indices of ``scores`` under binning ``key``.

    Returns:
        ``(labels, keep)``: int64 [N] class indices (``-1`` where not kept) and bool [N]
        (``False`` only for score-0 utterances under ``sentiment2-non0``).

    >>> bin_scores(np.array([-0.4, 0.0, 2.5]), "sentiment7")[0]
    array([3, 3, 5])
    """
    b = get_binning(key)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    keep = s != 0 if b.drops_zero else np.ones(s.shape, dtype=bool)
    if b.half_range is None:
        labels = (s >= 0).astype(np.int64) if not b.drops_zero else (s > 0).astype(np.int64)
    else:
        h = b.half_range
        labels = (np.round(np.clip(s, -h, h)) + h).astype(np.int64)
    return np.where(keep, labels, -1), keep
