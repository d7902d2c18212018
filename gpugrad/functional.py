"""JAX's way of asking for gradients: transformations of functions, over pytrees.

Every transform takes and returns pytrees (nested ``dict`` / ``list`` / ``tuple`` / namedtuple of
Tensors, arrays or numbers; see :mod:`gpugrad.tree`): ``grad(loss)(params, x, y)`` with ``params``
a dict of arrays returns a dict of gradients with the same keys.

Reverse mode (``grad``, ``value_and_grad``, ``vjp``, ``jacrev``) records ``f`` on a private tape and
walks it backward. Forward mode (``jvp``, ``jacfwd``) is built by transposing a VJP (the
"double-VJP trick"): the VJP ``u -> J^T u`` is linear in ``u``, so recording it with ``u`` watched
and differentiating ``<J^T u, v>`` with respect to ``u`` gives ``J v``. It needs no per-op forward
rule, so it runs through every op, kernel-backed ones included, on both backends, and to any order
(each backward is written in gpugrad ops). Its cost: one forward pass, one recorded backward pass
and one backward pass through that — about twice the work of a VJP, where native forward mode would
cost about one forward pass; and it keeps the forward's saved values alive as a VJP does.

``vmap`` is not provided. It would take a batching rule per op (how each op acts on an input with
an extra batch axis at a given position: elementwise ops and reductions shift their axes, matmul
and the kernel ops fold the batch into leading dimensions, shape ops rewrite their arguments), and
a tracer Tensor that carries the batch axis through ``f``; the transforms here would then batch
their per-row loops (``jacrev``, ``jacfwd``, ``hessian``) into one call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from . import graph, tree
from .tape import GradientTape
from .tensor import Tensor, is_float

__all__ = [
    "grad", "value_and_grad", "vjp", "jvp", "jacfwd", "jacrev", "jacobian", "hessian", "hvp", "stop_gradient",
]


def _argnums(argnums, n):
    single = isinstance(argnums, int)
    nums = (argnums,) if single else tuple(argnums)
    for a in nums:
        if not -n <= a < n:
            raise TypeError(  # JAX raises a TypeError here
                f"differentiating with respect to argnums={argnums} requires at least {a + 1 if a >= 0 else -a} "
                f"positional argument(s), but the function was called with {n}"
            )
    norm = tuple(a % n for a in nums)
    if len(set(norm)) != len(norm):
        raise ValueError(f"argnums={argnums} repeats an argument; give each argument once")
    return single, norm


# -- arguments as pytrees of Tensors ---------------------------------------------------------------


def _identity_backward(g, out, need):
    return (g,)


def _prepare(args, nums, who):
    """``args`` with the pytrees at ``nums`` made of float Tensors, and ``(leaves, treedef)`` for each.

    A Tensor that appears twice (in one pytree or in two arguments) is given a recorded identity, so
    that each position gets its own gradient, as JAX's inputs are independent.
    """
    args = list(args)
    parts = []
    seen = set()
    for a in nums:
        leaves, treedef = tree.flat(args[a])
        ts = []
        for i, x in enumerate(leaves):
            t = x if isinstance(x, Tensor) else Tensor(x)
            if not is_float(t.dtype):
                where = tree.paths(args[a])[i] if treedef is not tree.LEAF else ""
                raise TypeError(
                    f"{who}: argument {a}{where} has dtype {t.dtype}; only floating inputs can be differentiated"
                )
            if id(t) in seen:
                t = graph.record(t.data, (t,), _identity_backward, "Identity")
            seen.add(id(t))
            ts.append(t)
        if any(t is not x for t, x in zip(ts, leaves)) or treedef is not tree.LEAF:
            args[a] = treedef.unflatten(ts)
        parts.append((ts, treedef))
    return args, parts


def _leaves(parts):
    return [t for ts, _ in parts for t in ts]


def _rebuild(parts, flat):
    """One pytree per argument from the flat list of per-leaf results."""
    out, k = [], 0
    for ts, treedef in parts:
        out.append(treedef.unflatten(flat[k : k + len(ts)]))
        k += len(ts)
    return out


def _split_aux(out, has_aux, who):
    if not has_aux:
        return out, None
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise TypeError(f"{who}(has_aux=True) requires f to return a pair (output, aux), got {type(out).__name__}")
    return out[0], out[1]


def _outputs(out, who):
    """The leaves of ``f``'s output as Tensors, and its treedef."""
    leaves, treedef = tree.flat(out)
    res = []
    for x in leaves:
        if not isinstance(x, Tensor):
            try:
                x = Tensor(x)
            except (TypeError, ValueError):
                raise TypeError(f"{who}: f must return Tensors (or a pytree of them), got {type(x).__name__}") from None
        res.append(x)
    return res, treedef


def _match(ref, given, what):
    """``given`` (a tangent or cotangent leaf) as a Tensor like ``ref``: same shape, dtype and device."""
    if given is None:
        raise TypeError(f"{what} is None where a value of shape {ref.shape} and dtype {ref.dtype} is expected")
    if isinstance(given, Tensor):
        t = given
    elif hasattr(given, "dtype") and hasattr(given, "shape"):  # a NumPy / CuPy array keeps its dtype
        t = Tensor(given, device=ref.device)
    else:  # Python numbers and (nested) lists take the primal's dtype
        try:
            t = Tensor(given, dtype=ref.dtype, device=ref.device)
        except (TypeError, ValueError) as e:
            raise TypeError(f"{what}: cannot use a {type(given).__name__} as a tensor ({e})") from None
    if t.shape != ref.shape:
        raise ValueError(f"{what} has shape {t.shape}, but the primal it goes with has shape {ref.shape}")
    if is_float(ref.dtype) and t.dtype != ref.dtype:
        raise TypeError(f"{what} has dtype {t.dtype}, but the primal it goes with has dtype {ref.dtype}")
    if t.device != ref.device:
        raise ValueError(f"{what} is on {t.device}, but the primal it goes with is on {ref.device}")
    return t


def _match_tree(refs, treedef, given, what):
    leaves = tree.flat_like(treedef, given, what)
    return [_match(r, g, f"{what} (leaf {i})" if len(refs) > 1 else what) for i, (r, g) in enumerate(zip(refs, leaves))]


def _zeros_like(t):
    from .ops.creation import zeros_like

    return zeros_like(t)


# -- reverse mode ------------------------------------------------------------------------------------------


def _value_and_grad(f, args, argnums, has_aux, who):
    single, nums = _argnums(argnums, len(args))
    args, parts = _prepare(args, nums, who)
    xs = _leaves(parts)
    with GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(xs)
        out = f(*args)
    value, aux = _split_aux(out, has_aux, who)
    if not isinstance(value, Tensor) and _is_number(value):
        value = Tensor(value)  # a constant output: its gradient is 0
    if not isinstance(value, Tensor) or value.size != 1:
        shape = getattr(value, "shape", None)
        kind = f"shape {shape}" if shape is not None else type(value).__name__
        raise TypeError(f"{who} requires a function with a scalar output, got {kind}; use jacrev or vjp")
    gs = tape.gradient(value, xs, unconnected_gradients="zero")
    grads = _rebuild(parts, gs)
    return value, aux, (grads[0] if single else tuple(grads))


def _is_number(x) -> bool:
    """A Python or NumPy number, or a one-element NumPy array of numbers."""
    if isinstance(x, (bool, int, float, np.generic)):
        return True
    return isinstance(x, np.ndarray) and x.size == 1


def grad(f: Callable, argnums: int | tuple = 0, has_aux: bool = False) -> Callable:
    """``grad(f)(*args)``: the gradient of the scalar ``f`` with respect to ``args[argnums]``.

    ``args[argnums]`` may be a pytree; the gradient has its structure. A tuple ``argnums`` gives a
    tuple of gradients. With ``has_aux=True``, ``f`` returns ``(value, aux)`` and so does ``grad``:
    ``(gradient, aux)``.
    """

    def gf(*args):
        _, aux, g = _value_and_grad(f, args, argnums, has_aux, "grad")
        return (g, aux) if has_aux else g

    return gf


def value_and_grad(f: Callable, argnums: int | tuple = 0, has_aux: bool = False) -> Callable:
    """``value_and_grad(f)(*args)`` -> ``(f(*args), grad(f)(*args))``."""

    def vg(*args):
        value, aux, g = _value_and_grad(f, args, argnums, has_aux, "value_and_grad")
        return ((value, aux), g) if has_aux else (value, g)

    return vg


def vjp(f: Callable, *primals: Any, has_aux: bool = False):
    """``(out, vjp_fn)`` (or ``(out, vjp_fn, aux)``) where ``vjp_fn(ct)`` is ``ct``'s product with the
    Jacobian of ``f`` at ``primals``: a tuple with one cotangent per primal, each in that primal's
    structure. ``ct`` has the structure, shapes and dtypes of ``out``. ``vjp_fn`` may be called any
    number of times (it keeps ``f``'s graph alive while it lives) and is differentiable again.
    """
    args, parts = _prepare(primals, range(len(primals)), "vjp")
    xs = _leaves(parts)
    tape = GradientTape(persistent=True, watch_accessed_variables=False)
    with tape:
        tape.watch(xs)
        res = f(*args)
    out, aux = _split_aux(res, has_aux, "vjp")
    outs, out_def = _outputs(out, "vjp")

    def vjp_fn(ct):
        cts = _match_tree(outs, out_def, ct, "vjp: the cotangent")
        gs = tape.gradient(outs, xs, output_gradients=cts, unconnected_gradients="zero")
        return tuple(_rebuild(parts, gs))

    return (out, vjp_fn, aux) if has_aux else (out, vjp_fn)


def jacrev(f: Callable, argnums: int | tuple = 0, has_aux: bool = False) -> Callable:
    """The Jacobian by reverse mode, one backward pass per output element (JAX's ``jacrev``).

    For an output leaf of shape ``O`` and an input leaf of shape ``I`` the block has shape ``O + I``.
    The result has ``f``'s output structure on the outside and the argument's structure (a tuple of
    them for a tuple ``argnums``) inside each output leaf.
    """

    def jf(*args):
        single, nums = _argnums(argnums, len(args))
        args, parts = _prepare(args, nums, "jacrev")
        xs = _leaves(parts)
        with GradientTape(persistent=True, watch_accessed_variables=False) as tape:
            tape.watch(xs)
            res = f(*args)
        out, aux = _split_aux(res, has_aux, "jacrev")
        outs, out_def = _outputs(out, "jacrev")
        _float_outputs(outs, "jacrev")
        blocks = [tape.jacobian(o, xs, unconnected_gradients="zero") for o in outs]
        return _jacobian_tree(blocks, parts, single, out_def, aux, has_aux)

    return jf


jacobian = jacrev


def _float_outputs(outs, who):
    for o in outs:
        if not is_float(o.dtype):
            raise TypeError(f"{who} requires floating outputs, got one of dtype {o.dtype}")


def _jacobian_tree(blocks, parts, single, out_def, aux, has_aux):
    per_out = []
    for row in blocks:  # one row of blocks per output leaf, one block per input leaf
        trees = _rebuild(parts, row)
        per_out.append(trees[0] if single else tuple(trees))
    j = out_def.unflatten(per_out)
    return (j, aux) if has_aux else j


# -- forward mode, by transposing a VJP ------------------------------------------------------------------


def _transposable_vjp(f, args, xs, has_aux, who, persistent, tangents=None):
    """Run ``f`` and record its VJP at a watched zero cotangent ``u`` per float output.

    Returns ``(out, aux, outs, out_def, us, gs, s, tape_u)`` where ``gs[i]`` is ``J_i^T u`` (None
    where output and input are unconnected) recorded on ``tape_u``, which watches ``us``, and ``s``
    is ``<J^T u, tangents>`` (None without tangents or with nothing connected), whose gradient in
    ``u`` is ``J tangents``. Everything must be recorded inside one ``with tape_u`` block: leaving
    it unwatches ``us``.
    """
    with GradientTape(watch_accessed_variables=False) as tape_x:
        tape_x.watch(xs)
        res = f(*args)
    out, aux = _split_aux(res, has_aux, who)
    outs, out_def = _outputs(out, who)
    floats = [o for o in outs if is_float(o.dtype)]
    us = [_zeros_like(o) for o in floats]  # any value would do: the VJP is linear in u
    tape_u = GradientTape(persistent=persistent, watch_accessed_variables=False)
    with tape_u:
        tape_u.watch(us)
        gs = tape_x.gradient(floats, xs, output_gradients=us) if floats else [None] * len(xs)
        s = None
        for g, t in zip(gs, tangents or ()):
            if g is not None:
                term = (g * t).sum()
                s = term if s is None else s + term
    return out, aux, outs, out_def, us, gs, s, tape_u


def jvp(f: Callable, primals, tangents, has_aux: bool = False):
    """Forward mode: ``(f(*primals), J v)`` where ``v`` is ``tangents`` (or ``(out, J v, aux)``).

    ``primals`` and ``tangents`` are tuples (or lists) with one pytree per argument of ``f``, of the
    same structure, shapes and dtypes; the output tangent has the structure of ``f``'s output.
    Computed by transposing a VJP (see the module docstring): about twice the cost of a VJP.
    Differentiable again in both ``primals`` and ``tangents``, so ``jvp(grad(f), (x,), (v,))`` is
    a forward-over-reverse Hessian-vector product.
    """
    if not isinstance(primals, (tuple, list)) or not isinstance(tangents, (tuple, list)):
        raise TypeError(
            "jvp: primals and tangents must be tuples or lists of arguments, got "
            f"{type(primals).__name__} and {type(tangents).__name__}"
        )
    if len(primals) != len(tangents):
        raise TypeError(f"jvp: {len(primals)} primals but {len(tangents)} tangents; give one tangent per primal")
    args, parts = _prepare(primals, range(len(primals)), "jvp")
    xs = _leaves(parts)
    ts = []
    for k, ((leaves, treedef), t) in enumerate(zip(parts, tangents)):
        ts += _match_tree(leaves, treedef, t, f"jvp: tangents[{k}]")
    out, aux, outs, out_def, us, _, s, tape_u = _transposable_vjp(f, args, xs, has_aux, "jvp", False, ts)
    tu = tape_u.gradient(s, us, unconnected_gradients="zero") if s is not None else [_zeros_like(u) for u in us]
    it = iter(tu)
    touts = [next(it) if is_float(o.dtype) else _zeros_like(o) for o in outs]
    tout = out_def.unflatten(touts)
    return (out, tout, aux) if has_aux else (out, tout)


def jacfwd(f: Callable, argnums: int | tuple = 0, has_aux: bool = False) -> Callable:
    """The Jacobian by forward mode (JAX's ``jacfwd``): same shapes and structure as :func:`jacrev`.

    One forward pass and one recorded VJP, then one pass through that VJP per *input* element:
    cheaper than ``jacrev`` when ``f`` has more outputs than inputs.
    """

    def jf(*args):
        from .ops.creation import eye, zeros
        from .ops.shape import reshape, stack

        single, nums = _argnums(argnums, len(args))
        args, parts = _prepare(args, nums, "jacfwd")
        xs = _leaves(parts)
        out, aux, outs, out_def, us, gs, _, tape_u = _transposable_vjp(f, args, xs, has_aux, "jacfwd", True)
        _float_outputs(outs, "jacfwd")
        blocks = [[None] * len(xs) for _ in outs]
        for i, (x, g) in enumerate(zip(xs, gs)):
            n = x.size
            if g is None or n == 0:
                for k, o in enumerate(outs):
                    blocks[k][i] = zeros(o.shape + x.shape, dtype=o.dtype, device=o.device)
                continue
            basis = eye(n, dtype=g.dtype, device=g.device).data
            cols = [
                tape_u.gradient(g, us, output_gradients=Tensor._make(basis[j].reshape(x.shape)),
                                unconnected_gradients="zero")
                for j in range(n)
            ]
            for k, o in enumerate(outs):
                blocks[k][i] = reshape(stack([c[k] for c in cols], axis=-1), o.shape + x.shape)
        return _jacobian_tree(blocks, parts, single, out_def, aux, has_aux)

    return jf


def hessian(f: Callable, argnums: int | tuple = 0, has_aux: bool = False) -> Callable:
    """Second derivatives, ``jacfwd(jacrev(f))`` as in JAX: for an output of shape ``O`` and an
    input of shape ``I`` the result has shape ``O + I + I``; with a tuple ``argnums``,
    ``hessian(f, (0, 1))(x, y)[i][j]`` is ``d² f / d args[i] d args[j]``."""
    return jacfwd(jacrev(f, argnums, has_aux), argnums, has_aux)


def hvp(f: Callable, x, v):
    """The Hessian of the scalar ``f`` at ``x`` times ``v`` (reverse-over-reverse: ``d<∇f(x), v>/dx``).

    ``x`` and ``v`` are pytrees of one structure; the result has it too. JAX's recipe spelling
    ``hvp(f, primals, tangents)`` with tuples is also accepted: ``hvp(f, (x, y), (vx, vy))`` calls
    ``f(x, y)`` and returns ``jvp(grad(f), primals, tangents)[1]``, the product for ``x``.
    """
    if type(x) is tuple:
        if type(v) is not tuple or len(v) != len(x):
            raise TypeError(
                f"hvp: primals given as a tuple of {len(x)} arguments need a tuple of as many tangents, "
                f"got {type(v).__name__}"
            )
        primals, tangents = x, v
    else:
        primals, tangents = (x,), (v,)
    args, parts = _prepare(primals, range(len(primals)), "hvp")
    xs = _leaves(parts)
    ts = []
    for k, ((leaves, treedef), t) in enumerate(zip(parts, tangents)):
        ts += _match_tree(leaves, treedef, t, "hvp: v" if len(primals) == 1 else f"hvp: tangents[{k}]")
    with GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(xs)
        g = grad(f, argnums=tuple(range(len(args))))(*args)
        s = None
        for gi, t in zip([leaf for a in g for leaf in tree.flat(a)[0]], ts):  # g: a pytree per argument
            term = (gi * t).sum()
            s = term if s is None else s + term
    first = parts[0][0]
    hv = tape.gradient(s, first, unconnected_gradients="zero") if s is not None else [_zeros_like(t) for t in first]
    return parts[0][1].unflatten(hv)


def stop_gradient(x):
    """``x`` (a Tensor or a pytree of them) as constants: the same values, never differentiated."""
    if isinstance(x, Tensor):
        return Tensor._make(x.data)  # shares the (immutable) array; a Variable swaps its array on assign
    return tree.map(lambda t: Tensor._make(t.data) if isinstance(t, Tensor) else Tensor(t), x)
