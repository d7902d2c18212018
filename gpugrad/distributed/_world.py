"""Joining an MPI job, and what each process knows about it.

``init()`` imports mpi4py only when the process was started by an MPI launcher (or mpi4py was
already imported by the program); otherwise the process is a world of one and nothing about MPI
is needed. Each rank then picks its GPU (local rank modulo the GPUs it sees) when gpugrad's
default device is CUDA, and installs an exception hook that aborts the whole job, so that one
failing rank never leaves the others waiting in a collective forever.
"""

from __future__ import annotations

import atexit
import os
import sys
import time

from .. import backend

# Variables that MPI launchers put into the environment of the processes they start:
# Open MPI / PRRTE, MPICH's Hydra (PMI), PMIx-based launchers (srun --mpi=pmix), Intel MPI.
_LAUNCHER_VARS = (
    "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMI_RANK", "PMIX_RANK", "PMI_FD", "HYDI_CONTROL_FD",
    "MPI_LOCALNRANKS",
)
_SIZE_VARS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE")

# GPUGRAD_DIST_CHECK: 0 no cross-rank checks; 1 (default) each explicit collective and each new
# gradient layout of a DistributedOptimizer is checked; 2 also every optimizer step.
_CHECK_VAR = "GPUGRAD_DIST_CHECK"
# GPUGRAD_DIST_EXIT_TIMEOUT: seconds a rank that reached the end of its program waits for the others
# before it aborts the job (a rank that exits early would otherwise leave them blocked forever).
_EXIT_VAR = "GPUGRAD_DIST_EXIT_TIMEOUT"
_EXIT_DEFAULT = 300.0
_ABORT_GRACE_S = 0.5  # how long an aborting rank waits for the launcher to forward its output


class World:
    """The job as this process sees it. ``comm`` is mpi4py's ``COMM_WORLD`` (None in a world of
    one without MPI); ``nccl`` holds the NCCL communicator once a CUDA collective needed one."""

    def __init__(self):
        self.MPI = None
        self.comm = None
        self.rank = 0
        self.size = 1
        self.local_rank = 0
        self.local_size = 1
        self.check = _check_level()
        self.nccl = None  # (device index, communicator)

    @property
    def parallel(self) -> bool:
        return self.size > 1


_world: World | None = None


def _check_level() -> int:
    raw = os.environ.get(_CHECK_VAR, "1").strip() or "1"
    if raw not in ("0", "1", "2"):
        raise ValueError(f"{_CHECK_VAR} must be 0, 1 or 2, got {raw!r}")
    return int(raw)


def launched() -> bool:
    """True when an MPI launcher (mpiexec, mpirun, srun) started this process."""
    return any(v in os.environ for v in _LAUNCHER_VARS)


def _import_mpi():
    """mpi4py's MPI module when this process is part of an MPI job (or the program already
    imported mpi4py), else None."""
    started = launched()
    if not started and "mpi4py.MPI" not in sys.modules:
        return None
    try:
        from mpi4py import MPI  # noqa: PLC0415 - optional dependency, imported on demand
    except ImportError as e:
        raise RuntimeError(
            "this process was started by an MPI launcher, but mpi4py is not installed; "
            "install it with an MPI, e.g. pip install mpi4py mpich (or pip install 'gpugrad[distributed]')"
        ) from e
    return MPI


def init() -> World:
    """Join the MPI job this process belongs to (a world of one without a launcher). Calling it
    again does nothing. Returns the :class:`World`."""
    global _world
    if _world is not None:
        return _world
    w = World()
    MPI = _import_mpi()
    if MPI is not None:
        comm = MPI.COMM_WORLD
        w.MPI, w.comm = MPI, comm
        w.rank, w.size = comm.Get_rank(), comm.Get_size()
        _check_launcher_size(w.size)
        local = comm.Split_type(MPI.COMM_TYPE_SHARED, key=w.rank)
        w.local_rank, w.local_size = local.Get_rank(), local.Get_size()
        local.Free()
        if w.size > 1:
            _install_abort_hook(w)
            atexit.register(_wait_for_all_at_exit, w, _exit_timeout())
    _pick_device(w)
    _world = w
    return w


def world() -> World:
    """The joined world, joining it first if needed."""
    return _world if _world is not None else init()


def current() -> World | None:
    """The world if ``init()`` was called, else None (never joins)."""
    return _world


def _check_launcher_size(size: int) -> None:
    # mpi4py built for one MPI and started by another MPI's launcher sees a world of one in every
    # process: N copies of the same single-process run, a silent waste. Say so instead.
    for var in _SIZE_VARS:
        want = os.environ.get(var)
        if want and want.isdigit() and int(want) != size:
            raise RuntimeError(
                f"the launcher started {want} processes ({var}={want}) but MPI reports a world of {size}: "
                "mpiexec and mpi4py come from different MPI installations; launch with the mpiexec of "
                "the MPI that mpi4py uses (e.g. the one in the same virtual environment)"
            )


def _abort(w: World) -> None:
    """Flush this rank's output, give the launcher a moment to forward it, then end the whole job.

    MPI_Abort makes the launcher kill every process at once: output still in a pipe to it is lost,
    so without the pause the line naming the failed rank sometimes never reaches the terminal."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        time.sleep(_ABORT_GRACE_S)
    finally:
        w.comm.Abort(1)


def _install_abort_hook(w: World) -> None:
    """An uncaught exception on any rank prints its traceback, names the rank, and aborts the
    whole job (MPI_Abort), instead of leaving the other ranks blocked in their next collective."""
    previous = sys.excepthook

    def abort_on_exception(etype, value, tb):
        try:
            previous(etype, value, tb)
        finally:
            try:
                sys.stderr.write(
                    f"gpugrad.distributed: rank {w.rank} of {w.size} failed with {etype.__name__}: {value}; "
                    "aborting the job\n"
                )
            finally:
                _abort(w)

    sys.excepthook = abort_on_exception


def _exit_timeout() -> float:
    raw = os.environ.get(_EXIT_VAR, "").strip()
    try:
        value = float(raw) if raw else _EXIT_DEFAULT
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ValueError(f"{_EXIT_VAR} must be a positive number of seconds, got {raw!r}")
    return value


def _wait_for_all_at_exit(w: World, timeout: float) -> None:
    """At exit, wait (a non-blocking barrier polled until ``timeout``) until every rank reaches its
    end too. A rank that ends early - ``sys.exit``, a ``return`` on one rank only - would leave the
    others blocked in their next collective and MPI_Finalize waiting for them: abort instead."""
    try:
        req = w.comm.Ibarrier()
        deadline = time.monotonic() + timeout
        while not req.Test():
            if time.monotonic() > deadline:
                sys.stderr.write(
                    f"gpugrad.distributed: rank {w.rank} of {w.size} reached the end of its program, but not "
                    f"every rank did within {timeout:g} s (a rank ended early or is stuck in a collective); "
                    f"aborting the job ({_EXIT_VAR} sets the wait)\n"
                )
                _abort(w)
            time.sleep(0.005)
    except Exception:  # noqa: BLE001 - MPI already finalized or torn down: nothing left to wait for
        pass


def _pick_device(w: World) -> None:
    """One GPU per rank: local rank modulo the visible GPUs, unless GPUGRAD_DEVICE names one."""
    if os.environ.get("GPUGRAD_DEVICE") or not backend.default_device().startswith("cuda"):
        return
    n = backend.cuda_device_count()
    idx = w.local_rank % n
    backend.cupy().cuda.Device(idx).use()
    backend.set_default_device(f"cuda:{idx}")


def rank() -> int:
    """This process's rank in the job (0 in a world of one)."""
    return world().rank


def world_size() -> int:
    """The number of processes in the job (1 without a launcher)."""
    return world().size


def local_rank() -> int:
    """This process's rank among the job's processes on the same machine."""
    return world().local_rank


def local_size() -> int:
    """The number of the job's processes on this machine."""
    return world().local_size


def is_initialized() -> bool:
    """True once ``init()`` (or any collective) has joined the job."""
    return _world is not None
