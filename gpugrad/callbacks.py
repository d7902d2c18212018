"""Keras-style callbacks for ``fit``: ``Callback`` (the hooks), ``EarlyStopping``,
``ModelCheckpoint``, ``LearningRateScheduler``, ``ReduceLROnPlateau``, ``CSVLogger``, ``TerminateOnNaN``.

``fit`` calls the hooks in Keras' order::

    on_train_begin
      on_epoch_begin(epoch)
        on_train_batch_begin(batch) / on_train_batch_end(batch, logs)   for each batch
        (validation: on_test_begin / on_test_end)
      on_epoch_end(epoch, logs)          logs hold the epoch's loss, metrics and val_ entries
    on_train_end(logs)

Any object with some of these methods works as a callback too (duck typing); ``set_model`` is
called first when it exists. Setting ``model.stop_training = True`` ends training after the
current epoch. The epoch logs a callback adds to (``learning_rate``) go into the History.
"""

from __future__ import annotations

import csv
import math
import os
import sys
import warnings

import numpy as np

__all__ = [
    "CSVLogger",
    "Callback",
    "EarlyStopping",
    "LearningRateScheduler",
    "ModelCheckpoint",
    "ReduceLROnPlateau",
    "TerminateOnNaN",
]


class Callback:
    """Base class: override the hooks you need; ``self.model`` is the model being trained."""

    def __init__(self):
        self.model = None
        self.params: dict = {}

    def set_model(self, model) -> None:
        self.model = model

    def set_params(self, params: dict) -> None:
        self.params = params

    def on_train_begin(self, logs=None): ...

    def on_train_end(self, logs=None): ...

    def on_epoch_begin(self, epoch, logs=None): ...

    def on_epoch_end(self, epoch, logs=None): ...

    def on_train_batch_begin(self, batch, logs=None): ...

    def on_train_batch_end(self, batch, logs=None): ...

    def on_test_begin(self, logs=None): ...

    def on_test_end(self, logs=None): ...

    def on_test_batch_begin(self, batch, logs=None): ...

    def on_test_batch_end(self, batch, logs=None): ...

    def on_predict_begin(self, logs=None): ...

    def on_predict_end(self, logs=None): ...

    def on_predict_batch_begin(self, batch, logs=None): ...

    def on_predict_batch_end(self, batch, logs=None): ...


def overrides(cb, hook: str) -> bool:
    """Whether ``cb`` does something in ``hook`` (a duck-typed object with the method, or a
    :class:`Callback` subclass that overrides it): ``fit`` skips per-batch work nobody wants."""
    fn = getattr(cb, hook, None)
    if fn is None:
        return False
    if isinstance(cb, Callback):
        return getattr(type(cb), hook) is not getattr(Callback, hook)
    return callable(fn)


def _monitor_mode(monitor: str, mode: str, who: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{who}: mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode != "auto":
        return mode
    name = monitor[4:] if monitor.startswith("val_") else monitor
    return "max" if name in ("acc", "accuracy", "auc") or name.endswith(("_acc", "_accuracy", "auc")) else "min"


def _monitored(logs, monitor: str, who: str):
    value = (logs or {}).get(monitor)
    if value is None:
        warnings.warn(
            f"{who}: the monitored value {monitor!r} is not in the logs (available: {', '.join(logs or {})}); "
            "skipping",
            stacklevel=3,
        )
        return None
    return float(value)


def _optimizer(model, who: str):
    opt = getattr(model, "optimizer", None)
    if opt is None or not hasattr(opt, "learning_rate"):
        raise ValueError(f"{who}: the model's optimizer has no learning_rate (compile the model first)")
    return opt


def get_lr(model, who: str) -> float:
    opt = _optimizer(model, who)
    fn = getattr(opt, "current_learning_rate", None)
    return float(fn() if fn is not None else opt.learning_rate)


def set_lr(model, value: float, who: str) -> None:
    opt = _optimizer(model, who)
    if callable(getattr(opt, "_lr", None)):
        raise TypeError(
            f"{who}: the optimizer's learning rate is a schedule ({opt._lr!r}); a callback cannot also set it"
        )
    opt.learning_rate = float(value)


def _chief() -> bool:
    """False on ranks other than 0 of a data-parallel job. Every rank sees the same averaged logs and
    keeps the same callback state, but only rank 0 prints and writes files: the others would write
    the same bytes to the same path at the same time."""
    from .distributed._fit import job

    w = job()
    return w is None or w.rank == 0


def _say(msg: str) -> None:
    if _chief():
        print(msg, file=sys.stdout, flush=True)


class EarlyStopping(Callback):
    """Stop training when ``monitor`` has stopped improving for ``patience`` epochs (Keras 3 rules).

    An improvement is a change of more than ``min_delta`` in the right direction (``mode``:
    ``'min'``, ``'max'`` or ``'auto'``, which maximizes accuracies). ``baseline``: keep waiting
    until the value beats it. ``restore_best_weights=True`` puts back, at the end of training,
    the weights of the best epoch. ``start_from_epoch``: epochs to let pass before watching.
    """

    def __init__(self, monitor="val_loss", min_delta=0.0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        super().__init__()
        self.monitor = monitor
        self.patience = int(patience)
        self.verbose = verbose
        self.baseline = baseline
        self.min_delta = abs(float(min_delta))
        self.restore_best_weights = bool(restore_best_weights)
        self.start_from_epoch = int(start_from_epoch)
        self.mode = _monitor_mode(monitor, mode, "EarlyStopping")
        self._reset()

    def _reset(self):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_weights = None
        self.best_epoch = 0

    def _is_improvement(self, current, reference) -> bool:
        if self.mode == "min":
            return current + self.min_delta < reference
        return current - self.min_delta > reference

    def on_train_begin(self, logs=None):
        self._reset()

    def on_epoch_end(self, epoch, logs=None):
        current = _monitored(logs, self.monitor, "EarlyStopping")
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
            self.best_epoch = epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._is_improvement(current, float(self.baseline)):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            _say(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                _say(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


class ModelCheckpoint(Callback):
    """Save the model (``model.save``) or its weights (``save_weights_only=True``) after each epoch.

    ``filepath`` may hold ``{epoch}`` (counted from 1) and log keys: ``'ckpt-{epoch:02d}-{val_loss:.3f}.npz'``.
    ``save_best_only=True`` saves only when ``monitor`` improves on the best value so far (or on
    ``initial_value_threshold``). Files are written at exactly the path formed.
    """

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=False, mode="auto", save_freq="epoch", initial_value_threshold=None):
        super().__init__()
        if save_freq != "epoch":
            raise ValueError(f"ModelCheckpoint: only save_freq='epoch' is supported, got {save_freq!r}")
        self.filepath = os.fspath(filepath)
        self.monitor = monitor
        self.verbose = verbose
        self.save_best_only = bool(save_best_only)
        self.save_weights_only = bool(save_weights_only)
        self.mode = _monitor_mode(monitor, mode, "ModelCheckpoint")
        self.initial_value_threshold = initial_value_threshold
        self.best = None
        self._reset()

    def _reset(self):
        if self.initial_value_threshold is not None:
            self.best = float(self.initial_value_threshold)
        else:
            self.best = math.inf if self.mode == "min" else -math.inf

    def on_train_begin(self, logs=None):
        self._reset()

    def _improved(self, current) -> bool:
        return current < self.best if self.mode == "min" else current > self.best

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        path = self.filepath.format(epoch=epoch + 1, **logs)
        if self.save_best_only:
            current = _monitored(logs, self.monitor, "ModelCheckpoint")
            if current is None:
                return
            if not self._improved(current):
                if self.verbose > 0:
                    _say(f"Epoch {epoch + 1}: {self.monitor} did not improve from {self.best:.5f}")
                return
            if self.verbose > 0:
                _say(f"Epoch {epoch + 1}: {self.monitor} improved from {self.best:.5f} to {current:.5f}, "
                     f"saving model to {path}")
            self.best = current
        elif self.verbose > 0:
            _say(f"Epoch {epoch + 1}: saving model to {path}")
        if not _chief():
            return
        folder = os.path.dirname(path)
        if folder:
            os.makedirs(folder, exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)


class LearningRateScheduler(Callback):
    """Set the learning rate at the start of each epoch to ``schedule(epoch, lr)`` (or
    ``schedule(epoch)``), where ``lr`` is the current rate; logs it as ``learning_rate``."""

    def __init__(self, schedule, verbose=0):
        super().__init__()
        if not callable(schedule):
            raise TypeError(f"LearningRateScheduler: schedule must be callable, got {type(schedule).__name__}")
        self.schedule = schedule
        self.verbose = verbose

    def on_epoch_begin(self, epoch, logs=None):
        lr = get_lr(self.model, "LearningRateScheduler")
        try:
            new = self.schedule(epoch, lr)
        except TypeError:  # a one-argument schedule, as Keras allows
            new = self.schedule(epoch)
        new = _schedule_output(new, epoch)
        if not math.isfinite(new):
            raise ValueError(f"LearningRateScheduler: the schedule returned {new} for epoch {epoch}")
        set_lr(self.model, new, "LearningRateScheduler")
        if self.verbose > 0:
            _say(f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to {new}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = get_lr(self.model, "LearningRateScheduler")


def _schedule_output(value, epoch: int) -> float:
    """A schedule's output as a float: a real number (a Python or NumPy scalar, or a one-element
    float Tensor or array); anything else (None, a string, a list, a bool) is refused, as Keras does."""
    if hasattr(value, "shape") and hasattr(value, "dtype") and getattr(value, "size", 0) == 1:
        if np.dtype(value.dtype).kind in "fiu":
            value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(
            f"LearningRateScheduler: the output of the `schedule` function should be a float; "
            f"got {value!r} ({type(value).__name__}) for epoch {epoch}"
        )
    return float(value)


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` when ``monitor`` has not improved (by more than
    ``min_delta``) for ``patience`` epochs, then wait ``cooldown`` epochs; never below ``min_lr``.
    Keras 3's rules and defaults."""

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto",
                 min_delta=1e-4, cooldown=0, min_lr=0.0):
        super().__init__()
        if factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau does not support a factor >= 1.0, got {factor}")
        self.monitor = monitor
        self.factor = float(factor)
        self.patience = int(patience)
        self.verbose = verbose
        self.min_delta = float(min_delta)
        self.cooldown = int(cooldown)
        self.min_lr = float(min_lr)
        self.mode = _monitor_mode(monitor, mode, "ReduceLROnPlateau")
        self._reset()

    def _reset(self):
        self.best = math.inf if self.mode == "min" else -math.inf
        self.wait = 0
        self.cooldown_counter = 0

    def _better(self, current) -> bool:
        if self.mode == "min":
            return current < self.best - self.min_delta
        return current > self.best + self.min_delta

    def on_train_begin(self, logs=None):
        self._reset()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        logs["learning_rate"] = get_lr(self.model, "ReduceLROnPlateau")
        current = _monitored(logs, self.monitor, "ReduceLROnPlateau")
        if current is None:
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._better(current):
            self.best = current
            self.wait = 0
        elif self.cooldown_counter <= 0:
            self.wait += 1
            if self.wait >= self.patience:
                old = get_lr(self.model, "ReduceLROnPlateau")
                if old > np.float32(self.min_lr):
                    new = max(old * self.factor, self.min_lr)
                    set_lr(self.model, new, "ReduceLROnPlateau")
                    if self.verbose > 0:
                        _say(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new}.")
                    self.cooldown_counter = self.cooldown
                    self.wait = 0


class CSVLogger(Callback):
    """Write one CSV row per epoch: ``epoch`` then the logs' keys in sorted order (Keras' layout).
    ``append=True`` adds to an existing file without repeating its header."""

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename = os.fspath(filename)
        self.sep = separator
        self.append = bool(append)
        self._file = None
        self._writer = None
        self._keys = None
        self._header = True

    def on_train_begin(self, logs=None):
        self._file = self._writer = self._keys = None
        if not _chief():
            return
        self._header = not (self.append and os.path.exists(self.filename) and os.path.getsize(self.filename) > 0)
        self._file = open(self.filename, "a" if self.append else "w", newline="")  # noqa: SIM115
        self._writer = None
        self._keys = None

    def on_epoch_end(self, epoch, logs=None):
        if self._file is None:  # not rank 0 of a job
            return
        logs = logs or {}
        if self._keys is None:
            self._keys = sorted(logs)
            self._writer = csv.DictWriter(self._file, fieldnames=["epoch", *self._keys], delimiter=self.sep)
            if self._header:
                self._writer.writeheader()
        row = {"epoch": epoch, **{k: logs.get(k, "NA") for k in self._keys}}
        self._writer.writerow(row)
        self._file.flush()

    def on_train_end(self, logs=None):
        if self._file is not None:
            self._file.close()
            self._file = None


class TerminateOnNaN(Callback):
    """Stop training as soon as a batch leaves the running loss NaN or infinite (Keras'
    ``TerminateOnNaN``): ``fit`` ends after that batch, and the epoch's logs are still recorded."""

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None:
            return
        loss = float(loss)
        if math.isnan(loss) or math.isinf(loss):
            _say(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True
