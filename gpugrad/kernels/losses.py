"""Launchers of the loss kernels (``kernels/losses.cu``): per-row forwards (row reductions) and
elementwise backwards of MSE, BCE, BCE from logits and softmax cross-entropy (dense and sparse)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .args import _labels, _like, _main, _no_overlap, _on_input_device, _out, _per_row, _rows_cols
from .rows import _launch_rows, _launch_rows_ew
from .runtime import _rt


def _loss_inputs(t: Any, x: Any, xname: str) -> tuple[Any, Any, Any, tuple[int, ...], int, int]:
    cp = _rt().xp
    x = _main(cp, x, xname)
    t = _like(cp, t, x, "t")
    lead, rows, cols = _rows_cols(x, xname)
    return cp, t, x, lead, rows, cols


def _row_loss(base: str, t: Any, x: Any, xname: str, out: Any, extra: tuple[Any, ...] = ()) -> Any:
    cp, t, x, lead, rows, cols = _loss_inputs(t, x, xname)
    loss = _out(cp, out, lead, x.dtype)
    _no_overlap(loss, t, x)
    if rows:
        if cols:
            _launch_rows(
                "losses",
                base,
                x,
                rows,
                cols,
                (t.reshape(rows, cols), x.reshape(rows, cols)),
                (loss.reshape(rows),),
                extra,
                elementwise=False,
            )
        else:
            loss.fill(np.nan)  # the mean over an empty axis
    return loss


def _row_loss_bwd(base: str, t: Any, x: Any, g_row: Any, xname: str, out: Any, extra: tuple[Any, ...] = ()) -> Any:
    cp, t, x, lead, rows, cols = _loss_inputs(t, x, xname)
    g = _per_row(cp, g_row, lead, x.dtype, "g_row")
    dx = _out(cp, out, x.shape, x.dtype)
    _no_overlap(dx, t, x, g)
    if x.size:
        _launch_rows_ew("losses", base, x, rows, cols, (t, x, g, dx), extra)
    return dx


@_on_input_device
def mse_fwd(t: Any, p: Any, out: Any = None) -> Any:
    """Per-row mean((p - t)^2) over the last axis; shape ``p.shape[:-1]``."""
    return _row_loss("mse_fwd", t, p, "p", out)


@_on_input_device
def mse_bwd(t: Any, p: Any, g_row: Any, out: Any = None) -> Any:
    """dp = 2 (p - t) / C * g_row[..., None]."""
    return _row_loss_bwd("mse_bwd", t, p, g_row, "p", out)


def _eps(p: Any, eps: float) -> Any:
    if not 0.0 <= float(eps) < 0.5:
        raise ValueError(f"eps must be in [0, 0.5), got {eps}")
    return p.dtype.type(eps)


@_on_input_device
def bce_fwd(t: Any, p: Any, eps: float = 1e-7, out: Any = None) -> Any:
    """Per-row mean of -(t log(pc) + (1 - t) log(1 - pc)), pc = clip(p, eps, 1 - eps)."""
    cp = _rt().xp
    p = _main(cp, p, "p")
    return _row_loss("bce_fwd", t, p, "p", out, (_eps(p, eps),))


@_on_input_device
def bce_bwd(t: Any, p: Any, g_row: Any, eps: float = 1e-7, out: Any = None) -> Any:
    """dp = g_row / C * (p - t) / (p (1 - p)) where eps < p < 1 - eps, 0 outside (the clip)."""
    cp = _rt().xp
    p = _main(cp, p, "p")
    return _row_loss_bwd("bce_bwd", t, p, g_row, "p", out, (_eps(p, eps),))


@_on_input_device
def bce_logits_fwd(t: Any, z: Any, out: Any = None) -> Any:
    """Per-row mean of max(z, 0) - z t + log1p(exp(-|z|)) (BCE from logits)."""
    return _row_loss("bce_logits_fwd", t, z, "z", out)


@_on_input_device
def bce_logits_bwd(t: Any, z: Any, g_row: Any, out: Any = None) -> Any:
    """dz = g_row / C * (sigmoid(z) - t)."""
    return _row_loss_bwd("bce_logits_bwd", t, z, g_row, "z", out)


def _ce_outs(cp: Any, out: Any, lead: tuple[int, ...], dtype: Any, nsaved: int) -> tuple[Any, tuple[Any, ...]]:
    """(loss, saved) buffers: ``out`` is None or ``(loss, saved)`` as a forward returned them."""
    if out is None:
        return cp.empty(lead, dtype), tuple(cp.empty(lead, dtype) for _ in range(nsaved))
    if (
        not isinstance(out, (tuple, list))
        or len(out) != 2
        or not isinstance(out[1], (tuple, list))
        or len(out[1]) != nsaved
    ):
        raise TypeError(f"out must be (loss, saved) with saved a tuple of {nsaved} arrays, as the forward returns")
    loss = _out(cp, out[0], lead, dtype, "out[0]")
    return loss, tuple(_out(cp, o, lead, dtype, f"out[1][{i}]") for i, o in enumerate(out[1]))


def _saved(cp: Any, saved: Any, lead: tuple[int, ...], dtype: Any, nsaved: int) -> tuple[Any, ...]:
    if not isinstance(saved, (tuple, list)) or len(saved) != nsaved:
        raise TypeError(f"saved must be the tuple of {nsaved} per-row arrays the forward returned")
    names = ("m", "log_s", "t_sum")
    return tuple(_per_row(cp, s, lead, dtype, f"saved {names[i]}") for i, s in enumerate(saved))


def _empty_ce(loss: Any, saved: tuple[Any, ...]) -> None:
    # a sum over no classes is 0; the max of an empty row is not finite, so m = 0 and log(0) = -inf
    loss.fill(0)
    saved[0].fill(0)
    saved[1].fill(-np.inf)
    for s in saved[2:]:
        s.fill(0)


@_on_input_device
def softmax_ce_fwd(z: Any, t: Any, out: Any = None) -> tuple[Any, tuple[Any, Any, Any]]:
    """Softmax cross-entropy from logits z and a dense target t (same shape).

    Returns ``(loss_row, (m, log_s, t_sum))`` per row: m = max(z) (0 where not finite),
    log_s = log(sum(exp(z - m))), t_sum = sum(t), and loss = sum(t * (log_s - (z - m))) over the
    classes with t != 0 (a zero target on a masked -inf logit adds 0). The saved
    tuple is what :func:`softmax_ce_bwd` takes; ``out`` is a ``(loss, saved)`` of such buffers.
    """
    cp = _rt().xp
    z = _main(cp, z, "z")
    t = _like(cp, t, z, "t")
    lead, rows, cols = _rows_cols(z, "z")
    loss, saved = _ce_outs(cp, out, lead, z.dtype, 3)
    for i, o in enumerate((loss, *saved)):
        _no_overlap(o, z, t, *(loss, *saved)[:i])
    if rows:
        if cols:
            outs = tuple(a.reshape(rows) for a in (loss, *saved))
            _launch_rows(
                "losses",
                "softmax_ce_fwd",
                z,
                rows,
                cols,
                (z.reshape(rows, cols), t.reshape(rows, cols)),
                outs,
                elementwise=False,
            )
        else:
            _empty_ce(loss, saved)
    return loss, saved


@_on_input_device
def softmax_ce_bwd(z: Any, saved: Any, t: Any, g_row: Any, out: Any = None) -> Any:
    """dz = g_row[..., None] * (exp((z - m) - log_s) * t_sum - t), in one pass over z and t, from
    the ``saved`` tuple of :func:`softmax_ce_fwd` (m and log_s apart: exact at any logit scale)."""
    cp = _rt().xp
    z = _main(cp, z, "z")
    t = _like(cp, t, z, "t")
    lead, rows, cols = _rows_cols(z, "z")
    m, ls, ts = _saved(cp, saved, lead, z.dtype, 3)
    g = _per_row(cp, g_row, lead, z.dtype, "g_row")
    dz = _out(cp, out, z.shape, z.dtype)
    _no_overlap(dz, z, t, m, ls, ts, g)
    if z.size:
        _launch_rows_ew("losses", "softmax_ce_bwd", z, rows, cols, (z, t, m, ls, ts, g, dz))
    return dz


@_on_input_device
def softmax_ce_sparse_fwd(z: Any, labels: Any, out: Any = None) -> tuple[Any, tuple[Any, Any]]:
    """Softmax cross-entropy from logits z and integer labels (shape ``z.shape[:-1]``, validated by
    the caller: an out-of-range label gives NaN). Returns ``(loss_row, (m, log_s))``,
    loss = log_s - (z[label] - m)."""
    cp = _rt().xp
    z = _main(cp, z, "z")
    lead, rows, cols = _rows_cols(z, "z")
    lab = _labels(cp, labels, lead)
    loss, saved = _ce_outs(cp, out, lead, z.dtype, 2)
    for i, o in enumerate((loss, *saved)):
        _no_overlap(o, z, *(loss, *saved)[:i])
    if rows:
        if cols:
            outs = tuple(a.reshape(rows) for a in (loss, *saved))
            _launch_rows(
                "losses",
                "softmax_ce_sparse_fwd",
                z,
                rows,
                cols,
                (z.reshape(rows, cols), lab.reshape(rows)),
                outs,
                elementwise=False,
            )
        else:
            _empty_ce(loss, saved)
    return loss, saved


@_on_input_device
def softmax_ce_sparse_bwd(z: Any, saved: Any, labels: Any, g_row: Any, out: Any = None) -> Any:
    """dz = g_row[..., None] * (exp((z - m) - log_s) - onehot(labels)), one pass over z."""
    cp = _rt().xp
    z = _main(cp, z, "z")
    lead, rows, cols = _rows_cols(z, "z")
    m, ls = _saved(cp, saved, lead, z.dtype, 2)
    lab = _labels(cp, labels, lead)
    g = _per_row(cp, g_row, lead, z.dtype, "g_row")
    dz = _out(cp, out, z.shape, z.dtype)
    _no_overlap(dz, z, m, ls, g)
    if z.size:
        _launch_rows_ew("losses", "softmax_ce_sparse_bwd", z, rows, cols, (z, lab, m, ls, g, dz))
    return dz
