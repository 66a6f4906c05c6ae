"""Serving trained runs: :mod:`.predict` (new clips), :mod:`.explain` (attention maps) and
:mod:`.compat` (the authors' checkpoints as run folders)."""
