"""Layers in the Keras style: ``Layer`` (the base), ``Dense``, ``Dropout``, ``Flatten``,
``Activation`` and ``Input`` (an :class:`InputLayer` that fixes a model's input shape).

A layer builds its Variables on its first call, from the input's last dimension, on the input's
device and with its floating dtype (integer inputs give float32). The forward pass is written in
gpugrad ops, so the same code runs on NumPy and on CuPy with our kernels.
"""

from __future__ import annotations

import collections
import inspect

import numpy as np

from .. import backend
from .. import random as _random
from ..ops.linalg import matmul
from ..ops.shape import reshape
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

    _accepts_training = True  # Sequential passes ``training=`` to objects that say so
    _call_takes_training = False  # set per subclass: does ``call`` take ``training=``?

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._call_takes_training = "training" in inspect.signature(cls.call).parameters

    def __init__(self, name: str | None = None, trainable: bool = True, input_shape=None):
        self.name = name or unique_name(_snake(type(self).__name__))
        self.trainable = trainable
        self.built = False
        self._weights: list[Variable] = []
        self.dtype = None
        self.device = None
        # Keras' ``input_shape=`` (without the batch axis): a Sequential model builds from it
        self.input_shape_arg = None if input_shape is None else _shape_tuple(input_shape, "input_shape")

    # -- weights ----------------------------------------------------------------------------------
    def add_weight(self, name, shape, initializer="glorot_uniform", trainable=True) -> Variable:
        """A Variable of ``shape`` on this layer's device and dtype, drawn by ``initializer``."""
        init = initializers.get(initializer)
        with backend.untraced():  # drawn once, also when the first call is traced by gg.jit
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

    def __call__(self, x, training=None) -> Tensor:
        """Run the layer; ``training=True`` turns on training-only behaviour (Dropout)."""
        if not isinstance(x, Tensor):  # an array or list: onto the weights' device once built
            x = Tensor(x, device=self.device)
        if not self.built:
            self._build_for(x)
        if self._call_takes_training:
            return self.call(x, training=training)
        return self.call(x)

    def compute_output_shape(self, input_shape) -> tuple:
        return tuple(input_shape)

    # -- serialization ------------------------------------------------------------------------------
    def get_config(self) -> dict:
        """The constructor arguments that rebuild this layer (without its weights)."""
        config = {"name": self.name, "trainable": self.trainable}
        if self.input_shape_arg is not None:
            config["input_shape"] = list(self.input_shape_arg)
        return config

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

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
        input_shape=None,
    ):
        if not isinstance(units, (int, np.integer)) or isinstance(units, bool) or units < 1:
            raise ValueError(f"Dense: units must be a positive integer, got {units!r}")
        super().__init__(name=name, trainable=trainable, input_shape=input_shape)
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

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "units": self.units,
            "activation": activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
        }

    def __repr__(self):
        act = activations.serialize(self.activation)
        return f"<Dense name={self.name!r}, units={self.units}, activation={act!r}, built={self.built}>"


def _shape_tuple(shape, what: str) -> tuple:
    """A shape without the batch axis: an int or a sequence of positive ints (None allowed)."""
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    try:
        dims = tuple(None if d is None else int(d) for d in shape)
    except (TypeError, ValueError):
        raise TypeError(f"{what} must be a tuple of dimensions, got {shape!r}") from None
    if any(d is not None and d < 1 for d in dims):
        raise ValueError(f"{what} must hold positive dimensions, got {shape!r}")
    return dims


class Dropout(Layer):
    """Sets a random fraction ``rate`` of the inputs to 0 while training and scales the rest by
    1/(1 − rate) (inverted dropout, as Keras), so nothing changes at inference.

    Active only when called with ``training=True`` (``fit`` does; ``evaluate``/``predict`` do not).
    ``noise_shape`` (``None`` entries take the input's size) shares one mask along the axes of size
    1. ``seed`` gives the layer its own generator, so a seeded model drops the same units on every
    run; without one, masks come from :mod:`gpugrad.random` (``gg.manual_seed`` makes them
    reproducible).
    """

    def __init__(self, rate: float, noise_shape=None, seed: int | None = None, name=None, trainable=True,
                 input_shape=None):
        rate = float(rate)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"Dropout: rate must be in [0, 1), got {rate}")
        super().__init__(name=name, trainable=trainable, input_shape=input_shape)
        self.rate = rate
        self.noise_shape = None if noise_shape is None else tuple(noise_shape)
        self.seed = None if seed is None else int(seed)
        self._generators: dict = {}

    def _generator(self, dev: str):
        if self.seed is None:
            return _random._generator(dev, None)
        g = self._generators.get(dev)
        if g is None:
            g = self._generators[dev] = _random._new(dev, self.seed)
        return g

    def _uniform(self, dev: str, shape):
        # the generator is looked up at each draw, so gg.random.seed between compiled calls counts
        return self._generator(dev).random_sample(shape)

    def call(self, x: Tensor, training=None) -> Tensor:
        if not training or self.rate == 0.0:
            return x
        shape = tuple(x.shape)
        if self.noise_shape is not None:
            if len(self.noise_shape) != len(shape):
                raise ValueError(f"Dropout {self.name!r}: noise_shape {self.noise_shape} does not match inputs {shape}")
            shape = tuple(s if n is None else int(n) for s, n in zip(shape, self.noise_shape, strict=True))
        dev = x.device
        if dev == "cpu":
            u = backend.host_array(self._uniform, dev, shape)  # drawn afresh at every gg.jit replay too
        else:  # float32 uniforms for float32 inputs: half the random traffic of float64 ones
            u = _random.uniform_array(lambda n: self._generator(dev).take(n), dev, shape,
                                      np.float32 if x.dtype.itemsize <= 4 else np.float64)
        keep = (u >= self.rate).astype(x.dtype)
        keep *= x.dtype.type(1.0 / (1.0 - self.rate))
        return x * Tensor._make(keep)

    def get_config(self) -> dict:
        noise = None if self.noise_shape is None else list(self.noise_shape)
        return {**super().get_config(), "rate": self.rate, "noise_shape": noise, "seed": self.seed}


class Flatten(Layer):
    """Reshape each sample to one axis: (N, d1, d2, ...) → (N, d1·d2·...); (N,) → (N, 1)."""

    def call(self, x: Tensor) -> Tensor:
        if x.ndim == 0:
            raise ValueError(f"Flatten {self.name!r}: inputs need a batch axis, got a scalar")
        return reshape(x, (x.shape[0], -1))

    def compute_output_shape(self, input_shape) -> tuple:
        rest = input_shape[1:]
        n = None if any(d is None for d in rest) else int(np.prod(rest, dtype=np.int64))
        return (input_shape[0], n)


class Activation(Layer):
    """Applies an activation (a name such as ``'relu'`` or ``'gelu'``, or a callable)."""

    def __init__(self, activation, name=None, trainable=True, input_shape=None):
        super().__init__(name=name, trainable=trainable, input_shape=input_shape)
        self.activation = activations.get(activation)

    def call(self, x: Tensor) -> Tensor:
        return self.activation(x)

    def get_config(self) -> dict:
        return {**super().get_config(), "activation": activations.serialize(self.activation)}


class InputLayer(Layer):
    """What :func:`Input` returns: the shape (without the batch axis) and dtype of a model's inputs.
    Placed first in a ``Sequential`` model it builds the model at once (so ``summary`` works)."""

    def __init__(self, shape=None, batch_size=None, dtype=None, name=None, input_shape=None, trainable=True):
        shape = shape if shape is not None else input_shape
        if shape is None:
            raise ValueError("Input: a shape is required, e.g. gg.nn.Input((784,))")
        super().__init__(name=name or unique_name("input_layer"), trainable=trainable)
        self.shape = _shape_tuple(shape, "Input shape")
        self.batch_size = batch_size
        self.input_dtype = np.dtype(dtype) if dtype is not None else None
        self.input_shape_arg = self.shape

    def call(self, x: Tensor) -> Tensor:
        want = self.shape
        got = tuple(x.shape[1:])
        if len(got) != len(want) or any(w is not None and w != g for w, g in zip(want, got, strict=True)):
            raise ValueError(f"Input {self.name!r}: expected samples of shape {want}, got inputs of shape {x.shape}")
        return x

    def get_config(self) -> dict:
        dt = None if self.input_dtype is None else str(self.input_dtype)
        return {"name": self.name, "shape": list(self.shape), "batch_size": self.batch_size, "dtype": dt}


def Input(shape=None, batch_size=None, dtype=None, name=None) -> InputLayer:  # noqa: N802 (Keras' name)
    """The inputs of a model: ``Sequential([gg.nn.Input((4,)), Dense(8), ...])``. ``shape`` leaves
    out the batch axis."""
    return InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, name=name)


LAYERS = {cls.__name__: cls for cls in (Dense, Dropout, Flatten, Activation, InputLayer)}
