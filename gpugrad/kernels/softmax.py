"""Launchers of the softmax family (``kernels/softmax.cu``): softmax and log-softmax, forward and
backward, over the last axis."""

from __future__ import annotations

from typing import Any

from .args import _like, _main, _no_overlap, _on_input_device, _out, _rows_cols
from .rows import _launch_rows
from .runtime import _rt


def _softmax_fwd(base: str, x: Any, out: Any) -> Any:
    cp = _rt().xp
    x = _main(cp, x, "x")
    _, rows, cols = _rows_cols(x, "x")
    y = _out(cp, out, x.shape, x.dtype)
    _no_overlap(y, x)
    if x.size:
        _launch_rows(
            "softmax", base, x, rows, cols, (x.reshape(rows, cols),), (y.reshape(rows, cols),), elementwise=True
        )
    return y


def _softmax_bwd(base: str, y: Any, gy: Any, out: Any) -> Any:
    cp = _rt().xp
    y = _main(cp, y, "y")
    gy = _like(cp, gy, y, "gy")
    _, rows, cols = _rows_cols(y, "y")
    gx = _out(cp, out, y.shape, y.dtype)
    _no_overlap(gx, y, gy)
    if y.size:
        _launch_rows(
            "softmax",
            base,
            y,
            rows,
            cols,
            (y.reshape(rows, cols), gy.reshape(rows, cols)),
            (gx.reshape(rows, cols),),
            elementwise=True,
        )
    return gx


@_on_input_device
def softmax_fwd(x: Any, out: Any = None) -> Any:
    """y = exp(x - m) / sum(exp(x - m)) over the last axis, m the row max (0 where not finite)."""
    return _softmax_fwd("softmax_fwd", x, out)


@_on_input_device
def log_softmax_fwd(x: Any, out: Any = None) -> Any:
    """y = (x - m) - log(sum(exp(x - m))) over the last axis."""
    return _softmax_fwd("log_softmax_fwd", x, out)


@_on_input_device
def softmax_bwd(y: Any, gy: Any, out: Any = None) -> Any:
    """gx = y * (gy - sum(gy * y, -1, keepdims=True)), from the forward output y."""
    return _softmax_bwd("softmax_bwd", y, gy, out)


@_on_input_device
def log_softmax_bwd(y: Any, gy: Any, out: Any = None) -> Any:
    """gx = gy - exp(y) * sum(gy, -1, keepdims=True), from the forward output y."""
    return _softmax_bwd("log_softmax_bwd", y, gy, out)
