"""Shared pytest fixtures (keep this file small: fixtures only)."""

from __future__ import annotations

import os

import pytest
import torch

# No test may reach the Hugging Face hub: models are tiny local folders (tests/hf_tiny.py).
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

from pathlib import Path

from iemocap_tree import IemocapTree, build_iemocap_tree
from tiny_runs import write_tiny_fold


@pytest.fixture(scope="session")
def iemocap_tree(tmp_path_factory: pytest.TempPathFactory) -> IemocapTree:
    """A miniature IEMOCAP release (3 sessions) + GloVe file, built once per test session.

    Read-only for tests: copy it before changing anything. ``tree.speech`` says whether the
    wavs are espeak-ng speech or generated waveforms (espeak-ng absent).
    """
    return build_iemocap_tree(tmp_path_factory.mktemp("iemocap"))


@pytest.fixture(autouse=True)
def _one_torch_thread() -> object:
    """Every test runs torch on one thread (restored afterwards).

    Why: the tests use tiny tensors, and on a shared 2-core CI machine two OpenMP threads
    made a small forward pass ~50x slower than one. Code under test that sets its own
    thread count (``train_run`` with ``num_threads``) still does so.
    """
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def tiny_fold(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-class hand-written fold (audio, video, text ids), built once per test module."""
    return write_tiny_fold(tmp_path_factory.mktemp("tiny"))
