"""``selfcross.models.kernels.threads``: every item once, errors surface, the thread setting survives."""

from __future__ import annotations

import os
import threading

import pytest
import torch

from selfcross.models.kernels.threads import one_intraop_thread, run_split


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_run_split_calls_every_item_once(threads):
    seen: list[int] = []
    lock = threading.Lock()
    inner_threads: set[int] = set()

    def item(i: int) -> None:
        inner_threads.add(torch.get_num_threads())
        with lock:
            seen.append(i)

    before = torch.get_num_threads()
    run_split(item, 7, threads=threads)
    assert sorted(seen) == list(range(7))
    assert inner_threads == {1}  # every item ran its ops on one intra-op thread
    assert torch.get_num_threads() == before


def test_run_split_raises_errors_from_any_thread_and_restores():
    before = torch.get_num_threads()

    def item(i: int) -> None:
        if i == 3:
            raise ValueError("item 3 failed")

    with pytest.raises(ValueError, match="item 3"):
        run_split(item, 6, threads=2)
    assert torch.get_num_threads() == before


def test_one_intraop_thread_restores():
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with one_intraop_thread():
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(old)


def test_run_split_keeps_inference_mode():
    """Tensors made under inference_mode can be written by the pool's threads too."""
    with torch.inference_mode():
        out = torch.zeros(6)

        def item(i: int) -> None:
            out[i : i + 1].add_(i)

        run_split(item, 6, threads=2)
    assert out.tolist() == [0, 1, 2, 3, 4, 5]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.timeout(300)
def test_run_split_works_in_a_forked_child():
    """A child forked after the pool exists gets a pool of its own (no hang)."""
    run_split(lambda i: None, 4, threads=2)  # make sure the parent's pool exists
    pid = os.fork()
    if pid == 0:  # child: exit 0 only if the split completes
        out = torch.zeros(4)

        def item(i: int) -> None:
            out[i] = i

        run_split(item, 4, threads=2)
        os._exit(0 if out.tolist() == [0, 1, 2, 3] else 1)
    _, status = os.waitpid(pid, 0)  # a hang is failed by the timeout marker, not by a clock here
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
