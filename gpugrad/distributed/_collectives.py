"""Collectives on arrays and Tensors: MPI (mpi4py's buffer methods, no pickling) for host arrays,
NCCL (through CuPy) for CUDA arrays.

Every rank must make the same calls in the same order with arrays of the same shape and dtype
(``all_gather`` allows the first axis to differ). Unless ``GPUGRAD_DIST_CHECK=0``, each public
collective first exchanges a small description of its call (which collective, its argument, the
device kind, dtype and shape) with one ``Allgather`` of integers, and raises the same
``ValueError`` on every rank when they differ, rather than hanging or mixing unrelated buffers.

Collectives return new values and are not recorded on a tape: they are not differentiable.
Inside a compiled step (``gg.jit``) each collective is recorded as one host call that runs again
at every replay.
"""

from __future__ import annotations

import weakref
import zlib

import numpy as np

from .. import backend
from ..tensor import Tensor, Variable
from . import _nccl
from ._world import World, world

REDUCE_OPS = ("sum", "mean", "max", "min")
_CALLS = ("all_reduce", "broadcast", "all_gather", "broadcast_variables", "gradient all-reduce")
_MAX_DIMS = 64
_HEAD = 6  # call, argument, device kind, dtype, ndim, layout checksum; then the shape


# -- cross-rank agreement ---------------------------------------------------------------------------


def _describe_row(row) -> str:
    call, arg, dev, dt, ndim, _ = (int(v) for v in row[:_HEAD])
    name = _CALLS[call] if 0 <= call < len(_CALLS) else f"call #{call}"
    if name == "all_reduce":
        name += f"(op={REDUCE_OPS[arg]!r})" if 0 <= arg < len(REDUCE_OPS) else f"(op #{arg})"
    elif name in ("broadcast", "broadcast_variables"):
        name += f"(root={arg})"
    shape = tuple(int(d) for d in row[_HEAD : _HEAD + ndim])
    where = "cuda" if dev else "cpu"
    if name.startswith(("broadcast_variables", "gradient")):
        return f"{name} of {shape[0]} variable(s), {shape[1]} element(s) of {np.dtype(chr(dt))} on {where}"
    return f"{name} on a {where} array of dtype {np.dtype(chr(dt))} and shape {shape}"


def agree(w: World, call: str, arg: int, arr, *, shape=None, layout: str = "",
          ragged_first: bool = False) -> np.ndarray | None:
    """Exchange a description of this call with every rank; raise ``ValueError`` on all of them if
    the descriptions differ (``ragged_first``: the first dimension may differ). Returns the
    gathered descriptions, or None when checks are off or the world has one process."""
    if w.size == 1 or (w.check == 0 and not ragged_first):
        return None
    shape = tuple(arr.shape) if shape is None else tuple(shape)
    if len(shape) > _MAX_DIMS:
        raise ValueError(f"{call}: arrays of more than {_MAX_DIMS} dimensions are not supported")
    mine = np.zeros(_HEAD + _MAX_DIMS, np.int64)
    mine[:_HEAD] = (_CALLS.index(call), arg, int(backend.is_cupy_array(arr)), ord(arr.dtype.char), len(shape),
                    zlib.crc32(layout.encode()))
    mine[_HEAD : _HEAD + len(shape)] = shape
    table = np.empty((w.size, mine.size), np.int64)
    w.comm.Allgather(mine, table)
    cmp = table.copy()
    if ragged_first and len(shape):
        cmp[:, _HEAD] = 0
    bad = [r for r in range(w.size) if not np.array_equal(cmp[r], cmp[0])]
    if bad:
        lines = "; ".join(f"rank {r}: {_describe_row(table[r])}" for r in [0, *bad][:6])
        extra = ", the first dimension excepted" if ragged_first else ""
        raise ValueError(
            f"{call}: the ranks' calls do not match (every rank must call the same collective with "
            f"arrays of the same dtype and shape{extra}): {lines}"
        )
    return table


# -- on contiguous arrays, in place (no checks: the callers check) -------------------------------


def _reduce_dtype(dt: np.dtype, op: str, what: str) -> np.dtype:
    """The dtype the reduction runs in (float16 goes through float32 on MPI)."""
    if dt.kind == "b":
        if op in ("sum", "mean"):
            raise TypeError(f"{what}: cannot {op} bool tensors across ranks; cast them to an integer dtype first")
        return np.dtype(np.uint8)
    if op == "mean" and dt.kind not in "fc":
        raise TypeError(f"{what}: op='mean' needs a floating dtype, got {dt}; use op='sum' (or cast)")
    if dt.kind == "c" and op in ("max", "min"):
        raise TypeError(f"{what}: op={op!r} is not defined for complex dtype {dt}")
    if dt.kind not in "biufc":
        raise TypeError(f"{what}: cannot reduce arrays of dtype {dt}")
    return dt


def allreduce_(w: World, buf, op: str = "sum") -> None:
    """Reduce the contiguous array ``buf`` over all ranks, in place (``mean`` divides the sum)."""
    if w.size > 1:
        if backend.is_cupy_array(buf):
            _nccl.all_reduce_(w, buf, "sum" if op == "mean" else op)
        else:
            mpi_op = {"sum": w.MPI.SUM, "mean": w.MPI.SUM, "max": w.MPI.MAX, "min": w.MPI.MIN}[op]
            w.comm.Allreduce(w.MPI.IN_PLACE, buf, op=mpi_op)
    if op == "mean" and w.size > 1:
        buf /= w.size


def bcast_(w: World, buf, root: int) -> None:
    """Overwrite the contiguous array ``buf`` with rank ``root``'s, in place."""
    if w.size == 1:
        return
    if backend.is_cupy_array(buf):
        _nccl.bcast_(w, buf, root)
    else:  # as raw bytes: any dtype (bool, float16, ...) travels unchanged
        w.comm.Bcast(buf.reshape(-1).view(np.uint8), root=root)


# -- public collectives ---------------------------------------------------------------------------


def _as_tensor(t, what: str) -> Tensor:
    if isinstance(t, Tensor):
        return t
    if t is None or isinstance(t, (str, bytes)):
        raise TypeError(f"{what}: expected a Tensor or an array, got {type(t).__name__}")
    return Tensor(t)


def _copy(a):
    """A fresh C-contiguous copy of ``a`` on its device."""
    return backend.get_array_module(a).array(a, copy=True, order="C")


def _check_root(w: World, root, what: str) -> int:
    if isinstance(root, bool) or not isinstance(root, (int, np.integer)) or not 0 <= root < w.size:
        raise ValueError(f"{what}: root must be a rank in [0, {w.size}), got {root!r}")
    return int(root)


def _on_arrays(fn, t: Tensor) -> Tensor:
    """``fn`` on ``t``'s array; inside a compiled step (``gg.jit``) the call is recorded to run
    again at every replay, so the collective happens at every call of the step."""
    return Tensor._make(backend.host_array(fn, t.data))


def all_reduce(t, op: str = "sum") -> Tensor:
    """The elementwise ``op`` (``'sum'``, ``'mean'``, ``'max'`` or ``'min'``) of ``t`` over all
    ranks, as a new Tensor on ``t``'s device, with ``t``'s dtype."""
    x = _as_tensor(t, "all_reduce")
    if op not in REDUCE_OPS:
        raise ValueError(f"all_reduce: op must be one of {', '.join(map(repr, REDUCE_OPS))}, got {op!r}")
    w = world()
    rdt = _reduce_dtype(x.dtype, op, "all_reduce")

    def run(a):
        agree(w, "all_reduce", REDUCE_OPS.index(op), a)
        dt = rdt
        if dt.kind == "f" and dt.itemsize < 4 and not backend.is_cupy_array(a):
            dt = np.dtype(np.float32)  # MPI has no half type everywhere: reduce in float32
        buf = _copy(a.astype(dt, copy=False))
        allreduce_(w, buf, op)
        return buf.astype(a.dtype, copy=False)

    return _on_arrays(run, x)


def broadcast(t, root: int = 0) -> Tensor:
    """Rank ``root``'s value of ``t`` on every rank (each rank passes a tensor of the same shape
    and dtype; the others' values are ignored), as a new Tensor on ``t``'s device."""
    x = _as_tensor(t, "broadcast")
    w = world()
    root = _check_root(w, root, "broadcast")

    def run(a):
        agree(w, "broadcast", root, a)
        buf = _copy(a)
        bcast_(w, buf, root)
        return buf

    return _on_arrays(run, x)


def all_gather(t) -> Tensor:
    """Every rank's ``t`` concatenated along the first axis in rank order (0-d values are
    stacked into a vector of ``world_size()``). The first dimension may differ between ranks."""
    x = _as_tensor(t, "all_gather")
    w = world()

    def run(a):
        a = a if a.ndim else a.reshape(1)
        table = agree(w, "all_gather", 0, a, ragged_first=True)
        if table is None:
            return _copy(a)
        rows = [int(n) for n in table[:, _HEAD]]
        src = _copy(a)
        if backend.is_cupy_array(a):
            return _nccl.all_gather(w, src, rows)
        out = np.empty((sum(rows), *a.shape[1:]), a.dtype)
        per_row = int(np.prod(a.shape[1:], dtype=np.int64)) * a.dtype.itemsize
        counts = [n * per_row for n in rows]  # in bytes: any dtype travels unchanged
        w.comm.Allgatherv(src.reshape(-1).view(np.uint8), [out.reshape(-1).view(np.uint8), counts])
        return out

    return _on_arrays(run, x)


def barrier() -> None:
    """Wait until every rank reaches this call (CUDA work queued on this rank is finished first)."""
    w = world()
    if backend.cupy() is not None and backend.cuda_available():
        backend.cupy().cuda.get_current_stream().synchronize()
    if w.size > 1:
        w.comm.Barrier()


# -- variables ------------------------------------------------------------------------------------


def _is_parameter(t) -> bool:
    """A Variable, or a leaf Tensor that requires grad (a PyTorch-style parameter)."""
    return isinstance(t, Variable) or (isinstance(t, Tensor) and t._rg and t._node is None)


def _set_value(p, arr) -> None:
    if isinstance(p, Variable):
        p.assign(arr)
    else:  # a leaf Tensor: its array is replaced, as the PyTorch-style optimizers update it
        p.data = arr.copy()


def variables_of(variables, what: str) -> list[Variable]:
    """A flat list of Variables (or leaf Tensors that require grad) from one, a list/tuple/dict of
    them (nested), or an object with ``.weights`` (a model or a layer)."""
    out: list[Variable] = []

    def visit(v):
        if _is_parameter(v):
            out.append(v)
        elif isinstance(v, dict):
            for k in v:
                visit(v[k])
        elif isinstance(v, (list, tuple)):
            for item in v:
                visit(item)
        elif hasattr(v, "weights") and not isinstance(v, Tensor):
            visit(list(v.weights))
        else:
            what_ = "a Tensor that is not a leaf requiring grad" if isinstance(v, Tensor) else type(v).__name__
            raise TypeError(f"{what}: expected Variables, parameters (leaf Tensors requiring grad) or a model, "
                            f"got {what_}")

    visit(variables)
    return out


def layout_of(variables) -> str:
    """A text naming each variable's shape and dtype, in order: ranks compare its checksum."""
    return ";".join(f"{tuple(v.shape)}:{v.dtype.str}:{v.device.split(':')[0]}" for v in variables)


def groups_by_array(arrays) -> dict:
    """Indices of ``arrays`` grouped by (device, dtype), in first-seen order: one buffer each."""
    groups: dict = {}
    for i, a in enumerate(arrays):
        groups.setdefault((backend.device_of(a), a.dtype), []).append(i)
    return groups


def _outside_jit(items, what: str) -> None:
    for v in items:
        if getattr(v.data if isinstance(v, Tensor) else v, "gg_trace", None) is not None:
            raise RuntimeError(f"{what} cannot run inside a compiled step (gg.jit): call it before the step")


_synced: dict[int, weakref.ref] = {}  # id -> a Variable made equal on every rank by a broadcast


def is_synced(v: Variable) -> bool:
    """True when ``v`` went through ``broadcast_variables`` (so every rank holds the same value)."""
    r = _synced.get(id(v))
    return r is not None and r() is v


def broadcast_variables(variables, root: int = 0) -> bool:
    """Give every rank rank ``root``'s values of ``variables`` (Variables, a nested list/dict of
    them, or a model/layer), packed into one buffer per device and dtype.

    Returns True when some rank's values differed from ``root``'s before the call (the same
    answer on every rank)."""
    vs = variables_of(variables, "broadcast_variables")
    _outside_jit(vs, "broadcast_variables")
    w = world()
    root = _check_root(w, root, "broadcast_variables")
    if w.size == 1:
        return False
    # one check for the whole list: every rank then walks the same groups in the same order
    first = vs[0].data if vs else np.empty(0, np.float32)
    agree(w, "broadcast_variables", root, first, shape=(len(vs), sum(v.size for v in vs)), layout=layout_of(vs))
    changed = False
    for idx in groups_by_array([v.data for v in vs]).values():
        group = [vs[i] for i in idx]
        xp = backend.get_array_module(group[0].data)
        flat = xp.concatenate([v.data.reshape(-1) for v in group])
        mine = flat.copy() if w.rank != root else None
        bcast_(w, flat, root)
        if mine is not None:
            changed |= not bool(xp.array_equal(mine, flat, equal_nan=True))
        off = 0
        for v in group:
            _set_value(v, flat[off : off + v.size].reshape(v.shape))
            off += v.size
    for k in [k for k, r in _synced.items() if r() is None]:
        del _synced[k]
    for v in vs:
        _synced[id(v)] = weakref.ref(v)
    flag = np.array([int(changed)], np.int32)
    allreduce_(w, flag, "max")
    return bool(flag[0])


def broadcast_optimizer_state(optimizer, root: int = 0) -> None:
    """Give every rank rank ``root``'s optimizer state: its step count and its slot arrays
    (momenta, moments), written in place; after restoring a checkpoint on one rank, for example.
    Every rank's optimizer must already hold slots of the same shapes (made by a first update)."""
    from ..optimizers import Optimizer  # noqa: PLC0415  (optimizers import this package's users)

    if not isinstance(optimizer, Optimizer):  # checked in a world of one too, as Horovod does
        raise TypeError(
            "broadcast_optimizer_state: expected a gpugrad optimizer (gg.optimizers.SGD, Adam, ...), "
            f"got {type(optimizer).__name__} {optimizer!r}"[:300]
        )
    w = world()
    root = _check_root(w, root, "broadcast_optimizer_state")
    if w.size == 1:
        return
    items = list(optimizer.variables())  # slot Variables (or arrays)
    _outside_jit(items, "broadcast_optimizer_state")
    slots = [a.data if isinstance(a, Tensor) else a for a in items]
    first = slots[0] if slots else np.empty(0, np.float32)
    layout = ";".join(f"{tuple(a.shape)}:{a.dtype.str}:{backend.device_of(a).split(':')[0]}" for a in slots)
    agree(w, "broadcast_variables", root, first, shape=(len(slots), sum(int(a.size) for a in slots)), layout=layout)
    for idx in groups_by_array(slots).values():
        xp = backend.get_array_module(slots[idx[0]])
        flat = xp.concatenate([slots[i].reshape(-1) for i in idx])
        bcast_(w, flat, root)
        off = 0
        for i in idx:
            a = slots[i]
            if isinstance(items[i], Tensor):
                _set_value(items[i], flat[off : off + a.size].reshape(a.shape))
            else:
                a[...] = flat[off : off + a.size].reshape(a.shape)
            off += a.size
    step = np.array([optimizer.iterations], np.int64)
    bcast_(w, step, root)
    optimizer.iterations = int(step[0])
