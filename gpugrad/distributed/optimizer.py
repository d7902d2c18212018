"""``DistributedOptimizer``: any gpugrad optimizer, with gradients averaged across ranks.

``DistributedOptimizer(opt)`` returns an object of a subclass of ``type(opt)`` made on the fly (as
Horovod does), so it is still an ``SGD``/``Adam``/... for ``compile`` and ``isinstance``, and it
shares ``opt``'s state (learning rate, iterations, slots): the two are views of one optimizer.
Only ``apply_gradients`` changes (``minimize`` goes through it), and for an optimizer built
PyTorch-style (``SGD(params, lr=...)``) ``step``, which averages each parameter's ``.grad`` the
same way before stepping:

1. Variables seen for the first time are broadcast from rank 0 (ChainerMN's rule). If some rank
   held different values, its gradients were computed at the wrong point, so that step's update
   is skipped on every rank, with a warning; calling ``broadcast_variables`` before training (as
   ``fit`` does) avoids it.
2. The gradients are packed into one flat buffer per (device, dtype) - in practice one - with a
   flag per variable telling whether this rank has a gradient for it (``None`` counts as zeros),
   reduced by ONE all-reduce, scaled by ``1/world_size`` and unpacked as views. A variable whose
   gradient is ``None`` on every rank stays ``None`` (it is skipped, as in one process).
3. The wrapped optimizer's own ``apply_gradients`` applies the averages (after averaging, so that
   clipping and weight decay see the global gradient).
"""

from __future__ import annotations

import contextlib
import warnings

import numpy as np

from .. import backend
from ..graph import enable_grad
from ..optimizers import Optimizer, _leaf_pairs
from ..tensor import Tensor, Variable
from ._collectives import agree, allreduce_, broadcast_variables, groups_by_array, is_synced, layout_of
from ._world import world

_classes: dict[type, type] = {}


class _Plan:
    """Where each variable's gradient lives in the flat buffers, built once per layout."""

    def __init__(self, variables):
        self.groups = []  # (indices, buffer, offsets)
        for idx in groups_by_array([v.data for v in variables]).values():
            first = variables[idx[0]].data  # a traced proxy inside gg.jit: ask its device, not its module
            dev = backend.device_of(first)
            xp = backend.xp_for(dev)
            dt = first.dtype
            if xp is np and dt.kind == "f" and dt.itemsize < 4:
                dt = np.dtype(np.float32)  # MPI has no half type everywhere: reduce in float32
            offsets = [0]
            for i in idx:
                offsets.append(offsets[-1] + variables[i].size)
            with _on(dev):
                buf = xp.empty(offsets[-1] + len(idx), dt)  # the gradients, then one flag each
            self.groups.append((idx, buf, offsets))
        self.checked = False

    def reduce(self, w, variables, arrays) -> tuple[list, list]:
        """Pack ``arrays`` (None: zeros, flag 0), all-reduce, scale by ``1/world_size``, unpack:
        (each variable's averaged gradient as a view, whether any rank had one)."""
        outs, present = [None] * len(arrays), [False] * len(arrays)
        for idx, buf, offs in self.groups:
            flags = buf[offs[-1] :]
            for j, i in enumerate(idx):
                seg = buf[offs[j] : offs[j + 1]]
                if arrays[i] is None:
                    seg.fill(0)
                    flags[j] = 0
                else:
                    seg[...] = arrays[i].reshape(-1)
                    flags[j] = 1
            if not self.checked or w.check >= 2:
                group = [variables[i] for i in idx]
                agree(w, "gradient all-reduce", 0, buf, shape=(len(idx), offs[-1]), layout=layout_of(group))
            allreduce_(w, buf, "sum")
            buf[: offs[-1]] *= 1.0 / w.size
            counts = backend.to_device(flags, "cpu") if backend.is_cupy_array(flags) else flags
            for j, i in enumerate(idx):
                v = variables[i]
                present[i] = bool(counts[j] > 0)
                outs[i] = buf[offs[j] : offs[j + 1]].reshape(v.shape).astype(v.dtype, copy=False)
        self.checked = True
        return outs, present


def _on(dev: str):
    """A context making device ``dev`` current (nothing for the CPU)."""
    if dev.startswith("cuda"):
        return backend.cupy().cuda.Device(int(dev.split(":")[1]))
    return contextlib.nullcontext()


class DistributedOptimizer(Optimizer):
    """Wrap an optimizer (an instance or a name such as ``'adam'``) so that ``apply_gradients``
    averages the gradients over all ranks first, in one bucketed all-reduce per step."""

    def __new__(cls, optimizer=None, *args, **kwargs):
        if optimizer is None:
            if cls is DistributedOptimizer:
                raise TypeError("DistributedOptimizer needs the optimizer to wrap, e.g. DistributedOptimizer(Adam())")
            return object.__new__(cls)  # copy protocol re-creating a generated subclass
        if isinstance(optimizer, DistributedOptimizer):
            return optimizer
        from ..optimizers import get  # noqa: PLC0415

        optimizer = get(optimizer)
        base = type(optimizer)
        sub = _classes.get(base)
        if sub is None:
            body = {"__module__": __name__, "__doc__": base.__doc__}
            if callable(getattr(base, "step", None)):  # PyTorch style: average .grad, then step
                body["step"] = _step
            sub = _classes[base] = type(f"Distributed{base.__name__}", (DistributedOptimizer, base), body)
        obj = object.__new__(sub)
        obj.__dict__ = optimizer.__dict__  # one optimizer, two views: the state is shared
        obj.__dict__.setdefault("_dist_plan", None)
        obj.__dict__.setdefault("_dist_key", None)
        return obj

    def __init__(self, optimizer=None, *args, **kwargs):
        pass  # all set up by __new__

    def apply_gradients(self, grads_and_vars, *args, **kwargs):
        pairs = list(_leaf_pairs(grads_and_vars))  # a pair of two pytrees gives one pair per leaf
        variables = [v for _, v in pairs]
        for v in variables:
            if not isinstance(v, Variable):
                raise TypeError(f"apply_gradients: expected Variables to update, got {type(v).__name__}")
        w = world()
        if w.size == 1:
            return super().apply_gradients(pairs, *args, **kwargs)
        if self._sync_new(w, variables):
            return self.iterations
        grads = self.average_gradients([g for g, _ in pairs], variables)
        return super().apply_gradients(zip(grads, variables), *args, **kwargs)

    def _sync_new(self, w, variables) -> bool:
        """Broadcast the variables from rank 0 if some were not seen before; True when this step
        must be skipped. Every rank runs the same program, so every rank sees the same new
        variables (a rank that does not is caught by the layout check of the broadcast)."""
        if all(is_synced(v) for v in variables):
            return False
        if any(getattr(v.data, "gg_trace", None) is not None for v in variables):
            raise RuntimeError(
                "DistributedOptimizer: the variables must start equal on every rank before a compiled "
                "step (gg.jit) updates them; call gg.distributed.broadcast_variables(variables) first"
            )
        differed = broadcast_variables(variables, root=0)
        if differed and w.rank == 0:
            warnings.warn(
                "DistributedOptimizer: the variables differed across ranks at their first update; rank 0's "
                "values were broadcast and this step's update was skipped on every rank. Call "
                "gg.distributed.broadcast_variables(variables) before training to start equal.",
                RuntimeWarning, stacklevel=3,
            )
        return differed

    def average_gradients(self, grads, variables) -> list:
        """The mean over ranks of each gradient (Tensors viewing this optimizer's buffers; None
        where no rank has a gradient), by one all-reduce per (device, dtype) group.

        Inside a compiled step (``gg.jit``) the packing, all-reduce and unpacking are recorded as
        one host call that runs again at every replay; which variables have a gradient somewhere is
        settled when the step is traced."""
        arrays = [None if g is None else (g.data if isinstance(g, Tensor) else g) for g in grads]
        for a, v in zip(arrays, variables):
            if a is not None and tuple(a.shape) != tuple(v.shape):
                raise ValueError(
                    f"apply_gradients: gradient of shape {tuple(a.shape)} for variable "
                    f"{getattr(v, 'name', None) or ''} of shape {tuple(v.shape)}"
                )
        w = world()
        key = tuple((id(v), v.shape, v.dtype, v.device) for v in variables)
        if self._dist_plan is None or key != self._dist_key:
            self._dist_plan, self._dist_key = _Plan(variables), key
        plan = self._dist_plan
        have = [i for i, a in enumerate(arrays) if a is not None]
        if not any(getattr(arrays[i], "gg_trace", None) is not None for i in have):
            outs, present = plan.reduce(w, variables, arrays)
            return [Tensor._make(o) if p else None for o, p in zip(outs, present)]
        traced: dict = {}

        def reduce_on_replay(*given):
            full = [None] * len(arrays)
            for i, a in zip(have, given):
                full[i] = a
            outs, present = plan.reduce(w, variables, full)
            traced.setdefault("present", present)
            return tuple(o.copy() for o in outs)  # the buffers are reused: results of their own

        outs = backend.host_array(reduce_on_replay, *(arrays[i] for i in have))
        return [Tensor._make(o) if p else None for o, p in zip(outs, traced["present"])]


def _step(self, closure=None):
    """PyTorch style (an optimizer built as ``SGD(params, lr=...)``): run ``closure`` if given,
    average every parameter's ``.grad`` over the ranks (written back into ``.grad``, as Horovod
    does; None where no rank has one), then the wrapped optimizer's ``step``."""
    loss = None
    if closure is not None:
        with enable_grad():
            loss = closure()
    w = world()
    params = list(self.params)
    if w.size > 1:
        if self._sync_new(w, params):
            return loss
        grads = self.average_gradients([p.grad for p in params], params)
        for p, g in zip(params, grads, strict=True):
            # the buffers are reused (a copy of their own), and half floats are reduced in float32
            p.grad = None if g is None else Tensor._make(g.data.astype(p.dtype, copy=True))
    super(DistributedOptimizer, self).step()
    return loss
