"""What ``Sequential.fit`` does differently inside a job of several processes.

``batch_size`` stays the global batch: every rank takes rows ``rank::world_size`` of each batch of
one shared permutation, and scales its mean loss by ``world_size * its rows / batch rows`` so that
the averaged gradient is the gradient of the mean over the whole batch, whatever the split. The
logged loss and metrics are sample-weighted averages over the ranks.
"""

from __future__ import annotations

import numpy as np

from ._collectives import allreduce_, bcast_, broadcast_variables
from ._world import World, current
from .optimizer import DistributedOptimizer


def job() -> World | None:
    """The world when ``init()`` joined a job of two or more processes, else None."""
    w = current()
    return w if w is not None and w.size > 1 else None


def shared_permutation(w: World, perm) -> np.ndarray:
    """Rank 0's epoch permutation on every rank (host int64)."""
    perm = np.ascontiguousarray(perm, dtype=np.int64)
    bcast_(w, perm, 0)
    return perm


def shard_batch(w: World, xb, yb):
    """This rank's rows of a global batch, and the factor for its mean loss."""
    m = xb.shape[0]
    xs, ys = xb[w.rank :: w.size], yb[w.rank :: w.size]
    return xs, ys, w.size * xs.shape[0] / m


def average_logs(w: World, logs: dict, seen: int) -> dict:
    """Each value averaged over the ranks, weighted by the samples each rank saw."""
    keys = list(logs)
    vec = np.zeros(len(keys) + 1, np.float64)
    vec[0] = seen
    if seen:
        vec[1:] = [float(logs[k]) * seen for k in keys]
    allreduce_(w, vec, "sum")
    return {k: float(vec[i + 1] / vec[0]) if vec[0] else float("nan") for i, k in enumerate(keys)}


__all__ = ["DistributedOptimizer", "average_logs", "broadcast_variables", "job", "shard_batch", "shared_permutation"]
