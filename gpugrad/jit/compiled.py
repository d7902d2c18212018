"""``gg.jit`` and the compiled function: the cache of programs by signature, tracing on a miss."""

from __future__ import annotations

import functools

import numpy as np

from .. import backend
from ..graph import STATE as _STATE
from ..tensor import Tensor
from . import trace as _trace
from .program import Stale
from .record import record
from .trees import _array_key, _flat, _leaf_key, _Static, _Unhashable, _unhashable_message

__all__ = ["jit", "Compiled"]


def jit(fn=None, *, static_argnums=(), cuda_graph: bool = True):
    """Compile ``fn`` (a training step, a loss, a forward pass) into a replayed program.

    ``static_argnums``: positions of arguments whose values (not arrays) select the program; a new
    value traces again. ``cuda_graph``: on CUDA, launch the replay as one captured CUDA graph.
    Usable as ``@gg.jit`` or ``@gg.jit(static_argnums=(1,))``.
    """
    if fn is None:
        return lambda f: jit(f, static_argnums=static_argnums, cuda_graph=cuda_graph)
    if not callable(fn):
        raise TypeError(f"gg.jit: expected a function to compile, got {type(fn).__name__} ({fn!r:.60})")
    return Compiled(fn, static_argnums, cuda_graph)


# -- the compiled function ---------------------------------------------------------------------------


class Compiled:
    """A function compiled by :func:`jit`; ``trace_count`` says how many traces were made."""

    def __init__(self, fn, static_argnums=(), cuda_graph=True):
        functools.update_wrapper(self, fn)
        self.fn = fn
        if isinstance(static_argnums, int):
            static_argnums = (static_argnums,)
        self.static_argnums = frozenset(int(i) for i in static_argnums)
        self.cuda_graph = bool(cuda_graph)
        self.trace_count = 0
        self._cache: dict = {}

    def __get__(self, obj, objtype=None):
        if obj is None:
            return self
        return functools.partial(self.__call__, obj)

    def __repr__(self):
        return f"<gg.jit of {getattr(self.fn, '__qualname__', self.fn)!r}: {self.trace_count} trace(s)>"

    def _signature(self, args, kwargs):
        """(key, array leaves, (leaves, spec)); the last holds only the leaves on the fast path."""
        if not kwargs and not self.static_argnums:
            key = []
            arrays = []
            for a in args:
                if type(a) is not Tensor:
                    break
                d = a.data
                rg = a._rg
                if rg:  # whether backward() will find a .grad to add to selects the program too
                    g = a.grad
                    rg = ("G",) if g is None else ("G",) + _array_key(g.data)
                key.append((d.shape, d.dtype, rg) if type(d) is np.ndarray else (rg,) + _array_key(d))
                arrays.append(d)
            else:
                if len(args) < 2 or len({id(a) for a in args}) == len(args):
                    return tuple(key), arrays, (args, None)
        key, leaves, spec = self._slow_signature(args, kwargs)
        arrays = []
        seen = set()
        for x in leaves:
            if isinstance(x, Tensor):
                if x._is_var or id(x) in seen:
                    continue
                seen.add(id(x))
                arrays.append(x.data)
            elif type(x) is np.ndarray or backend.is_cupy_array(x):
                arrays.append(x)
        return key, arrays, (leaves, spec)

    def _slow_signature(self, args, kwargs):
        if self.static_argnums:
            args = tuple(_Static(a) if i in self.static_argnums else a for i, a in enumerate(args))
        leaves = []
        spec = _flat((args, kwargs), leaves) if kwargs else _flat(args, leaves)
        first = {}
        keys = []
        try:
            for i, x in enumerate(leaves):
                if isinstance(x, Tensor) and not x._is_var:
                    j = first.setdefault(id(x), i)
                    if j != i:  # the same Tensor again: one leaf, as eager code sees it
                        keys.append(("same", j))
                        continue
                keys.append(_leaf_key(x))
        except _Unhashable as e:
            raise TypeError(_unhashable_message(e.args[0], args, kwargs)) from None
        key = (spec, bool(kwargs), tuple(keys))
        return key, leaves, spec

    def __call__(self, *args, **kwargs):
        if _trace.ACTIVE is not None or _STATE.recording:
            # inside another compiled step: part of its trace; under a recording GradientTape: run
            # eagerly, so that the tape records the call and gradients flow through it
            return self.fn(*args, **kwargs)
        key, arrays, slow = self._signature(args, kwargs)
        progs = self._cache.get(key)
        if progs is not None:
            for prog in progs:  # one per state of the Variables it reads (their shapes, a .grad or not)
                try:
                    return prog.run(arrays, slow[0])
                except Stale:
                    continue
        if slow[1] is None:
            slow = self._slow_signature(args, kwargs)[1:]
        return self._trace(key, slow[0], slow[1], bool(kwargs))

    def _trace(self, key, leaves, spec, has_kwargs):
        self.trace_count += 1
        result, prog = record(self.fn, leaves, spec, has_kwargs, self.cuda_graph)
        if prog is not None:
            progs = self._cache.setdefault(key, [])
            progs.insert(0, prog)
            del progs[_MAX_VARIANTS:]
        return result


_MAX_VARIANTS = 4


