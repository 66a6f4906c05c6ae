"""Test-time perturbations of one modality: how a trained model copes with a missing or bad input.

Specs (``selfcross evaluate --perturb SPEC``), ``m`` a modality letter or name:

- ``drop:m``: every frame of ``m`` zeroed and its length set to 0 (so a preset that masks
  padding masks it all; the model then keeps one zero step so that softmax and means stay
  defined);
- ``noise:m=SNR_DB``: Gaussian noise added to the valid frames of ``m`` at a signal-to-noise
  ratio in dB (signal power = mean square of the utterance's valid feature values);
- ``shuffle:m``: the valid frames of ``m`` put in a random order;
- ``swap:m``: ``m`` (frames and length) taken from another utterance of the same split.

Why on the raw features, before the run's standardizer: that is what a deployment
receives (a silent microphone, a noisy front-end). The perturbation of an utterance depends
only on its position, the spec and the seed, not on batching, so results are reproducible.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from selfcross.errors import ConfigError
from selfcross.labels import parse_modalities

#: Perturbation kinds, in the order of the module doc.
PERTURBATIONS: tuple[str, ...] = ("drop", "noise", "shuffle", "swap")


@dataclass(frozen=True)
class Perturbation:
    """One parsed spec: ``kind`` of :data:`PERTURBATIONS`, ``modality`` name, ``snr_db`` for noise."""

    kind: str
    modality: str
    snr_db: float | None = None

    @property
    def spec(self) -> str:
        """The canonical spec string (``noise:a=10``, ``drop:t``)."""
        snr = "" if self.snr_db is None else f"={self.snr_db:g}"
        return f"{self.kind}:{self.modality[0]}{snr}"


def parse_perturbation(spec: str) -> Perturbation:
    """``"drop:t"``, ``"noise:audio=10"``, ... -> :class:`Perturbation`.

    Raises:
        ConfigError: unknown kind or modality, a missing or non-numeric SNR for ``noise``, an
            SNR given to another kind.
    """
    kind, sep, rest = spec.strip().partition(":")
    if not sep or kind not in PERTURBATIONS:
        raise ConfigError(
            f"perturbation {spec!r}: use drop:m, noise:m=SNR_DB, shuffle:m or swap:m (m = a, v or t)"
        )
    name, eq, value = rest.partition("=")
    mods = parse_modalities(name) if name.strip() else ()
    if len(mods) != 1:
        raise ConfigError(f"perturbation {spec!r}: name exactly one modality (a, v or t)")
    if kind != "noise":
        if eq:
            raise ConfigError(f"perturbation {spec!r}: only noise takes a value (noise:m=SNR_DB)")
        return Perturbation(kind, mods[0])
    try:
        snr = float(value)
    except ValueError:
        raise ConfigError(f"perturbation {spec!r}: the SNR {value!r} is not a number of dB") from None
    if not np.isfinite(snr):
        raise ConfigError(f"perturbation {spec!r}: the SNR must be a finite number of dB")
    return Perturbation(kind, mods[0], snr)


def removes_every_input(perturbation: Perturbation, modalities: Sequence[str]) -> bool:
    """Whether ``perturbation`` leaves a model of ``modalities`` with no input at all."""
    return perturbation.kind == "drop" and tuple(modalities) == (perturbation.modality,)


def check_applies(perturbation: Perturbation, modalities: Sequence[str]) -> None:
    """:class:`ConfigError` unless the run uses the perturbed modality and keeps another.

    Why the second condition: a model whose only modality is dropped scores a constant
    input, so its "robustness" number measures nothing but the class prior.
    """
    if perturbation.modality not in modalities:
        raise ConfigError(
            f"perturbation {perturbation.spec!r}: the run does not use {perturbation.modality} "
            f"(it uses {', '.join(modalities)})"
        )
    if removes_every_input(perturbation, modalities):
        raise ConfigError(
            f"perturbation {perturbation.spec!r} removes {perturbation.modality}, the only modality "
            "the run uses: the model would be scored with no input (drop applies to multimodal runs; "
            f"try noise:{perturbation.modality[0]}=SNR_DB or shuffle:{perturbation.modality[0]})"
        )


class PerturbedSplit:
    """A reader ``Split`` whose batches come back with one modality perturbed.

    It serves the same rows, labels and ids as ``split`` (anything :class:`SplitData` reads);
    only :meth:`get_batch` differs.
    """

    def __init__(self, split: Any, perturbation: Perturbation, seed: int = 0) -> None:
        self._split = split
        self.perturbation = perturbation
        self.seed = seed
        self._partner = _derangement(len(split), self._rng(-1)) if perturbation.kind == "swap" else None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._split, name)

    def __len__(self) -> int:
        return len(self._split)

    def _rng(self, position: int) -> np.random.Generator:
        tag = zlib.crc32(self.perturbation.spec.encode())
        return np.random.default_rng([self.seed, tag, position + 1])

    def get_batch(
        self,
        index: np.ndarray | Sequence[int],
        modalities: Sequence[str] | str | None = None,
        text_as_ids: bool = False,
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """The split's batch with :attr:`perturbation` applied to its modality (word ids, with
        ``text_as_ids``, can be dropped, shuffled or swapped, not noised)."""
        idx = np.asarray(index, dtype=np.int64).reshape(-1)
        inputs, lengths = self._split.get_batch(idx, modalities, text_as_ids=text_as_ids)
        m = self.perturbation.modality
        if m not in inputs:
            return inputs, lengths
        x, n = np.array(inputs[m], copy=True), np.array(lengths[m], copy=True)
        kind = self.perturbation.kind
        if kind == "noise" and x.dtype.kind != "f":
            raise ConfigError(f"perturbation {self.perturbation.spec!r}: the run reads {m} as word ids "
                              "(it tunes its word vectors), which noise cannot perturb; use drop, shuffle "
                              "or swap")
        if kind == "swap":
            assert self._partner is not None
            other, other_len = self._split.get_batch(self._partner[idx], (m,), text_as_ids=text_as_ids)
            x, n = np.array(other[m], copy=True), np.array(other_len[m], copy=True)
        elif kind == "drop":
            x[:] = 0
            n[:] = 0
        else:
            for row, position in enumerate(idx):
                x[row] = self._perturb_row(x[row], int(n[row]), self._rng(int(position)))
        inputs[m], lengths[m] = x, n
        return inputs, lengths

    def _perturb_row(self, frames: np.ndarray, valid: int, rng: np.random.Generator) -> np.ndarray:
        if valid == 0:
            return frames
        if self.perturbation.kind == "shuffle":
            frames[:valid] = frames[rng.permutation(valid)]
            return frames
        assert self.perturbation.snr_db is not None
        signal = frames[:valid].astype(np.float64)
        power = float(np.mean(signal**2))
        sd = np.sqrt(power / 10.0 ** (self.perturbation.snr_db / 10.0))
        frames[:valid] = signal + rng.normal(0.0, sd, size=signal.shape)
        return frames


def _derangement(n: int, rng: np.random.Generator) -> np.ndarray:
    """A random permutation of ``0..n-1`` without fixed points (every utterance gets another's)."""
    if n < 2:
        raise ConfigError("swap needs at least two utterances in the split")
    order = rng.permutation(n)
    partner = np.empty(n, dtype=np.int64)
    partner[order] = np.roll(order, 1)  # one cycle through a random order: nobody keeps their own
    return partner
