"""Thread limits for torch and OpenMP (scikit-learn) while fitting or predicting.

These models are small: on a shared 2-core machine one intra-op thread is
several times faster than two, because every tiny op pays a thread barrier
and contended cores make that barrier slow.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from threadpoolctl import threadpool_limits


@contextmanager
def limit_threads(n: int) -> Iterator[None]:
    """Run with ``n`` torch intra-op and OpenMP/BLAS threads, restoring the caller's settings."""
    previous = torch.get_num_threads()
    torch.set_num_threads(max(int(n), 1))
    try:
        with threadpool_limits(limits=max(int(n), 1)):
            yield
    finally:
        torch.set_num_threads(previous)
