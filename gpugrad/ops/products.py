"""Products under NumPy's names: ``einsum`` (ellipsis, repeated indices, any number of operands),
``tensordot``, ``dot``, ``inner``, ``outer``, ``vdot``, ``kron`` and ``cross``.

``einsum`` is the one recorded op: the gradient of an operand is another ``einsum`` of the
upstream gradient with the other operands, so every order works.
"""

from __future__ import annotations

import string

import numpy as np

from .. import backend
from ..tensor import Tensor
from .base import record, unary
from .shape import broadcast_to, reshape

_LETTERS = string.ascii_letters


def _xp(d):
    return backend.get_array_module(d)


# -- einsum ---------------------------------------------------------------------------------------


def einsum(subscripts: str, *operands) -> Tensor:
    """NumPy's ``einsum``: explicit (``'ij,jk->ik'``) or implicit (``'ij,jk'``) output, ``...``
    for leading axes (broadcast among operands), repeated indices within an operand (diagonals:
    ``'ii->i'``, ``'ii'`` the trace), any number of operands."""
    if not isinstance(subscripts, str):
        raise TypeError("einsum: give the subscripts as a string ('ij,jk->ik'); the interleaved form is not supported")
    if not operands:
        raise ValueError("einsum: needs at least one operand")
    ts = _operands(operands)
    ins, out = _parse(subscripts.replace(" ", ""), ts)
    ins = [s.replace(".", "") for s in ins]
    return _einsum(ins, out, ts)


def _operands(operands):
    ts = [unary(o, "einsum") for o in operands]
    floats = [t.dtype for t in ts if t.dtype.kind == "f"]
    if not floats:
        return ts
    dt = np.result_type(*floats)
    from .math import cast

    # a float operand of another width is cast (its gradient casts back); others become constants
    return [t if t.dtype == dt else cast(t, dt) if t.dtype.kind == "f" else Tensor._make(t.data.astype(dt)) for t in ts]


def _parse(sub: str, ts):
    """The subscripts of each operand and of the output, with ``...`` written as ``.`` plus one
    fresh letter per broadcast axis (right-aligned across operands)."""
    if "->" in sub:
        lhs, out = sub.split("->")
        if "->" in out:
            raise ValueError(f"einsum: subscripts {sub!r} have more than one '->'")
    else:
        lhs, out = sub, None
    ins = lhs.split(",")
    if len(ins) != len(ts):
        raise ValueError(f"einsum: subscripts {sub!r} name {len(ins)} operand(s), {len(ts)} given")
    used = set(c for c in sub if c in _LETTERS)
    for c in sub:
        if c not in _LETTERS and c not in ".,->":
            raise ValueError(f"einsum: {c!r} in {sub!r} is not a valid subscript letter")
    free = [c for c in _LETTERS if c not in used]
    nell = 0
    for s, t in zip(ins, ts):
        if s.count("...") > 1 or s.replace("...", "").count("."):
            raise ValueError(f"einsum: bad ellipsis in {s!r} of {sub!r}")
        named = len(s.replace("...", ""))
        if "..." in s:
            if t.ndim < named:
                raise ValueError(f"einsum: operand of shape {t.shape} has fewer axes than {s!r} names")
            nell = max(nell, t.ndim - named)
        elif named != t.ndim:
            raise ValueError(f"einsum: subscripts {s!r} name {named} axes for an operand of shape {t.shape}")
    if nell > len(free):
        raise ValueError(f"einsum: too many axes under '...' in {sub!r}")
    ell = "".join(free[:nell])
    new_ins = []
    for s, t in zip(ins, ts):
        if "..." in s:
            k = t.ndim - len(s.replace("...", ""))
            s = s.replace("...", "." + ell[nell - k :])
        new_ins.append(s)
    if out is None:  # implicit: the broadcast axes, then the letters seen once, sorted
        flat = "".join(s.replace(".", "") for s in new_ins)
        out = ell + "".join(sorted(c for c in set(flat) if flat.count(c) == 1 and c not in ell))
    else:
        if out.count("...") > 1 or out.replace("...", "").count("."):
            raise ValueError(f"einsum: bad ellipsis in the output {out!r} of {sub!r}")
        out = out.replace("...", ell)
        if len(set(out)) != len(out):
            raise ValueError(f"einsum: output subscripts {out!r} repeat an index")
        seen = set("".join(new_ins))
        for c in out:
            if c not in seen:
                raise ValueError(f"einsum: output index {c!r} of {sub!r} appears in no operand")
    return new_ins, out


def _einsum(ins, out: str, ts) -> Tensor:
    ts = _broadcast_all(ins, ts)
    arrays = [t.data for t in ts]
    for t in ts[1:]:
        if type(t.data) is not type(ts[0].data):
            from .base import check_devices

            check_devices(ts[0], t, "einsum")
    xp = _xp(arrays[0])
    res = xp.einsum(",".join(ins) + "->" + out, *arrays)
    if not hasattr(res, "shape") or isinstance(res, np.generic):
        res = xp.asarray(res)

    def bwd(g, o, need):
        return tuple(_operand_grad(g, out, ins, ts, i) if need[i] else None for i in range(len(ts)))

    return record(res, tuple(ts), bwd, "einsum")


def _broadcast_all(ins, ts):
    """Axes of one index with length 1 in some operands and n in others are broadcast to n."""
    sizes: dict = {}
    for t, s in zip(ts, ins):
        for c, n in zip(s, t.shape):
            if n != 1:
                if sizes.setdefault(c, n) != n:
                    raise ValueError(
                        f"einsum: index {c!r} has lengths {sizes[c]} and {n} (operand shapes "
                        f"{[tuple(o.shape) for o in ts]})"
                    )
    out = []
    for t, s in zip(ts, ins):
        want = tuple(sizes.get(c, 1) for c in s)
        out.append(t if want == t.shape else broadcast_to(t, want))
    return out


def _operand_grad(g: Tensor, out: str, ins, ts, i: int) -> Tensor:
    """The gradient of operand ``i``: ``g`` contracted with the other operands onto ``ins[i]``."""
    target = ins[i]
    unique = "".join(dict.fromkeys(target))
    subs = [out] + [s for j, s in enumerate(ins) if j != i]
    ops = [g] + [t for j, t in enumerate(ts) if j != i]
    present = set("".join(subs))
    xp = _xp(g.data)
    for c in unique:
        if c not in present:  # summed in operand i alone: the gradient is constant along it
            subs.append(c)
            ops.append(Tensor._make(xp.ones(ts[i].shape[target.index(c)], dtype=g.dtype)))
    grad = _einsum(subs, unique, ops)
    if unique == target:
        return grad
    # a repeated index: the gradient sits on the diagonal, placed there by identity matrices
    used = set("".join(ins) + out)
    free = [c for c in _LETTERS if c not in used]
    renamed, subs, ops, seen = [], [unique], [grad], set()
    for c in target:
        if c in seen:
            d = free.pop()
            renamed.append(d)
            subs.append(c + d)
            ops.append(Tensor._make(xp.eye(ts[i].shape[target.index(c)], dtype=g.dtype)))
        else:
            seen.add(c)
            renamed.append(c)
    return _einsum(subs, "".join(renamed), ops)


# -- the named products ---------------------------------------------------------------------------


def tensordot(a, b, axes=2) -> Tensor:
    """Sum over ``axes`` of ``a`` and ``b``: an int ``n`` (the last n of ``a`` with the first n of
    ``b``) or two lists of axes."""
    a, b = unary(a, "tensordot"), unary(b, "tensordot")
    if isinstance(axes, (int, np.integer)):
        n = int(axes)
        if n < 0 or n > a.ndim or n > b.ndim:
            raise ValueError(f"tensordot: axes={n} does not fit shapes {a.shape} and {b.shape}")
        ax_a, ax_b = list(range(a.ndim - n, a.ndim)), list(range(n))
    else:
        try:
            ax_a, ax_b = axes
        except (TypeError, ValueError):
            raise ValueError(f"tensordot: axes must be an int or a pair of axis lists, got {axes!r}") from None
        ax_a = [ax_a] if isinstance(ax_a, (int, np.integer)) else list(ax_a)
        ax_b = [ax_b] if isinstance(ax_b, (int, np.integer)) else list(ax_b)
    if len(ax_a) != len(ax_b):
        raise ValueError(f"tensordot: axes {axes!r} give {len(ax_a)} and {len(ax_b)} axes")
    try:
        ax_a = [int(x) % a.ndim if -a.ndim <= x < a.ndim else None for x in ax_a]
        ax_b = [int(x) % b.ndim if -b.ndim <= x < b.ndim else None for x in ax_b]
    except ZeroDivisionError:
        ax_a = ax_b = [None]
    if None in ax_a or None in ax_b or len(set(ax_a)) != len(ax_a) or len(set(ax_b)) != len(ax_b):
        raise ValueError(f"tensordot: axes {axes!r} are out of range or repeated for shapes {a.shape} and {b.shape}")
    for x, y in zip(ax_a, ax_b):
        if a.shape[x] != b.shape[y]:
            raise ValueError(
                f"tensordot: shape mismatch for sum: axis {x} of {a.shape} has length {a.shape[x]}, axis {y} of "
                f"{b.shape} has length {b.shape[y]}"
            )
    if a.ndim + b.ndim - len(ax_a) > len(_LETTERS):
        raise ValueError("tensordot: too many axes")
    la = list(_LETTERS[: a.ndim])
    lb = list(_LETTERS[a.ndim : a.ndim + b.ndim])
    for x, y in zip(ax_a, ax_b):
        lb[y] = la[x]
    out = "".join(c for i, c in enumerate(la) if i not in ax_a) + "".join(c for i, c in enumerate(lb) if i not in ax_b)
    return einsum(f"{''.join(la)},{''.join(lb)}->{out}", a, b)


def dot(a, b) -> Tensor:
    """NumPy's ``dot``: a product with a 0-d operand, the inner product of vectors, the matrix
    product, and for N-d the sum over the last axis of ``a`` and the second-to-last of ``b``."""
    from .math import multiply

    a, b = unary(a, "dot"), unary(b, "dot")
    if a.ndim == 0 or b.ndim == 0:
        return multiply(a, b)
    if b.ndim == 1:
        return tensordot(a, b, ([-1], [0]))
    return tensordot(a, b, ([-1], [-2]))


def vdot(a, b) -> Tensor:
    """The dot product of the flattened tensors."""
    a, b = unary(a, "vdot"), unary(b, "vdot")
    if a.size != b.size:
        raise ValueError(f"vdot: shapes {a.shape} and {b.shape} have different sizes")
    return dot(reshape(a, (-1,)), reshape(b, (-1,)))


def inner(a, b) -> Tensor:
    """The sum over the last axes of ``a`` and ``b`` (a product when one is 0-d)."""
    from .math import multiply

    a, b = unary(a, "inner"), unary(b, "inner")
    if a.ndim == 0 or b.ndim == 0:
        return multiply(a, b)
    return tensordot(a, b, ([-1], [-1]))


def outer(a, b) -> Tensor:
    """``out[i, j] = a.ravel()[i] · b.ravel()[j]``."""
    a, b = unary(a, "outer"), unary(b, "outer")
    return reshape(a, (-1, 1)) * reshape(b, (1, -1))


def kron(a, b) -> Tensor:
    """The Kronecker product: blocks ``a[i, j] · b``."""
    a, b = unary(a, "kron"), unary(b, "kron")
    nd = max(a.ndim, b.ndim)
    sa = (1,) * (nd - a.ndim) + a.shape
    sb = (1,) * (nd - b.ndim) + b.shape
    ia = tuple(v for n in sa for v in (n, 1))
    ib = tuple(v for n in sb for v in (1, n))
    return reshape(reshape(a, ia) * reshape(b, ib), tuple(x * y for x, y in zip(sa, sb)))


def cross(a, b, axisa: int = -1, axisb: int = -1, axisc: int = -1, axis=None) -> Tensor:
    """The cross product of 3-vectors (or 2-vectors, whose z is 0) along the given axes,
    broadcasting the others; two 2-vectors give the scalar z."""
    from .arrange import moveaxis
    from .shape import stack

    a, b = unary(a, "cross"), unary(b, "cross")
    if axis is not None:
        axisa = axisb = axisc = axis
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"cross: needs vectors, got shapes {a.shape} and {b.shape}")
    a, b = moveaxis(a, axisa, -1), moveaxis(b, axisb, -1)
    if a.shape[-1] not in (2, 3) or b.shape[-1] not in (2, 3):
        raise ValueError(
            f"cross: incompatible dimensions for cross product (dimension must be 2 or 3), got shapes "
            f"{a.shape} and {b.shape}"
        )
    a0, a1 = a[..., 0], a[..., 1]
    b0, b1 = b[..., 0], b[..., 1]
    if a.shape[-1] == 2 and b.shape[-1] == 2:
        return a0 * b1 - a1 * b0
    a2 = a[..., 2] if a.shape[-1] == 3 else None
    b2 = b[..., 2] if b.shape[-1] == 3 else None
    if a2 is None:
        x, y = a1 * b2, -(a0 * b2)
    elif b2 is None:
        x, y = -(a2 * b1), a2 * b0
    else:
        x, y = a1 * b2 - a2 * b1, a2 * b0 - a0 * b2
    z = a0 * b1 - a1 * b0
    return moveaxis(stack([x, y, z], axis=-1), -1, axisc)

