"""Activation functions by name, as Keras accepts them: ``'relu'``, ``'sigmoid'``, ``'tanh'``,
``'softmax'``, ``'gelu'``, ``'leaky_relu'``, ``'elu'``, ``'softplus'``, ``'silu'`` (or ``'swish'``),
``'linear'`` (or ``None``), or any callable ``fn(x) -> Tensor``."""

from __future__ import annotations

from ..ops import activation_extra as _extra
from ..ops.activation import relu as _relu
from ..ops.activation import sigmoid as _sigmoid
from ..ops.activation import tanh as _tanh
from ..ops.softmax import softmax as _softmax
from ..tensor import Tensor


def linear(x: Tensor) -> Tensor:
    """The identity: ``linear(x) = x``."""
    return x


def relu(x: Tensor) -> Tensor:
    return _relu(x)


def sigmoid(x: Tensor) -> Tensor:
    return _sigmoid(x)


def tanh(x: Tensor) -> Tensor:
    return _tanh(x)


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    return _softmax(x, axis)


def gelu(x: Tensor, approximate: bool = False) -> Tensor:
    return _extra.gelu(x, approximate=approximate)


def leaky_relu(x: Tensor, negative_slope: float = 0.2) -> Tensor:
    return _extra.leaky_relu(x, negative_slope)


def elu(x: Tensor, alpha: float = 1.0) -> Tensor:
    return _extra.elu(x, alpha)


def softplus(x: Tensor) -> Tensor:
    return _extra.softplus(x)


def silu(x: Tensor) -> Tensor:
    return _extra.silu(x)


swish = silu

ACTIVATIONS = {
    "linear": linear,
    "relu": relu,
    "sigmoid": sigmoid,
    "tanh": tanh,
    "softmax": softmax,
    "gelu": gelu,
    "leaky_relu": leaky_relu,
    "elu": elu,
    "softplus": softplus,
    "silu": silu,
    "swish": silu,
}


def get(identifier):
    """The activation function for a name, ``None`` (linear) or a callable (returned as is)."""
    if identifier is None:
        return linear
    if callable(identifier):
        return identifier
    if isinstance(identifier, str):
        fn = ACTIVATIONS.get(identifier.lower())
        if fn is not None:
            return fn
    raise ValueError(
        f"unknown activation {identifier!r}; known activations: {', '.join(sorted(ACTIVATIONS))} "
        "(or None, or a callable)"
    )


def serialize(fn) -> str:
    """The registry name of ``fn``, or its ``__name__`` for a custom callable."""
    for name, f in ACTIVATIONS.items():
        if f is fn:
            return name
    return getattr(fn, "__name__", type(fn).__name__)
