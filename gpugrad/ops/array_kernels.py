"""The fused loss passes written with array calls: NumPy on the CPU, and the generic CuPy path
where our CUDA kernels are off. Same entry points and semantics as :mod:`gpugrad.kernels`, so the
loss ops dispatch to one or the other and nothing else changes.

``rows`` means every axis but the last; ``C`` is the last axis' length. Each forward returns
one loss per row and what its backward needs; each backward takes the per-row upstream
gradient ``g``. The softmax cross-entropy forwards save, as the kernels do, the row shift m (the
max where finite, else 0) and log Σ e^{z−m} apart, which is exact at any logit scale, and the
dense one also Σ t, so that each backward is one elementwise pass.
"""

from __future__ import annotations

import numpy as np

from .. import backend


def _xp(a):
    return backend.get_array_module(a)


def _col(g):
    return g[..., None]


def mse_fwd(t, p):
    d = p - t
    d *= d
    return d.sum(axis=-1) * (1.0 / p.shape[-1])


def mse_bwd(t, p, g):
    d = p - t
    d *= _col(g) * (2.0 / p.shape[-1])
    return d


def bce_fwd(t, p, eps):
    xp = _xp(p)
    pc = xp.clip(p, eps, 1.0 - eps)
    ll = t * xp.log(pc)
    ll += (1.0 - t) * xp.log1p(-pc)
    return ll.sum(axis=-1) * (-1.0 / p.shape[-1])


def bce_bwd(t, p, g, eps):
    xp = _xp(p)
    pc = xp.clip(p, eps, 1.0 - eps)
    d = (pc - t) / (pc * (1.0 - pc))
    d *= _col(g) * (1.0 / p.shape[-1])
    d *= (p > eps) & (p < 1.0 - eps)  # the clip is flat outside [eps, 1 - eps]
    return d


def bce_logits_fwd(t, z):
    # softplus(z) − z·t = w·z + log(1 + e^{−|z|}), w = 1 − t where z ≥ 0 and −t below: never
    # overflows, and a zero weight contributes 0 even at z = ±inf
    xp = _xp(z)
    w = xp.where(z >= 0, 1.0 - t, -t)
    ll = xp.log1p(xp.exp(-xp.abs(z)))
    with np.errstate(invalid="ignore"):  # 0·inf, replaced by its limit 0
        ll += xp.where(w != 0, w * z, 0)
    return ll.sum(axis=-1) * (1.0 / z.shape[-1])


def bce_logits_bwd(t, z, g):
    from .activation import Sigmoid

    d = Sigmoid.forward_cpu(z) - t
    d *= _col(g) * (1.0 / z.shape[-1])
    return d


def _shift_logsum(z):
    """(m, log Σ e^{z−m}) per row, kept apart: e^{(z−m) − log s} is exact for logits of ±1e4,
    where e^{z − lse} would lose ~1e-3 to the rounding of lse ≈ 1e4 in float32."""
    xp = _xp(z)
    m = z.max(axis=-1, keepdims=True)
    m = xp.where(xp.isfinite(m), m, 0)
    return m, xp.log(xp.exp(z - m).sum(axis=-1, keepdims=True))


def _probs(z, saved):
    m, logs = saved
    p = z - m
    p -= logs
    return _xp(z).exp(p, out=p)


def softmax_ce_fwd(z, t):
    """Returns (loss per row, (m, log s, Σ t)); loss = Σ t·(log s − (z − m)), no cancellation."""
    m, logs = _shift_logsum(z)
    nll = logs - (z - m)
    with np.errstate(invalid="ignore"):  # 0·inf, replaced by its limit 0
        tn = t * nll
    loss = _xp(z).where(t != 0, tn, 0).sum(axis=-1)  # t = 0 at a masked −inf: adds 0
    return loss, (m, logs, t.sum(axis=-1, keepdims=True))


def softmax_ce_bwd(z, saved, t, g):
    p = _probs(z, saved[:2])
    p *= saved[2]
    p -= t
    p *= _col(g)
    return p


def _rows(z, labels):
    """For a 2-d NumPy ``z``: the row indices that pair with ``labels`` in ``z[rows, labels]``
    (plain fancy indexing, a few µs cheaper than ``take_along_axis``); else None."""
    if z.__class__ is np.ndarray and z.ndim == 2 and labels.__class__ is np.ndarray:
        return np.arange(z.shape[0])
    return None


def softmax_ce_sparse_fwd(z, labels):
    m, logs = _shift_logsum(z)
    rows = _rows(z, labels)
    if rows is not None:
        picked = _col(z[rows, labels]) - m
    else:
        picked = _xp(z).take_along_axis(z, _col(labels), axis=-1) - m
    return (logs - picked)[..., 0], (m, logs)


def softmax_ce_sparse_bwd(z, saved, labels, g):
    p = _probs(z, saved)
    rows = _rows(p, labels)
    if rows is not None:
        p[rows, labels] -= 1  # one label per row: no index repeats
    else:
        xp = _xp(z)
        idx = _col(labels)
        xp.put_along_axis(p, idx, xp.take_along_axis(p, idx, axis=-1) - 1, axis=-1)
    p *= _col(g)
    return p
