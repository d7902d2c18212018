"""Whole-model files: ``model.save(path)`` and ``gg.nn.load_model(path)``.

One file holds the architecture (the model's ``get_config()`` as JSON), the compile settings
(optimizer and loss by class and config, metric names, ``jit_compile``), every weight as a host
array and the optimizer's state (its step count and slot arrays: momenta, moments), so that a
model saved, loaded and trained on equals the one trained on without the round trip, bit for
bit. Functions and classes of the user's own (a custom loss, metric, optimizer or layer) are
written by name and found again through ``load_model(..., custom_objects={name: object})``.

The container is NumPy's ``.npz`` (a zip of ``.npy`` arrays; the JSON is stored as a string
array): it needs nothing beyond NumPy, is read back with ``allow_pickle=False`` (no code runs on
load), and any NumPy can open it. The file is written at exactly the path given (no suffix is
added), to a temporary file beside it first and renamed over the path only once it is complete,
so a failure midway leaves any earlier file intact. Every way a file can be bad (not a zip,
truncated, a damaged member, bad JSON, unknown classes, weights of the wrong shapes) raises
:class:`ModelFileError`, naming the file and what is wrong; nothing is half-loaded.
"""

from __future__ import annotations

import json
import os
import uuid
import zipfile

import numpy as np

from .. import losses as _losses
from .. import optimizers as _optimizers
from .. import schedules
from . import activations, initializers
from .layers import LAYERS

FORMAT = "gpugrad.model/1"


def _class_config(obj) -> dict:
    return {"class_name": type(obj).__name__, "config": obj.get_config()}


def layer_config(layer) -> dict:
    if not hasattr(layer, "get_config"):
        raise TypeError(
            f"cannot save layer {layer!r}: it has no get_config() (plain callables cannot be written "
            "to a model file; use a Layer subclass with get_config, or save_weights)"
        )
    return _class_config(layer)


def layer_from_config(spec: dict, custom_objects=None):
    from .model import Sequential  # noqa: PLC0415  (model imports this module)

    name = spec["class_name"]
    custom = custom_objects or {}
    cls = custom.get(name) or LAYERS.get(name) or (Sequential if name == "Sequential" else None)
    if cls is None:
        raise ValueError(
            f"unknown layer class {name!r} in the model config; pass it in custom_objects={{'{name}': {name}}}"
        )
    config = dict(spec["config"])
    for key, known in (("activation", activations.ACTIVATIONS), ("kernel_initializer", initializers.INITIALIZERS),
                       ("bias_initializer", initializers.INITIALIZERS)):
        value = config.get(key)
        if not isinstance(value, str):
            continue
        if value in custom:
            config[key] = custom[value]
        elif value.lower() not in known:
            raise ValueError(
                f"unknown {key} {value!r} in the model config; pass it in custom_objects={{'{value}': {value}}}"
            )
    if cls is Sequential:
        return Sequential.from_config(config, custom_objects)
    return cls.from_config(config)


class ModelFileError(ValueError):
    """A model file that cannot be loaded: the message names the file and what is wrong."""


def _callable_name(fn) -> str:
    return getattr(fn, "__name__", None) or type(fn).__name__


def _public_optimizer_class(opt) -> type:
    """The class an optimizer is saved as: its own, or for a ``DistributedOptimizer`` view the
    class of the optimizer it wraps (saved as that optimizer)."""
    from ..distributed.optimizer import DistributedOptimizer  # noqa: PLC0415

    return next(c for c in type(opt).__mro__ if not issubclass(c, DistributedOptimizer))


def _jsonable_lr(lr):
    if callable(lr):
        if not hasattr(lr, "get_config"):
            raise TypeError(f"the learning rate {lr!r} is a callable without get_config()")
        return {"class_name": type(lr).__name__, "config": lr.get_config()}
    return lr


def _optimizer_config(opt) -> dict:
    cls = _public_optimizer_class(opt)
    torch_style = hasattr(opt, "param_groups")
    config = dict(opt.get_config())
    if torch_style:  # rebuilt over the loaded model's parameters
        config["lr"] = _jsonable_lr(config["lr"])
        for k in ("clipnorm", "clipvalue"):
            if getattr(opt, k, None) is not None:
                config[k] = getattr(opt, k)
    spec = {"class_name": cls.__name__, "config": config}
    if torch_style:
        spec["style"] = "torch"
    try:
        json.dumps(spec)
    except (TypeError, ValueError) as e:
        raise TypeError(
            f"save: the config of optimizer {cls.__name__} cannot be written as JSON ({e}): a learning-rate "
            "schedule needs get_config() (those in gg.optimizers.schedules have it) and a custom optimizer a "
            "get_config() of plain values; or keep the weights only with save_weights"
        ) from None
    return spec


def _compile_config(model) -> dict | None:
    """Optimizer, loss, metrics and ``jit_compile`` as JSON (None for an uncompiled model). A
    loss, metric or optimizer of the user's own is written by name (found again through
    ``custom_objects``)."""
    opt, loss = model.optimizer, model.loss
    if opt is None or loss is None:
        return None
    if isinstance(loss, str):
        loss_cfg = loss
    elif isinstance(loss, _losses.Loss):
        loss_cfg = _class_config(loss)
    else:
        named = [k for k, v in _losses.LOSSES.items() if v is loss]
        loss_cfg = named[0] if named else {"function": _callable_name(loss)}
    metrics = [m if isinstance(m, str) else {"function": getattr(m, "name", None) or _callable_name(m)}
               for m in model._metric_ids]
    return {"optimizer": _optimizer_config(opt), "loss": loss_cfg, "metrics": metrics,
            "jit_compile": bool(model.jit_compile)}


def _optimizer_state(model, arrays: dict) -> dict | None:
    """The optimizer's step count and slot arrays (into ``arrays``, keyed by weight index)."""
    opt = model.optimizer
    if opt is None or not hasattr(opt, "_slot_state"):
        return None
    layout = []
    for i, slots in enumerate(opt._slot_state(model.weights)):
        if slots is None:
            layout.append(None)
            continue
        layout.append([s is not None for s in slots])
        for j, slot in enumerate(slots):
            if slot is not None:
                arrays[f"optimizer_{i:04d}_{j}"] = slot.numpy()
    return {"iterations": int(opt.iterations), "slots": layout}


def _atomic_savez(path: str, arrays: dict) -> None:
    """``np.savez`` to exactly ``path``: a temporary file beside it, renamed over ``path`` once
    complete (a failure midway, a full disk say, leaves any earlier file at ``path`` as it was)."""
    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies, as for open()
    try:
        with os.fdopen(fd, "wb") as f:  # a file object: np.savez then adds no suffix
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save_model(model, filepath) -> None:
    """Write ``model`` (architecture, compile settings, weights, optimizer state) to exactly
    ``filepath``, replacing any file there only once the new one is complete."""
    if not model.built:
        raise ValueError("save: the model has no weights yet; call it on data (or model.build(input_shape)) first")
    arrays = {f"weight_{i:04d}": v.numpy() for i, v in enumerate(model.weights)}
    config = {
        "format": FORMAT,
        "class_name": type(model).__name__,
        "config": model.get_config(),
        "compile": _compile_config(model),
        "optimizer_state": _optimizer_state(model, arrays),
    }
    arrays["__config__"] = np.array(json.dumps(config))
    _atomic_savez(os.fspath(filepath), arrays)


def _read_model_file(path: str):
    """The config and every array of a model file, each member read in full (so a damaged or
    truncated member is found here), or a ModelFileError saying what is wrong."""
    if not zipfile.is_zipfile(path):
        size = os.path.getsize(path)
        raise ModelFileError(
            f"load_model: {path!r} is not a gpugrad model file: not a zip (.npz) archive "
            f"({'empty' if size == 0 else f'{size} bytes'}; truncated, or another kind of file?)"
        )
    member = None
    try:
        with np.load(path, allow_pickle=False) as f:
            names = list(f.files)
            if "__config__" not in names:
                raise ModelFileError(
                    f"load_model: {path!r} is not a gpugrad model file (no config); a file from save_weights "
                    "is loaded with model.load_weights"
                )
            arrays = {}
            for member in names:
                arrays[member] = np.asarray(f[member])
    except ModelFileError:
        raise
    except Exception as e:  # a bad CRC, a truncated or pickled member, a damaged archive...
        where = f" (member {member!r})" if member is not None else ""
        raise ModelFileError(f"load_model: cannot read {path!r}{where}: {type(e).__name__}: {e}") from e
    try:
        meta = json.loads(str(arrays.pop("__config__")))
    except ValueError as e:
        raise ModelFileError(f"load_model: the config in {path!r} is not valid JSON: {e}") from e
    if not isinstance(meta, dict):
        raise ModelFileError(f"load_model: the config in {path!r} is not a JSON object")
    return meta, arrays


def _resolve_loss(loss, custom: dict):
    if isinstance(loss, str):
        if loss in custom:
            return custom[loss]
        _losses.get(loss)  # an unknown name raises, naming the known ones
        return loss
    if "function" in loss:
        name = loss["function"]
        if name not in custom:
            raise ValueError(
                f"the model was compiled with the loss function {name!r}, which is not built in; "
                f"pass it as load_model(..., custom_objects={{'{name}': {name}}}) or load with compile=False"
            )
        return custom[name]
    name = loss["class_name"]
    cls = custom.get(name) or _losses.LOSS_CLASSES.get(name)
    if cls is None:
        raise ValueError(
            f"unknown loss class {name!r}; pass it as load_model(..., custom_objects={{'{name}': {name}}}) "
            "or load with compile=False"
        )
    return cls.from_config(loss["config"])


def _resolve_metric(metric, custom: dict):
    if isinstance(metric, str):
        return custom.get(metric, metric)
    name = metric["function"]
    if name not in custom:
        raise ValueError(
            f"the model was compiled with the metric {name!r}, which is not built in; pass it as "
            f"load_model(..., custom_objects={{'{name}': {name}}}) or load with compile=False"
        )
    return custom[name]


def _resolve_optimizer(spec: dict, custom: dict, model):
    name = spec["class_name"]
    cls = custom.get(name)
    if cls is None:
        found = getattr(_optimizers, name, None)
        cls = found if isinstance(found, type) and issubclass(found, _optimizers.Optimizer) else None
    if cls is None:
        raise ValueError(
            f"unknown optimizer class {name!r}; pass it as load_model(..., custom_objects={{'{name}': {name}}}) "
            "or load with compile=False"
        )
    config = dict(spec["config"])
    if spec.get("style") == "torch":
        lr = config.get("lr")
        if isinstance(lr, dict):
            config["lr"] = getattr(schedules, lr["class_name"]).from_config(lr["config"])
        return cls(model.trainable_variables, **config)
    return cls.from_config(config)


def _compile_loaded(model, c: dict, state, arrays: dict, custom: dict) -> None:
    loss = _resolve_loss(c["loss"], custom)
    metrics = [_resolve_metric(m, custom) for m in c["metrics"]]
    optimizer = _resolve_optimizer(c["optimizer"], custom, model)
    if state is not None:
        weights = model.weights
        if len(state["slots"]) != len(weights):
            raise ValueError(f"optimizer state for {len(state['slots'])} weights, but the model has {len(weights)}")
        states = []
        for i, layout in enumerate(state["slots"]):
            if layout is None:
                states.append(None)
                continue
            states.append(tuple(arrays[f"optimizer_{i:04d}_{j}"] if used else None for j, used in enumerate(layout)))
        optimizer._restore_slots(weights, states, state["iterations"], "optimizer state")
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics, jit_compile=bool(c.get("jit_compile", False)))


def load_model(filepath, custom_objects=None, compile: bool = True):  # noqa: A002 (Keras' name)
    """A model written by ``model.save``: rebuilt from its config, weights set, and compiled again
    with its optimizer state (when ``compile`` and the model was compiled). ``custom_objects``
    maps names to the classes or functions the file refers to (custom layers, activations,
    losses, metrics, optimizers). A file that cannot be loaded raises :class:`ModelFileError`
    naming it; a missing one, ``FileNotFoundError``."""
    path = os.fspath(filepath)
    if not os.path.exists(path):
        raise FileNotFoundError(f"load_model: no such file {path!r}")
    meta, arrays = _read_model_file(path)
    try:
        return _build_model(meta, arrays, custom_objects or {}, compile)
    except ModelFileError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        what = f"missing entry {e}" if isinstance(e, KeyError) else str(e)
        raise ModelFileError(f"load_model: cannot load {path!r}: {what}") from e


def _build_model(meta: dict, arrays: dict, custom: dict, compile: bool):  # noqa: A002
    from .model import Sequential  # noqa: PLC0415

    if meta.get("format") != FORMAT:
        raise ValueError(f"it has format {meta.get('format')!r}, expected {FORMAT!r}")
    if meta.get("class_name") != "Sequential":
        raise ValueError(f"unknown model class {meta.get('class_name')!r}")
    model = Sequential.from_config(meta["config"], custom)
    if not model.built:
        raise ValueError("the config does not say the input shape")
    keys = sorted(k for k in arrays if k.startswith("weight_"))
    ws = model.weights
    if keys != [f"weight_{i:04d}" for i in range(len(ws))]:
        raise ValueError(f"it holds {len(keys)} weight array(s) but the model it describes has {len(ws)}")
    for i, (k, v) in enumerate(zip(keys, ws, strict=True)):
        if tuple(arrays[k].shape) != tuple(v.shape):
            raise ValueError(
                f"weight {i} ({v.name!r}) has shape {tuple(arrays[k].shape)} in the file but the layer "
                f"makes it {tuple(v.shape)}"
            )
    model.set_weights([arrays[k] for k in keys])
    if compile and meta.get("compile"):
        _compile_loaded(model, meta["compile"], meta.get("optimizer_state"), arrays, custom)
    return model
