"""Optimizers with Keras 3's update rules: ``SGD`` (momentum, Nesterov) and ``Adam``.

Updates work on the Variables' arrays directly (NumPy or CuPy), record nothing, and swap the new
array in with a version bump, so a graph that still holds the old value raises instead of giving
a wrong gradient. Optimizer state (momenta, moments) lives on each variable's device.
"""

from __future__ import annotations

import math

import numpy as np

from . import backend
from .tape import GradientTape
from .tensor import Tensor, Variable


class Optimizer:
    """Base class: subclasses define ``_update(var, grad_array, lr, state)``.

    ``learning_rate`` is a float or a schedule ``lr(step) -> float`` called with
    :attr:`iterations` (the number of updates applied so far) before each update.
    """

    name = "optimizer"

    def __init__(self, learning_rate=0.001, name: str | None = None):
        self.learning_rate = learning_rate
        self.iterations = 0
        self._slots: dict[int, tuple] = {}  # id(var) -> (var, state...)
        if name is not None:
            self.name = name

    # -- learning rate ----------------------------------------------------------------------------
    @property
    def learning_rate(self):
        return self._lr

    @learning_rate.setter
    def learning_rate(self, value):
        if not callable(value):
            value = float(value)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"learning_rate must be a non-negative finite number, got {value}")
        self._lr = value

    def current_learning_rate(self) -> float:
        """The learning rate the next update will use."""
        lr = self._lr
        if callable(lr):
            lr = lr(self.iterations)
            if isinstance(lr, Tensor):
                lr = lr.item()
            lr = float(lr)
        return lr

    # -- updates ----------------------------------------------------------------------------------
    def apply_gradients(self, grads_and_vars) -> int:
        """Apply one update for each ``(gradient, variable)`` pair; ``None`` gradients are skipped.

        Returns :attr:`iterations` after the update.
        """
        pairs = []
        for g, v in grads_and_vars:
            if g is None:
                continue
            if not isinstance(v, Variable):
                raise TypeError(f"apply_gradients: expected Variables to update, got {type(v).__name__}")
            gd = g.data if isinstance(g, Tensor) else g
            if gd.shape != v.data.shape:
                raise ValueError(
                    f"apply_gradients: gradient of shape {tuple(gd.shape)} for variable "
                    f"{v.name or ''} of shape {tuple(v.shape)}"
                )
            pairs.append((v, gd))
        if not pairs:
            raise ValueError(
                "apply_gradients: no gradients provided for any variable (every gradient is None); "
                "check that the loss depends on the variables"
            )
        # The Python bookkeeping of a step; inside a compiled step (gg.jit) it runs again at every
        # replay, and the numbers it gives are read afresh each time.
        lr, per_step = backend.host_value(self._begin_step)
        for k, val in per_step.items():
            setattr(self, k, val)
        slots = self._slots
        for v, gd in pairs:
            st = slots.get(id(v))
            if st is None or st[0] is not v:
                st = slots[id(v)] = (v, *self._new_state(v))
            self._update(v, gd, lr, st)
        return self.iterations

    def _begin_step(self):
        lr = self.current_learning_rate()
        self.iterations += 1
        return lr, self._prepare(lr) or {}

    def minimize(self, loss, var_list, tape: GradientTape | None = None):
        """One update that decreases ``loss``: a zero-argument callable (as Keras) evaluated under a
        tape, or a loss Tensor computed under ``tape``. ``var_list`` may be a callable too.
        Returns the loss value."""
        if callable(var_list):
            var_list = var_list()
        var_list = list(var_list)
        if callable(loss):
            with GradientTape(watch_accessed_variables=False) as tape:
                tape.watch(var_list)
                loss = loss()
        elif tape is None:
            raise ValueError("minimize: `tape` is required when `loss` is a Tensor rather than a callable")
        grads = tape.gradient(loss, var_list)
        self.apply_gradients(zip(grads, var_list, strict=True))
        return loss

    def variables(self) -> list:
        """The optimizer's state arrays (in the order the variables were first updated)."""
        return [a.data for st in self._slots.values() for a in st[1:]]

    def _prepare(self, lr) -> dict | None:
        """Per-step numbers (called once per ``apply_gradients``), returned as a dict of attribute
        names to values, which are set on the optimizer."""

    def _new_state(self, v: Variable) -> tuple:
        return ()

    def _update(self, v: Variable, g, lr: float, state: tuple) -> None:
        raise NotImplementedError

    def get_config(self) -> dict:
        return {"name": self.name, "learning_rate": self._lr}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        return f"{type(self).__name__}({args})"


def _zeros_like(v: Variable) -> Variable:
    """A state slot for ``v``: a non-trainable Variable of zeros (so a compiled step reads and
    writes it as state)."""
    from .ops.creation import zeros

    return Variable(zeros(v.shape, dtype=v.dtype, device=v.device), trainable=False)


class SGD(Optimizer):
    """Gradient descent, with optional momentum (Keras 3's rule):

    ``m = momentum·m − lr·g``; then ``w += m``, or with ``nesterov=True``, ``w += momentum·m − lr·g``.
    Without momentum, ``w −= lr·g``.
    """

    name = "SGD"

    def __init__(self, learning_rate=0.01, momentum: float = 0.0, nesterov: bool = False, name=None):
        super().__init__(learning_rate, name)
        momentum = float(momentum)
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"SGD: momentum must be in [0, 1], got {momentum}")
        self.momentum = momentum
        self.nesterov = bool(nesterov)

    def _new_state(self, v):
        return (_zeros_like(v),) if self.momentum else ()

    def _update(self, v, g, lr, state):
        # Variable._update writes in place when no one else holds the array (else swaps in a new one)
        if not self.momentum:
            v._update(np.subtract, lr * g)
            return
        m = state[1].data
        mom = self.momentum
        m *= mom  # the state array is ours: update it in place
        m -= lr * g
        if self.nesterov:
            v._update(np.add, mom * m - lr * g)
        else:
            v._update(np.add, m)

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    """Adam (Kingma & Ba) with Keras' bias correction folded into the step size:

    ``lr_t = lr·√(1 − β₂ᵗ)/(1 − β₁ᵗ)``; ``m = β₁m + (1 − β₁)g``; ``v = β₂v + (1 − β₂)g²``;
    ``w −= lr_t·m/(√v + ε)``.
    """

    name = "Adam"

    def __init__(self, learning_rate=0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, name=None):
        super().__init__(learning_rate, name)
        for k, b in (("beta_1", beta_1), ("beta_2", beta_2)):
            if not 0.0 <= float(b) < 1.0:
                raise ValueError(f"Adam: {k} must be in [0, 1), got {b}")
        self.beta_1 = float(beta_1)
        self.beta_2 = float(beta_2)
        self.epsilon = float(epsilon)
        self._lr_t = 0.0

    def _prepare(self, lr):
        t = self.iterations
        return {"_lr_t": lr * math.sqrt(1.0 - self.beta_2**t) / (1.0 - self.beta_1**t)}

    def _new_state(self, v):
        return (_zeros_like(v), _zeros_like(v))

    def _update(self, v, g, lr, state):
        m, s = state[1].data, state[2].data
        xp = backend.get_array_module(g)
        b1, b2 = self.beta_1, self.beta_2
        m *= b1
        m += (1.0 - b1) * g
        s *= b2
        s += (1.0 - b2) * (g * g)
        v._update(np.subtract, (self._lr_t * m) / (xp.sqrt(s) + self.epsilon))

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}


OPTIMIZERS = {"sgd": SGD, "adam": Adam}


def get(identifier) -> Optimizer:
    """An optimizer from a name (``'sgd'``, ``'adam'``, any case; default settings) or an instance."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str):
        cls = OPTIMIZERS.get(identifier.lower())
        if cls is not None:
            return cls()
    if isinstance(identifier, type) and issubclass(identifier, Optimizer):
        return identifier()
    raise ValueError(
        f"unknown optimizer {identifier!r}; known optimizers: {', '.join(sorted(OPTIMIZERS))} "
        "(or an Optimizer instance)"
    )
