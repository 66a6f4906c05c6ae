"""Significance tests for "is self-attention different from cross-attention?".

Why these tests: the paper reports means over 5 folds x 10 seeds and says the two models are
"not significantly different" without naming a test (docs/paper.md, Results). A run of model A and a run
of model B with the same (fold, seed) share data and initial randomness, so the natural unit
is the *pair*:

* :func:`wilcoxon_paired` — Wilcoxon signed-rank on the paired differences (no normality
  assumption). ``zero_method="wilcox"``: pairs with a zero difference carry no information
  about the direction and are dropped (the classic rule); the number dropped is reported.
  ``method="auto"`` (SciPy): exact distribution when there are no ties/zeros and n <= 50,
  exhaustive permutation when there are ties or zeros and n <= 13, normal approximation
  otherwise. Accuracies are ratios of small integers, so ties are common.
  With ``n`` non-zero pairs the smallest two-sided p-value possible is ``2 / 2**n``: for
  n < 6 (0.0625 at n = 5) the test *cannot* reach p < 0.05 whatever the data, and the result
  says so in ``note``.
* :func:`paired_t` — paired t-test (assumes roughly normal differences); reported alongside.
* :func:`bootstrap_mean_diff` — the mean difference with a percentile bootstrap 95% interval
  over pairs (``scipy.stats.bootstrap``, seeded, so reports are reproducible).
* :func:`mcnemar` — McNemar's test on pooled per-utterance test predictions: only the
  discordant utterances count (b = A right & B wrong, c = A wrong & B right). For
  b + c < 25 the exact two-sided binomial test (``scipy.stats.binomtest(b, b + c, 0.5)``);
  otherwise the chi-square statistic with Edwards' continuity correction
  ``(|b - c| - 1)^2 / (b + c)`` on 1 degree of freedom. Pooling over runs treats utterances
  of different runs as independent, which they are not quite (same utterance, several
  seeds): read it as a descriptive check beside the paired run-level tests.
* :func:`holm` — Holm's step-down adjustment across the modality sets tested.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats as sps

#: Discordant-pair count below which McNemar uses the exact binomial test.
MCNEMAR_EXACT_BELOW = 25


@dataclass
class TestResult:
    """One test's outcome.

    Attributes:
        test: name of the test.
        statistic: test statistic (``nan`` when undefined).
        p_value: two-sided p-value (``nan`` when undefined).
        n: number of pairs (or discordant utterances for McNemar) used.
        note: plain-words caveat ('' when none).
        details: extra numbers (zeros dropped, b and c, method, ...).
    """

    test: str
    statistic: float
    p_value: float
    n: int
    note: str = ""
    details: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN -> None)."""
        d = asdict(self)
        for k in ("statistic", "p_value"):
            if isinstance(d[k], float) and math.isnan(d[k]):
                d[k] = None
        return d


#: Decimals paired differences are rounded to, so that equal differences compare equal.
DIFF_DECIMALS = 12


def _paired(x: np.ndarray | list[float], y: np.ndarray | list[float]) -> np.ndarray:
    """``x - y`` rounded to :data:`DIFF_DECIMALS`.

    Why rounded: accuracies are ratios k/N, and 0.7 - 0.6 != 0.4 - 0.3 in binary floating
    point; unrounded, the rank tests would miss those ties (and zeros) and SciPy would pick
    the exact no-ties distribution.
    """
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired samples must be 1-D and of equal length, got {a.shape} and {b.shape}")
    return np.round(a - b, DIFF_DECIMALS)


def min_wilcoxon_p(n_nonzero: int) -> float:
    """Smallest two-sided p-value the exact signed-rank test can give with ``n_nonzero`` pairs."""
    return min(1.0, 2.0 / 2.0**n_nonzero) if n_nonzero > 0 else 1.0


def wilcoxon_paired(x: np.ndarray | list[float], y: np.ndarray | list[float]) -> TestResult:
    """Wilcoxon signed-rank test on ``x - y`` (``zero_method="wilcox"``, ``method="auto"``).

    Args:
        x, y: paired scores, shape [n] (e.g. self and cross accuracy per (fold, seed)).

    Returns:
        :class:`TestResult`; ``details`` holds ``n_zero`` (pairs dropped), ``ties`` and the
        smallest achievable p (``min_p``). With no non-zero difference, p = 1 and a note.
    """
    d = _paired(x, y)
    nz = d[d != 0]
    n_zero = int(d.size - nz.size)
    ties = bool(np.unique(np.abs(nz)).size < nz.size)
    details = {"zero_method": "wilcox", "n_zero": n_zero, "ties": ties, "min_p": min_wilcoxon_p(nz.size)}
    if nz.size == 0:
        return TestResult("wilcoxon", float("nan"), 1.0, 0, "all paired differences are zero: no evidence "
                          "of a difference", details)
    res = sps.wilcoxon(d, zero_method="wilcox", method="auto")
    note = ""
    if nz.size < 6:
        note = (f"only {nz.size} non-zero paired differences: the smallest two-sided p-value the signed-rank "
                f"test can give is {min_wilcoxon_p(nz.size):.4g}, so it cannot reach p < 0.05; "
                "run more folds or seeds")
    if n_zero:
        note = (note + "; " if note else "") + f"{n_zero} zero difference(s) dropped"
    return TestResult("wilcoxon", float(res.statistic), float(res.pvalue), int(nz.size), note, details)


def paired_t(x: np.ndarray | list[float], y: np.ndarray | list[float]) -> TestResult:
    """Paired t-test on ``x - y`` (``scipy.stats.ttest_rel``); undefined for n < 2 or constant d."""
    d = _paired(x, y)
    if d.size < 2:
        return TestResult("paired_t", float("nan"), float("nan"), int(d.size), "fewer than 2 pairs")
    if np.all(d == 0):
        return TestResult("paired_t", float("nan"), 1.0, int(d.size), "all paired differences are zero")
    if np.all(d == d[0]):
        return TestResult("paired_t", float("nan"), float("nan"), int(d.size),
                          "every paired difference is identical and non-zero: the t statistic is undefined "
                          "(zero variance)")
    res = sps.ttest_rel(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
    return TestResult("paired_t", float(res.statistic), float(res.pvalue), int(d.size), "",
                      {"df": int(d.size - 1)})


@dataclass
class BootstrapCI:
    """Mean of ``x - y`` and its percentile bootstrap interval."""

    mean_diff: float
    low: float
    high: float
    level: float
    n: int
    n_boot: int
    seed: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def bootstrap_mean_diff(
    x: np.ndarray | list[float],
    y: np.ndarray | list[float],
    n_boot: int = 10_000,
    level: float = 0.95,
    seed: int = 0,
) -> BootstrapCI:
    """Mean paired difference with a percentile bootstrap CI (pairs resampled with replacement).

    Args:
        x, y: paired scores [n].
        n_boot: bootstrap resamples.
        level: coverage of the interval (0.95 -> 2.5th and 97.5th percentiles).
        seed: seed of the NumPy generator (same inputs + seed -> same interval).
    """
    d = _paired(x, y)
    if d.size == 0:
        raise ValueError("no pairs to bootstrap")
    if d.size == 1:  # every resample is the one pair (SciPy refuses a single observation)
        return BootstrapCI(float(d[0]), float(d[0]), float(d[0]), level, 1, n_boot, seed)
    res = sps.bootstrap((d,), np.mean, n_resamples=n_boot, confidence_level=level, method="percentile",
                        rng=np.random.default_rng(seed))
    ci = res.confidence_interval
    return BootstrapCI(float(d.mean()), float(ci.low), float(ci.high), level, int(d.size), n_boot, seed)


def mcnemar(y_true: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray) -> TestResult:
    """McNemar's test of "A and B have the same error rate" on the same utterances.

    Args:
        y_true, pred_a, pred_b: int [N] (pooled over paired runs).

    Returns:
        :class:`TestResult` with ``details`` ``b`` (A right, B wrong), ``c`` (A wrong, B right)
        and ``method`` (``exact-binomial`` for b + c < 25, else ``chi2-continuity``).
    """
    y, a, b_ = (np.asarray(v) for v in (y_true, pred_a, pred_b))
    if not (y.shape == a.shape == b_.shape):
        raise ValueError(f"y_true, pred_a, pred_b must have equal shapes: {y.shape}, {a.shape}, {b_.shape}")
    ra, rb = a == y, b_ == y
    b = int(np.sum(ra & ~rb))
    c = int(np.sum(~ra & rb))
    n = b + c
    if n == 0:
        return TestResult("mcnemar", float("nan"), 1.0, 0, "no discordant utterances: the models agree on "
                          "every correct/incorrect call", {"b": 0, "c": 0, "method": "none"})
    if n < MCNEMAR_EXACT_BELOW:
        p = float(sps.binomtest(b, n, 0.5, alternative="two-sided").pvalue)
        return TestResult("mcnemar", float(min(b, c)), p, n, "", {"b": b, "c": c, "method": "exact-binomial"})
    stat = (abs(b - c) - 1.0) ** 2 / n
    p = float(sps.chi2.sf(stat, df=1))
    return TestResult("mcnemar", float(stat), p, n, "", {"b": b, "c": c, "method": "chi2-continuity"})


def holm(p_values: list[float] | np.ndarray) -> np.ndarray:
    """Holm step-down adjusted p-values (same order as given; NaN stays NaN and is not counted).

    Why Holm: the report tests self vs cross on up to four modality sets; Holm controls the
    family-wise error at alpha without Bonferroni's full price, and needs no independence.
    """
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full_like(p, np.nan)
    ok = ~np.isnan(p)
    q = p[ok]
    m = q.size
    if m == 0:
        return out
    order = np.argsort(q, kind="stable")
    adj = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * q[i]))
        adj[i] = running
    out[ok] = adj
    return out
