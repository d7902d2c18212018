"""PyTorch spellings of the losses and activations."""

from __future__ import annotations

from .. import losses as _losses
from ..ops import log_softmax, relu, sigmoid, softmax, tanh  # noqa: F401
from ..ops import loss as _L
from ..tensor import Tensor, as_tensor


def mse_loss(input, target, reduction: str = "mean") -> Tensor:  # noqa: A002
    """Mean of (input − target)² over all elements (``'sum'``, ``'none'`` as PyTorch)."""
    p = as_tensor(input)
    if p.ndim == 0 and as_tensor(target, p).ndim == 0:  # 0-d tensors, as PyTorch: one element
        out = mse_loss(p.reshape((1,)), as_tensor(target, p).reshape((1,)), reduction)
        return out.reshape(()) if reduction == "none" else out
    t, p = _losses._pair("mse_loss", target, p)
    if reduction == "none":
        return (p - t) * (p - t)
    # one row of everything: the fused kernel's per-row mean is then the mean over all elements
    rows = _L.row_loss(
        _L.MSE, t.reshape((1, -1)) if t.ndim != 1 else t, p.reshape((1, -1)) if p.ndim != 1 else p
    )
    total = rows.sum()
    if reduction == "mean":
        return total
    if reduction == "sum":  # a sum over nothing is 0 (the mean over nothing is nan)
        return total * float(p.size) if p.size else ((p - t) * (p - t)).sum()
    raise ValueError(f"unknown reduction {reduction!r}; expected 'mean', 'sum' or 'none'")


def cross_entropy(input, target, reduction: str = "mean") -> Tensor:  # noqa: A002
    """Softmax cross-entropy from logits ``input`` [N, C]: ``target`` holds class ids [N] or
    class probabilities [N, C]. Mean over the batch by default."""
    z = as_tensor(input)
    t = target if isinstance(target, Tensor) else Tensor(target, device=z.device)
    if t.dtype.kind in "iu":
        return _losses.sparse_categorical_crossentropy(t, z, from_logits=True, reduction=reduction)
    return _losses.categorical_crossentropy(t, z, from_logits=True, reduction=reduction)


def binary_cross_entropy(input, target, reduction: str = "mean") -> Tensor:  # noqa: A002
    p = as_tensor(input)
    return _losses._reduce(_L.row_loss(_L.BCE, *_losses._pair("binary_cross_entropy", target, p)), reduction)


def binary_cross_entropy_with_logits(input, target, reduction: str = "mean") -> Tensor:  # noqa: A002
    z = as_tensor(input)
    return _losses._reduce(
        _L.row_loss(_L.BCE_LOGITS, *_losses._pair("binary_cross_entropy_with_logits", target, z)), reduction
    )
