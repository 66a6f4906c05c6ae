"""A run's training budget in epochs, resolved from epoch counts and optimizer-update counts.

Why updates: a budget counted in epochs ties a recipe to the size of the corpus it was tuned
on. Thirty epochs are ~4,700 updates on a 10,000-utterance corpus (batch 64) but ~300 on a
300-clip one (batch 32), where the model has barely left its warm-up when early stopping
ends the run. Each part of the budget is therefore the *larger* of an epoch count and an
update count converted to epochs with the training split's size:

* the epoch cap: ``max(max_epochs, ceil(max_updates / steps))``; ``max_epochs = 0`` is no
  cap at all (the update count is then unused);
* the warm-up: ``max(warmup_epochs, ceil(warmup_updates / steps))``;
* the patience: ``max(patience, ceil(patience_updates / steps))``;
* early stopping may not end a run before ``ceil(min_updates / steps)`` epochs.

Every update count defaults to 0, where the budget is the epoch counts alone: the ``paper``
and ``improved`` presets train exactly as before.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from selfcross.config import TrainConfig


@dataclass(frozen=True)
class Budget:
    """The epoch counts one run trains with (see the module docstring for the rule).

    Attributes:
        steps_per_epoch: optimizer updates per epoch (batches of the training split).
        max_epochs: the epoch cap; 0 = none.
        warmup_epochs: epochs of linear warm-up (``cosine`` schedule).
        patience: epochs without a better dev selection value before stopping.
        min_epochs: early stopping may not end the run before this epoch.
    """

    steps_per_epoch: int
    max_epochs: int
    warmup_epochs: int
    patience: int
    min_epochs: int

    def may_stop(self, epoch: int, stale: int) -> bool:
        """Whether early stopping ends the run after ``epoch`` (1-based) with ``stale``
        epochs since the best one."""
        return stale >= self.patience and epoch >= self.min_epochs


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Optimizer updates per epoch: the last, partial batch is an update too."""
    return max(1, math.ceil(n_train / batch_size))


def _epochs(updates: int, steps: int) -> int:
    return math.ceil(updates / steps) if updates > 0 else 0


def resolve_budget(tc: TrainConfig, n_train: int) -> Budget:
    """The :class:`Budget` of a run with training config ``tc`` on ``n_train`` utterances."""
    steps = steps_per_epoch(n_train, tc.batch_size)
    cap = max(tc.max_epochs, _epochs(tc.max_updates, steps)) if tc.max_epochs else 0
    return Budget(
        steps_per_epoch=steps,
        max_epochs=cap,
        warmup_epochs=max(tc.warmup_epochs, _epochs(tc.warmup_updates, steps)),
        patience=max(tc.patience, _epochs(tc.patience_updates, steps)),
        min_epochs=_epochs(tc.min_updates, steps),
    )
