"""Collectives on CUDA arrays through NCCL, via CuPy's binding (``cupy.cuda.nccl``).

One communicator per process, for the GPU the rank uses, made on the first CUDA collective:
rank 0 asks NCCL for a unique id, MPI broadcasts its 128 bytes, and every rank joins with
``NcclCommunicator(world size, id, rank)`` on its device (ChainerMN and Horovod bootstrap NCCL
the same way). The calls are queued on CuPy's current stream, so later work on that stream sees
their results without a host synchronization.
"""

from __future__ import annotations

import numpy as np

from .. import backend

_ID_BYTES = 128  # NCCL_UNIQUE_ID_BYTES


def _lib():
    cp = backend.cupy()
    if cp is None:
        raise RuntimeError("CUDA collectives need CuPy (pip install 'gpugrad[cuda12]' or 'gpugrad[cuda13]')")
    from cupy.cuda import nccl  # noqa: PLC0415 - CuPy is optional

    if not getattr(nccl, "available", True):
        raise RuntimeError(
            "CUDA collectives need the NCCL library, which CuPy could not load; install the NCCL wheel "
            "for your CUDA, e.g. pip install nvidia-nccl-cu12 (or nvidia-nccl-cu13)"
        )
    return nccl


def _nccl_dtype(nccl, dt: np.dtype):
    table = {
        "e": nccl.NCCL_FLOAT16, "f": nccl.NCCL_FLOAT32, "d": nccl.NCCL_FLOAT64,
        "b": nccl.NCCL_INT8, "B": nccl.NCCL_UINT8, "i": nccl.NCCL_INT32, "I": nccl.NCCL_UINT32,
        "l": nccl.NCCL_INT64, "q": nccl.NCCL_INT64, "L": nccl.NCCL_UINT64, "Q": nccl.NCCL_UINT64,
    }
    code = table.get(dt.char)
    if code is None:
        raise TypeError(f"NCCL has no type for dtype {dt}; cast the tensor (e.g. to float32) first")
    return code


def _unique_id_bytes(nccl) -> bytes:
    uid = nccl.get_unique_id()  # bytes in recent CuPy, a tuple of signed chars in older ones
    if isinstance(uid, bytes):
        return uid
    return bytes(int(c) & 0xFF for c in uid)


def _communicator(nccl, n: int, uid: bytes, rank: int):
    try:
        return nccl.NcclCommunicator(n, uid, rank)
    except TypeError:  # older CuPy wants the id as a tuple of signed chars
        return nccl.NcclCommunicator(n, tuple(np.frombuffer(uid, np.int8).tolist()), rank)


def communicator(w, device: int):
    """This rank's NCCL communicator, made for ``device`` on first use (a collective call)."""
    if w.nccl is not None:
        have, comm = w.nccl
        if have != device:
            raise ValueError(
                f"rank {w.rank} runs its CUDA collectives on cuda:{have}, but this tensor is on cuda:{device}; "
                f"move it with .to('cuda:{have}')"
            )
        return comm
    nccl = _lib()
    buf = np.zeros(_ID_BYTES, np.uint8)
    if w.rank == 0:
        uid = _unique_id_bytes(nccl)
        buf[: len(uid)] = np.frombuffer(uid, np.uint8)
    if w.size > 1:
        w.comm.Bcast(buf, root=0)
    cp = backend.cupy()
    with cp.cuda.Device(device):
        comm = _communicator(nccl, w.size, buf.tobytes(), w.rank)
    w.nccl = (device, comm)
    return comm


def _call(w, buf, fn_name: str, *args) -> None:
    """Run ``comm.<fn_name>(ptr, ptr, count, dtype, *args, stream)`` on ``buf`` (in place)."""
    nccl = _lib()
    cp = backend.cupy()
    dev = buf.device.id
    comm = communicator(w, dev)
    with cp.cuda.Device(dev):
        stream = cp.cuda.get_current_stream().ptr
        getattr(comm, fn_name)(buf.data.ptr, buf.data.ptr, buf.size, _nccl_dtype(nccl, buf.dtype), *args, stream)


def all_reduce_(w, buf, op: str) -> None:
    """Reduce the contiguous CuPy array ``buf`` over all ranks in place (op: sum, max or min)."""
    nccl = _lib()
    if buf.dtype.kind == "b":
        raise TypeError("NCCL cannot reduce bool arrays; cast to uint8 first")
    code = {"sum": nccl.NCCL_SUM, "max": nccl.NCCL_MAX, "min": nccl.NCCL_MIN}[op]
    _call(w, buf, "allReduce", code)


def bcast_(w, buf, root: int) -> None:
    """Overwrite the contiguous CuPy array ``buf`` with rank ``root``'s, in place (as bytes, so
    every dtype travels)."""
    _call(w, buf.reshape(-1).view(np.uint8), "broadcast", root)


def all_gather(w, src, rows: list[int]):
    """Every rank's ``src`` (first dimensions ``rows``) concatenated along axis 0. NCCL gathers
    equal counts, so each rank's rows are padded to the largest and the padding dropped after."""
    cp = backend.cupy()
    most = max(rows)
    tail = src.shape[1:]
    with cp.cuda.Device(src.device.id):
        padded = cp.zeros((most, *tail), src.dtype)
        padded[: src.shape[0]] = src
        out = cp.empty((len(rows), most, *tail), src.dtype)
        nccl = _lib()
        comm = communicator(w, src.device.id)
        send = padded.reshape(-1).view(np.uint8)
        comm.allGather(send.data.ptr, out.data.ptr, send.size, nccl.NCCL_UINT8, cp.cuda.get_current_stream().ptr)
        return cp.concatenate([out[r, :n] for r, n in enumerate(rows)], axis=0)
