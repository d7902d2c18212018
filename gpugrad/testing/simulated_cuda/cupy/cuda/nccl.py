"""Simulated ``cupy.cuda.nccl``: NCCL's collectives over MPI (mpi4py's world), on device memory
given by address as CuPy's binding takes it. A world of one needs no MPI."""

from __future__ import annotations

import ctypes as _ctypes
import os as _os

import numpy as _np

from ... import _device as _D

available = True

NCCL_INT8 = NCCL_CHAR = 0
NCCL_UINT8 = 1
NCCL_INT32 = NCCL_INT = 2
NCCL_UINT32 = 3
NCCL_INT64 = 4
NCCL_UINT64 = 5
NCCL_FLOAT16 = NCCL_HALF = 6
NCCL_FLOAT32 = NCCL_FLOAT = 7
NCCL_FLOAT64 = NCCL_DOUBLE = 8

NCCL_SUM = 0
NCCL_PROD = 1
NCCL_MAX = 2
NCCL_MIN = 3

_DTYPES = {
    0: _np.int8,
    1: _np.uint8,
    2: _np.int32,
    3: _np.uint32,
    4: _np.int64,
    5: _np.uint64,
    6: _np.float16,
    7: _np.float32,
    8: _np.float64,
}


class NcclError(RuntimeError):
    def __init__(self, status: int, msg: str) -> None:
        self.status = status
        super().__init__(msg)


def get_version() -> int:
    return 22600


def get_unique_id() -> bytes:
    return _os.urandom(128)


def _view(ptr: int, count: int, datatype: int) -> _np.ndarray:
    dt = _np.dtype(_DTYPES[datatype])
    if count == 0:
        return _np.empty(0, dt)
    raw = (_ctypes.c_char * (count * dt.itemsize)).from_address(int(ptr))
    return _np.frombuffer(raw, dtype=dt)


def _mpi_op(op: int):
    from mpi4py import MPI  # noqa: PLC0415

    return {NCCL_SUM: MPI.SUM, NCCL_PROD: MPI.PROD, NCCL_MAX: MPI.MAX, NCCL_MIN: MPI.MIN}[op]


class NcclCommunicator:
    """``NcclCommunicator(ndev, commId, rank)``: the ranks of a world of ``ndev`` processes (MPI's
    world when ``ndev > 1``), each on its current device."""

    def __init__(self, ndev: int, commId, rank: int) -> None:  # noqa: N803 - CuPy's names
        if not isinstance(commId, (bytes, tuple)):
            raise TypeError("commId must be the id from get_unique_id()")
        self._n, self._rank, self._dev = int(ndev), int(rank), _D.state.device
        self._comm = None
        if self._n > 1:
            from mpi4py import MPI  # noqa: PLC0415

            world = MPI.COMM_WORLD
            if world.Get_size() != self._n or world.Get_rank() != self._rank:
                raise NcclError(4, "ncclInvalidArgument: the simulated NCCL world is MPI's, rank for rank")
            self._comm = world

    def rank_id(self) -> int:
        return self._rank

    def size(self) -> int:
        return self._n

    def device_id(self) -> int:
        return self._dev

    def destroy(self) -> None:
        self._comm = None

    def abort(self) -> None:
        self._comm = None

    def _run(self, name: str, fn, nbytes_in: int, nbytes_out: int) -> None:
        _D.run(name, fn, nbytes_in, nbytes_out)

    def allReduce(self, sendbuf, recvbuf, count, datatype, op, stream) -> None:  # noqa: N802
        send, recv = _view(sendbuf, count, datatype), _view(recvbuf, count, datatype)

        def go() -> None:
            if self._comm is None:
                recv[...] = send
                return
            from mpi4py import MPI  # noqa: PLC0415

            if int(sendbuf) == int(recvbuf):
                self._comm.Allreduce(MPI.IN_PLACE, recv, op=_mpi_op(op))
            else:
                self._comm.Allreduce(send, recv, op=_mpi_op(op))

        self._run("ncclAllReduce", go, send.nbytes, recv.nbytes)

    def broadcast(self, sendbuf, recvbuf, count, datatype, root, stream) -> None:
        send, recv = _view(sendbuf, count, datatype), _view(recvbuf, count, datatype)

        def go() -> None:
            if self._rank == root and int(sendbuf) != int(recvbuf):
                recv[...] = send
            if self._comm is not None:
                self._comm.Bcast(recv, root=root)

        self._run("ncclBroadcast", go, send.nbytes, recv.nbytes)

    def bcast(self, buff, count, datatype, root, stream) -> None:
        self.broadcast(buff, buff, count, datatype, root, stream)

    def allGather(self, sendbuf, recvbuf, count, datatype, stream) -> None:  # noqa: N802
        send = _view(sendbuf, count, datatype)
        recv = _view(recvbuf, count * self._n, datatype)

        def go() -> None:
            if self._comm is None:
                recv[...] = send
            else:
                self._comm.Allgather(send.copy(), recv)

        self._run("ncclAllGather", go, send.nbytes, recv.nbytes)
