"""Pytrees: nested ``dict`` / ``list`` / ``tuple`` / namedtuple structures of Tensors, as in JAX.

Built on `optree <https://github.com/metaopt/optree>`_ with JAX's conventions: leaves come in
sorted-key order for dicts and in order for sequences, ``None`` is an empty subtree (not a leaf),
and every other object (a Tensor, an array, a number) is a leaf. ``unflatten`` gives dicts back in
their original key order. optree is imported on first use, so ``import gpugrad`` does not pay for
it and code that only ever passes single Tensors never loads it.

>>> leaves, treedef = gg.tree.flatten({"w": w, "b": b})   # [b, w]: sorted keys
>>> gg.tree.unflatten(treedef, [g_b, g_w])                  # {'w': g_w, 'b': g_b}
>>> gg.tree.map(lambda p, g: p - 0.1 * g, params, grads)
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import Any

from .tensor import Tensor

__all__ = ["flatten", "unflatten", "map", "leaves", "structure", "all_equal_structure"]


def _optree():
    import optree  # a C++ extension: about 15 ms to import, paid once, on first use

    return optree


def flatten(tree: Any, is_leaf: Callable[[Any], bool] | None = None) -> tuple[list, Any]:
    """``(leaves, treedef)``: the leaves in JAX's order and the structure that holds them."""
    return _optree().tree_flatten(tree, is_leaf=is_leaf)


def unflatten(treedef, leaves) -> Any:
    """The structure ``treedef`` filled with ``leaves`` (any objects, in ``flatten``'s order)."""
    leaves = list(leaves)
    if len(leaves) != treedef.num_leaves:
        raise ValueError(f"unflatten: {treedef} holds {treedef.num_leaves} leaves, got {len(leaves)}")
    return _optree().tree_unflatten(treedef, leaves)


def map(f: Callable, tree: Any, *rest: Any, is_leaf: Callable[[Any], bool] | None = None) -> Any:
    """``f`` applied leaf by leaf; ``rest`` are trees of the same structure as ``tree`` (or with
    whole subtrees where ``tree`` has a leaf, as JAX allows)."""
    return _optree().tree_map(f, tree, *rest, is_leaf=is_leaf)


def leaves(tree: Any, is_leaf: Callable[[Any], bool] | None = None) -> list:
    """The leaves of ``tree`` in JAX's order."""
    return _optree().tree_leaves(tree, is_leaf=is_leaf)


def structure(tree: Any, is_leaf: Callable[[Any], bool] | None = None):
    """The treedef of ``tree`` (comparable with ``==``; ``.num_leaves``)."""
    return _optree().tree_structure(tree, is_leaf=is_leaf)


def all_equal_structure(*trees: Any) -> bool:
    """Whether every tree has the same structure."""
    specs = [structure(t) for t in trees]
    return builtins.all(s == specs[0] for s in specs)


def paths(tree: Any) -> list[str]:
    """A readable path for each leaf (``"['w']"``, ``"[0][1]"``), for error messages."""
    ps, _, _ = _optree().tree_flatten_with_path(tree)
    return ["".join(f"[{k!r}]" for k in p) for p in ps]


# -- for the transforms, the tape and the optimizers ------------------------------------------------
# The common calls pass one Tensor or a flat list of Tensors: those get a light treedef of their own
# (same methods as optree's: ``num_leaves``, ``unflatten``, ``flatten_up_to``) and never load optree.


class _LeafDef:
    num_leaves = 1

    def unflatten(self, leaves):
        (x,) = leaves
        return x

    def flatten_up_to(self, tree):
        return [tree]

    def __repr__(self):
        return "PyTreeSpec(*)"


class _ListDef:
    def __init__(self, n):
        self.num_leaves = n

    def unflatten(self, leaves):
        return list(leaves)

    def flatten_up_to(self, tree):
        if not isinstance(tree, (list, tuple)) or len(tree) != self.num_leaves:
            raise ValueError(f"expected a list of {self.num_leaves} entries, got {_describe(tree)}")
        return list(tree)

    def __repr__(self):
        return f"PyTreeSpec([{', '.join('*' * self.num_leaves)}])"


LEAF = _LeafDef()  # the treedef of a single Tensor


def flat(tree: Any, none_is_leaf: bool = False) -> tuple[list, Any]:
    """``flatten``, with a fast path for a Tensor and for a flat list of Tensors."""
    if isinstance(tree, Tensor):
        return [tree], LEAF
    if type(tree) is list and builtins.all(isinstance(t, Tensor) for t in tree):
        return list(tree), _ListDef(len(tree))
    return _optree().tree_flatten(tree, none_is_leaf=none_is_leaf)


def flat_like(treedef, tree: Any, what: str) -> list:
    """The subtrees of ``tree`` at the leaves of ``treedef`` (so a whole list may stand where
    ``treedef`` has one leaf); a ``TypeError`` naming ``what`` when the structures differ."""
    try:
        return list(treedef.flatten_up_to(tree))
    except (ValueError, TypeError) as e:
        raise TypeError(f"{what} must have the structure {treedef}, got {_describe(tree)} ({e})") from None


def _describe(tree) -> str:
    if isinstance(tree, Tensor):
        return f"a Tensor of shape {tree.shape}"
    try:
        return str(structure(tree))
    except Exception:  # pragma: no cover - an object optree cannot walk
        return type(tree).__name__
