"""Metrics for ``Sequential.compile(metrics=[...])``, Keras' semantics.

Functional forms return one value per sample: ``binary_accuracy``, ``categorical_accuracy``,
``sparse_categorical_accuracy``, ``mean_absolute_error`` (``mae``), ``mean_squared_error``
(``mse``). They compute on raw arrays and record nothing (metrics are not differentiated).

Stateful forms (``Metric``: ``update_state``, ``result``, ``reset_state``) keep a running mean
over samples; the running sum stays on the device, so updating costs no host synchronization.
``'accuracy'`` picks the binary, categorical or sparse-categorical variant from the loss and the
shapes, as Keras does.
"""

from __future__ import annotations

from . import backend
from .tensor import Tensor


def _arr(x):
    return x.data if isinstance(x, Tensor) else x


def _match_rank(t, p):
    """Labels of shape (N,) against predictions (N, 1): add the trailing axis, as Keras does."""
    if t.ndim == p.ndim - 1 and p.shape[-1] == 1:
        return t.reshape(t.shape + (1,))
    return t


# -- per-sample functions on arrays ---------------------------------------------------------------


def _binary_accuracy(t, p, threshold=0.5):
    xp = backend.get_array_module(p)
    t = _match_rank(t, p)
    hit = (p > threshold) == (t > 0.5)
    return xp.mean(hit.astype(_float(p)), axis=-1)


def _categorical_accuracy(t, p):
    xp = backend.get_array_module(p)
    return (xp.argmax(t, axis=-1) == xp.argmax(p, axis=-1)).astype(_float(p))


def _sparse_categorical_accuracy(t, p):
    xp = backend.get_array_module(p)
    if t.ndim == p.ndim and t.shape[-1] == 1:
        t = t.reshape(t.shape[:-1])
    return (t.astype(xp.int64, copy=False) == xp.argmax(p, axis=-1)).astype(_float(p))


def _mean_absolute_error(t, p):
    xp = backend.get_array_module(p)
    return xp.mean(xp.abs(p - _match_rank(t, p)), axis=-1)


def _mean_squared_error(t, p):
    xp = backend.get_array_module(p)
    d = p - _match_rank(t, p)
    return xp.mean(d * d, axis=-1)


def _float(p):
    return p.dtype if p.dtype.kind == "f" else "float32"


def _public(fn, doc):
    def metric(y_true, y_pred, **kw) -> Tensor:
        return Tensor._make(fn(_arr(y_true), _arr(y_pred), **kw))

    metric.__name__ = fn.__name__.lstrip("_")
    metric.__doc__ = doc
    return metric


binary_accuracy = _public(
    _binary_accuracy, "Per sample: the fraction of entries where (y_pred > threshold) matches y_true."
)
categorical_accuracy = _public(_categorical_accuracy, "Per sample: 1 where argmax(y_pred) == argmax(y_true).")
sparse_categorical_accuracy = _public(
    _sparse_categorical_accuracy, "Per sample: 1 where argmax(y_pred) equals the integer label."
)
mean_absolute_error = mae = _public(
    _mean_absolute_error, "Per sample: mean |y_pred − y_true| over the last axis."
)
mean_squared_error = mse = _public(
    _mean_squared_error, "Per sample: mean (y_pred − y_true)² over the last axis."
)


# -- stateful metrics -------------------------------------------------------------------------------


class Metric:
    """A running mean over samples of a per-sample function ``fn(y_true, y_pred)``.

    ``fn`` takes and returns Tensors (per-sample values, or an already averaged scalar);
    with ``on_arrays=True`` it takes and returns raw NumPy/CuPy arrays instead.
    """

    def __init__(self, fn=None, name: str | None = None, on_arrays: bool = False):
        self._fn = fn
        self._on_arrays = on_arrays
        self.name = name or getattr(fn, "__name__", "metric")
        self.reset_state()

    def reset_state(self) -> None:
        self._total = 0.0
        self._count = 0

    def update_state(self, y_true, y_pred) -> None:
        t, p = _arr(y_true), _arr(y_pred)
        if self._fn is None:
            self._fn = self._resolve(t, p)
            self._on_arrays = True
        if self._on_arrays:
            vals = self._fn(t, p)
        else:
            vals = _arr(self._fn(Tensor._make(t), Tensor._make(p)))
        if not hasattr(vals, "shape"):
            vals = backend.get_array_module(p).asarray(vals)
        if vals.ndim == 0:  # a callable that already averaged: weight it by the batch size
            n = p.shape[0] if p.ndim else 1
            self._total = self._total + vals * n
            self._count += n
        else:
            self._total = self._total + vals.sum()
            self._count += vals.size

    def _resolve(self, t, p):
        raise ValueError(f"metric {self.name!r} has no function")

    def result(self) -> float:
        """The mean so far (0.0 before any update); synchronizes with the device once."""
        if not self._count:
            return 0.0
        return float(self._total) / self._count

    def __call__(self, y_true, y_pred) -> float:
        self.update_state(y_true, y_pred)
        return self.result()

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r}>"


class Accuracy(Metric):
    """Keras' ``'accuracy'``: binary, categorical or sparse-categorical, chosen on the first update
    from the loss name when it says, else from the shapes (last axis 1: binary; labels of lower
    rank, or a last axis 1 against several classes: sparse; otherwise categorical)."""

    def __init__(self, name: str = "accuracy", loss=None):
        self._loss = loss
        super().__init__(None, name)

    def _resolve(self, t, p):
        loss = self._loss if isinstance(self._loss, str) else getattr(self._loss, "__name__", None)
        loss = (loss or "").lower()
        if loss == "sparse_categorical_crossentropy":
            return _sparse_categorical_accuracy
        if loss == "binary_crossentropy":
            if getattr(self._loss, "from_logits", False):  # a logit of 0 is a probability of 0.5
                return lambda t, p: _binary_accuracy(t, p, threshold=0.0)
            return _binary_accuracy
        if loss == "categorical_crossentropy":
            return _categorical_accuracy
        if p.shape[-1:] == (1,):
            return _binary_accuracy
        if t.ndim < p.ndim or (t.shape[-1:] == (1,) and p.shape[-1] > 1):
            return _sparse_categorical_accuracy
        return _categorical_accuracy


_NAMED = {
    "binary_accuracy": _binary_accuracy,
    "categorical_accuracy": _categorical_accuracy,
    "sparse_categorical_accuracy": _sparse_categorical_accuracy,
    "mae": _mean_absolute_error,
    "mean_absolute_error": _mean_absolute_error,
    "mse": _mean_squared_error,
    "mean_squared_error": _mean_squared_error,
}
KNOWN = ("accuracy", "acc", *_NAMED)


def get(identifier, loss=None) -> Metric:
    """A fresh stateful metric for a name, a callable ``fn(y_true, y_pred)`` or a Metric.

    ``loss`` (the compiled loss, a name or callable) lets ``'accuracy'`` pick its variant.
    """
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, str):
        key = identifier.lower()
        if key in ("accuracy", "acc"):
            return Accuracy(identifier, loss)
        fn = _NAMED.get(key)
        if fn is not None:
            return Metric(fn, identifier, on_arrays=True)
    elif callable(identifier):
        return Metric(identifier, getattr(identifier, "__name__", None))
    raise ValueError(f"unknown metric {identifier!r}; known metrics: {', '.join(KNOWN)} (or a callable)")
