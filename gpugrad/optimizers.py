"""Optimizers: ``SGD`` (momentum, Nesterov), ``Adam``, ``AdamW`` and ``RMSprop``.

Built Keras-style (``SGD(learning_rate=0.01, momentum=0.9)``, then ``apply_gradients`` or
``minimize``) they follow Keras 3's update rules and defaults, with ``weight_decay`` (decoupled:
``w −= lr·wd·w`` before the update), ``clipnorm`` (per gradient), ``global_clipnorm`` and
``clipvalue``. Built PyTorch-style, with the parameters first (``SGD(model.parameters(),
lr=0.1, momentum=0.9)``, then ``loss.backward()``, ``opt.step()``, ``opt.zero_grad()``), they
follow ``torch.optim``'s rules and defaults (see :mod:`gpugrad.torch_optim`). Learning rates may
be schedules from :mod:`gpugrad.optimizers.schedules`.

Updates work on the Variables' arrays directly (NumPy or CuPy), record nothing, and swap the new
array in with a version bump, so a graph that still holds the old value raises instead of giving
a wrong gradient. Optimizer state (momenta, moments) lives on each variable's device.
"""

from __future__ import annotations

import math
import re
import sys
import warnings

import numpy as np

from . import backend, schedules, tree
from .tape import GradientTape
from .tensor import Tensor, Variable

sys.modules.setdefault(__name__ + ".schedules", schedules)  # `from gpugrad.optimizers.schedules import ...`


def _torch_style(args, kwargs) -> bool:
    """Whether a constructor call is PyTorch's (parameters first) rather than Keras' (a rate first)."""
    if "params" in kwargs:
        return True
    if args:
        first = args[0]
        if isinstance(first, Tensor):
            raise TypeError(
                "params must be an iterable of Tensors (e.g. [w, b] or model.parameters()), got one Tensor"
            )
        if isinstance(first, (int, float, np.number)) or callable(first):
            return False
        return hasattr(first, "__iter__")
    if "lr" in kwargs:
        raise TypeError(
            "lr= is PyTorch's spelling and needs the parameters first: SGD(params, lr=0.1); "
            "the Keras spelling is SGD(learning_rate=0.1)"
        )
    return False


class Optimizer:
    """Base class: subclasses define ``_update(var, grad_array, lr, state)``.

    ``learning_rate`` is a float or a schedule ``lr(step) -> float`` called with
    :attr:`iterations` (the number of updates applied so far) before each update.
    ``weight_decay``, ``clipnorm``, ``clipvalue`` and ``global_clipnorm`` act as in Keras 3 (at
    most one of the three clips).
    """

    name = "optimizer"
    _torch_cls: type | None = None  # the PyTorch-rule class a ``params``-first call builds

    def __new__(cls, *args, **kwargs):
        torch_cls = cls.__dict__.get("_torch_cls")
        if torch_cls is not None and _torch_style(args, kwargs):
            return object.__new__(torch_cls)
        return object.__new__(cls)

    def __init__(self, learning_rate=0.001, name: str | None = None, weight_decay=None, clipnorm=None,
                 clipvalue=None, global_clipnorm=None):
        self.learning_rate = learning_rate
        self.iterations = 0
        self._slots: dict[int, tuple] = {}  # id(var) -> (var, state...)
        if name is not None:
            self.name = name
        clips = {"clipnorm": clipnorm, "clipvalue": clipvalue, "global_clipnorm": global_clipnorm}
        given = [k for k, v in clips.items() if v is not None]
        if len(given) > 1:
            raise ValueError(f"only one of clipnorm, clipvalue and global_clipnorm can be set, got {given}")
        for k, v in clips.items():
            if v is not None and not (math.isfinite(float(v)) and float(v) > 0):
                raise ValueError(f"{k} must be a positive number, got {v!r}")
        self.clipnorm = None if clipnorm is None else float(clipnorm)
        self.clipvalue = None if clipvalue is None else float(clipvalue)
        self.global_clipnorm = None if global_clipnorm is None else float(global_clipnorm)
        if weight_decay is not None and (not math.isfinite(float(weight_decay)) or float(weight_decay) < 0):
            raise ValueError(f"weight_decay must be a non-negative number, got {weight_decay!r}")
        self.weight_decay = None if weight_decay is None else float(weight_decay)
        self._exclude_ids: set = set()
        self._exclude_names: list = []

    # -- learning rate ----------------------------------------------------------------------------
    @property
    def learning_rate(self):
        return self._lr

    @learning_rate.setter
    def learning_rate(self, value):
        if not callable(value):
            if callable(getattr(self, "_lr", None)):  # Keras 3 refuses this too
                raise TypeError(
                    f"{type(self).__name__}: this optimizer was built with a learning rate schedule "
                    f"({self._lr!r}), so its learning rate cannot be set to {value!r}; build the "
                    "optimizer with a float learning_rate to change it during training"
                )
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
        pairs, missing = [], []
        for g, v in _leaf_pairs(grads_and_vars):
            if g is None:
                missing.append(v)
                continue
            if not isinstance(v, Variable):
                hint = " (zip over two dicts pairs their keys: pass [(grads, variables)])" if isinstance(v, str) else ""
                raise TypeError(f"apply_gradients: expected Variables to update, got {type(v).__name__}{hint}")
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
        if missing:
            self._warn_missing(missing)
        return self._apply_pairs(pairs)

    def _warn_missing(self, variables) -> None:
        """Warn (once per set of variables) that some variables got no gradient, as Keras 3 does."""
        names = tuple(_var_label(v) for v in variables)
        warned = self.__dict__.setdefault("_warned_missing", set())
        if names in warned:
            return
        warned.add(names)
        warnings.warn(
            f"{type(self).__name__}.apply_gradients: gradients do not exist for variables {list(names)}; "
            "they were not updated (does the loss depend on them?)",
            UserWarning,
            stacklevel=3,
        )

    def _apply_pairs(self, pairs) -> int:
        """Clip, decay and update each ``(variable, gradient array)`` pair; one step."""
        pairs = self._clip(pairs)
        # The Python bookkeeping of a step; inside a compiled step (gg.jit) it runs again at every
        # replay, and the numbers it gives are read afresh each time.
        lr, per_step, step = backend.host_value(self._begin_step)
        for k, val in per_step.items():
            setattr(self, k, val)
        self._decay([v for v, _ in pairs], lr)
        slots = self._slots
        for v, gd in pairs:
            st = slots.get(id(v))
            if st is None or st[0] is not v:
                st = slots[id(v)] = (v, *self._new_state(v))
            self._update(v, gd, lr, st)
        return step  # in a compiled step, the count of that replay (not the one seen while tracing)

    def _begin_step(self):
        lr = self.current_learning_rate()
        self.iterations += 1
        return lr, self._prepare(lr) or {}, self.iterations

    # -- clipping and weight decay (Keras 3) ------------------------------------------------------
    def _clip(self, pairs):
        """Keras 3's clipping, in array calls only (no host reads, so compiled steps replay it):
        ``g·c / max(‖g‖, c)`` per gradient, the same with the global norm, or ``clip(g, −c, c)``."""
        if self.clipnorm is not None:
            c = self.clipnorm
            return [(v, g * (c / _xp(g).maximum(_norm(g), c))) for v, g in pairs]
        if self.global_clipnorm is not None:
            c = self.global_clipnorm
            total = None
            for _, g in pairs:
                sq = (g * g).sum()
                total = sq if total is None else total + sq
            total = _xp(total).sqrt(total)
            return [(v, g * (c / _xp(g).maximum(total, c)).astype(g.dtype)) for v, g in pairs]
        if self.clipvalue is not None:
            c = self.clipvalue
            return [(v, _xp(g).clip(g, -c, c)) for v, g in pairs]
        return pairs

    def exclude_from_weight_decay(self, var_list=None, var_names=None) -> None:
        """Keep these variables (or those whose name matches one of the regular expressions in
        ``var_names``, e.g. ``['bias']``) out of the weight decay."""
        self._exclude_ids = {id(v) for v in var_list or ()}
        self._exclude_names = list(var_names or ())

    def _decays(self, v) -> bool:
        if id(v) in self._exclude_ids:
            return False
        name = getattr(v, "name", None) or ""
        return not any(re.search(p, name) for p in self._exclude_names)

    def _decay(self, variables, lr) -> None:
        """Keras' decoupled weight decay, before the update: ``w −= w·wd·lr``."""
        wd = self.weight_decay
        if not wd:
            return
        for v in variables:
            if self._decays(v):
                _scale_(v, 1.0 - wd * lr)

    def minimize(self, loss, var_list, tape: GradientTape | None = None):
        """One update that decreases ``loss``: a zero-argument callable (as Keras) evaluated under a
        tape, or a loss Tensor computed under ``tape``. ``var_list`` may be a callable too.
        Returns the loss value."""
        if callable(var_list):
            var_list = var_list()
        var_list = tree.flat(var_list if isinstance(var_list, (Tensor, dict, list, tuple)) else list(var_list))[0]
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

    # -- state (saved by model.save, and by state_dict for the PyTorch spelling) -----------------
    def _slot_state(self, variables) -> list:
        """For each variable: None when no update has reached it yet, else the tuple of its state
        Variables (None for a slot this configuration does not use)."""
        out = []
        for v in variables:
            st = self._slots.get(id(v))
            out.append(None if st is None or st[0] is not v else tuple(st[1:]))
        return out

    def _restore_slots(self, variables, states, iterations: int, where: str) -> None:
        """Set :attr:`iterations` and each variable's state arrays (``states`` as
        :meth:`_slot_state` gives them, arrays or Tensors in place of the Variables). Everything
        is checked before anything changes; a mismatch raises ``ValueError`` naming ``where``."""
        if isinstance(iterations, bool) or not isinstance(iterations, (int, np.integer)) or iterations < 0:
            raise ValueError(f"{where}: the step count must be a non-negative integer, got {iterations!r}")
        variables, states = list(variables), list(states)
        if len(states) != len(variables):
            raise ValueError(f"{where}: state for {len(states)} variable(s), but the optimizer has {len(variables)}")
        staged = []
        for i, (v, arrays) in enumerate(zip(variables, states, strict=True)):
            if arrays is None:
                continue
            template = self._new_state(v)
            used = [t is not None for t in template]
            given = [a is not None for a in arrays]
            if used != given:
                raise ValueError(
                    f"{where}: variable {i} ({_var_label(v)}) has {sum(given)} state array(s) of layout {given}, "
                    f"but {type(self).__name__} with this configuration keeps {sum(used)} ({used})"
                )
            for t, a in zip(template, arrays, strict=True):
                if t is None:
                    continue
                shape = tuple(a.shape) if hasattr(a, "shape") else np.shape(a)
                if shape != tuple(v.shape):
                    raise ValueError(
                        f"{where}: a state array of variable {i} ({_var_label(v)}) has shape {shape}, "
                        f"but the variable has shape {tuple(v.shape)}"
                    )
            staged.append((v, template, arrays))
        for v, template, arrays in staged:
            for t, a in zip(template, arrays, strict=True):
                if t is not None:
                    t.assign(backend.array_on(a.data if isinstance(a, Tensor) else a, t.device, t.dtype))
            self._slots[id(v)] = (v, *template)
        self.iterations = int(iterations)

    def _prepare(self, lr) -> dict | None:
        """Per-step numbers (called once per ``apply_gradients``), returned as a dict of attribute
        names to values, which are set on the optimizer."""

    def _new_state(self, v: Variable) -> tuple:
        return ()

    def _update(self, v: Variable, g, lr: float, state: tuple) -> None:
        raise NotImplementedError

    def get_config(self) -> dict:
        """The constructor arguments (a schedule as ``{'class_name', 'config'}``)."""
        lr = self._lr
        if callable(lr) and hasattr(lr, "get_config"):
            lr = {"class_name": type(lr).__name__, "config": lr.get_config()}
        config = {"name": self.name, "learning_rate": lr}
        for k in ("weight_decay", "clipnorm", "clipvalue", "global_clipnorm"):
            config[k] = getattr(self, k)
        return config

    @classmethod
    def from_config(cls, config: dict):
        config = dict(config)
        lr = config.get("learning_rate")
        if isinstance(lr, dict):
            config["learning_rate"] = getattr(schedules, lr["class_name"]).from_config(lr["config"])
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        return f"{type(self).__name__}({args})"


def _var_label(v) -> str:
    name = getattr(v, "name", None)
    if name:
        return str(name)
    shape = getattr(v, "shape", None)
    return f"<unnamed {type(v).__name__} of shape {tuple(shape)}>" if shape is not None else repr(v)


def _leaf_pairs(grads_and_vars):
    """``(gradient, Variable)`` pairs; a pair of two pytrees of one structure (say two dicts keyed
    alike) gives one pair per leaf."""
    for g, v in grads_and_vars:
        if isinstance(v, (dict, list, tuple)):
            vs, vdef = tree.flat(v)
            gs = [None] * len(vs) if g is None else tree.flat_like(vdef, g, "apply_gradients: the gradients")
            yield from zip(gs, vs)
        else:
            yield g, v


def _zeros_like(v: Variable) -> Variable:
    """A state slot for ``v``: a non-trainable Variable of zeros (so a compiled step reads and
    writes it as state)."""
    from .ops.creation import zeros

    return Variable(zeros(v.shape, dtype=v.dtype, device=v.device), trainable=False)


def _xp(a):
    return backend.get_array_module(a)


def _norm(g):
    """‖g‖₂ as a 0-d array on g's device."""
    return _xp(g).sqrt((g * g).sum())


def _scale_(p: Tensor, factor) -> None:
    """``p *= factor`` for a Variable (in place where safe) or a leaf Tensor (a new array)."""
    if isinstance(p, Variable):  # a Python number (or a compiled step's host value) keeps p's dtype
        p._update(np.multiply, factor)
    else:
        p.data = p.data * factor


def _sub_(p: Tensor, delta) -> None:
    """``p −= delta`` for a Variable (in place where safe) or a leaf Tensor (a new array)."""
    if isinstance(p, Variable):
        p._update(np.subtract, delta)
    else:
        p.data = p.data - delta


class SGD(Optimizer):
    """Gradient descent, with optional momentum (Keras 3's rule):

    ``m = momentum·m − lr·g``; then ``w += m``, or with ``nesterov=True``, ``w += momentum·m − lr·g``.
    Without momentum, ``w −= lr·g``.
    """

    name = "SGD"

    def __init__(self, learning_rate=0.01, momentum: float = 0.0, nesterov: bool = False, name=None,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None):
        super().__init__(learning_rate, name, weight_decay, clipnorm, clipvalue, global_clipnorm)
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
                 epsilon: float = 1e-7, amsgrad: bool = False, name=None, weight_decay=None, clipnorm=None,
                 clipvalue=None, global_clipnorm=None):
        super().__init__(learning_rate, name, weight_decay, clipnorm, clipvalue, global_clipnorm)
        for k, b in (("beta_1", beta_1), ("beta_2", beta_2)):
            if not 0.0 <= float(b) < 1.0:
                raise ValueError(f"{type(self).__name__}: {k} must be in [0, 1), got {b}")
        self.beta_1 = float(beta_1)
        self.beta_2 = float(beta_2)
        self.epsilon = float(epsilon)
        self.amsgrad = bool(amsgrad)
        self._lr_t = 0.0

    def _prepare(self, lr):
        t = self.iterations
        return {"_lr_t": lr * math.sqrt(1.0 - self.beta_2**t) / (1.0 - self.beta_1**t)}

    def _new_state(self, v):
        return (_zeros_like(v), _zeros_like(v)) + ((_zeros_like(v),) if self.amsgrad else ())

    def _update(self, v, g, lr, state):
        m, s = state[1].data, state[2].data
        xp = backend.get_array_module(g)
        b1, b2 = self.beta_1, self.beta_2
        m *= b1
        m += (1.0 - b1) * g
        s *= b2
        s += (1.0 - b2) * (g * g)
        if self.amsgrad:  # the running maximum of the second moment
            s_hat = state[3].data
            xp.maximum(s_hat, s, out=s_hat)
            s = s_hat
        v._update(np.subtract, (self._lr_t * m) / (xp.sqrt(s) + self.epsilon))

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon,
                "amsgrad": self.amsgrad}


class AdamW(Adam):
    """Adam with decoupled weight decay (Keras 3's ``AdamW``: ``weight_decay=0.004`` by default)."""

    name = "AdamW"

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, amsgrad: bool = False, name=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None):
        if weight_decay is None:
            raise ValueError("AdamW: weight_decay must be a number, got None")
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad, name, weight_decay, clipnorm, clipvalue,
                         global_clipnorm)


class RMSprop(Optimizer):
    """RMSprop with Keras 3's rule (ε inside the square root):

    ``v = ρv + (1 − ρ)g²``; centered: ``a = ρa + (1 − ρ)g``, ``d = v − a² + ε``, else ``d = v + ε``;
    ``inc = lr·g/√d``; with momentum ``μ``: ``m = μm + inc``, ``w −= m``; else ``w −= inc``.
    """

    name = "RMSprop"

    def __init__(self, learning_rate=0.001, rho: float = 0.9, momentum: float = 0.0, epsilon: float = 1e-7,
                 centered: bool = False, name=None, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None):
        super().__init__(learning_rate, name, weight_decay, clipnorm, clipvalue, global_clipnorm)
        if not 0.0 <= float(rho) < 1.0:
            raise ValueError(f"RMSprop: rho must be in [0, 1), got {rho}")
        if not 0.0 <= float(momentum) <= 1.0:
            raise ValueError(f"RMSprop: momentum must be in [0, 1], got {momentum}")
        self.rho = float(rho)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.centered = bool(centered)

    def _new_state(self, v):
        # (velocity, momentum buffer or None, average gradient or None)
        return (_zeros_like(v), _zeros_like(v) if self.momentum else None, _zeros_like(v) if self.centered else None)

    def _update(self, v, g, lr, state):
        vel, mom, avg = (None if a is None else a.data for a in state[1:])
        xp = backend.get_array_module(g)
        rho = self.rho
        vel *= rho
        vel += (1.0 - rho) * (g * g)
        if avg is not None:
            avg *= rho
            avg += (1.0 - rho) * g
            denom = vel - avg * avg + self.epsilon
        else:
            denom = vel + self.epsilon
        inc = (lr * g) / xp.sqrt(denom)
        if mom is not None:
            mom *= self.momentum
            mom += inc
            v._update(np.subtract, mom)
        else:
            v._update(np.subtract, inc)

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon,
                "centered": self.centered}


OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop}

from . import torch_optim  # noqa: E402  (the PyTorch-rule subclasses of the classes above)

for _cls, _torch in ((SGD, torch_optim.SGD), (Adam, torch_optim.Adam), (AdamW, torch_optim.AdamW),
                     (RMSprop, torch_optim.RMSprop)):
    _cls._torch_cls = _torch


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
