"""Gradient checks against central finite differences in float64 (:func:`check_grad`)."""

from __future__ import annotations

import numpy as np

from .. import backend
from ..tape import GradientTape
from ..tensor import Tensor, is_float

__all__ = ["check_grad"]


def _prep(inputs):
    out = []
    for x in inputs:
        arr = x.data if isinstance(x, Tensor) else x
        dev = backend.device_of(arr) if hasattr(arr, "dtype") else "cpu"
        if not hasattr(arr, "dtype"):
            arr = np.asarray(arr, dtype=np.float64)
        if is_float(arr.dtype):
            arr = backend.get_array_module(arr).asarray(arr, dtype=np.float64)
        out.append((backend.to_device(arr, dev), is_float(arr.dtype)))
    return out


def _scalar_fn(f, probe_seed=0):
    """f's output dotted with a fixed random weight: one scalar that sees every output element."""
    weights = {}

    def F(*ts):
        y = f(*ts)
        if not isinstance(y, Tensor):
            raise TypeError("check_grad: the function must return a Tensor")
        key = (y.shape, y.device)
        if key not in weights:
            w = np.random.default_rng(probe_seed).standard_normal(y.shape) if y.shape else np.array(1.3)
            weights[key] = Tensor(w.astype(np.float64), device=y.device)
        return (y * weights[key]).sum()

    return F


def _grads(F, arrays, diff):
    ts = [Tensor._make(a) for a in arrays]
    xs = [t for t, d in zip(ts, diff) if d]
    with GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(xs)
        y = F(*ts)
    gs = tape.gradient(y, xs, unconnected_gradients="zero")
    return y, gs


def check_grad(f, inputs, order: int = 1, eps=None, atol=None, rtol=None) -> None:
    """Compare ``f``'s analytic gradients with central differences; raise AssertionError if off.

    ``f(*tensors)`` may return any shape: it is reduced to one scalar by a fixed random weighting.
    With ``order=2`` the gradients of a random projection of the first gradients are checked too,
    which exercises every op's backward of its backward. Integer inputs pass through as constants.
    """
    if order not in (1, 2):
        raise ValueError(f"order must be 1 or 2, got {order}")
    eps = 1e-6 if eps is None else eps
    atol = 1e-5 if atol is None else atol
    rtol = 1e-4 if rtol is None else rtol
    prepared = _prep(inputs)
    arrays = [a for a, _ in prepared]
    diff = [d for _, d in prepared]
    F = _scalar_fn(f)
    _compare(F, arrays, diff, eps, atol, rtol, "first")
    if order == 2:
        def G(*ts):
            # a scalar made of the first-order gradients; differentiating it is the second order
            xs = [t for t, d in zip(ts, diff) if d]
            with GradientTape(watch_accessed_variables=False) as tape:
                tape.watch(xs)
                y = F(*ts)
            gs = tape.gradient(y, xs, unconnected_gradients="zero")
            total = None
            for i, g in enumerate(gs):
                w = np.random.default_rng(100 + i).standard_normal(g.shape) if g.shape else np.array(0.7)
                term = (g * Tensor(w, dtype=np.float64, device=g.device)).sum()
                total = term if total is None else total + term
            return total

        _compare(G, arrays, diff, eps, atol, rtol, "second")


def _compare(F, arrays, diff, eps, atol, rtol, what):
    _, analytic = _grads(F, arrays, diff)
    k = 0
    for i, (a, d) in enumerate(zip(arrays, diff)):
        if not d:
            continue
        g = analytic[k]
        k += 1
        g = np.zeros(a.shape) if g is None else np.asarray(g.numpy(), dtype=np.float64)
        num = _numeric(F, arrays, i, eps)
        err = np.abs(g - num)
        tol = atol + rtol * np.abs(num)
        if not np.all(err <= tol) or not np.all(np.isfinite(g)):
            bad = np.where(~np.isfinite(g), np.inf, err - tol)
            j = np.unravel_index(int(np.argmax(bad)), g.shape) if g.shape else ()
            raise AssertionError(
                f"check_grad: {what}-order gradient of input {i} (shape {tuple(a.shape)}) differs from "
                f"finite differences at index {tuple(int(v) for v in j)}: analytic {g[j]!r}, "
                f"numeric {num[j]!r} (|diff| {err[j]:.3g} > atol {atol:g} + rtol {rtol:g}·|numeric|)"
            )


def _numeric(F, arrays, i, eps):
    base = arrays[i]
    xp = backend.get_array_module(base)
    flat = np.asarray(backend.to_device(base, "cpu"), dtype=np.float64).reshape(-1)
    out = np.zeros(flat.size)
    dev = backend.device_of(base)
    for j in range(flat.size):
        vals = []
        for s in (eps, -eps):
            pert = flat.copy()
            pert[j] += s
            arr = backend.to_device(pert.reshape(base.shape), dev) if xp is not np else pert.reshape(base.shape)
            args = [Tensor._make(arr if k == i else a) for k, a in enumerate(arrays)]
            vals.append(F(*args).item())
        out[j] = (vals[0] - vals[1]) / (2 * eps)
    return out.reshape(base.shape)
