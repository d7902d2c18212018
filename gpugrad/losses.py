"""Keras-style losses: functions and loss objects. Each returns the mean over the batch by default.

Loss objects (``MeanSquaredError()``, ``BinaryCrossentropy(from_logits=True)``,
``CategoricalCrossentropy``, ``SparseCategoricalCrossentropy``) carry their options and are
called as ``loss(y_true, y_pred, sample_weight=None)``; ``compile`` accepts them.

``reduction``: ``'mean'`` (also ``'sum_over_batch_size'``) averages the per-sample losses,
``'sum'`` adds them, ``'none'`` returns them. Probabilities given with ``from_logits=False`` are
clipped into ``[1e-7, 1 − 1e-7]``; the logits paths never form ``log(softmax)``.
"""

from __future__ import annotations

import numpy as np

from . import backend
from .ops import loss as _L
from .ops.base import check_devices
from .ops.math import clip, log
from .ops.reduce import mean, sum
from .tensor import Tensor, as_tensor, holds_tensor

REDUCTIONS = ("mean", "sum", "none", "sum_over_batch_size")


def _reduce(rows: Tensor, reduction: str) -> Tensor:
    if reduction in ("mean", "sum_over_batch_size"):
        return mean(rows)
    if reduction == "sum":
        return sum(rows)
    if reduction == "none":
        return rows
    raise ValueError(f"unknown reduction {reduction!r}; expected one of {', '.join(REDUCTIONS)}")


def _pair(name, y_true, y_pred, same_shape=True):
    y_pred = as_tensor(y_pred)
    if not isinstance(y_true, Tensor):  # a list holding Tensors is stacked, so its gradient flows
        held = isinstance(y_true, (list, tuple)) and holds_tensor(y_true)
        y_true = as_tensor(y_true) if held else Tensor(y_true, device=y_pred.device)
    if y_true.device != y_pred.device:
        check_devices(y_true, y_pred, name)
    if y_pred.ndim == 0:
        raise ValueError(f"{name}: y_pred must have at least one dimension, got a scalar")
    if same_shape and y_true.shape != y_pred.shape:
        raise ValueError(
            f"{name}: y_true has shape {y_true.shape} but y_pred has shape {y_pred.shape}; "
            "they must match (reshape one of them explicitly)"
        )
    if same_shape and y_true.dtype != y_pred.dtype:
        y_true = y_true.astype(y_pred.dtype)
    return y_true, y_pred


def mse(y_true, y_pred, reduction: str = "mean") -> Tensor:
    """Mean squared error: mean over the last axis per sample, then ``reduction``."""
    _reduce_check(reduction)
    t, p = _pair("mse", y_true, y_pred)
    return _reduce(_L.row_loss(_L.MSE, t, p), reduction)


mean_squared_error = MSE = mse


def binary_crossentropy(y_true, y_pred, from_logits: bool = False, reduction: str = "mean") -> Tensor:
    """−[t·log p + (1−t)·log(1−p)], mean over the last axis; from logits in the softplus form."""
    _reduce_check(reduction)
    t, p = _pair("binary_crossentropy", y_true, y_pred)
    spec = _L.BCE_LOGITS if from_logits else _L.BCE
    return _reduce(_L.row_loss(spec, t, p), reduction)


def categorical_crossentropy(y_true, y_pred, from_logits: bool = False, reduction: str = "mean") -> Tensor:
    """−Σ t·log p over the last axis (``y_true`` one-hot or probabilities).

    From logits it is ``logsumexp(z)·Σt − Σ t·z`` (one fused kernel on the GPU); from
    probabilities, ``y_pred`` is normalized to sum to one and clipped, as Keras does.
    """
    _reduce_check(reduction)
    t, p = _pair("categorical_crossentropy", y_true, y_pred)
    if from_logits:
        rows = _L.row_loss(_L.SOFTMAX_CE, t, p)
    else:
        q = clip(p / sum(p, axis=-1, keepdims=True), _L.EPSILON, 1.0 - _L.EPSILON)
        rows = -sum(t * log(q), axis=-1)
    return _reduce(rows, reduction)


def sparse_categorical_crossentropy(labels, y_pred, from_logits: bool = False, reduction: str = "mean") -> Tensor:
    """Cross-entropy with integer class ids ``labels`` of shape ``y_pred.shape[:-1]``."""
    _reduce_check(reduction)
    lab, p = _pair("sparse_categorical_crossentropy", labels, y_pred, same_shape=False)
    lab = check_labels("sparse_categorical_crossentropy", lab, p)
    if not from_logits:
        # as Keras: clip, then take the log (a clipped probability gets gradient 0); the
        # log-softmax of log-probabilities normalises rows that do not sum to one
        p = log(clip(p, _L.EPSILON, 1.0 - _L.EPSILON))
    return _reduce(_L.row_loss(_L.SPARSE_SOFTMAX_CE, lab, p), reduction)


def check_labels(name: str, lab: Tensor, p: Tensor) -> Tensor:
    """Integer labels of shape ``p.shape[:-1]`` with values in [0, classes)."""
    if lab.dtype.kind == "f":
        d = lab.data
        backend.checked(_check_integral, name, d)
        lab = Tensor._make(d.astype(np.int64))
    elif lab.dtype.kind not in "iu":
        raise TypeError(f"{name}: labels must be integer class ids, got dtype {lab.dtype}")
    if lab.ndim == p.ndim and lab.shape[-1:] == (1,):
        lab = Tensor._make(lab.data.reshape(lab.shape[:-1]))
    if lab.shape != p.shape[:-1]:
        raise ValueError(
            f"{name}: labels of shape {lab.shape} do not match predictions of shape {p.shape} "
            f"(expected labels of shape {p.shape[:-1]})"
        )
    if lab.size:
        backend.checked(_check_range, name, lab.data, p.shape[-1])
    return lab


# value checks, run through backend.checked so that a compiled step (gg.jit) runs them every call
def _check_integral(name, d):
    if not bool((d == d.round()).all()):
        raise TypeError(f"{name}: labels must be integer class ids, got non-integer values of {d.dtype}")


def _check_range(name, d, n):
    # one compare: a negative signed label seen as unsigned is ≥ 2^(bits−1), so out of range too
    bad = (d.view(d.dtype.str.replace("i", "u")) if d.dtype.kind == "i" else d) >= n
    if backend.is_cupy_array(d):
        # on the device (two kernels): no read back now; a bad label raises at the next read of a
        # value, naming the smallest and largest labels then
        backend.defer_check(bad.any(), lambda: _range_message(name, int(d.min()), int(d.max()), n, late=True))
        return
    if bool(bad.any()):
        raise ValueError(_range_message(name, int(d.min()), int(d.max()), n))


def _range_message(name, lo, hi, n, late=False):
    if late and 0 <= lo and hi < n:  # read after the check: the caller has fixed the labels since
        return f"{name}: a label was out of range for {n} classes (valid: 0..{n - 1}) when it was checked"
    bad = lo if lo < 0 else hi
    return f"{name}: label {bad} is out of range for {n} classes (valid: 0..{n - 1})"


def _reduce_check(reduction):
    if reduction not in REDUCTIONS:
        raise ValueError(f"unknown reduction {reduction!r}; expected one of {', '.join(REDUCTIONS)}")


class Loss:
    """A loss with its options bound: ``fn(y_true, y_pred, reduction=..., **options)``.

    ``reduction``: ``'sum_over_batch_size'`` (Keras' default, the mean over the batch; also
    ``'mean'``), ``'sum'``, or ``'none'``/``None`` for the per-sample losses. ``sample_weight``
    (one weight per sample, or broadcastable to the per-sample losses) scales each sample before
    the reduction; ``'sum_over_batch_size'`` then divides by the number of samples, as Keras.
    """

    def __init__(self, fn, reduction="sum_over_batch_size", name: str | None = None, **options):
        reduction = "none" if reduction is None else reduction
        _reduce_check(reduction)
        self.fn = fn
        self.reduction = reduction
        self.name = name or fn.__name__
        self.__name__ = fn.__name__  # lets 'accuracy' pick its variant, as for the loss functions
        self.options = options
        self.from_logits = bool(options.get("from_logits", False))

    def __call__(self, y_true, y_pred, sample_weight=None) -> Tensor:
        if sample_weight is None:
            return self.fn(y_true, y_pred, reduction=self.reduction, **self.options)
        rows = self.fn(y_true, y_pred, reduction="none", **self.options)
        w = as_tensor(sample_weight, like=rows)
        if w.device != rows.device:
            check_devices(w, rows, self.name)
        if w.ndim > rows.ndim and w.shape[-1:] == (1,):
            w = Tensor._make(w.data.reshape(w.shape[:-1]))
        if w.dtype != rows.dtype:
            w = w.astype(rows.dtype)
        return _reduce(rows * w, self.reduction)

    def get_config(self) -> dict:
        return {"name": self.name, "reduction": self.reduction, **self.options}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def __repr__(self):
        opts = "".join(f", {k}={v!r}" for k, v in self.options.items())
        return f"{type(self).__name__}(reduction={self.reduction!r}{opts})"


class MeanSquaredError(Loss):
    """Keras' ``MeanSquaredError``: mean over the last axis per sample, then ``reduction``."""

    def __init__(self, reduction="sum_over_batch_size", name: str = "mean_squared_error"):
        super().__init__(mse, reduction, name)


class BinaryCrossentropy(Loss):
    """Keras' ``BinaryCrossentropy``; ``from_logits=True`` takes raw scores (the stable softplus form)."""

    def __init__(self, from_logits: bool = False, reduction="sum_over_batch_size", name: str = "binary_crossentropy"):
        super().__init__(binary_crossentropy, reduction, name, from_logits=bool(from_logits))


class CategoricalCrossentropy(Loss):
    """Keras' ``CategoricalCrossentropy`` (one-hot or probability targets)."""

    def __init__(self, from_logits: bool = False, reduction="sum_over_batch_size",
                 name: str = "categorical_crossentropy"):
        super().__init__(categorical_crossentropy, reduction, name, from_logits=bool(from_logits))


class SparseCategoricalCrossentropy(Loss):
    """Keras' ``SparseCategoricalCrossentropy`` (integer class ids as targets)."""

    def __init__(self, from_logits: bool = False, reduction="sum_over_batch_size",
                 name: str = "sparse_categorical_crossentropy"):
        super().__init__(sparse_categorical_crossentropy, reduction, name, from_logits=bool(from_logits))


LOSSES = {
    "mse": mse,
    "mean_squared_error": mse,
    "binary_crossentropy": binary_crossentropy,
    "categorical_crossentropy": categorical_crossentropy,
    "sparse_categorical_crossentropy": sparse_categorical_crossentropy,
}


LOSS_CLASSES = {
    cls.__name__: cls
    for cls in (MeanSquaredError, BinaryCrossentropy, CategoricalCrossentropy, SparseCategoricalCrossentropy)
}


def get(name):
    """A loss function by name (``'mse'``, ``'sparse_categorical_crossentropy'``, ... or a class
    name such as ``'SparseCategoricalCrossentropy'``), or the callable itself (a loss object)."""
    if callable(name):
        return name
    if str(name) in LOSS_CLASSES:
        return LOSS_CLASSES[str(name)]()
    key = str(name).lower()
    if key not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; known losses: {', '.join(sorted(LOSSES))}")
    return LOSSES[key]
