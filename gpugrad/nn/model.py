"""``Sequential`` models and the Keras-style training loop: ``compile``, ``fit``, ``evaluate``,
``predict``, ``summary``, ``save_weights``/``load_weights``.

``fit`` runs, for each batch: move the batch to the model's device (once), a GradientTape around
the forward pass and the loss, ``tape.gradient``, then ``optimizer.apply_gradients``. Running
sums of the loss and metrics stay on the device; they are read back (one synchronization) only
when the progress bar redraws and at the end of each epoch.
"""

from __future__ import annotations

import copy
import os
import sys
import time

import numpy as np

from .. import backend
from .. import callbacks as _callbacks
from .. import losses as _losses
from .. import metrics as _metrics
from .. import optimizers as _optimizers
from .. import random as _random
from ..distributed import _fit as _dist
from ..graph import no_grad
from ..ops.creation import zeros
from ..ops.reduce import mean
from ..tape import GradientTape
from ..tensor import DEFAULT_FLOAT, Tensor, Variable, is_float
from . import progress as _progress
from . import saving as _saving
from .layers import InputLayer, _assign_host, unique_name

_POSTFIX_EVERY = 0.1  # seconds between progress-bar readings of the running loss (each one syncs)


class History:
    """What ``fit`` returns: ``history[key]`` holds one value per epoch for the loss, each metric
    and their ``val_`` counterparts; ``epoch`` lists the epoch indices."""

    def __init__(self):
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []
        self.params: dict = {}
        self.model = None

    def _append(self, epoch: int, logs: dict) -> None:
        self.epoch.append(epoch)
        for k, v in logs.items():
            self.history.setdefault(k, []).append(v)

    def __repr__(self):
        keys = ", ".join(self.history)
        return f"<History epochs={len(self.epoch)} keys=[{keys}]>"


class Sequential:
    """A stack of layers, each fed the previous one's output.

    >>> model = Sequential([Dense(10, activation="relu"), Dense(1)])
    >>> model.compile(optimizer="sgd", loss="mse")
    >>> history = model.fit(x, y, epochs=5, verbose=0)
    """

    def __init__(self, layers=None, name: str | None = None):
        self.name = name or unique_name("sequential")
        self.trainable = True
        self._layers: list = []
        self._input_spec = None  # (shape without the batch axis, dtype, device) of the first call
        self._input_layer = None  # an InputLayer (from gg.nn.Input or a first layer's input_shape=)
        self.optimizer = None
        self.loss = None
        self._loss_fn = None
        self._metric_ids: list = []
        self._train_metrics: list = []
        self._eval_metrics: list = []
        self.stop_training = False
        self.jit_compile = False
        self._compiled: dict = {}  # compiled steps (jit_compile=True), by what they close over
        for layer in layers or ():
            self.add(layer)

    # -- structure --------------------------------------------------------------------------------
    def add(self, layer) -> None:
        """Append a layer. An ``Input`` (or a first layer given ``input_shape=``) fixes the input
        shape, and the model is then built at once, as in Keras."""
        if not callable(layer):
            raise TypeError(f"Sequential.add: expected a layer (a callable), got {type(layer).__name__}")
        if isinstance(layer, InputLayer):
            if self._layers or self._input_layer is not None:
                raise ValueError("Sequential: an Input can only come first")
            self._input_layer = layer
            return
        if not self._layers and self._input_layer is None and getattr(layer, "input_shape_arg", None):
            self._input_layer = InputLayer(shape=layer.input_shape_arg)
        self._layers.append(layer)
        inp = self._input_layer
        if inp is not None and getattr(layer, "built", True) is False:
            self.build((None, *inp.shape), dtype=inp.input_dtype)

    def pop(self):
        if not self._layers:
            raise IndexError("pop from an empty Sequential model")
        return self._layers.pop()

    @property
    def layers(self) -> list:
        return list(self._layers)

    def __getitem__(self, i):
        return self._layers[i]

    def __len__(self) -> int:
        return len(self._layers)

    def __iter__(self):
        return iter(self._layers)

    @property
    def built(self) -> bool:
        return bool(self._layers) and all(getattr(layer, "built", True) for layer in self._layers)

    @property
    def weights(self) -> list[Variable]:
        return [v for layer in self._layers for v in getattr(layer, "weights", ())]

    variables = weights

    @property
    def trainable_variables(self) -> list[Variable]:
        if not self.trainable:
            return []
        return [v for layer in self._layers for v in getattr(layer, "trainable_variables", ())]

    trainable_weights = trainable_variables

    def parameters(self):
        """PyTorch's spelling: an iterator over the trainable variables (for ``SGD(model.parameters(), lr=...)``)."""
        return iter(self.trainable_variables)

    @property
    def non_trainable_variables(self) -> list[Variable]:
        tv = {id(v) for v in self.trainable_variables}
        return [v for v in self.weights if id(v) not in tv]

    def count_params(self) -> int:
        return sum(v.size for v in self.weights)

    def get_weights(self) -> list[np.ndarray]:
        return [v.numpy() for v in self.weights]

    def set_weights(self, arrays) -> None:
        arrays, ws = list(arrays), self.weights
        if len(arrays) != len(ws):
            raise ValueError(f"model {self.name!r} has {len(ws)} weight(s), got {len(arrays)} array(s)")
        for v, a in zip(ws, arrays, strict=True):
            _assign_host(v, a)

    @property
    def device(self) -> str | None:
        """The device of the model's weights (None before they are built)."""
        for v in self.weights:
            return v.device
        return None

    @property
    def dtype(self):
        for v in self.weights:
            return v.dtype
        return None

    # -- calling ----------------------------------------------------------------------------------
    _accepts_training = True

    def __call__(self, x, training=None) -> Tensor:
        """The outputs for ``x``; ``training=True`` (as ``fit`` calls it) turns Dropout on."""
        if not isinstance(x, Tensor):  # an array or list: onto the weights' device once built
            x = Tensor(x, device=self.device)
        if self._input_layer is not None:  # Input((2, 2)) refuses samples of another shape, as in Keras
            x = self._input_layer.call(x)
        if self._input_spec is None and x.ndim:
            self._input_spec = (tuple(x.shape[1:]), x.dtype, x.device)
        for layer in self._layers:
            x = layer(x, training=training) if getattr(layer, "_accepts_training", False) else layer(x)
        return x

    call = __call__

    def build(self, input_shape, dtype=None, device=None) -> None:
        """Create every layer's weights for inputs of ``input_shape`` (batch axis first; ``None``
        allowed there), without data."""
        shape = tuple(1 if d is None else int(d) for d in input_shape)
        if len(shape) < 1:
            raise ValueError(f"build: input_shape needs a batch axis, got {tuple(input_shape)}")
        with no_grad():
            self(zeros(shape, dtype=dtype, device=device))

    def compute_output_shape(self, input_shape) -> tuple:
        for layer in self._layers:
            input_shape = layer.compute_output_shape(input_shape)
        return tuple(input_shape)

    # -- compile ------------------------------------------------------------------------------------
    def compile(self, optimizer="sgd", loss=None, metrics=None, jit_compile: bool = False) -> None:
        """Choose the optimizer (a name such as ``'sgd'``/``'adam'``, any case, or an instance), the
        loss (a name known to ``gg.losses.get`` or a callable ``loss(y_true, y_pred)``) and the
        metrics (``'accuracy'``, ``'mae'``, ... or callables). ``jit_compile=True`` runs the training
        step of ``fit`` (and the steps of ``evaluate`` and ``predict``) as compiled steps
        (:func:`gpugrad.jit`); the loss and metrics shown are still read outside the compiled step."""
        if loss is None:
            raise ValueError(
                "compile: a loss is required, e.g. loss='mse' or loss='sparse_categorical_crossentropy' "
                "(or a callable loss(y_true, y_pred))"
            )
        self.optimizer = _optimizers.get(optimizer)
        self._loss_fn = _losses.get(loss)
        self.loss = loss
        if metrics is None:
            metrics = []
        elif isinstance(metrics, str) or callable(metrics):
            metrics = [metrics]
        self.jit_compile = bool(jit_compile)
        self._compiled = {}
        self._metric_ids = list(metrics)
        self._train_metrics = [_metrics.get(m, loss) for m in self._metric_ids]
        self._eval_metrics = [copy.deepcopy(m) for m in self._train_metrics]
        names = [m.name for m in self._train_metrics]
        dup = {n for n in names if names.count(n) > 1 or n == "loss"}
        if dup:
            raise ValueError(f"compile: metric names must be unique and not 'loss', got {names}")

    @property
    def metrics_names(self) -> list[str]:
        return ["loss"] + [m.name for m in self._train_metrics]

    def _require_compiled(self, what: str) -> None:
        if self._loss_fn is None:
            raise RuntimeError(
                f"you must call compile(optimizer=..., loss=...) before {what}(); the model has no loss yet"
            )

    # -- data ---------------------------------------------------------------------------------------
    def _target_device(self, x) -> str:
        dev = self.device
        if dev is not None:
            return dev
        if backend.is_cupy_array(x):
            return backend.device_of(x)
        return backend.default_device()

    def _prepare(self, what, x, y=None, need_y=True):
        """Arrays (NumPy or CuPy, wherever they are) for x and y, checked; float x cast to the
        model's dtype once here rather than per batch."""
        if x is None:
            raise ValueError(f"{what}: x is required")
        xa = _as_array(x, what, "x")
        if xa.ndim == 0:
            raise ValueError(f"{what}: x must have a batch (first) axis, got a scalar")
        self._check_sample_shape(what, xa)
        ya = None
        if need_y:
            if y is None:
                raise ValueError(f"{what}: y is required (the targets for x)")
            ya = _as_array(y, what, "y")
            if ya.ndim == 0 or ya.shape[0] != xa.shape[0]:
                ny = ya.shape[0] if ya.ndim else "a scalar"
                raise ValueError(
                    f"{what}: x and y must have the same number of samples (first dimension): "
                    f"x has {xa.shape[0]} (shape {tuple(xa.shape)}), y has {ny} (shape {tuple(ya.shape)})"
                )
        dt = self.dtype
        if dt is not None and xa.dtype.kind == "f" and xa.dtype != dt:
            xa = xa.astype(dt)
        return xa, ya

    def _check_sample_shape(self, what: str, xa) -> None:
        """Refuse inputs whose samples do not have the model's input shape (Keras 3 raises too):
        every axis of an ``Input`` shape (``None`` matches any size), or, for a model built from
        data, the number of axes and the feature (last) axis of the first inputs it was called on."""
        got = tuple(xa.shape[1:])
        if self._input_layer is not None:
            want = tuple(self._input_layer.shape)
            ok = len(got) == len(want) and all(w is None or w == g for w, g in zip(want, got, strict=True))
        elif self._input_spec is not None:
            want = tuple(self._input_spec[0])
            ok = len(got) == len(want) and (not want or got[-1] == want[-1])
        else:
            return
        if not ok:
            shown = "(None, " + ", ".join("None" if d is None else str(d) for d in want) + ")"
            one = xa.ndim == len(want) and all(w is None or w == g for w, g in zip(want, xa.shape, strict=True))
            hint = " (one sample without its batch axis? pass x[None])" if one else ""
            raise ValueError(
                f"{what}: the model expects inputs of shape {shown}, got x of shape {tuple(xa.shape)}{hint}"
            )

    def _ensure_built(self, xa, dev) -> None:
        if not self.built:
            first = backend.to_device(xa[:1], dev)
            with no_grad():
                self(Tensor._make(first))

    # -- training -----------------------------------------------------------------------------------
    def _step(self, xb: Tensor, yb: Tensor, tvars, optimizer, loss_fn, scale: float = 1.0):
        with GradientTape() as tape:
            pred = self(xb, training=True)
            yb = _match_rank(yb, pred)
            loss = loss_fn(yb, pred)
            if loss.ndim:
                loss = mean(loss)
            target = loss if scale == 1.0 else loss * scale  # a rank's share of a global batch
        grads = tape.gradient(target, tvars)
        optimizer.apply_gradients(zip(grads, tvars, strict=True))
        return loss, yb, pred

    def _compiled_step(self, kind: str, fn, *closed):
        """``fn``, compiled once per (kind, what it closes over) when ``jit_compile`` is on."""
        if not self.jit_compile:
            return fn
        key = (kind, *(id(c) for c in closed))
        step = self._compiled.get(key)
        if step is None:
            from ..jit import jit

            step = self._compiled[key] = jit(fn)
        return step

    def _train_step(self, tvars, optimizer, loss_fn):
        def step(xb, yb, scale=1.0):
            return self._step(xb, yb, tvars, optimizer, loss_fn, scale)

        return self._compiled_step("train", step, optimizer, loss_fn, *tvars)

    def _eval_step(self, loss_fn):
        def step(xb, yb):
            with no_grad():
                pred = self(xb)
                yt = _match_rank(yb, pred)
                loss = loss_fn(yt, pred)
                if loss.ndim:
                    loss = mean(loss)
            return loss, yt, pred

        return self._compiled_step("eval", step, loss_fn, *self.weights)

    def _predict_step(self):
        def step(xb):
            with no_grad():
                return self(xb)

        return self._compiled_step("predict", step, *self.weights)

    def train_on_batch(self, x, y) -> float:
        """One optimizer step on one batch; returns the batch loss."""
        self._require_compiled("train_on_batch")
        xa, ya = self._prepare("train_on_batch", x, y)
        dev = self._target_device(xa)
        self._ensure_built(xa, dev)
        xb = Tensor._make(backend.to_device(xa, dev))
        yb = Tensor._make(backend.to_device(ya, dev))
        loss, _, _ = self._step(xb, yb, self.trainable_variables, self.optimizer, self._loss_fn)
        return float(loss.data)

    def fit(
        self,
        x=None,
        y=None,
        batch_size=None,
        epochs: int = 1,
        verbose="auto",
        callbacks=None,
        validation_split: float = 0.0,
        validation_data=None,
        shuffle: bool = True,
        initial_epoch: int = 0,
    ) -> History:
        """Train for ``epochs`` passes over (x, y) in batches of ``batch_size`` (default 32).

        ``verbose``: 0 silent, 1 (or ``'auto'``) a progress bar per epoch with the running loss and
        metrics, sized to the terminal, then one line per epoch with everything; 2 (or 1 without
        tqdm) that line only.
        ``validation_data=(x_val, y_val)`` (or ``validation_split``, the last fraction of the data)
        adds ``val_`` entries to the returned :class:`History`. ``callbacks``: ``gg.callbacks``
        objects, or any objects with some of Keras' hooks (see :mod:`gpugrad.callbacks` for their
        order); setting ``model.stop_training = True`` ends training after the current batch's epoch.
        """
        self._require_compiled("fit")
        verbose = _verbosity(verbose)
        batch_size = _batch_size(batch_size, "fit")
        if not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"fit: epochs must be a non-negative integer, got {epochs!r}")
        xa, ya = self._prepare("fit", x, y)
        if validation_data is None and validation_split:
            if not 0.0 < validation_split < 1.0:
                raise ValueError(f"fit: validation_split must be in (0, 1), got {validation_split}")
            total_n = xa.shape[0]
            cut = int(total_n * (1.0 - validation_split))
            if total_n and (cut == 0 or cut == total_n):  # Keras 3 refuses a split that leaves a side empty
                raise ValueError(
                    f"fit: validation_split={validation_split} splits the {total_n} sample(s) of x into "
                    f"{cut} for training and {total_n - cut} for validation; both need at least one "
                    "(provide more data or another validation_split)"
                )
            validation_data = (xa[cut:], ya[cut:])
            xa, ya = xa[:cut], ya[:cut]
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError("fit: validation_data must be a tuple (x_val, y_val)")
            vx, vy = self._prepare("fit (validation_data)", *validation_data)
            if vx.shape[0] == 0:  # a val_loss of 0.0 would look like the best epoch
                raise ValueError(
                    f"fit: validation_data has no samples (x_val of shape {tuple(vx.shape)}); "
                    "pass validation data with at least one sample, or none"
                )
        n = xa.shape[0]
        if n == 0:
            raise ValueError("fit: x has no samples")
        dev = self._target_device(xa)
        self._ensure_built(xa, dev)
        tvars = self.trainable_variables
        if not tvars:
            raise ValueError("fit: the model has no trainable variables")
        job = _dist.job()  # in a job of several processes: shard each batch, average the gradients
        if job is not None:
            self.optimizer = _dist.DistributedOptimizer(self.optimizer)
            _dist.broadcast_variables(self.weights, root=0)  # start equal
            verbose = verbose if job.rank == 0 else 0
        optimizer, loss_fn, mets = self.optimizer, self._loss_fn, self._train_metrics
        steps = -(-n // batch_size)
        history = History()
        history.model = self
        history.params = {"verbose": verbose, "epochs": epochs, "steps": steps}
        callbacks = list(callbacks or ())
        for cb in callbacks:
            if hasattr(cb, "set_model"):
                cb.set_model(self)
            if hasattr(cb, "set_params"):
                cb.set_params(dict(history.params))
        batch_begin = [cb for cb in callbacks if _callbacks.overrides(cb, "on_train_batch_begin")]
        batch_end = [cb for cb in callbacks if _callbacks.overrides(cb, "on_train_batch_end")]
        self.stop_training = False
        _call(callbacks, "on_train_begin", {})
        make_bar = _progress.factory() if verbose == 1 else None
        on_device = backend.device_of(xa) == dev and backend.device_of(ya) == dev
        xp_data = backend.get_array_module(xa)
        logs: dict = {}
        train_step = self._train_step(tvars, optimizer, loss_fn)
        for epoch in range(initial_epoch, epochs):
            if self.stop_training:
                break
            _call(callbacks, "on_epoch_begin", epoch, {})
            t0 = time.perf_counter()
            if shuffle:
                perm = _random._generator("cpu", None).permutation(n)
                if job is not None:
                    perm = _dist.shared_permutation(job, perm)
                if xp_data is not np:
                    perm = xp_data.asarray(perm)
                xs, ys = xa[perm], ya[perm]
            else:
                xs, ys = xa, ya
            for m in mets:
                m.reset_state()
            total = 0.0
            seen = 0
            desc = f"Epoch {epoch + 1}/{epochs}"
            bar = make_bar(steps, desc) if make_bar is not None else None
            last = t0
            for step, lo in enumerate(range(0, n, batch_size)):
                if batch_begin:
                    _call(batch_begin, "on_train_batch_begin", step, {})
                xb, yb = xs[lo : lo + batch_size], ys[lo : lo + batch_size]
                scale = 1.0
                if job is not None:
                    xb, yb, scale = _dist.shard_batch(job, xb, yb)
                    if xb.shape[0] == 0:  # fewer rows than ranks: still join the gradient all-reduce
                        optimizer.apply_gradients((None, v) for v in tvars)
                        continue
                if not on_device:
                    xb, yb = backend.to_device(xb, dev), backend.to_device(yb, dev)
                nb = xb.shape[0]
                loss, yt, pred = train_step(Tensor._make(xb), Tensor._make(yb), scale)
                total = total + loss.data * nb
                seen += nb
                for m in mets:
                    m.update_state(yt.data, pred.data)
                if batch_end:  # running logs need a device read: only when someone asks for them
                    _call(batch_end, "on_train_batch_end", step, self._logs(total, seen, mets))
                if bar is not None:
                    now = time.perf_counter()
                    if now - last >= _POSTFIX_EVERY or lo + batch_size >= n:
                        last = now
                        bar.show(_format(self._logs(total, seen, mets)))
                    bar.update(1)
                if self.stop_training:
                    break
            logs = self._logs(total, seen, mets)
            if job is not None:
                logs = _dist.average_logs(job, logs, seen)
            if validation_data is not None:
                _call(callbacks, "on_test_begin", {})
                val = self._evaluate_arrays(vx, vy, batch_size, dev)
                _call(callbacks, "on_test_end", dict(val))
                logs.update({f"val_{k}": v for k, v in val.items()})
            if bar is not None:
                bar.close()
            if verbose:
                _print_line(f"{desc} - {step + 1}/{steps} - {time.perf_counter() - t0:.2f}s - {_format(logs)}")
            _call(callbacks, "on_epoch_end", epoch, logs)  # callbacks may add entries (learning_rate)
            history._append(epoch, dict(logs))
        _call(callbacks, "on_train_end", dict(logs))
        return history

    @staticmethod
    def _logs(total, seen, mets) -> dict:
        logs = {"loss": float(total) / max(seen, 1)}
        for m in mets:
            logs[m.name] = m.result()
        return logs

    # -- evaluation and prediction -----------------------------------------------------------------
    def _evaluate_arrays(self, xa, ya, batch_size, dev) -> dict:
        mets = self._eval_metrics
        for m in mets:
            m.reset_state()
        step = self._eval_step(self._loss_fn)
        total = 0.0
        n = xa.shape[0]
        for lo in range(0, n, batch_size):
            xb = backend.to_device(xa[lo : lo + batch_size], dev)
            yb = backend.to_device(ya[lo : lo + batch_size], dev)
            loss, yt, pred = step(Tensor._make(xb), Tensor._make(yb))
            total = total + loss.data * xb.shape[0]
            for m in mets:
                m.update_state(yt.data, pred.data)
        return self._logs(total, n, mets)

    def evaluate(self, x=None, y=None, batch_size=None, verbose=0, return_dict: bool = False):
        """The loss over (x, y), or ``[loss, metric...]`` when metrics were compiled
        (a dict with ``return_dict=True``). Batches of ``batch_size`` (default 32)."""
        self._require_compiled("evaluate")
        batch_size = _batch_size(batch_size, "evaluate")
        xa, ya = self._prepare("evaluate", x, y)
        if xa.shape[0] == 0:
            raise ValueError("evaluate: x has no samples")
        dev = self._target_device(xa)
        self._ensure_built(xa, dev)
        logs = self._evaluate_arrays(xa, ya, batch_size, dev)
        if _verbosity(verbose):
            _print_line(_format(logs))
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    def predict(self, x, batch_size=None, verbose=0) -> np.ndarray:
        """The model's outputs for ``x`` as a host NumPy array (as Keras returns), computed in
        batches of ``batch_size`` (default 32) on the model's device; Dropout is off."""
        batch_size = _batch_size(batch_size, "predict")
        xa, _ = self._prepare("predict", x, need_y=False)
        dev = self._target_device(xa)
        n = xa.shape[0]
        outs = []
        if self.jit_compile:
            self._ensure_built(xa, dev)
        step = self._predict_step()
        for lo in range(0, max(n, 1), batch_size):
            outs.append(step(Tensor._make(backend.to_device(xa[lo : lo + batch_size], dev))).data)
        out = outs[0] if len(outs) == 1 else backend.get_array_module(outs[0]).concatenate(outs, axis=0)
        return _host(out)

    def predict_on_batch(self, x) -> np.ndarray:
        """The outputs for one batch ``x`` as a host NumPy array."""
        xa, _ = self._prepare("predict_on_batch", x, need_y=False)
        with no_grad():
            return _host(self(Tensor._make(backend.to_device(xa, self._target_device(xa)))).data)

    # -- summary and weights ------------------------------------------------------------------------
    def summary(self, print_fn=None) -> None:
        """Print each layer with its output shape and parameter count, then the totals."""
        out = print_fn or print
        shapes = self._output_shapes()
        rows = []
        for layer, shape in zip(self._layers, shapes, strict=True):
            kind = type(layer).__name__
            name = getattr(layer, "name", kind)
            built = getattr(layer, "built", True)
            params = str(_count(layer)) if built else "0 (unbuilt)"
            rows.append((f"{name} ({kind})", "?" if shape is None else str(shape), params))
        w = [max(28, *(len(r[0]) + 2 for r in rows)), max(20, *(len(r[1]) + 2 for r in rows)), 12]
        line = "_" * sum(w)
        out(f'Model: "{self.name}"')
        out(line)
        out(f"{'Layer (type)':<{w[0]}}{'Output Shape':<{w[1]}}{'Param #':>{w[2]}}")
        out("=" * sum(w))
        for i, (a, b, c) in enumerate(rows):
            out(f"{a:<{w[0]}}{b:<{w[1]}}{c:>{w[2]}}")
            if i < len(rows) - 1:
                out("")
        out("=" * sum(w))
        total = self.count_params()
        trainable = sum(v.size for v in self.trainable_variables)
        out(f"Total params: {total:,}")
        out(f"Trainable params: {trainable:,}")
        out(f"Non-trainable params: {total - trainable:,}")
        out(line)

    def _output_shapes(self) -> list:
        """Each layer's output shape (batch axis ``None``), found by a dry run on one zero sample."""
        spec = self._input_spec
        if spec is None or not self.built:
            return [None] * len(self._layers)
        shape, dtype, dev = spec
        shapes = []
        with no_grad():
            x = zeros((1, *shape), dtype=dtype, device=dev)
            for layer in self._layers:
                x = layer(x)
                shapes.append((None, *x.shape[1:]))
        return shapes

    # -- whole-model files --------------------------------------------------------------------------
    def get_config(self) -> dict:
        """The architecture: the name, the input (shape and dtype, when known) and each layer's
        class and config. ``Sequential.from_config(config)`` rebuilds it (with fresh weights)."""
        config = {"name": self.name, "layers": [_saving.layer_config(layer) for layer in self._layers]}
        if self._input_layer is not None:
            config["input"] = self._input_layer.get_config()
        elif self._input_spec is not None:
            shape, dtype, _ = self._input_spec
            config["input"] = {"shape": list(shape), "dtype": str(np.dtype(dtype))}
        return config

    @classmethod
    def from_config(cls, config: dict, custom_objects=None) -> Sequential:
        model = cls(name=config.get("name"))
        inp = config.get("input")
        if inp is not None:
            model.add(InputLayer(shape=inp["shape"], dtype=inp.get("dtype"), name=inp.get("name")))
        for spec in config["layers"]:
            model.add(_saving.layer_from_config(spec, custom_objects))
        return model

    def save(self, filepath) -> None:
        """Write the architecture, compile settings and weights to one file, at exactly ``filepath``
        (see :func:`gpugrad.nn.load_model`)."""
        _saving.save_model(self, filepath)

    def save_weights(self, filepath) -> None:
        """Write every weight as a host array to exactly ``filepath`` (NumPy's ``.npz`` format,
        whatever the suffix), replacing any file there only once the whole file is written.
        Loading works on any device, and into a fresh model of the same architecture."""
        if not self.built:
            raise ValueError(
                "save_weights: the model has no weights yet; "
                "call it on data (or model.build(input_shape)) first"
            )
        arrays = {f"weight_{i:04d}": v.numpy() for i, v in enumerate(self.weights)}
        arrays["__names__"] = np.array([v.name or "" for v in self.weights])
        if self._input_spec is not None:
            shape, dtype, _ = self._input_spec
            arrays["__input_shape__"] = np.array(shape, dtype=np.int64)
            arrays["__input_dtype__"] = np.array(str(np.dtype(dtype)))
        _saving._atomic_savez(os.fspath(filepath), arrays)

    def load_weights(self, filepath) -> None:
        """Read weights written by :meth:`save_weights` onto each weight's device (an unbuilt
        model is first built, on the default device, from the input shape stored in the file).

        All or nothing: every array is read and checked (count, shapes, a readable file with
        intact members) before any weight changes; on an error (:class:`gpugrad.nn.ModelFileError`)
        the model is left as it was and the message names the file, the weight and both shapes."""
        path = _weights_path(filepath)
        arrays, meta = _read_weights(path)
        saved = None
        if not self.built:
            if "__input_shape__" not in meta:
                raise _saving.ModelFileError(
                    f"load_weights: {path!r} does not record the input shape, so this unbuilt model "
                    "cannot be built from it; call model.build(input_shape) first"
                )
            saved = (self._input_spec, [(layer, _layer_state(layer)) for layer in self._layers])
            dt = np.dtype(str(meta["__input_dtype__"])) if "__input_dtype__" in meta else DEFAULT_FLOAT
            shape = (None, *(int(d) for d in meta["__input_shape__"]))
        try:
            if saved is not None:
                self.build(shape, dtype=dt if is_float(dt) else None)
            ws = self.weights
            if len(arrays) != len(ws):
                raise _saving.ModelFileError(
                    f"load_weights: {path!r} holds {len(arrays)} weight array(s) but model {self.name!r} "
                    f"has {len(ws)}; the architectures differ"
                )
            names = meta.get("__names__")
            for i, (v, a) in enumerate(zip(ws, arrays, strict=True)):
                if tuple(a.shape) != tuple(v.shape):
                    stored = f" (saved as {str(names[i])!r})" if names is not None and i < len(names) else ""
                    raise _saving.ModelFileError(
                        f"load_weights: {path!r}: weight {i} {v.name!r}{stored} has shape {tuple(a.shape)} "
                        f"in the file but {tuple(v.shape)} in model {self.name!r}; the architectures differ"
                    )
        except BaseException:
            if saved is not None:  # a model built for this file goes back to unbuilt
                self._input_spec = saved[0]
                for layer, state in saved[1]:
                    layer.__dict__.clear()
                    layer.__dict__.update(state)
            raise
        for v, a in zip(ws, arrays, strict=True):
            _assign_host(v, a)


# -- helpers -----------------------------------------------------------------------------------------


def _host(a) -> np.ndarray:
    """A NumPy array for a NumPy or CuPy array (a writable copy, never a view of model state)."""
    return np.array(backend.to_device(a, "cpu"))


def _weights_path(filepath) -> str:
    """The path given; for a missing one, the same with ``.npz`` added (files that older versions
    of ``save_weights`` wrote with the suffix appended)."""
    p = os.fspath(filepath)
    if not os.path.exists(p) and os.path.exists(p + ".npz"):
        return p + ".npz"
    if not os.path.exists(p):
        raise FileNotFoundError(f"load_weights: no such file {p!r}")
    return p


def _layer_state(layer) -> dict:
    """A layer's attributes, its lists and dicts copied (building appends to them), to restore."""
    return {k: copy.copy(v) if isinstance(v, (list, dict)) else v for k, v in vars(layer).items()}


def _read_weights(path: str):
    """Every weight array of a weights file (in order) and its metadata, each member read in full
    (so a bad CRC or a truncated member is found here), or a ValueError naming the file and member."""
    member = None
    try:
        with np.load(path, allow_pickle=False) as f:
            files = list(f.files)
            keys = sorted(k for k in files if k.startswith("weight_"))
            arrays = []
            for member in keys:
                arrays.append(np.asarray(f[member]))
            meta = {}
            for member in ("__names__", "__input_shape__", "__input_dtype__"):
                if member in files:
                    meta[member] = f[member]
    except FileNotFoundError:
        raise
    except Exception as e:  # zipfile.BadZipFile, a bad CRC, a truncated or pickled member...
        where = f" (member {member!r})" if member is not None else ""
        raise _saving.ModelFileError(f"load_weights: cannot read {path!r}{where}: {type(e).__name__}: {e}") from e
    if keys != [f"weight_{i:04d}" for i in range(len(keys))]:
        raise _saving.ModelFileError(
            f"load_weights: {path!r} is not a weights file written by save_weights (members {keys})"
        )
    return arrays, meta


def _count(layer) -> int:
    fn = getattr(layer, "count_params", None)
    return int(fn()) if fn is not None else 0


def _as_array(v, what, name):
    if isinstance(v, Tensor):
        return v.data
    if backend.is_cupy_array(v):
        return v
    if not isinstance(v, np.ndarray):
        try:
            v = np.asarray(v)
        except Exception as e:
            raise TypeError(f"{what}: {name} must be an array or a Tensor, got {type(v).__name__}") from e
    if v.dtype.kind in "OUSV":
        v = _numeric_host(v, what, name)
    return v


def _numeric_host(a: np.ndarray, what, name) -> np.ndarray:
    """An object array of real numbers as float64; None, strings and other objects are refused
    (they would otherwise turn into NaN and train silently on it)."""
    if a.dtype.kind != "O":
        raise TypeError(f"{what}: {name} must hold numbers, got an array of dtype {a.dtype}")
    flat = a.reshape(-1)
    for i, item in enumerate(flat):
        if isinstance(item, (bool, np.bool_)) or not isinstance(item, (int, float, np.integer, np.floating)):
            where = np.unravel_index(i, a.shape) if a.ndim else ()
            raise TypeError(
                f"{what}: {name} must hold numbers, but {name}[{', '.join(map(str, where))}] is "
                f"{item!r} ({type(item).__name__})"
            )
    return a.astype(np.float64)


def _match_rank(y: Tensor, pred: Tensor) -> Tensor:
    """Targets of shape (N,) against outputs (N, 1) get the trailing axis (Keras does the same)."""
    if y.data.ndim == pred.data.ndim - 1 and pred.data.shape[-1] == 1:
        return Tensor._make(y.data.reshape(y.data.shape + (1,)))
    return y


def _batch_size(batch_size, what) -> int:
    if batch_size is None:
        return 32
    if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"{what}: batch_size must be a positive integer, got {batch_size!r}")
    return int(batch_size)


def _verbosity(verbose) -> int:
    if verbose == "auto":
        return 1
    if verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 0, 1, 2 or 'auto', got {verbose!r}")
    return int(verbose)


def _format(logs: dict) -> str:
    """``loss: 0.1234 - accuracy: 0.9500``; values under 1e-3 in scientific notation (as Keras)."""
    return " - ".join(
        f"{k}: {v:.4f}" if abs(v) >= 1e-3 or v == 0 else f"{k}: {v:.4e}"
        for k, v in logs.items()
    )


def _print_line(s: str) -> None:
    print(s, file=sys.stdout, flush=True)


def _call(callbacks, hook, *args) -> None:
    for cb in callbacks:
        fn = getattr(cb, hook, None)
        if fn is not None:
            fn(*args)
