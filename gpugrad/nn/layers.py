"""Layers in the Keras style: ``Layer`` (the base) and ``Dense``.

A layer builds its Variables on its first call, from the input's last dimension, on the input's
device and with its floating dtype (integer inputs give float32). The forward pass is written in
gpugrad ops, so the same code runs on NumPy and on CuPy with our kernels.
"""

from __future__ import annotations

import collections

import numpy as np

from .. import backend
from ..ops.linalg import matmul
from ..tensor import DEFAULT_FLOAT, Tensor, Variable, is_float
from . import activations, initializers

_name_counts: collections.Counter = collections.Counter()


def unique_name(base: str) -> str:
    """``base``, then ``base_1``, ``base_2``... as Keras names its layers."""
    n = _name_counts[base]
    _name_counts[base] += 1
    return base if n == 0 else f"{base}_{n}"


def _snake(name: str) -> str:
    out = []
    for i, c in enumerate(name):
        if c.isupper() and i and not name[i - 1].isupper():
            out.append("_")
        out.append(c.lower())
    return "".join(out)


class Layer:
    """Base class: subclasses define ``build(input_shape, dtype, device)`` (making Variables with
    :meth:`add_weight`) and ``call(x)``; calling the layer builds it once, then runs ``call``."""

    def __init__(self, name: str | None = None, trainable: bool = True):
        self.name = name or unique_name(_snake(type(self).__name__))
        self.trainable = trainable
        self.built = False
        self._weights: list[Variable] = []
        self.dtype = None
        self.device = None

    # -- weights ----------------------------------------------------------------------------------
    def add_weight(self, name, shape, initializer="glorot_uniform", trainable=True) -> Variable:
        """A Variable of ``shape`` on this layer's device and dtype, drawn by ``initializer``."""
        init = initializers.get(initializer)
        value = init(tuple(shape), self.dtype, self.device)
        data = value.data if isinstance(value, Tensor) else value
        v = Variable(
            data, trainable=trainable, name=f"{self.name}/{name}", dtype=self.dtype, device=self.device
        )
        if tuple(v.shape) != tuple(shape):
            raise ValueError(
                f"initializer {initializer!r} returned shape {tuple(v.shape)} for weight "
                f"{v.name!r} of shape {tuple(shape)}"
            )
        self._weights.append(v)
        return v

    @property
    def weights(self) -> list[Variable]:
        return list(self._weights)

    variables = weights

    @property
    def trainable_variables(self) -> list[Variable]:
        if not self.trainable:
            return []
        return [v for v in self._weights if v.trainable]

    trainable_weights = trainable_variables

    @property
    def non_trainable_variables(self) -> list[Variable]:
        if not self.trainable:
            return list(self._weights)
        return [v for v in self._weights if not v.trainable]

    def count_params(self) -> int:
        return sum(v.size for v in self._weights)

    def get_weights(self) -> list[np.ndarray]:
        """The weights as host NumPy arrays."""
        return [v.numpy() for v in self._weights]

    def set_weights(self, arrays) -> None:
        """Assign host (or device) arrays to the weights, in order, onto each weight's device."""
        arrays = list(arrays)
        if len(arrays) != len(self._weights):
            raise ValueError(
                f"layer {self.name!r} has {len(self._weights)} weight(s), got {len(arrays)} array(s)"
            )
        for v, a in zip(self._weights, arrays, strict=True):
            _assign_host(v, a)

    # -- calling ----------------------------------------------------------------------------------
    def build(self, input_shape, dtype=None, device=None) -> None:
        """Create the weights for inputs of ``input_shape``, with ``dtype`` (default float32) on
        ``device`` (default: the default device). Subclasses call this first, then ``add_weight``."""
        self.dtype = np.dtype(dtype) if dtype is not None else (self.dtype or DEFAULT_FLOAT)
        self.device = backend.normalize_device(device if device is not None else self.device)
        self.built = True

    def _build_for(self, x: Tensor) -> None:
        self.build(tuple(x.shape), x.dtype if is_float(x.dtype) else DEFAULT_FLOAT, x.device)
        self.built = True

    def call(self, x: Tensor) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} must define call(x)")

    def __call__(self, x) -> Tensor:
        if not isinstance(x, Tensor):  # an array or list: onto the weights' device once built
            x = Tensor(x, device=self.device)
        if not self.built:
            self._build_for(x)
        return self.call(x)

    def compute_output_shape(self, input_shape) -> tuple:
        return tuple(input_shape)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r}, built={self.built}>"


def _assign_host(v: Variable, a) -> None:
    """Put array ``a`` (NumPy, CuPy or Tensor) into Variable ``v`` on ``v``'s device and dtype."""
    if isinstance(a, Tensor):
        a = a.data
    if tuple(np.shape(a) if not hasattr(a, "shape") else a.shape) != tuple(v.shape):
        raise ValueError(
            f"weight {v.name!r} has shape {tuple(v.shape)}, got an array of shape {tuple(np.shape(a))}"
        )
    v.assign(backend.array_on(a, v.device, v.dtype))


class Dense(Layer):
    """``activation(x @ kernel + bias)``: a fully connected layer of ``units`` outputs.

    ``kernel`` has shape (input_dim, units) and ``bias`` (units,); inputs of any rank ≥ 1 are
    multiplied on their last axis. ``activation`` and ``kernel_initializer``/``bias_initializer``
    take names or callables.
    """

    def __init__(
        self,
        units: int,
        activation=None,
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        name: str | None = None,
        trainable: bool = True,
    ):
        if not isinstance(units, (int, np.integer)) or isinstance(units, bool) or units < 1:
            raise ValueError(f"Dense: units must be a positive integer, got {units!r}")
        super().__init__(name=name, trainable=trainable)
        self.units = int(units)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel: Variable | None = None
        self.bias: Variable | None = None
        self._linear = self.activation is activations.linear

    def build(self, input_shape, dtype=None, device=None) -> None:
        if len(input_shape) < 1:
            raise ValueError(f"Dense {self.name!r}: inputs need at least one dimension, got a scalar")
        super().build(input_shape, dtype, device)
        in_dim = int(input_shape[-1])
        self.kernel = self.add_weight("kernel", (in_dim, self.units), self.kernel_initializer)
        if self.use_bias:
            self.bias = self.add_weight("bias", (self.units,), self.bias_initializer)
        self.built = True

    def call(self, x: Tensor) -> Tensor:
        kernel = self.kernel
        if x.data.shape[-1:] != kernel.data.shape[:1]:
            raise ValueError(
                f"Dense {self.name!r}: expected inputs with last dimension {kernel.shape[0]}, "
                f"got shape {tuple(x.shape)}"
            )
        if x.data.dtype != kernel.data.dtype:
            x = x.astype(kernel.dtype)
        y = matmul(x, kernel)
        if self.bias is not None:
            y = y + self.bias
        return y if self._linear else self.activation(y)

    def compute_output_shape(self, input_shape) -> tuple:
        return tuple(input_shape[:-1]) + (self.units,)

    def count_params(self) -> int:
        if self.built:
            return super().count_params()
        return 0

    def __repr__(self):
        act = activations.serialize(self.activation)
        return f"<Dense name={self.name!r}, units={self.units}, activation={act!r}, built={self.built}>"
