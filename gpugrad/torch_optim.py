"""PyTorch-style optimizers: what ``gg.optimizers.SGD(params, lr=0.1)`` (parameters first) builds.

They follow ``torch.optim``'s update rules and defaults (``SGD`` lr 1e-3, ``Adam``/``AdamW``
lr 1e-3 and eps 1e-8, ``AdamW`` weight_decay 1e-2, ``RMSprop`` lr 1e-2, alpha 0.99, eps 1e-8;
``weight_decay`` is L2 added to the gradient except in ``AdamW``, where it is decoupled). The
parameters are ``requires_grad`` leaf Tensors or Variables (which are then made to require
grad); ``loss.backward()`` fills their ``.grad``, ``opt.step()`` updates them, ``opt.zero_grad()``
clears the gradients. ``clipnorm``/``clipvalue`` are accepted too and act as in Keras. Step
counts (Adam's bias corrections, SGD's first momentum step) are the optimizer's, which equal
PyTorch's per-parameter counts when every parameter gets a gradient at every step.
``state_dict()`` / ``load_state_dict(sd)`` save and restore the hyperparameters, the step count
and the buffers in ``torch.optim``'s layout, and assigning ``p.grad`` a gradient of another
shape, dtype or device than ``p`` raises, as in PyTorch.
"""

from __future__ import annotations

import math

from . import backend
from . import optimizers as _opt
from .graph import enable_grad
from .tensor import Tensor, Variable, is_float


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


class _TorchRules:
    """What every PyTorch-style optimizer shares: the parameter list, ``step``, ``zero_grad`` and
    the learning rate kept in ``param_groups[0]['lr']`` (where PyTorch code changes it)."""

    def _setup(self, params, lr, hyper: dict, clipnorm=None, clipvalue=None):
        if isinstance(params, dict):
            raise TypeError("params must be an iterable of Tensors; a dict was given (use model.parameters())")
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        seen = set()
        for i, p in enumerate(params):
            if isinstance(p, dict):
                raise TypeError("parameter groups (dicts) are not supported: give one iterable of Tensors")
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, but parameter {i} is a {type(p).__name__}")
            if not is_float(p.dtype):
                raise TypeError(f"optimizer can only optimize floating tensors, parameter {i} has dtype {p.dtype}")
            if p._node is not None and p._rg:
                raise ValueError(f"can't optimize a non-leaf Tensor (parameter {i}); optimize the leaf it comes from")
            if id(p) in seen:
                raise ValueError(f"parameter {i} appears more than once in the parameter list")
            seen.add(id(p))
            if isinstance(p, Variable) and not p._rg:
                p.requires_grad_(True)  # so that loss.backward() fills its .grad
        _check(lr is not None and (callable(lr) or float(lr) >= 0.0), f"Invalid learning rate: {lr}")
        self.param_groups = [{"params": params, "lr": lr, **hyper}]
        _opt.Optimizer.__init__(self, lr, None, None, clipnorm, clipvalue, None)

    @property
    def params(self) -> list:
        return self.param_groups[0]["params"]

    @property
    def learning_rate(self):
        return self.param_groups[0]["lr"]

    @learning_rate.setter
    def learning_rate(self, value):
        _opt.Optimizer.learning_rate.fset(self, value)
        if hasattr(self, "param_groups"):
            self.param_groups[0]["lr"] = self._lr

    lr = learning_rate

    def current_learning_rate(self) -> float:
        self.learning_rate = self.param_groups[0]["lr"]  # PyTorch code may have changed it there
        return _opt.Optimizer.current_learning_rate(self)

    def _hyper(self, key):
        return self.param_groups[0][key]

    def step(self, closure=None):
        """One update of every parameter that has a ``.grad``; ``closure`` (re-evaluating and
        returning the loss) is called first when given. Returns the closure's loss."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        pairs = []
        for p in self.params:
            g = p.grad
            if g is None:
                continue
            gd = g.data if isinstance(g, Tensor) else g
            if gd.shape != p.data.shape:
                raise ValueError(f"the gradient of shape {tuple(gd.shape)} does not match its parameter {p.shape}")
            pairs.append((p, gd))
        if pairs:
            self._apply_pairs(pairs)
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear every parameter's ``.grad`` (to None, or to zeros with ``set_to_none=False``)."""
        for p in self.params:
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                p.grad = Tensor._make(backend.get_array_module(p.data).zeros_like(p.data))

    # -- state (torch.optim's state_dict / load_state_dict) ---------------------------------------
    _state_names: tuple = ()  # the names of the per-parameter buffers, in slot order

    def state_dict(self) -> dict:
        """The optimizer's state as ``torch.optim`` lays it out: ``{'state': {index: {'step': n,
        buffer name: Tensor, ...}}, 'param_groups': [{hyperparameters..., 'params': [0, 1, ...]}]}``.
        The Tensors are copies: later steps do not change a state dict taken earlier."""
        state = {}
        for i, slots in enumerate(self._slot_state(self.params)):
            if slots is None:
                continue
            entry: dict = {"step": float(self.iterations)}
            for name, slot in zip(self._state_names[: len(slots)], slots, strict=True):
                if slot is not None:
                    entry[name] = Tensor._make(slot.data.copy())
            state[i] = entry
        group = {k: v for k, v in self.param_groups[0].items() if k != "params"}
        group["params"] = list(range(len(self.params)))
        return {"state": state, "param_groups": [group]}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore what :meth:`state_dict` gave (for parameters of the same shapes, in the same
        order): the hyperparameters, the step count and every buffer, cast to each parameter's
        dtype and device as PyTorch does. Checked in full before anything changes."""
        who = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state_dict, dict) or set(state_dict) != {"state", "param_groups"}:
            got = sorted(state_dict) if isinstance(state_dict, dict) else type(state_dict).__name__
            raise ValueError(f"{who}: expected a dict with 'state' and 'param_groups', got {got}")
        groups = state_dict["param_groups"]
        if not isinstance(groups, (list, tuple)) or len(groups) != 1:
            n = len(groups) if isinstance(groups, (list, tuple)) else groups
            raise ValueError(f"{who}: loaded state dict has a different number of parameter groups ({n}, expected 1)")
        group = dict(groups[0])
        ids = group.pop("params", None)
        params = self.params
        if not isinstance(ids, (list, tuple)) or len(ids) != len(params):
            raise ValueError(
                f"{who}: loaded state dict contains a parameter group that doesn't match the size of "
                f"optimizer's group ({len(ids) if isinstance(ids, (list, tuple)) else ids!r} vs {len(params)})"
            )
        mine = {k for k in self.param_groups[0] if k != "params"}
        if set(group) != mine:
            raise ValueError(
                f"{who}: loaded hyperparameters {sorted(group)} differ from this optimizer's {sorted(mine)}"
            )
        index = {p: i for i, p in enumerate(ids)}
        states: list = [None] * len(params)
        steps = set()
        for key, entry in state_dict["state"].items():
            if key not in index or not isinstance(entry, dict):
                raise ValueError(f"{who}: state for unknown parameter {key!r} (parameters are {list(ids)})")
            unknown = set(entry) - {"step", *self._state_names}
            if unknown:
                raise ValueError(f"{who}: unknown state {sorted(unknown)} for parameter {key!r}; "
                                 f"{type(self).__name__} keeps {['step', *self._state_names]}")
            steps.add(float(entry.get("step", 0.0)))
            states[index[key]] = entry
        if len(steps) > 1:
            raise ValueError(f"{who}: the parameters' step counts differ ({sorted(steps)}); one count is kept")
        step = steps.pop() if steps else 0.0
        if not float(step).is_integer() or step < 0:
            raise ValueError(f"{who}: the step count must be a non-negative integer, got {step}")
        saved = dict(self.param_groups[0])
        self.param_groups[0].update(group)  # the loaded hyperparameters decide which buffers are kept
        try:
            _check(group["lr"] is not None and (callable(group["lr"]) or float(group["lr"]) >= 0.0),
                   f"Invalid learning rate: {group['lr']}")
            for i, entry in enumerate(states):
                if entry is None:
                    continue
                n = len(self._new_state(params[i]))
                extra = [k for k in self._state_names[n:] if entry.get(k) is not None]
                if extra:
                    raise ValueError(f"{who}: parameter {ids[i]!r} has state {extra} that this configuration "
                                     f"of {type(self).__name__} does not keep")
                states[i] = tuple(entry.get(name) for name in self._state_names[:n])
            self._restore_slots(params, states, int(step), who)
        except BaseException:
            self.param_groups[0].clear()
            self.param_groups[0].update(saved)
            raise
        self._lr = group["lr"]

    def _decay(self, variables, lr) -> None:
        """PyTorch folds weight decay into each update (see ``_update``)."""

    def _grad(self, p, g):
        """The gradient after ``maximize`` and L2 weight decay (PyTorch's coupled form)."""
        if self._hyper("maximize"):
            g = -g
        wd = self._hyper("weight_decay")
        if wd and not self._decoupled:
            g = g + wd * p.data
        return g

    _decoupled = False

    def get_config(self) -> dict:
        return {k: v for k, v in self.param_groups[0].items() if k != "params"}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}(<{len(self.params)} parameters>, {args})"


class SGD(_TorchRules, _opt.SGD):
    """``torch.optim.SGD``: ``g += wd·p``; with momentum ``b = μb + (1 − dampening)g`` (``b = g`` on
    the first step), then ``g = g + μb`` (Nesterov) or ``g = b``; ``p −= lr·g``."""

    _state_names = ("momentum_buffer",)

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, *,
                 maximize=False, clipnorm=None, clipvalue=None):
        _check(float(momentum) >= 0.0, f"Invalid momentum value: {momentum}")
        _check(float(weight_decay) >= 0.0, f"Invalid weight_decay value: {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        hyper = {"momentum": float(momentum), "dampening": float(dampening), "weight_decay": float(weight_decay),
                 "nesterov": bool(nesterov), "maximize": bool(maximize)}
        self._setup(params, lr, hyper, clipnorm, clipvalue)
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)

    def _prepare(self, lr):
        # PyTorch starts the momentum buffer at the first gradient (b = g): on the optimizer's
        # first step the old buffer gets weight 0 and the gradient weight 1
        first = self.iterations == 1
        mom = self._hyper("momentum")
        return {"_keep": 0.0 if first else mom, "_take": 1.0 if first else 1.0 - self._hyper("dampening")}

    def _new_state(self, p):
        return (_opt._zeros_like(p),) if self._hyper("momentum") else ()

    def _update(self, p, g, lr, state):
        g = self._grad(p, g)
        mom = self._hyper("momentum")
        if mom:
            buf = state[1].data
            buf *= self._keep
            buf += self._take * g
            g = g + mom * buf if self._hyper("nesterov") else buf
        _opt._sub_(p, lr * g)


class Adam(_TorchRules, _opt.Adam):
    """``torch.optim.Adam``: ``m = β₁m + (1 − β₁)g``; ``v = β₂v + (1 − β₂)g²``;
    ``p −= lr/(1 − β₁ᵗ) · m / (√v/√(1 − β₂ᵗ) + ε)`` (``t`` counted per parameter)."""

    _state_names = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, *,
                 maximize=False, clipnorm=None, clipvalue=None):
        b1, b2 = (float(b) for b in betas)
        _check(0.0 <= b1 < 1.0, f"Invalid beta parameter at index 0: {b1}")
        _check(0.0 <= b2 < 1.0, f"Invalid beta parameter at index 1: {b2}")
        _check(float(eps) >= 0.0, f"Invalid epsilon value: {eps}")
        _check(float(weight_decay) >= 0.0, f"Invalid weight_decay value: {weight_decay}")
        hyper = {"betas": (b1, b2), "eps": float(eps), "weight_decay": float(weight_decay), "amsgrad": bool(amsgrad),
                 "maximize": bool(maximize)}
        self._setup(params, lr, hyper, clipnorm, clipvalue)
        self.beta_1, self.beta_2, self.epsilon, self.amsgrad = b1, b2, float(eps), bool(amsgrad)

    def _prepare(self, lr):
        # step counts are the optimizer's (as PyTorch's per-parameter ones when every parameter
        # gets a gradient at every step); computed here so that a compiled step re-reads them
        b1, b2 = self._hyper("betas")
        t = self.iterations
        return {"_step_size": lr / (1.0 - b1**t), "_bc2_sqrt": math.sqrt(1.0 - b2**t)}

    def _new_state(self, p):
        z = _opt._zeros_like
        return (z(p), z(p)) + ((z(p),) if self._hyper("amsgrad") else ())

    def _update(self, p, g, lr, state):
        m, v = state[1].data, state[2].data
        if self._decoupled:
            wd = self._hyper("weight_decay")
            if wd:
                _opt._scale_(p, 1.0 - lr * wd)
        g = self._grad(p, g)
        b1, b2 = self._hyper("betas")
        m *= b1
        m += (1.0 - b1) * g
        v *= b2
        v += (1.0 - b2) * (g * g)
        xp = backend.get_array_module(g)
        if len(state) > 3:  # amsgrad: the running maximum of the second moment
            v_max = state[3].data
            xp.maximum(v_max, v, out=v_max)
            v = v_max
        denom = xp.sqrt(v) / self._bc2_sqrt + self._hyper("eps")
        _opt._sub_(p, self._step_size * m / denom)


class AdamW(Adam, _opt.AdamW):
    """``torch.optim.AdamW``: ``p ·= 1 − lr·wd`` (decoupled, ``weight_decay=1e-2`` by default), then Adam."""

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 maximize=False, clipnorm=None, clipvalue=None):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize, clipnorm=clipnorm,
                         clipvalue=clipvalue)


class RMSprop(_TorchRules, _opt.RMSprop):
    """``torch.optim.RMSprop``: ``s = αs + (1 − α)g²``; ``a = √s + ε`` (centered: ``√(s − ḡ²) + ε``
    with ``ḡ = αḡ + (1 − α)g``); momentum ``b = μb + g/a``, ``p −= lr·b``, else ``p −= lr·g/a``."""

    _state_names = ("square_avg", "momentum_buffer", "grad_avg")

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False, *,
                 maximize=False, clipnorm=None, clipvalue=None):
        _check(float(eps) >= 0.0, f"Invalid epsilon value: {eps}")
        _check(float(momentum) >= 0.0, f"Invalid momentum value: {momentum}")
        _check(float(weight_decay) >= 0.0, f"Invalid weight_decay value: {weight_decay}")
        _check(float(alpha) >= 0.0, f"Invalid alpha value: {alpha}")
        hyper = {"alpha": float(alpha), "eps": float(eps), "weight_decay": float(weight_decay),
                 "momentum": float(momentum), "centered": bool(centered), "maximize": bool(maximize)}
        self._setup(params, lr, hyper, clipnorm, clipvalue)
        self.rho, self.momentum, self.epsilon, self.centered = float(alpha), float(momentum), float(eps), bool(centered)

    def _new_state(self, p):
        z = _opt._zeros_like
        return (z(p), z(p) if self._hyper("momentum") else None, z(p) if self._hyper("centered") else None)

    def _update(self, p, g, lr, state):
        sq, buf, g_avg = (None if a is None else a.data for a in state[1:])
        g = self._grad(p, g)
        alpha = self._hyper("alpha")
        xp = backend.get_array_module(g)
        sq *= alpha
        sq += (1.0 - alpha) * (g * g)
        if g_avg is not None:
            g_avg *= alpha
            g_avg += (1.0 - alpha) * g
            avg = xp.sqrt(sq - g_avg * g_avg) + self._hyper("eps")
        else:
            avg = xp.sqrt(sq) + self._hyper("eps")
        if buf is not None:
            buf *= self._hyper("momentum")
            buf += g / avg
            _opt._sub_(p, lr * buf)
        else:
            _opt._sub_(p, lr * (g / avg))
