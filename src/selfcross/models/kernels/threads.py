"""How our CPU kernels use the cores: Python threads over blocks, one intra-op thread each.

Why: a kernel that walks an attention map block by block issues thousands of mid-sized ops
per training step. With torch's default intra-op threading every op is an OpenMP fork and
join, and a join waits for the slowest thread; on cores shared with another busy process
that thread is often descheduled, and each op then takes a scheduler tick
(docs/performance.md). Splitting the *blocks* across Python threads (torch releases the GIL
inside its ops), each running its ops on one intra-op thread, keeps the cores busy and costs
one join per kernel call instead of one per op.

:func:`run_split` is that loop; :func:`one_intraop_thread` is the context for work that
should not fork at all.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import torch

_POOL: ThreadPoolExecutor | None = None
_POOL_SIZE = 0
_POOL_PID = 0
_POOL_LOCK = threading.Lock()


@contextmanager
def one_intraop_thread() -> Iterator[None]:
    """Run the enclosed torch ops on one intra-op thread, then restore the caller's setting."""
    n = torch.get_num_threads()
    if n == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def _pool(workers: int) -> ThreadPoolExecutor:
    """A process-wide pool of ``workers`` threads (grown when more are asked for).

    A forked child inherits the pool object but none of its threads (work submitted there
    would never run), so a pool made by another process id is replaced, not reused.
    """
    global _POOL, _POOL_SIZE, _POOL_PID
    with _POOL_LOCK:
        forked = _POOL is not None and _POOL_PID != os.getpid()
        if _POOL is None or forked or _POOL_SIZE < workers:
            if _POOL is not None and not forked:
                _POOL.shutdown(wait=True)
            _POOL = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="selfcross-kernel")
            _POOL_SIZE, _POOL_PID = workers, os.getpid()
        return _POOL


def _single_threaded_worker() -> None:
    """Make this (pool) thread run its ops on one intra-op thread, for good.

    Not undone afterwards: pool threads only ever run kernel blocks. (``set_num_threads``
    also touches process-wide state, MKL's thread count; :func:`run_split`'s caller restores
    that when the whole split is done.)
    """
    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)


def _run_items(fn: Callable[[int], None], items: range, inference: bool) -> None:
    """Worker side: ``fn`` on every item, without autograd, on one intra-op thread.

    ``inference``: the caller's inference mode, which is thread-local like grad mode (tensors
    made under ``torch.inference_mode`` may only be written to in inference mode).
    """
    _single_threaded_worker()
    with torch.inference_mode(inference), torch.no_grad():
        for i in items:
            fn(i)


def run_split(fn: Callable[[int], None], n_items: int, threads: int | None = None) -> None:
    """Call ``fn(i)`` for ``i in range(n_items)``, spread over ``threads`` Python threads.

    ``threads`` defaults to ``torch.get_num_threads()`` (the caller's intra-op setting, so
    ``torch.set_num_threads(1)`` still means one core). The calling thread takes a share
    itself; thread ``t`` gets items ``t, t + threads, ...``. Every ``fn(i)`` must write to
    memory no other item writes. Exceptions from any item are raised here. The caller's
    thread setting is restored once every item is done.
    """
    threads = torch.get_num_threads() if threads is None else threads
    threads = max(1, min(threads, n_items, os.cpu_count() or 1))
    with one_intraop_thread():
        if threads == 1:
            for i in range(n_items):
                fn(i)
            return
        pool = _pool(threads - 1)
        inference = torch.is_inference_mode_enabled()
        futures = [
            pool.submit(_run_items, fn, range(t, n_items, threads), inference) for t in range(1, threads)
        ]
        try:
            with torch.no_grad():
                for i in range(0, n_items, threads):
                    fn(i)
        finally:
            for f in futures:
                f.result()
