"""Argument and result trees of a compiled step: flattening into leaves, the signature keys that
select a program, and rebuilding the structure."""

from __future__ import annotations

import numpy as np

from .. import backend
from ..tensor import Tensor
from .trace import HostValue, Traced

_LEAF_TYPES = frozenset({int, float, bool, str, bytes, complex, type(None), np.ndarray, Traced, HostValue})


def _flat(x, leaves):
    """Leaves of a pytree into ``leaves``; returns the structure (hashable). Lists, tuples, dicts
    and namedtuples are walked here; any other container optree knows (``OrderedDict``,
    ``defaultdict``, ``deque``, registered classes) through optree, one level at a time."""
    cls = type(x)
    if cls is list or cls is tuple or (isinstance(x, tuple) and hasattr(x, "_fields")):
        return (cls, tuple(_flat(e, leaves) for e in x))
    if cls is dict:
        return (dict, tuple((k, _flat(v, leaves)) for k, v in x.items()))
    if cls in _LEAF_TYPES or isinstance(x, (Tensor, np.generic)) or backend.is_cupy_array(x):
        leaves.append(x)
        return None
    node = _tree_node(x)
    if node is None:
        leaves.append(x)
        return None
    children, meta, unflatten = node
    return (_TreeNode(cls, meta, unflatten, len(children)), tuple(_flat(c, leaves) for c in children))


def _tree_node(x):
    """``(children, metadata, unflatten)`` when optree knows ``x``'s type as a container."""
    if not hasattr(type(x), "__len__"):  # every container optree walks is sized; skip the import
        return None
    import optree

    try:
        children, meta, _entries, unflatten = optree.tree_flatten_one_level(x, none_is_leaf=True)
    except ValueError:
        return None
    return children, meta, unflatten


class _TreeNode:
    """A container type optree walks, with its metadata (keys, a default factory, maxlen)."""

    __slots__ = ("cls", "meta", "unflatten", "_key")

    def __init__(self, cls, meta, unflatten, n):
        import optree

        self.cls = cls
        self.meta = meta
        self.unflatten = unflatten
        # optree's own structure of this one level (leaves as placeholders): hashable, and equal
        # exactly when the keys, default factory, maxlen or fields are
        self._key = optree.tree_structure(unflatten(meta, [0] * n), none_is_leaf=True)

    def __hash__(self):
        return hash(self._key)

    def __eq__(self, other):
        return type(other) is _TreeNode and self._key == other._key

    def build(self, items):
        return self.unflatten(self.meta, list(items))


def _build(spec, it):
    if spec is None:
        return next(it)
    cls, parts = spec
    if cls is dict:
        return {k: _build(p, it) for k, p in parts}
    items = [_build(p, it) for p in parts]
    if type(cls) is _TreeNode:
        return cls.build(items)
    return cls(*items) if hasattr(cls, "_fields") else cls(items)


class _Static:
    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value


def _array_key(d):
    if type(d) is np.ndarray:
        return (d.shape, d.dtype)
    return (d.shape, d.dtype, backend.device_of(d))


def _leaf_key(x):
    """What of a leaf selects the program: shape/dtype/device of arrays, values of the rest."""
    if isinstance(x, Tensor):
        if x._is_var:
            return ("V", id(x))
        rg = x._rg
        if rg:
            g = x.grad
            rg = ("G",) if g is None else ("G",) + _array_key(g.data)
        return ("T", rg) + _array_key(x.data)
    if type(x) is np.ndarray or backend.is_cupy_array(x):
        return ("A",) + _array_key(x)
    if type(x) is _Static:
        try:
            hash(x.value)
        except TypeError:
            raise TypeError(
                f"gg.jit: static argument {x.value!r} is not hashable; static arguments select the "
                "program by value"
            ) from None
        return ("S", type(x.value), x.value)
    try:
        hash(x)
    except TypeError:
        raise _Unhashable(x) from None
    return ("P", type(x), x)


class _Unhashable(Exception):
    """A leaf that is neither an array, a pytree nor hashable: it cannot select a program."""


def _unhashable_message(x, args, kwargs) -> str:
    where = "an argument"
    for name, a in [*enumerate(args), *kwargs.items()]:
        found = []
        _flat(a, found)
        if any(f is x for f in found):
            where = f"argument {name!r}" if isinstance(name, str) else f"argument {name}"
            break
    return (
        f"gg.jit: {where} holds a {type(x).__name__} ({x!r:.60}), which is neither an array, a pytree "
        "(list, tuple, dict, namedtuple, OrderedDict or another container optree knows) nor hashable. "
        "A compiled function selects its program by the values of such arguments: pass arrays or "
        "pytrees of arrays, a hashable value, or register the type with optree."
    )


def _is_array_leaf(x) -> bool:
    return (isinstance(x, Tensor) and not x._is_var) or type(x) is np.ndarray or backend.is_cupy_array(x)


