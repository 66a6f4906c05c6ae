"""Shared pytest fixtures (keep this file small: fixtures only)."""

from __future__ import annotations

import pytest

from iemocap_tree import IemocapTree, build_iemocap_tree


@pytest.fixture(scope="session")
def iemocap_tree(tmp_path_factory: pytest.TempPathFactory) -> IemocapTree:
    """A miniature IEMOCAP release (3 sessions) + GloVe file, built once per test session.

    Read-only for tests: copy it before changing anything. ``tree.speech`` says whether the
    wavs are espeak-ng speech or generated waveforms (espeak-ng absent).
    """
    return build_iemocap_tree(tmp_path_factory.mktemp("iemocap"))
