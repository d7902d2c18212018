"""Data-parallel training across processes: MPI (through mpi4py) for host arrays, NCCL (through
CuPy, bootstrapped over MPI) for CUDA arrays, one GPU per rank chosen by its local rank.

    mpiexec -n 4 python train.py          # or: python -m gpugrad.distributed -n 4 train.py

    import gpugrad as gg
    gg.distributed.init()                 # join the job (a world of one without a launcher)
    opt = gg.distributed.DistributedOptimizer(gg.optimizers.Adam(1e-3))
    model.compile(optimizer=opt, loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=256)       # each rank trains on its share of every batch

mpi4py is imported only when a launcher started the process; without one everything works as a
world of one and no MPI is needed. Environment: ``GPUGRAD_DIST_CHECK=0|1|2`` sets how much the
ranks' calls are compared before each collective (see :func:`all_reduce`).
"""

from ._collectives import (
    all_gather,
    all_reduce,
    barrier,
    broadcast,
    broadcast_optimizer_state,
    broadcast_variables,
)
from ._world import World, init, is_initialized, launched, local_rank, local_size, rank, world_size
from .optimizer import DistributedOptimizer

__all__ = [
    "DistributedOptimizer",
    "World",
    "all_gather",
    "all_reduce",
    "barrier",
    "broadcast",
    "broadcast_optimizer_state",
    "broadcast_variables",
    "init",
    "is_initialized",
    "launched",
    "local_rank",
    "local_size",
    "rank",
    "world_size",
]
