"""Learning-rate schedules (Keras 3's rules), also reachable as ``gg.optimizers.schedules``.

A schedule is called with the optimizer's step count (the number of updates applied so far) and
returns the learning rate for the next update: ``Adam(learning_rate=ExponentialDecay(1e-3, 1000, 0.9))``.
"""

from __future__ import annotations

import math

__all__ = ["CosineDecay", "ExponentialDecay", "LearningRateSchedule", "PiecewiseConstantDecay"]


class LearningRateSchedule:
    """Base class: ``__call__(step) -> float`` and ``get_config()``."""

    def __call__(self, step) -> float:
        raise NotImplementedError(f"{type(self).__name__} must define __call__(step)")

    def get_config(self) -> dict:
        raise NotImplementedError(f"{type(self).__name__} must define get_config()")

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def _positive(name, value, who):
    value = float(value)
    if not value > 0 or not math.isfinite(value):
        raise ValueError(f"{who}: {name} must be a positive number, got {value}")
    return value


def _step(step) -> float:
    return float(step.item() if hasattr(step, "item") else step)


class ExponentialDecay(LearningRateSchedule):
    """``initial_learning_rate · decay_rate^(step / decay_steps)`` (the exponent floored when
    ``staircase``)."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase: bool = False, name=None):
        self.initial_learning_rate = float(initial_learning_rate)
        self.decay_steps = _positive("decay_steps", decay_steps, "ExponentialDecay")
        self.decay_rate = float(decay_rate)
        self.staircase = bool(staircase)
        self.name = name or "ExponentialDecay"

    def __call__(self, step) -> float:
        p = _step(step) / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return self.initial_learning_rate * self.decay_rate**p

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase, "name": self.name}


class CosineDecay(LearningRateSchedule):
    """Cosine decay from ``initial_learning_rate`` to ``alpha·initial`` over ``decay_steps``, after
    an optional linear warm-up of ``warmup_steps`` up to ``warmup_target`` (Keras 3's rule: the
    decay then starts from ``warmup_target``)."""

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name=None, warmup_target=None,
                 warmup_steps=0):
        self.initial_learning_rate = float(initial_learning_rate)
        self.decay_steps = _positive("decay_steps", decay_steps, "CosineDecay")
        self.alpha = float(alpha)
        self.name = name or "CosineDecay"
        self.warmup_target = None if warmup_target is None else float(warmup_target)
        self.warmup_steps = int(warmup_steps)
        if self.warmup_steps < 0:
            raise ValueError(f"CosineDecay: warmup_steps must be >= 0, got {warmup_steps}")

    def __call__(self, step) -> float:
        step = _step(step)
        if self.warmup_target is None:
            top = self.initial_learning_rate
        else:
            top = self.warmup_target
            if step < self.warmup_steps:
                return self.initial_learning_rate + (top - self.initial_learning_rate) * step / self.warmup_steps
            step -= self.warmup_steps
        done = min(step, self.decay_steps) / self.decay_steps
        cosine = 0.5 * (1.0 + math.cos(math.pi * done))
        return top * ((1.0 - self.alpha) * cosine + self.alpha)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "alpha": self.alpha, "name": self.name, "warmup_target": self.warmup_target,
                "warmup_steps": self.warmup_steps}


class PiecewiseConstantDecay(LearningRateSchedule):
    """``values[0]`` while ``step <= boundaries[0]``, ``values[i]`` while
    ``boundaries[i-1] < step <= boundaries[i]``, and ``values[-1]`` after the last boundary."""

    def __init__(self, boundaries, values, name=None):
        self.boundaries = [float(b) for b in boundaries]
        self.values = [float(v) for v in values]
        if len(self.values) != len(self.boundaries) + 1:
            raise ValueError(
                f"PiecewiseConstantDecay: values must have one more element than boundaries, got "
                f"{len(self.boundaries)} boundaries and {len(self.values)} values"
            )
        if any(b2 <= b1 for b1, b2 in zip(self.boundaries, self.boundaries[1:])):
            raise ValueError(f"PiecewiseConstantDecay: boundaries must increase, got {self.boundaries}")
        self.name = name or "PiecewiseConstant"

    def __call__(self, step) -> float:
        step = _step(step)
        for b, v in zip(self.boundaries, self.values):
            if step <= b:
                return v
        return self.values[-1]

    def get_config(self):
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}
